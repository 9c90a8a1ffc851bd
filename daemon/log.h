/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one sink of every message: the systemd journal, or the console
 * (standard error) when the journal is not requested or not reachable.
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
enum log_target log_open(enum log_target requested);

enum log_target log_get_target(void);

/* Returns true when path is a datagram socket that accepts a connection: the
 * test log_open() applies to the journal's socket for "auto". */
bool log_journal_socket_reachable(const char *path);

/* Returns the word the console prints for a priority: "emerg", "alert",
 * "crit", "error", "warning", "notice", "info" or "debug". */
const char *log_level_to_string(int priority);

/* Messages above this priority (numerically) are dropped. Default LOG_INFO. */
void log_set_max_priority(int priority);
int log_get_max_priority(void);

/* Logs a plain message at priority. Returns -error (so "return log_error_errno(r, ...)"
 * works) when error is not 0, else 0.
 *
 * error may be given as -errno or errno. Nothing is appended to the text for
 * it: errno is set to the error while fmt is formatted, so "%m" expands to its
 * strerror() text, and the journal entry carries it as ERRNO=. fmt must be a
 * literal of our own; text from the network is passed only as a "%s" argument.
 * On the console the line reads "<level>: <message>", with control characters
 * escaped. */
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
 *
 * There, in " [NAME=value NAME=value]", control characters and invalid UTF-8
 * become \n, \t or \xHH and a backslash or '"' is escaped with a backslash.
 * A value that is empty or contains a space, '"' or '=' is put in double
 * quotes (as in logfmt), so the line can be split back into its fields.
 *
 * When the journal rejects the entry, it goes to the console instead. Returns 0
 * when the entry was written or is above the max priority, -EINVAL for no
 * fields or more than 64, or -errno when the console write failed too.
 */
int log_struct_iovec(int priority, const struct iovec *fields, size_t n_fields);
