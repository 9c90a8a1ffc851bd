/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* log_internal() adds the caller's CODE_FILE, CODE_LINE and CODE_FUNC itself;
 * without this the sd-journal macros would name log.c instead. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#define JOURNAL_SOCKET_PATH "/run/systemd/journal/socket"
#define SYSLOG_IDENTIFIER_FIELD "SYSLOG_IDENTIFIER=cbm365-watchd"

/* Maximum bytes of one plain message, which is truncated beyond it. Our own
 * messages quote at most a reason of a few hundred bytes and a target name. */
#define LOG_MESSAGE_MAX 4096

/* Maximum items log_struct_iovec() accepts from its caller. */
#define LOG_FIELDS_MAX 64

static enum log_target current_target = LOG_TARGET_CONSOLE;
static int max_priority = LOG_INFO;
static bool journal_failure_noted = false;

static bool is_console_escaped(uint32_t c) {
        /* C0 controls, DEL and C1 controls: a terminal may act on any of them. */
        return c < 0x20 || (c >= 0x7f && c < 0xa0);
}

/* Returns the length of the valid UTF-8 sequence at s (at most n bytes) and
 * stores its code point, or returns 0 when the bytes are not valid UTF-8. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret) {
        size_t len;
        uint32_t c;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                len = 2;
                c = s[0] & 0x1f;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                len = 3;
                c = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                c = s[0] & 0x07;
        } else
                return 0;
        if (len > n)
                return 0;

        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }

        /* Reject overlong forms, surrogates and code points past U+10FFFF. */
        if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
            (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *ret = c;
        return len;
}

static void put_escaped_byte(FILE *f, unsigned char b) {
        if (b == '\n')
                fputs("\\n", f);
        else if (b == '\t')
                fputs("\\t", f);
        else
                fprintf(f, "\\x%02x", b);
}

/* Writes n bytes of s so that the console line stays one line and a terminal
 * shows them as text: control characters and invalid UTF-8 become \n, \t or
 * \xHH. With strict, a backslash and a double quote are escaped too, so a
 * field value can be read back unambiguously. */
static void put_escaped(FILE *f, const char *s, size_t n, bool strict) {
        const unsigned char *p = (const unsigned char *) s;

        for (size_t i = 0; i < n;) {
                uint32_t c;
                size_t len = utf8_decode(p + i, n - i, &c);

                if (len == 0 || is_console_escaped(c)) {
                        /* An escaped C1 control shows all its bytes. */
                        size_t k = len == 0 ? 1 : len;

                        for (size_t j = 0; j < k; j++)
                                put_escaped_byte(f, p[i + j]);
                        i += k;
                        continue;
                }
                if (strict && (c == '\\' || c == '"'))
                        fputc('\\', f);
                fwrite(p + i, 1, len, f);
                i += len;
        }
}

/* Quotes a value that is empty or contains a space, '"' or '=', as in
 * logfmt, so that a display name like "Adele Vance" stays one value. */
static bool value_needs_quotes(const char *s, size_t n) {
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (s[i] == ' ' || s[i] == '"' || s[i] == '=')
                        return true;
        return false;
}

static int write_all(int fd, const char *buf, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, buf, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Writes the finished line with one write(2) where possible, so lines of
 * several writers do not interleave. */
static int console_flush_line(char *buf, size_t size) {
        int r;

        if (!buf)
                return -ENOMEM;
        r = write_all(STDERR_FILENO, buf, size);
        free(buf);
        return r;
}

static int console_write_message(int priority, const char *message) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%s: ", log_level_to_string(priority));
        put_escaped(f, message, strlen(message), false);
        fputc('\n', f);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        return console_flush_line(buf, size);
}

static bool item_has_name(const struct iovec *item, const char *name) {
        size_t n = strlen(name);

        return item->iov_len > n && memcmp(item->iov_base, name, n) == 0 &&
               ((const char *) item->iov_base)[n] == '=';
}

static bool has_field(const struct iovec *fields, size_t n_fields, const char *name) {
        for (size_t i = 0; i < n_fields; i++)
                if (item_has_name(&fields[i], name))
                        return true;
        return false;
}

static void console_put_field(FILE *f, const struct iovec *item) {
        const char *s = item->iov_base;
        const char *eq = memchr(s, '=', item->iov_len);
        size_t name_len, value_len;
        bool quoted;

        if (!eq)
                return;
        name_len = (size_t) (eq - s);
        value_len = item->iov_len - name_len - 1;
        quoted = value_needs_quotes(eq + 1, value_len);

        put_escaped(f, s, name_len, true);
        fputs(quoted ? "=\"" : "=", f);
        put_escaped(f, eq + 1, value_len, true);
        if (quoted)
                fputc('"', f);
}

/* Writes the value of the first MESSAGE= item, if there is one. */
static void console_put_message(FILE *f, const struct iovec *fields, size_t n_fields) {
        size_t skip = strlen("MESSAGE=");

        for (size_t i = 0; i < n_fields; i++)
                if (item_has_name(&fields[i], "MESSAGE")) {
                        put_escaped(f, (const char *) fields[i].iov_base + skip,
                                    fields[i].iov_len - skip, false);
                        return;
                }
}

static int console_write_struct(int priority, const struct iovec *fields, size_t n_fields) {
        bool any = false;
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%s: ", log_level_to_string(priority));
        console_put_message(f, fields, n_fields);

        for (size_t i = 0; i < n_fields; i++) {
                if (fields[i].iov_len < 7 || memcmp(fields[i].iov_base, "CBM365_", 7) != 0)
                        continue;
                fputs(any ? " " : " [", f);
                console_put_field(f, &fields[i]);
                any = true;
        }
        if (any)
                fputc(']', f);
        fputc('\n', f);

        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        return console_flush_line(buf, size);
}

