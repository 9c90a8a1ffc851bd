/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>

#include <cmocka.h>

#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "log.h"

#include "fake_journal.h"

static int teardown_group(void **state) {
        for (int i = 0; i < fake_journal.n; i++)
                free(fake_journal.items[i]);
        fake_journal.n = 0;
        return 0;
}

static int setup_console(void **state) {
        (void) log_open(LOG_TARGET_CONSOLE);
        log_set_max_priority(LOG_INFO);
        fake_journal.result = 0;
        fake_journal.calls = 0;
        return 0;
}

static void target_from_string_valid(void **state) {
        enum log_target t = LOG_TARGET_CONSOLE;

        assert_int_equal(log_target_from_string("auto", &t), 0);
        assert_int_equal(t, LOG_TARGET_AUTO);
        assert_int_equal(log_target_from_string("journal", &t), 0);
        assert_int_equal(t, LOG_TARGET_JOURNAL);
        assert_int_equal(log_target_from_string("console", &t), 0);
        assert_int_equal(t, LOG_TARGET_CONSOLE);
}

static void target_from_string_invalid(void **state) {
        static const char *const bad[] = { "", "Console", "journald", "stderr", "auto ", "syslog" };
        enum log_target t = LOG_TARGET_JOURNAL;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(log_target_from_string(bad[i], &t), -EINVAL);
        assert_int_equal(log_target_from_string(NULL, &t), -EINVAL);
        /* Output parameters are written only on success. */
        assert_int_equal(t, LOG_TARGET_JOURNAL);
}

static void open_explicit_targets(void **state) {
        assert_int_equal(log_open(LOG_TARGET_CONSOLE), LOG_TARGET_CONSOLE);
        assert_int_equal(log_get_target(), LOG_TARGET_CONSOLE);
        assert_int_equal(log_open(LOG_TARGET_JOURNAL), LOG_TARGET_JOURNAL);
        assert_int_equal(log_get_target(), LOG_TARGET_JOURNAL);
        (void) log_open(LOG_TARGET_CONSOLE);
}

static void open_auto_matches_probe(void **state) {
        bool reachable = log_journal_socket_reachable("/run/systemd/journal/socket");

        assert_int_equal(log_open(LOG_TARGET_AUTO), reachable ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE);
        (void) log_open(LOG_TARGET_CONSOLE);
}

static int bind_socket(const char *path, int type) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_true(strlen(path) < sizeof sa.sun_path);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        if (type == SOCK_STREAM)
                assert_int_equal(listen(fd, 1), 0);
        return fd;
}

static void probe_socket_kinds(void **state) {
        char dir[] = "/tmp/test-log-XXXXXX";
        char dgram[64], stream[64], plain[64], missing[64], long_path[200];
        int fd_dgram, fd_stream, fd_plain;

        assert_non_null(mkdtemp(dir));
        (void) snprintf(dgram, sizeof dgram, "%s/dgram", dir);
        (void) snprintf(stream, sizeof stream, "%s/stream", dir);
        (void) snprintf(plain, sizeof plain, "%s/plain", dir);
        (void) snprintf(missing, sizeof missing, "%s/missing", dir);
        memset(long_path, 'a', sizeof long_path - 1);
        long_path[0] = '/';
        long_path[sizeof long_path - 1] = '\0';

        fd_dgram = bind_socket(dgram, SOCK_DGRAM);
        fd_stream = bind_socket(stream, SOCK_STREAM);
        fd_plain = open(plain, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd_plain >= 0);

        assert_true(log_journal_socket_reachable(dgram));
        assert_false(log_journal_socket_reachable(stream));
        assert_false(log_journal_socket_reachable(plain));
        assert_false(log_journal_socket_reachable(missing));
        assert_false(log_journal_socket_reachable(long_path));
        assert_false(log_journal_socket_reachable(NULL));

        /* A socket file whose owner went away no longer accepts messages. */
        close(fd_dgram);
        assert_false(log_journal_socket_reachable(dgram));

        close(fd_stream);
        close(fd_plain);
        unlink(dgram);
        unlink(stream);
        unlink(plain);
        assert_int_equal(rmdir(dir), 0);
}

