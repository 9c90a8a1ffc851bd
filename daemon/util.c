/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>

int set_reason(char *buf, size_t size, int error, const char *fmt, ...) {
        if (buf && size > 0) {
                va_list ap;

                va_start(ap, fmt);
                (void) vsnprintf(buf, size, fmt, ap);
                va_end(ap);
        }
        return -abs(error);
}

size_t strscpy(char *dst, size_t dst_size, const char *src) {
        size_t n;

        if (dst_size == 0)
                return 0;
        n = strnlen(src, dst_size - 1);
        memcpy(dst, src, n);
        dst[n] = '\0';
        return n;
}

int parse_uint64(const char *s, uint64_t max, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE || v > max)
                return -ERANGE;
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

void explicit_wipe(void *p, size_t n) {
        if (p && n > 0)
                explicit_bzero(p, n);
}

char *secret_free(char *s) {
        if (s) {
                explicit_wipe(s, strlen(s));
                free(s);
        }
        return NULL;
}

static uint64_t clock_usec(clockid_t id) {
        struct timespec ts;

        (void) clock_gettime(id, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

uint64_t now_monotonic_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}

uint64_t now_realtime_usec(void) {
        return clock_usec(CLOCK_REALTIME);
}

uint64_t hash64(const void *data, size_t size, uint64_t seed) {
        const unsigned char *p = data;
        uint64_t h = UINT64_C(14695981039346656037) ^ seed;

        for (size_t i = 0; i < size; i++) {
                h ^= p[i];
                h *= UINT64_C(1099511628211);
        }
        return h;
}
