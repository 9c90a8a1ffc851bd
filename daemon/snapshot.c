/* SPDX-License-Identifier: MIT */
/*
 * Snapshot file format, version 1. Text, one record per line, each line ends
 * in "\n":
 *
 *     cbm365-watchd-snapshot 1
 *     users <N>
 *     <id> TAB <email> TAB <display name> TAB <code>=<0|1>,<code>=<0|1>,...
 *     ... (N user lines in all, ids strictly ascending, compared bytewise)
 *     end <N> <checksum>
 *
 * - Strings are escaped so that any byte survives: backslash, tab, LF and CR
 *   as \\ \t \n \r, every other byte below 0x20 and 0x7f as \xHH (lowercase
 *   hex). All other bytes, UTF-8 included, are written as they are. A reader
 *   rejects an unescaped control byte and any other escape.
 * - The last field lists the user's modules by ascending code, "CODE=1" when
 *   protected and "CODE=0" when not, CODE a decimal int (possibly negative).
 *   It is empty for a user without modules.
 * - <checksum> is 16 lowercase hex digits: a 64-bit hash chained over the
 *   bytes of the user lines without their newlines (see hash_line()). It
 *   detects truncation and damage, not tampering.
 * - Numbers have no leading zeros. Nothing may follow the trailer line.
 *   With the escapes above, each view has exactly one valid file.
 *
 * The count is written before and after the users, and the trailer is the
 * last line. So a file cut at any byte, or a file of another kind, fails to
 * load with -EBADMSG instead of reading as a smaller tenant.
 *
 * The daemon's budget is about 3 us of CPU per user and poll for parsing,
 * diffing and saving together. So the paths here avoid per-byte calls: fields
 * are split with memchr() and checked for bytes to escape eight bytes at a
 * time, and I/O goes through 1 MiB buffers.
 */
#include "snapshot.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

#define SNAPSHOT_MAGIC "cbm365-watchd-snapshot"
#define IO_BUFFER_SIZE (1024u * 1024u)

/* Maximum length of a user line: every string byte escaped as \xHH, three
 * tabs, every module as "-2147483648=1," and the newline. */
#define USER_LINE_MAX                                                    \
        (4 * (VIEW_ID_MAX + VIEW_EMAIL_MAX + VIEW_NAME_MAX) + 3 +        \
         VIEW_MODULES_MAX * 14 + 1)

/* A file name leaves room for the temporary and set-aside names derived
 * from it within NAME_MAX. */
#if SNAPSHOT_FILE_NAME_MAX + 40 > NAME_MAX
#error "SNAPSHOT_FILE_NAME_MAX leaves no room for derived names"
#endif

#define HASH_SEED UINT64_C(0x736e617073686f74)
#define HASH_K1 UINT64_C(0x9e3779b97f4a7c15)
#define HASH_K2 UINT64_C(0xbf58476d1ce4e5b9)

#define BYTES_ONES UINT64_C(0x0101010101010101)
#define BYTES_HIGH UINT64_C(0x8080808080808080)

static const char hex_digits[] = "0123456789abcdef";

/* Nonzero exactly when some byte of w is below n (n <= 0x80). */
static inline uint64_t word_has_byte_below(uint64_t w, unsigned n) {
        return (w - BYTES_ONES * n) & ~w & BYTES_HIGH;
}

static inline uint64_t word_has_byte(uint64_t w, unsigned char c) {
        return word_has_byte_below(w ^ (BYTES_ONES * c), 1);
}

/* True when one of the 8 bytes of w is a control byte or a backslash. */
static inline bool word_needs_escape(uint64_t w) {
        return (word_has_byte_below(w, 0x20) | word_has_byte(w, 0x7f) | word_has_byte(w, '\\')) != 0;
}

static inline bool byte_needs_escape(unsigned char c) {
        return c < 0x20 || c == 0x7f || c == '\\';
}

static bool needs_escape(const char *s, size_t n) {
        size_t i = 0;

        for (; i + 8 <= n; i += 8) {
                uint64_t w;

                memcpy(&w, s + i, 8);
                if (word_needs_escape(w))
                        return true;
        }
        for (; i < n; i++)
                if (byte_needs_escape((unsigned char) s[i]))
                        return true;
        return false;
}

/*
 * Hashes one line into the running checksum h, eight bytes at a time. Each
 * step is a bijection of h, so a change confined to one 8-byte word is always
 * caught. The file format depends on this function, and changing it makes
 * every existing snapshot unreadable.
 */