static void level_words(void **state) {
        assert_string_equal(log_level_to_string(LOG_EMERG), "emerg");
        assert_string_equal(log_level_to_string(LOG_ALERT), "alert");
        assert_string_equal(log_level_to_string(LOG_CRIT), "crit");
        assert_string_equal(log_level_to_string(LOG_ERR), "error");
        assert_string_equal(log_level_to_string(LOG_WARNING), "warning");
        assert_string_equal(log_level_to_string(LOG_NOTICE), "notice");
        assert_string_equal(log_level_to_string(LOG_INFO), "info");
        assert_string_equal(log_level_to_string(LOG_DEBUG), "debug");
}

static void console_plain_line(void **state) {
        _cleanup_free_ char *out = NULL;

        capture_begin();
        log_warning("Failed to poll '%s': HTTP %d", "contoso", 403);
        out = capture_end();
        assert_string_equal(out, "warning: Failed to poll 'contoso': HTTP 403\n");
}

static void console_errno_return(void **state) {
        _cleanup_free_ char *out = NULL;
        int r1, r2, r3;

        capture_begin();
        r1 = log_error_errno(-EIO, "first");
        r2 = log_warning_errno(EIO, "second");
        r3 = log_info("third");
        out = capture_end();
        assert_int_equal(r1, -EIO);
        assert_int_equal(r2, -EIO);
        assert_int_equal(r3, 0);
        /* Nothing is appended for the error: the caller writes %m. */
        assert_string_equal(out, "error: first\nwarning: second\ninfo: third\n");
}

static void console_percent_m(void **state) {
        _cleanup_free_ char *out = NULL;

        errno = EBADF;
        capture_begin();
        (void) log_error_errno(-ENOENT, "Failed to open '%s': %m", "/etc/x.conf");
        out = capture_end();
        assert_string_equal(out, "error: Failed to open '/etc/x.conf': No such file or directory\n");
        /* The caller's errno survives the call. */
        assert_int_equal(errno, EBADF);
}

static void console_max_priority(void **state) {
        _cleanup_free_ char *quiet = NULL, *verbose = NULL, *strict = NULL;

        assert_int_equal(log_get_max_priority(), LOG_INFO);
        capture_begin();
        log_debug("hidden");
        quiet = capture_end();
        assert_string_equal(quiet, "");

        log_set_max_priority(LOG_DEBUG);
        capture_begin();
        log_debug("shown");
        verbose = capture_end();
        assert_string_equal(verbose, "debug: shown\n");

        log_set_max_priority(LOG_WARNING);
        capture_begin();
        log_notice("dropped");
        log_warning("kept");
        strict = capture_end();
        assert_string_equal(strict, "warning: kept\n");
}

static void console_escapes_controls(void **state) {
        _cleanup_free_ char *out = NULL;

        capture_begin();
        log_info("name '%s'", "a\nb\tc\x1b[31md\x7f");
        out = capture_end();
        assert_string_equal(out, "info: name 'a\\nb\\tc\\x1b[31md\\x7f'\n");
}

static void console_keeps_utf8(void **state) {
        _cleanup_free_ char *out = NULL;

        capture_begin();
        log_info("%s", "Zo\xc3\xab \xe5\xbc\xa0 C:\\path");
        out = capture_end();
        /* Valid UTF-8 and a backslash pass unchanged in a plain message. */
        assert_string_equal(out, "info: Zo\xc3\xab \xe5\xbc\xa0 C:\\path\n");
}

static void console_escapes_bad_utf8(void **state) {
        _cleanup_free_ char *out = NULL;

        capture_begin();
        /* A lone byte, an overlong '/', a surrogate and the C1 control CSI. */
        log_info("%s", "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xc2\x9b" "e\xe5\xbc");
        out = capture_end();
        assert_string_equal(out, "info: a\\xffb\\xc0\\xafc\\xed\\xa0\\x80d\\xc2\\x9be\\xe5\\xbc\n");
}

#define ITEM(s) { (char *) (s), sizeof(s) - 1 }

