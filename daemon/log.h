/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one sink of every message: the systemd journal, or the console
 * (standard error) when the journal is not wanted or not reachable.
 *
 * Modules below the main loop log at LOG_DEBUG only; the loop and the events
 * module decide what an operator sees.
 */

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>
#include <sys/uio.h>

#include "util.h"

enum log_target {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_CONSOLE,
};

/* Parses "auto", "journal" or "console". */
int log_target_from_string(const char *s, enum log_target *ret);

/* Chooses the sink: "auto" is the journal when its socket accepts messages,
 * else the console. Returns the target chosen. */
enum log_target log_open(enum log_target wanted);

enum log_target log_get_target(void);

/* Messages above this priority (numerically) are dropped. Default LOG_INFO. */
void log_set_max_priority(int priority);
int log_get_max_priority(void);

/* Logs a plain message at priority. Returns -error (so "return log_error_errno(r, ...)"
 * works) when error is not 0, else 0. */
int log_internal(int priority, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) _printf_(6, 7);

#define log_full_errno(priority, error, ...) \
        log_internal((priority), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, (error), __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, (error), __VA_ARGS__)
#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, (error), __VA_ARGS__)

/*
 * Sends one structured entry. fields holds complete "NAME=value" items (values
 * may hold any bytes, they are never used as a format); MESSAGE= and PRIORITY=
 * must be among them. On the console the entry is printed as one line: its
 * MESSAGE, then the CBM365_* fields as NAME=value with control characters
 * escaped.
 */
int log_struct_iovec(int priority, const struct iovec *fields, size_t n_fields);