/* Says once, at debug, that the journal refused an entry; the entry itself
 * goes to the console instead. Written to the console directly, because the
 * journal is what failed. */
static void note_journal_failure(int error) {
        char text[256];

        if (journal_failure_noted)
                return;
        journal_failure_noted = true;
        if (LOG_DEBUG > max_priority)
                return;
        (void) snprintf(text, sizeof text,
                        "Failed to send an entry to the journal, writing it to standard error: %s",
                        strerror(-error));
        (void) console_write_message(LOG_DEBUG, text);
}

static int journal_write_message(int priority, int error, const char *file, int line,
                                 const char *func, const char *message) {
        char prio[32], code_file[256], code_line[32], code_func[256], errno_item[32];
        _cleanup_free_ char *msg = NULL;
        struct iovec iov[7];
        int n = 0;

        if (asprintf(&msg, "MESSAGE=%s", message) < 0)
                return -ENOMEM;

        (void) snprintf(prio, sizeof prio, "PRIORITY=%d", priority);
        (void) snprintf(code_file, sizeof code_file, "CODE_FILE=%s", strempty(file));
        (void) snprintf(code_line, sizeof code_line, "CODE_LINE=%d", line);
        (void) snprintf(code_func, sizeof code_func, "CODE_FUNC=%s", strempty(func));

        iov[n++] = (struct iovec) { msg, strlen(msg) };
        iov[n++] = (struct iovec) { prio, strlen(prio) };
        iov[n++] = (struct iovec) { code_file, strlen(code_file) };
        iov[n++] = (struct iovec) { code_line, strlen(code_line) };
        iov[n++] = (struct iovec) { code_func, strlen(code_func) };
        iov[n++] = (struct iovec) { (char *) SYSLOG_IDENTIFIER_FIELD, strlen(SYSLOG_IDENTIFIER_FIELD) };
        if (error != 0) {
                (void) snprintf(errno_item, sizeof errno_item, "ERRNO=%d", error);
                iov[n++] = (struct iovec) { errno_item, strlen(errno_item) };
        }

        return sd_journal_sendv(iov, n);
}

int log_target_from_string(const char *s, enum log_target *ret) {
        static const char *const names[] = {
                [LOG_TARGET_AUTO] = "auto",
                [LOG_TARGET_JOURNAL] = "journal",
                [LOG_TARGET_CONSOLE] = "console",
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i])) {
                        *ret = (enum log_target) i;
                        return 0;
                }
        return -EINVAL;
}

bool log_journal_socket_reachable(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        if (!path || strlen(path) >= sizeof sa.sun_path)
                return false;
        memcpy(sa.sun_path, path, strlen(path) + 1);

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        return connect(fd, (const struct sockaddr *) &sa, sizeof sa) >= 0;
}

enum log_target log_open(enum log_target requested) {
        if (requested == LOG_TARGET_AUTO)
                requested = log_journal_socket_reachable(JOURNAL_SOCKET_PATH) ? LOG_TARGET_JOURNAL
                                                                          : LOG_TARGET_CONSOLE;
        current_target = requested;
        journal_failure_noted = false;
        return current_target;
}

enum log_target log_get_target(void) {
        return current_target;
}

void log_set_max_priority(int priority) {
        max_priority = priority & LOG_PRIMASK;
}

int log_get_max_priority(void) {
        return max_priority;
}

const char *log_level_to_string(int priority) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "error",       [LOG_WARNING] = "warning",
                [LOG_NOTICE] = "notice",   [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
        };

        return names[priority & LOG_PRIMASK];
}

int log_internal(int priority, int error, const char *file, int line, const char *func,
                 const char *fmt, ...) {
        char message[LOG_MESSAGE_MAX];
        int saved_errno = errno;
        va_list ap;

        error = abs(error);
        priority &= LOG_PRIMASK;
        if (priority > max_priority)
                return -error;

        /* So that "%m" in fmt names this error. */
        errno = error;
        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);

        if (current_target == LOG_TARGET_JOURNAL) {
                int r = journal_write_message(priority, error, file, line, func, message);

                if (r >= 0) {
                        errno = saved_errno;
                        return -error;
                }
                note_journal_failure(r);
        }

        (void) console_write_message(priority, message);
        errno = saved_errno;
        return -error;
}

int log_struct_iovec(int priority, const struct iovec *fields, size_t n_fields) {
        struct iovec iov[LOG_FIELDS_MAX + 2];
        int r;

        priority &= LOG_PRIMASK;
        if (priority > max_priority)
                return 0;
        if (!fields || n_fields == 0 || n_fields > LOG_FIELDS_MAX)
                return -EINVAL;

        if (current_target == LOG_TARGET_JOURNAL) {
                char prio[32];
                size_t n = n_fields;

                memcpy(iov, fields, n_fields * sizeof *fields);
                iov[n++] = (struct iovec) { (char *) SYSLOG_IDENTIFIER_FIELD,
                                            strlen(SYSLOG_IDENTIFIER_FIELD) };
                /* journald would file an entry without PRIORITY= as info. */
                if (!has_field(fields, n_fields, "PRIORITY")) {
                        (void) snprintf(prio, sizeof prio, "PRIORITY=%d", priority);
                        iov[n++] = (struct iovec) { prio, strlen(prio) };
                }
                r = sd_journal_sendv(iov, (int) n);
                if (r >= 0)
                        return 0;
                note_journal_failure(r);
        }

        return console_write_struct(priority, fields, n_fields);
}
