/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Small helpers shared by every module: scope-exit cleanup attributes,
 * bounded string copies and number parsing.
 *
 * Error convention of the whole project: functions return an int, >= 0 on
 * success and -errno on failure. Output parameters are written only on
 * success. Where a caller needs more than an errno, the function also takes
 * a "char *reason, size_t reason_size" buffer and writes a short English
 * reason into it on failure (never a secret, never a response body).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))
#define _noreturn_ __attribute__((noreturn))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#undef MIN
#define MIN(a, b)                                       \
        ({                                              \
                __typeof__(a) _a_ = (a);                \
                __typeof__(b) _b_ = (b);                \
                _a_ < _b_ ? _a_ : _b_;                  \
        })

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

static inline void closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_close_ _cleanup_(closep)

/* Defines NAMEp(T **) that calls NAME(*p) when *p is not NULL. */
#define DEFINE_POINTER_CLEANUP(type, func)                      \
        static inline void func##p(type **p) {                  \
                if (*p)                                         \
                        (void) func(*p);                        \
        }

/* Moves ownership out of a cleanup variable: returns the value, leaves NULL. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _p_ = (p);        \
                (p) = NULL;                     \
                _p_;                            \
        })

#define TAKE_FD(fd)                             \
        ({                                      \
                int _fd_ = (fd);                \
                (fd) = -1;                      \
                _fd_;                           \
        })

static inline bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

/* Writes a printf-style reason into buf (if buf is not NULL) and returns
 * -error, so that a failure path reads "return set_reason(buf, n, EINVAL, ...)". */
int set_reason(char *buf, size_t size, int error, const char *fmt, ...) _printf_(4, 5);

/* Copies src into dst of size dst_size, always NUL-terminated, truncating. */
size_t strscpy(char *dst, size_t dst_size, const char *src);

/* Parses a whole string as a base-10 unsigned number no larger than max. */
int parse_uint64(const char *s, uint64_t max, uint64_t *ret);

/* Overwrites n bytes in a way the compiler cannot drop; used for secrets. */
void explicit_wipe(void *p, size_t n);

/* Frees a NUL-terminated secret string after wiping it. Returns NULL. */
char *secret_free(char *s);

/* Monotonic and realtime clocks in microseconds. */
uint64_t now_monotonic_usec(void);
uint64_t now_realtime_usec(void);

/* FNV-1a, 64 bit: a stable hash for schedule offsets (not for security). */
uint64_t hash64(const void *data, size_t size, uint64_t seed);
