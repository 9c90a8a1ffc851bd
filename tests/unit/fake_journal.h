/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Test helpers shared by test_log.c and test_events.c: a fake journal and a
 * capture of standard error. Include after <cmocka.h> and <systemd/sd-journal.h>.
 *
 * The journal is replaced in the test program: this definition of
 * sd_journal_sendv() takes precedence over libsystemd's, so the tests see the
 * exact items of each entry without a journald running. That holds while
 * libsystemd is linked as a shared library.
 */

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#define FAKE_ITEMS_MAX 32

static struct {
        char *items[FAKE_ITEMS_MAX];
        size_t lengths[FAKE_ITEMS_MAX];
        int n;
        int calls;
        int result;     /* what the fake returns: 0, or -errno to act as a failing journal */
} fake_journal;

_unused_ static void fake_journal_clear(void) {
        for (int i = 0; i < fake_journal.n; i++)
                free(fake_journal.items[i]);
        fake_journal.n = 0;
}

int sd_journal_sendv(const struct iovec *iov, int n) {
        fake_journal.calls++;
        fake_journal_clear();
        for (int i = 0; i < n && i < FAKE_ITEMS_MAX; i++) {
                char *copy = malloc(iov[i].iov_len + 1);

                assert_non_null(copy);
                memcpy(copy, iov[i].iov_base, iov[i].iov_len);
                copy[iov[i].iov_len] = '\0';
                fake_journal.items[i] = copy;
                fake_journal.lengths[i] = iov[i].iov_len;
                fake_journal.n++;
        }
        return fake_journal.result;
}

/* Returns the value of the item NAME of the last entry, or NULL. */
_unused_ static const char *journal_item(const char *name) {
        size_t n = strlen(name);

        for (int i = 0; i < fake_journal.n; i++)
                if (strncmp(fake_journal.items[i], name, n) == 0 && fake_journal.items[i][n] == '=')
                        return fake_journal.items[i] + n + 1;
        return NULL;
}

/* Standard error goes into a memory file between capture_begin() and
 * capture_end(); cmocka's own messages are printed only after capture_end(). */
static int saved_stderr = -1;
static int capture_fd = -1;

_unused_ static void capture_begin(void) {
        fflush(stderr);
        saved_stderr = dup(STDERR_FILENO);
        assert_true(saved_stderr >= 0);
        capture_fd = memfd_create("stderr", MFD_CLOEXEC);
        assert_true(capture_fd >= 0);
        assert_int_equal(dup2(capture_fd, STDERR_FILENO), STDERR_FILENO);
}

/* Returns what was written to standard error, as a malloc'ed string. */
_unused_ static char *capture_end(void) {
        off_t size;
        char *buf;

        fflush(stderr);
        assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
        close(saved_stderr);
        size = lseek(capture_fd, 0, SEEK_END);
        assert_true(size >= 0);
        buf = calloc(1, (size_t) size + 1);
        assert_non_null(buf);
        assert_int_equal(pread(capture_fd, buf, (size_t) size, 0), size);
        close(capture_fd);
        saved_stderr = -1;
        return buf;
}

/* Puts standard error back when an assert ended a test between
 * capture_begin() and capture_end(). */
_unused_ static int teardown_capture(void **state) {
        if (saved_stderr >= 0) {
                (void) dup2(saved_stderr, STDERR_FILENO);
                close(saved_stderr);
                close(capture_fd);
                saved_stderr = -1;
        }
        return 0;
}