static void struct_console_line(void **state) {
        static const char name_with_nul[] = "CBM365_RAW=a\0b";
        const struct iovec fields[] = {
                ITEM("MESSAGE_ID=0123456789abcdef0123456789abcdef"),
                ITEM("MESSAGE=contoso: something happened"),
                ITEM("PRIORITY=4"),
                ITEM("CBM365_EVENT=protection-lost"),
                ITEM("CBM365_USER_NAME=Adele Vance"),
                ITEM("CBM365_PATH=C:\\x"),
                ITEM("CBM365_QUOTE=say \"hi\""),
                ITEM("CBM365_EMPTY="),
                ITEM("CBM365_EQ=a=b"),
                { (char *) name_with_nul, sizeof name_with_nul - 1 },
                ITEM("OTHER_FIELD=not shown"),
        };
        _cleanup_free_ char *out = NULL;
        int r;

        capture_begin();
        r = log_struct_iovec(LOG_WARNING, fields, ELEMENTSOF(fields));
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out,
                            "warning: contoso: something happened [CBM365_EVENT=protection-lost "
                            "CBM365_USER_NAME=\"Adele Vance\" CBM365_PATH=C:\\\\x "
                            "CBM365_QUOTE=\"say \\\"hi\\\"\" CBM365_EMPTY=\"\" CBM365_EQ=\"a=b\" "
                            "CBM365_RAW=a\\x00b]\n");
}

static void struct_console_escapes_newline(void **state) {
        const struct iovec fields[] = {
                ITEM("MESSAGE=line one\nline two"),
                ITEM("PRIORITY=6"),
                ITEM("CBM365_USER_NAME=Eve\nCBM365_EVENT=fake\t\x1b"),
        };
        _cleanup_free_ char *out = NULL;

        capture_begin();
        (void) log_struct_iovec(LOG_INFO, fields, ELEMENTSOF(fields));
        out = capture_end();
        assert_string_equal(out, "info: line one\\nline two [CBM365_USER_NAME=\"Eve\\nCBM365_EVENT=fake\\t\\x1b\"]\n");
}

static void struct_console_no_fields(void **state) {
        const struct iovec fields[] = { ITEM("MESSAGE=only text"), ITEM("PRIORITY=5") };
        _cleanup_free_ char *out = NULL;

        capture_begin();
        (void) log_struct_iovec(LOG_NOTICE, fields, ELEMENTSOF(fields));
        out = capture_end();
        assert_string_equal(out, "notice: only text\n");
}

static void struct_dropped_by_priority(void **state) {
        const struct iovec fields[] = { ITEM("MESSAGE=detail"), ITEM("PRIORITY=7") };
        _cleanup_free_ char *out = NULL;
        int r;

        capture_begin();
        r = log_struct_iovec(LOG_DEBUG, fields, ELEMENTSOF(fields));
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out, "");
}

static void struct_invalid_arguments(void **state) {
        const struct iovec fields[] = { ITEM("MESSAGE=x") };

        assert_int_equal(log_struct_iovec(LOG_INFO, NULL, 1), -EINVAL);
        assert_int_equal(log_struct_iovec(LOG_INFO, fields, 0), -EINVAL);
        assert_int_equal(log_struct_iovec(LOG_INFO, fields, 1000), -EINVAL);
}

static void journal_plain_items(void **state) {
        _cleanup_free_ char *out = NULL;
        char line[32];
        int expected_line;

        (void) log_open(LOG_TARGET_JOURNAL);
        capture_begin();
        expected_line = __LINE__ + 1;
        (void) log_warning_errno(-EACCES, "Failed to read '%s': %m", "secret-file");
        out = capture_end();
        assert_string_equal(out, "");
        assert_int_equal(fake_journal.calls, 1);
        assert_string_equal(journal_item("MESSAGE"), "Failed to read 'secret-file': Permission denied");
        assert_string_equal(journal_item("PRIORITY"), "4");
        assert_string_equal(journal_item("ERRNO"), "13");
        assert_string_equal(journal_item("SYSLOG_IDENTIFIER"), "cbm365-watchd");
        assert_non_null(strstr(journal_item("CODE_FILE"), "test_log.c"));
        (void) snprintf(line, sizeof line, "%d", expected_line);
        assert_string_equal(journal_item("CODE_LINE"), line);
        assert_string_equal(journal_item("CODE_FUNC"), "journal_plain_items");
}