static uint64_t hash_line(uint64_t h, const char *p, size_t n) {
        uint64_t w;

        h ^= (uint64_t) n * HASH_K2;
        for (; n >= 8; p += 8, n -= 8) {
                memcpy(&w, p, 8);
                h = (h ^ le64toh(w)) * HASH_K1;
                h ^= h >> 32;
        }
        if (n > 0) {
                w = 0;
                memcpy(&w, p, n);
                h = (h ^ le64toh(w)) * HASH_K1;
                h ^= h >> 32;
        }
        h *= HASH_K2;
        return h ^ (h >> 29);
}

static int check_file_name(const char *file_name) {
        size_t n;

        if (!file_name || strchr(file_name, '/') || streq(file_name, ".") || streq(file_name, ".."))
                return -EINVAL;
        n = strlen(file_name);
        if (n == 0)
                return -EINVAL;
        if (n > SNAPSHOT_FILE_NAME_MAX)
                return -ENAMETOOLONG;
        return 0;
}

static bool id_valid(const char *id) {
        return id && id[0] != '\0' &&
               id[strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")] == '\0';
}

/* ---- writing ---- */

struct writer {
        int fd;
        char *buf;
        size_t used;
        uint64_t hash;          /* checksum of the user lines so far */
        const char *file_name;  /* for messages */
};

static int writer_flush(struct writer *w) {
        size_t done = 0;

        while (done < w->used) {
                ssize_t k = write(w->fd, w->buf + done, w->used - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                done += (size_t) k;
        }
        w->used = 0;
        return 0;
}

static char *escape_append(char *out, const char *s, size_t n) {
        size_t i = 0;

        /* Most strings contain nothing to escape: copy them a word at a time. */
        for (; i + 8 <= n; i += 8) {
                uint64_t w;

                memcpy(&w, s + i, 8);
                if (word_needs_escape(w))
                        break;
                memcpy(out, &w, 8);
                out += 8;
        }

        for (; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (!byte_needs_escape(c)) {
                        *out++ = (char) c;
                        continue;
                }
                *out++ = '\\';
                if (c == '\\')
                        *out++ = '\\';
                else if (c == '\t')
                        *out++ = 't';
                else if (c == '\n')
                        *out++ = 'n';
                else if (c == '\r')
                        *out++ = 'r';
                else {
                        *out++ = 'x';
                        *out++ = hex_digits[c >> 4];
                        *out++ = hex_digits[c & 0xf];
                }
        }
        return out;
}

static char *int_append(char *out, int v) {
        unsigned x = v < 0 ? 0u - (unsigned) v : (unsigned) v;
        char digits[12];
        size_t n = 0;

        do {
                digits[n++] = (char) ('0' + x % 10);
                x /= 10;
        } while (x > 0);

        if (v < 0)
                *out++ = '-';
        while (n > 0)
                *out++ = digits[--n];
        return out;
}

/* Checks what the format and the loader require of user i, so that a saved
 * snapshot always loads again, and returns the lengths of its strings. */
static int check_user(const struct tenant_view *view, size_t i, size_t len[3], const char *file_name,
                      char *reason, size_t reason_size) {
        const struct user *u = &view->users[i];
        const char *problem = NULL;

        if (!u->id || !u->email || !u->display_name)
                problem = "lacks an id, email or name";
        else {
                len[0] = strlen(u->id);
                len[1] = strlen(u->email);
                len[2] = strlen(u->display_name);
                if (len[0] == 0 || len[0] > VIEW_ID_MAX || len[1] > VIEW_EMAIL_MAX || len[2] > VIEW_NAME_MAX)
                        problem = "has an empty or too long id, or a too long email or name";
                else if (i > 0 && strcmp(view->users[i - 1].id, u->id) >= 0)
                        problem = "is out of order or repeats an id (the view is not finished)";
                else if (u->n_modules > VIEW_MODULES_MAX || (u->n_modules > 0 && !u->modules))
                        problem = "has an invalid module list";
        }
        for (size_t j = 1; !problem && j < u->n_modules; j++)
                if (u->modules[j - 1].code >= u->modules[j].code)
                        problem = "has module codes out of order or repeated";

        if (problem)
                return set_reason(reason, reason_size, EINVAL, "Failed to save snapshot '%s': user %zu %s",
                                  file_name, i, problem);
        return 0;
}

/* Appends the line of u to the buffer, which has USER_LINE_MAX bytes free. */
static void writer_add_user(struct writer *w, const struct user *u, const size_t len[3]) {
        char *start = w->buf + w->used, *out = start;

        out = escape_append(out, u->id, len[0]);
        *out++ = '\t';
        out = escape_append(out, u->email, len[1]);
        *out++ = '\t';
        out = escape_append(out, u->display_name, len[2]);
        *out++ = '\t';
        for (size_t j = 0; j < u->n_modules; j++) {
                if (j > 0)
                        *out++ = ',';
                out = int_append(out, u->modules[j].code);
                *out++ = '=';
                *out++ = u->modules[j].is_protected ? '1' : '0';
        }

        w->hash = hash_line(w->hash, start, (size_t) (out - start));
        *out++ = '\n';
        w->used += (size_t) (out - start);
}

/* Writes the buffer out when fewer than need bytes are free in it. */
static int writer_reserve(struct writer *w, size_t need, char *reason, size_t reason_size) {
        int r;

        if (IO_BUFFER_SIZE - w->used >= need)
                return 0;
        r = writer_flush(w);
        if (r < 0)
                return set_reason(reason, reason_size, r, "Failed to write snapshot '%s': %s",
                                  w->file_name, strerror(-r));
        return 0;
}

static int write_view(int fd, const struct tenant_view *view, const char *file_name,
                      char *reason, size_t reason_size) {
        _cleanup_free_ char *buf = malloc(IO_BUFFER_SIZE);
        struct writer w = { .fd = fd, .buf = buf, .hash = HASH_SEED, .file_name = file_name };
        size_t len[3] = {};
        int r;

        if (!buf)
                return set_reason(reason, reason_size, ENOMEM, "Failed to save snapshot '%s': out of memory", file_name);

        w.used = (size_t) snprintf(buf, IO_BUFFER_SIZE, SNAPSHOT_MAGIC " %d\nusers %zu\n",
                                   SNAPSHOT_FORMAT_VERSION, view->n_users);
        for (size_t i = 0; i < view->n_users; i++) {
                r = check_user(view, i, len, file_name, reason, reason_size);
                if (r < 0)
                        return r;
                r = writer_reserve(&w, USER_LINE_MAX, reason, reason_size);
                if (r < 0)
                        return r;
                writer_add_user(&w, &view->users[i], len);
        }

        r = writer_reserve(&w, 64, reason, reason_size);
        if (r < 0)
                return r;
        w.used += (size_t) snprintf(buf + w.used, IO_BUFFER_SIZE - w.used, "end %zu %016" PRIx64 "\n",
                                    view->n_users, w.hash);
        return writer_reserve(&w, IO_BUFFER_SIZE, reason, reason_size);
}

/* Creates ".<file_name>.tmp-<pid>-<counter>". The name is unique within the
 * process, and O_EXCL skips a name that a crashed process with the same pid
 * left behind. */
static int create_temporary(int dir_fd, const char *file_name, char *ret_name, size_t size) {
        static unsigned counter = 0;

        for (unsigned attempt = 0; attempt < 16; attempt++) {
                int fd, n;

                n = snprintf(ret_name, size, ".%s.tmp-%ld-%u", file_name, (long) getpid(), counter++);
                if (n < 0 || (size_t) n >= size)
                        return -ENAMETOOLONG;
                fd = openat(dir_fd, ret_name, O_CLOEXEC | O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0600);
                if (fd >= 0)
                        return fd;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

/* Writes the view to a new temporary file and syncs it. Removes the file on
 * failure. */
static int write_temporary(int dir_fd, const char *file_name, const struct tenant_view *view,
                           char *tmp_name, size_t tmp_size, char *reason, size_t reason_size) {
        _cleanup_close_ int fd = -1;
        int r;

        fd = create_temporary(dir_fd, file_name, tmp_name, tmp_size);
        if (fd < 0)
                return set_reason(reason, reason_size, fd, "Failed to create a temporary file for snapshot '%s': %s",
                                  file_name, strerror(-fd));

        r = write_view(fd, view, file_name, reason, reason_size);
        if (r >= 0 && fsync(fd) < 0)
                r = set_reason(reason, reason_size, errno, "Failed to sync snapshot '%s': %s",
                               file_name, strerror(errno));
        if (r >= 0 && close(TAKE_FD(fd)) < 0)
                r = set_reason(reason, reason_size, errno, "Failed to close snapshot '%s': %s",
                               file_name, strerror(errno));
        if (r < 0)
                (void) unlinkat(dir_fd, tmp_name, 0);
        return r;
}

static int fsync_directory(int dir_fd) {
        _cleanup_close_ int fd = -1;

        if (dir_fd != AT_FDCWD)
                return fsync(dir_fd) < 0 ? -errno : 0;

        fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return fsync(fd) < 0 ? -errno : 0;
}

/* ---- reading ---- */

struct reader {
        int fd;
        char *buf;
        size_t start, end;      /* the bytes not yet returned are buf[start, end) */
        bool eof;
        unsigned line;          /* number of the last line returned */
        const char *file_name;  /* for messages */
};

/* Moves the partial line to the front of the buffer and reads more. */
static int reader_fill(struct reader *r, char *reason, size_t reason_size) {
        size_t pending = r->end - r->start;

        if (pending > USER_LINE_MAX)
                return set_reason(reason, reason_size, EBADMSG, "line %u: longer than %u bytes",
                                  r->line + 1, (unsigned) USER_LINE_MAX);
        memmove(r->buf, r->buf + r->start, pending);
        r->start = 0;
        r->end = pending;

        for (;;) {
                ssize_t k = read(r->fd, r->buf + r->end, IO_BUFFER_SIZE - r->end);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return set_reason(reason, reason_size, errno, "Failed to read snapshot '%s': %s",
                                          r->file_name, strerror(errno));
                if (k == 0)
                        r->eof = true;
                r->end += (size_t) k;
                return 0;
        }
}

/* Reads the next line and returns 1, with the line NUL-terminated in place of
 * its newline. Returns 0 at the end of the file, and -EBADMSG when the last
 * line has no newline. */
static int reader_next_line(struct reader *r, char **ret, size_t *ret_len, char *reason, size_t reason_size) {
        for (;;) {
                char *line = r->buf + r->start;
                char *nl = memchr(line, '\n', r->end - r->start);
                int k;

                if (nl) {
                        *nl = '\0';
                        *ret = line;
                        *ret_len = (size_t) (nl - line);
                        r->start += *ret_len + 1;
                        r->line++;
                        return 1;
                }
                if (r->eof && r->start == r->end)
                        return 0;
                if (r->eof)
                        return set_reason(reason, reason_size, EBADMSG, "line %u: unexpected end of file",
                                          r->line + 1);

                k = reader_fill(r, reason, reason_size);
                if (k < 0)
                        return k;
        }
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* True for the bytes the writer escapes as \xHH, the control bytes without a
 * short form. */
static bool byte_needs_hex_escape(unsigned char c) {
        return byte_needs_escape(c) && c != '\\' && c != '\t' && c != '\n' && c != '\r';
}

/* Decodes the escape at s[*i] (a backslash) into *ret and advances *i past it. */
static int unescape_one(const char *s, size_t n, size_t *i, unsigned line, const char *what,
                        unsigned char *ret, char *reason, size_t reason_size) {
        unsigned char c;
        int hi, lo;

        if (*i + 1 >= n)
                return set_reason(reason, reason_size, EBADMSG, "line %u: incomplete escape at the end of the %s",
                                  line, what);
        c = (unsigned char) s[*i + 1];
        *i += 2;
        switch (c) {
        case '\\':
                *ret = '\\';
                return 0;
        case 't':
                *ret = '\t';
                return 0;
        case 'n':
                *ret = '\n';
                return 0;
        case 'r':
                *ret = '\r';
                return 0;
        case 'x':
                /* Only the writer's own form: lowercase hex of a control
                 * byte without a short escape, never NUL. */
                hi = *i + 2 <= n ? hex_value(s[*i]) : -1;
                lo = *i + 2 <= n ? hex_value(s[*i + 1]) : -1;
                c = hi >= 0 && lo >= 0 ? (unsigned char) (hi << 4 | lo) : 0;
                if (c == 0 || !byte_needs_hex_escape(c))
                        return set_reason(reason, reason_size, EBADMSG, "line %u: invalid \\x escape in the %s",
                                          line, what);
                *ret = c;
                *i += 2;
                return 0;
        }
        if (c > 0x20 && c < 0x7f)
                return set_reason(reason, reason_size, EBADMSG, "line %u: invalid escape \\%c in the %s",
                                  line, c, what);
        return set_reason(reason, reason_size, EBADMSG, "line %u: invalid escape \\ before byte 0x%02x in the %s",
                          line, c, what);
}

static int unescape_slow(const char *s, size_t n, unsigned line, const char *what, char *out, size_t *ret_len,
                         char *reason, size_t reason_size) {
        size_t k = 0;
        int r;

        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\\') {
                        r = unescape_one(s, n, &i, line, what, &c, reason, reason_size);
                        if (r < 0)
                                return r;
                } else if (c < 0x20 || c == 0x7f)
                        return set_reason(reason, reason_size, EBADMSG,
                                          "line %u: unescaped control byte 0x%02x in the %s", line, c, what);
                else
                        i++;
                out[k++] = (char) c;
        }
        *ret_len = k;
        return 0;
}

/* Decodes one field of n bytes into a new string of at most max bytes. */
static int unescape_field(const char *s, size_t n, size_t max, unsigned line, const char *what,
                          char **ret, char *reason, size_t reason_size) {
        _cleanup_free_ char *out = malloc(n + 1);
        size_t len = n;
        int r;

        if (!out)
                return -ENOMEM;
        if (needs_escape(s, n)) {
                r = unescape_slow(s, n, line, what, out, &len, reason, reason_size);
                if (r < 0)
                        return r;
        } else
                memcpy(out, s, n);

        if (len > max)
                return set_reason(reason, reason_size, EBADMSG, "line %u: %s longer than %zu bytes", line, what, max);
        out[len] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

/* Parses "CODE=0" or "CODE=1" at *p, advancing *p past it. */
static int parse_module(const char **p, const char *end, struct module_status *ret) {
        const char *s = *p, *first;
        bool negative = false;
        int64_t code = 0;
        size_t digits = 0;

        if (s < end && *s == '-') {
                negative = true;
                s++;
        }
        first = s;
        for (; s < end && *s >= '0' && *s <= '9' && digits <= 10; s++, digits++)
                code = code * 10 + (*s - '0');
        if (negative)
                code = -code;
        if (digits == 0 || digits > 10 || code < INT_MIN || code > INT_MAX)
                return -EBADMSG;
        /* One spelling per code: no leading zero, no "-0". */
        if ((*first == '0' && digits > 1) || (negative && code == 0))
                return -EBADMSG;
        if (end - s < 2 || s[0] != '=' || (s[1] != '0' && s[1] != '1'))
                return -EBADMSG;

        ret->code = (int) code;
        ret->is_protected = s[1] == '1';
        *p = s + 2;
        return 0;
}

static int parse_modules(const char *s, size_t n, unsigned line, struct user *u, char *reason, size_t reason_size) {
        _cleanup_free_ struct module_status *modules = NULL;
        const char *p = s, *end = s + n;
        size_t count = 1;

        if (n == 0)
                return 0;
        if (memchr(s, '\t', n))
                return set_reason(reason, reason_size, EBADMSG, "line %u: more than 4 fields", line);
        for (const char *c = memchr(s, ',', n); c; c = memchr(c + 1, ',', (size_t) (end - c - 1)))
                count++;
        if (count > VIEW_MODULES_MAX)
                return set_reason(reason, reason_size, EBADMSG, "line %u: more than %d modules",
                                  line, VIEW_MODULES_MAX);

        modules = malloc(count * sizeof(modules[0]));
        if (!modules)
                return -ENOMEM;
        for (size_t i = 0; i < count; i++) {
                if (parse_module(&p, end, &modules[i]) < 0 || (p < end && *p++ != ','))
                        return set_reason(reason, reason_size, EBADMSG,
                                          "line %u: module %zu is not CODE=0 or CODE=1 with a numeric CODE",
                                          line, i + 1);
                if (i > 0 && modules[i - 1].code >= modules[i].code)
                        return set_reason(reason, reason_size, EBADMSG,
                                          "line %u: module codes out of order or repeated", line);
        }

        u->modules = TAKE_PTR(modules);
        u->n_modules = count;
        return 0;
}

/* Returns the end of the field starting at p, or NULL when the line ends first. */
static const char *field_end(const char *p, const char *end) {
        return memchr(p, '\t', (size_t) (end - p));
}

static int parse_user(const char *line, size_t len, unsigned line_no, struct user *ret,
                      char *reason, size_t reason_size) {
        static const char *const names[] = { "user id", "email", "display name" };
        static const size_t max[] = { VIEW_ID_MAX, VIEW_EMAIL_MAX, VIEW_NAME_MAX };
        _cleanup_(user_done) struct user u = {};
        char **fields[] = { &u.id, &u.email, &u.display_name };
        const char *p = line, *end = line + len;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                const char *e = field_end(p, end);

                if (!e)
                        return set_reason(reason, reason_size, EBADMSG, "line %u: missing field after the %s",
                                          line_no, names[i]);
                r = unescape_field(p, (size_t) (e - p), max[i], line_no, names[i], fields[i], reason, reason_size);
                if (r < 0)
                        return r;
                p = e + 1;
        }
        if (u.id[0] == '\0')
                return set_reason(reason, reason_size, EBADMSG, "line %u: empty user id", line_no);

        r = parse_modules(p, (size_t) (end - p), line_no, &u, reason, reason_size);
        if (r < 0)
                return r;

        *ret = u;
        u = (struct user) {};
        return 0;
}

/* Parses a decimal number in its one canonical form (no sign, no leading
 * zero), so that every snapshot has a single valid spelling. */
static int parse_count(const char *s, uint64_t max, uint64_t *ret) {
        if (s[0] == '0' && s[1] != '\0')
                return -EINVAL;
        return parse_uint64(s, max, ret);
}

/* Returns the text after prefix when s starts with it, else NULL. */
static const char *after_prefix(const char *s, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* Reads a line that must be there, naming what was expected when it is not. */
static int reader_require_line(struct reader *rd, const char *what, char **ret,
                               char *reason, size_t reason_size) {
        size_t len;
        int r;

        r = reader_next_line(rd, ret, &len, reason, reason_size);
        if (r == 0)
                return set_reason(reason, reason_size, EBADMSG, "line %u: unexpected end of file, expected %s",
                                  rd->line + 1, what);
        return r < 0 ? r : 0;
}

static int parse_header(struct reader *rd, size_t *ret_users, char *reason, size_t reason_size) {
        const char *rest;
        uint64_t n;
        char *line;
        int r;

        r = reader_require_line(rd, "the snapshot header", &line, reason, reason_size);
        if (r < 0)
                return r;
        rest = after_prefix(line, SNAPSHOT_MAGIC " ");
        if (!rest || parse_count(rest, UINT32_MAX, &n) < 0)
                return set_reason(reason, reason_size, EBADMSG, "line 1: not a cbm365-watchd snapshot");
        if (n != SNAPSHOT_FORMAT_VERSION)
                return set_reason(reason, reason_size, EBADMSG, "line 1: unsupported snapshot version %" PRIu64
                                  " (this program reads version %d)", n, SNAPSHOT_FORMAT_VERSION);

        r = reader_require_line(rd, "the user count", &line, reason, reason_size);
        if (r < 0)
                return r;
        rest = after_prefix(line, "users ");
        if (!rest || parse_count(rest, VIEW_USERS_MAX, &n) < 0)
                return set_reason(reason, reason_size, EBADMSG,
                                  "line 2: expected \"users COUNT\" with COUNT at most %d", VIEW_USERS_MAX);

        *ret_users = (size_t) n;
        return 0;
}

/* True when a line that failed to parse as a user looks like the trailer. */
static bool looks_like_trailer(const char *line, size_t len) {
        return after_prefix(line, "end ") && !memchr(line, '\t', len);
}

static int parse_users(struct reader *rd, size_t n_users, struct tenant_view *v, uint64_t *ret_hash,
                       char *reason, size_t reason_size) {
        uint64_t hash = HASH_SEED;
        int r;

        for (size_t i = 0; i < n_users; i++) {
                _cleanup_(user_done) struct user u = {};
                size_t len;
                char *line;
                int c;

                r = reader_next_line(rd, &line, &len, reason, reason_size);
                if (r == 0)
                        return set_reason(reason, reason_size, EBADMSG,
                                          "line %u: unexpected end of file after %zu of %zu users",
                                          rd->line + 1, i, n_users);
                if (r < 0)
                        return r;

                r = parse_user(line, len, rd->line, &u, reason, reason_size);
                if (r == -EBADMSG && looks_like_trailer(line, len))
                        return set_reason(reason, reason_size, EBADMSG, "line %u: trailer after %zu of %zu users",
                                          rd->line, i, n_users);
                if (r < 0)
                        return r;

                c = i > 0 ? strcmp(v->users[i - 1].id, u.id) : -1;
                if (c >= 0)
                        return set_reason(reason, reason_size, EBADMSG, "line %u: %s user id", rd->line,
                                          c == 0 ? "duplicate" : "out of order");
                hash = hash_line(hash, line, len);

                r = tenant_view_add(v, &u);
                if (r < 0)
                        return r;
        }

        *ret_hash = hash;
        return 0;
}

static int parse_trailer(struct reader *rd, size_t n_users, uint64_t hash, char *reason, size_t reason_size) {
        const char *rest;
        char *line, *end;
        uint64_t n, sum;
        int r;

        r = reader_require_line(rd, "the trailer", &line, reason, reason_size);
        if (r < 0)
                return r;

        /* "end <count> <16 hex digits>" */
        rest = after_prefix(line, "end ");
        end = rest ? strchr(rest, ' ') : NULL;
        if (!end || strlen(end + 1) != 16 || strspn(end + 1, hex_digits) != 16)
                return set_reason(reason, reason_size, EBADMSG,
                                  "line %u: expected the trailer \"end COUNT CHECKSUM\" after %zu users",
                                  rd->line, n_users);
        *end = '\0';
        if (parse_count(rest, VIEW_USERS_MAX, &n) < 0 || n != n_users)
                return set_reason(reason, reason_size, EBADMSG,
                                  "line %u: user count in the trailer does not match the header (%zu)",
                                  rd->line, n_users);
        sum = strtoull(end + 1, NULL, 16);
        if (sum != hash)
                return set_reason(reason, reason_size, EBADMSG,
                                  "line %u: checksum mismatch (file %016" PRIx64 ", computed %016" PRIx64 ")",
                                  rd->line, sum, hash);
        return 0;
}

static int reader_expect_eof(struct reader *rd, char *reason, size_t reason_size) {
        int r;

        while (rd->start == rd->end && !rd->eof) {
                r = reader_fill(rd, reason, reason_size);
                if (r < 0)
                        return r;
        }
        if (rd->start != rd->end)
                return set_reason(reason, reason_size, EBADMSG, "line %u: unexpected data after the trailer",
                                  rd->line + 1);
        return 0;
}

/* Opens the file for reading. A symbolic link, a non-regular or an oversized
 * file is a bad snapshot (-EBADMSG), so that the caller sets it aside. */
static int open_snapshot(int dir_fd, const char *file_name, char *reason, size_t reason_size) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        /* O_NONBLOCK so that a FIFO in its place cannot block the daemon. */
        fd = openat(dir_fd, file_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
        if (fd < 0 && errno == ELOOP)
                return set_reason(reason, reason_size, EBADMSG, "snapshot '%s' is a symbolic link", file_name);
        if (fd < 0)
                return set_reason(reason, reason_size, errno, "Failed to open snapshot '%s': %s",
                                  file_name, strerror(errno));

        if (fstat(fd, &st) < 0)
                return set_reason(reason, reason_size, errno, "Failed to stat snapshot '%s': %s",
                                  file_name, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return set_reason(reason, reason_size, EBADMSG, "snapshot '%s' is not a regular file", file_name);
        if ((uint64_t) st.st_size > SNAPSHOT_FILE_MAX)
                return set_reason(reason, reason_size, EBADMSG, "snapshot '%s' is larger than %u bytes",
                                  file_name, SNAPSHOT_FILE_MAX);
        return TAKE_FD(fd);
}

/* Renames old to new_name unless new_name exists (-EEXIST). */
static int rename_noreplace(int dir_fd, const char *old, const char *new_name) {
        struct stat st;

        if (renameat2(dir_fd, old, dir_fd, new_name, RENAME_NOREPLACE) >= 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;

        /* The file system lacks RENAME_NOREPLACE, so check, then rename. The
         * daemon is the only writer of its state directory, so no other
         * process races with the check. */
        if (fstatat(dir_fd, new_name, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                return -EEXIST;
        if (errno != ENOENT)
                return -errno;
        return renameat(dir_fd, old, dir_fd, new_name) < 0 ? -errno : 0;
}

/* ---- public functions ---- */

int snapshot_file_name(const char *customer_id, const char *tenant_id, char *buf, size_t size) {
        int n;

        if (!id_valid(customer_id) || !id_valid(tenant_id) || !buf)
                return -EINVAL;
        n = snprintf(NULL, 0, "%s_%s.snapshot", customer_id, tenant_id);
        if (n < 0)
                return -EINVAL;
        if ((size_t) n > SNAPSHOT_FILE_NAME_MAX || (size_t) n >= size)
                return -ENAMETOOLONG;

        (void) snprintf(buf, size, "%s_%s.snapshot", customer_id, tenant_id);
        return 0;
}

int snapshot_load(int dir_fd, const char *file_name, struct tenant_view *ret,
                  char *reason, size_t reason_size) {
        _cleanup_(tenant_view_done) struct tenant_view v = {};
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -1;
        struct reader rd;
        size_t n_users = 0;
        uint64_t hash = 0;
        int r;

        if (!ret)
                return -EINVAL;
        r = check_file_name(file_name);
        if (r < 0)
                return set_reason(reason, reason_size, r, "invalid snapshot file name");

        fd = open_snapshot(dir_fd, file_name, reason, reason_size);
        if (fd < 0)
                return fd;
        buf = malloc(IO_BUFFER_SIZE);
        if (!buf)
                return set_reason(reason, reason_size, ENOMEM, "Failed to read snapshot '%s': out of memory",
                                  file_name);
        rd = (struct reader) { .fd = fd, .buf = buf, .file_name = file_name };

        r = parse_header(&rd, &n_users, reason, reason_size);
        if (r >= 0) {
                struct stat st;

                /* A user line has at least 5 bytes: a corrupt count cannot make us reserve more. */
                if (fstat(fd, &st) >= 0)
                        (void) tenant_view_reserve(&v, MIN(n_users, (size_t) st.st_size / 5));
                r = parse_users(&rd, n_users, &v, &hash, reason, reason_size);
        }
        if (r >= 0)
                r = parse_trailer(&rd, n_users, hash, reason, reason_size);
        if (r >= 0)
                r = reader_expect_eof(&rd, reason, reason_size);
        if (r == -ENOMEM)
                return set_reason(reason, reason_size, ENOMEM, "Failed to read snapshot '%s': out of memory",
                                  file_name);
        if (r < 0)
                return r;

        *ret = v;
        v = (struct tenant_view) {};
        return 0;
}

int snapshot_save(int dir_fd, const char *file_name, const struct tenant_view *view,
                  char *reason, size_t reason_size) {
        char tmp_name[NAME_MAX + 1];
        int r;

        if (!view || (view->n_users > 0 && !view->users))
                return set_reason(reason, reason_size, EINVAL, "invalid view");
        r = check_file_name(file_name);
        if (r < 0)
                return set_reason(reason, reason_size, r, "invalid snapshot file name");

        r = write_temporary(dir_fd, file_name, view, tmp_name, sizeof(tmp_name), reason, reason_size);
        if (r < 0)
                return r;

        if (renameat(dir_fd, tmp_name, dir_fd, file_name) < 0) {
                r = set_reason(reason, reason_size, errno, "Failed to replace snapshot '%s': %s",
                               file_name, strerror(errno));
                (void) unlinkat(dir_fd, tmp_name, 0);
                return r;
        }

        /* NOTE: when only this fails, the new snapshot is already in place
         * but may not survive a power loss. */
        r = fsync_directory(dir_fd);
        if (r < 0)
                return set_reason(reason, reason_size, r, "Failed to sync the directory of snapshot '%s': %s",
                                  file_name, strerror(-r));
        return 0;
}

int snapshot_set_aside(int dir_fd, const char *file_name, char *new_name, size_t size) {
        char stamp[32], name[NAME_MAX + 1];
        time_t t = (time_t) (now_realtime_usec() / USEC_PER_SEC);
        struct tm tm;
        int r;

        r = check_file_name(file_name);
        if (r < 0)
                return r;
        if (!new_name || !gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
                return -EINVAL;

        for (unsigned i = 0; i < 1000; i++) {
                int n = i == 0 ? snprintf(name, sizeof(name), "%s.corrupt-%s", file_name, stamp)
                               : snprintf(name, sizeof(name), "%s.corrupt-%s.%u", file_name, stamp, i);

                if (n < 0 || (size_t) n >= sizeof(name))
                        return -ENAMETOOLONG;
                if ((size_t) n >= size)
                        return -ENAMETOOLONG;

                r = rename_noreplace(dir_fd, file_name, name);
                if (r == -EEXIST)
                        continue;
                if (r < 0)
                        return r;

                memcpy(new_name, name, (size_t) n + 1);
                return 0;
        }
        return -EEXIST;
}

int snapshot_exists(int dir_fd, const char *file_name) {
        struct stat st;
        int r;

        r = check_file_name(file_name);
        if (r < 0)
                return r;
        if (fstatat(dir_fd, file_name, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                return 1;
        return errno == ENOENT ? 0 : -errno;
}

int snapshot_remove_stale_temporary(int dir_fd) {
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        DIR *d;
        int removed = 0;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d)
                return -errno;
        fd = -1;

        while ((de = readdir(d))) {
                /* Only names create_temporary() makes: ".<name>.snapshot.tmp-<pid>-<n>". */
                if (de->d_name[0] != '.' || !strstr(de->d_name, ".snapshot.tmp-"))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) >= 0)
                        removed++;
        }
        closedir(d);
        return removed;
}