static void journal_plain_no_errno(void **state) {
        (void) log_open(LOG_TARGET_JOURNAL);
        log_notice("Started");
        assert_string_equal(journal_item("MESSAGE"), "Started");
        assert_string_equal(journal_item("PRIORITY"), "5");
        assert_null(journal_item("ERRNO"));
}

static void journal_struct_items(void **state) {
        const struct iovec fields[] = {
                ITEM("MESSAGE=hello"),
                ITEM("PRIORITY=4"),
                ITEM("CBM365_USER_NAME=a\nb"),
        };
        int r;

        (void) log_open(LOG_TARGET_JOURNAL);
        r = log_struct_iovec(LOG_WARNING, fields, ELEMENTSOF(fields));
        assert_int_equal(r, 0);
        assert_int_equal(fake_journal.n, 4);
        assert_string_equal(journal_item("MESSAGE"), "hello");
        assert_string_equal(journal_item("PRIORITY"), "4");
        /* The value reaches the journal as bytes, newline included. */
        assert_string_equal(journal_item("CBM365_USER_NAME"), "a\nb");
        assert_string_equal(journal_item("SYSLOG_IDENTIFIER"), "cbm365-watchd");
}

static void journal_struct_adds_priority(void **state) {
        const struct iovec fields[] = { ITEM("MESSAGE=no priority item") };

        (void) log_open(LOG_TARGET_JOURNAL);
        assert_int_equal(log_struct_iovec(LOG_NOTICE, fields, ELEMENTSOF(fields)), 0);
        assert_string_equal(journal_item("PRIORITY"), "5");
}

static void journal_failure_falls_back(void **state) {
        const struct iovec fields[] = {
                ITEM("MESSAGE=event text"),
                ITEM("PRIORITY=4"),
                ITEM("CBM365_EVENT=poll-failed"),
        };
        _cleanup_free_ char *out = NULL;

        (void) log_open(LOG_TARGET_JOURNAL);
        log_set_max_priority(LOG_DEBUG);
        fake_journal.result = -ECONNREFUSED;
        capture_begin();
        (void) log_struct_iovec(LOG_WARNING, fields, ELEMENTSOF(fields));
        log_info("plain text");
        out = capture_end();
        /* The journal's refusal is noted once, at debug; each entry still reaches the console. */
        assert_string_equal(out,
                            "debug: Failed to send an entry to the journal, writing it to standard "
                            "error: Connection refused\n"
                            "warning: event text [CBM365_EVENT=poll-failed]\n"
                            "info: plain text\n");
        assert_int_equal(fake_journal.calls, 2);
}

static void journal_failure_note_hidden(void **state) {
        _cleanup_free_ char *out = NULL;

        (void) log_open(LOG_TARGET_JOURNAL);
        fake_journal.result = -ENOENT;
        capture_begin();
        log_warning("Failed to poll '%s'", "contoso");
        out = capture_end();
        assert_string_equal(out, "warning: Failed to poll 'contoso'\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(target_from_string_valid, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(target_from_string_invalid, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(open_explicit_targets, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(open_auto_matches_probe, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(probe_socket_kinds, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(level_words, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_plain_line, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_errno_return, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_percent_m, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_max_priority, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_escapes_controls, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_keeps_utf8, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(console_escapes_bad_utf8, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(struct_console_line, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(struct_console_escapes_newline, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(struct_console_no_fields, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(struct_dropped_by_priority, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(struct_invalid_arguments, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(journal_plain_items, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(journal_plain_no_errno, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(journal_struct_items, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(journal_struct_adds_priority, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(journal_failure_falls_back, setup_console, teardown_capture),
                cmocka_unit_test_setup_teardown(journal_failure_note_hidden, setup_console, teardown_capture),
        };

        return cmocka_run_group_tests(tests, NULL, teardown_group);
}
