/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <libconfig.h>

#include "util.h"

#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define CONFIG_LINE_MAX 65536
#define ID_LENGTH_MAX 128               /* customer and tenant ids */
#define TARGET_IDS_LENGTH_MAX 180       /* both ids and "_": the snapshot's name is at most 200 bytes */
#define TARGET_NAME_LENGTH_MAX 128
#define EMAIL_LENGTH_MAX 320            /* local part (64) + "@" + domain (255), the RFC 5321 limits */
#define URL_LENGTH_MAX 2048
#define CLIENT_ID_LENGTH_MAX 256
#define SCOPE_LENGTH_MAX 1024
#define PATH_LENGTH_MAX (PATH_MAX - 1)

/* One more byte than allowed, to detect a larger file, and the NUL. */
#define SECRET_BUFFER_SIZE (CONFIG_SECRET_MAX + 2)

/* Context of one config_load() call: the file name for messages and the caller's error buffer. */
struct loader {
        const char *path;
        char *error;
        size_t error_size;
};

DEFINE_POINTER_CLEANUP(struct config, config_free);

static void config_destroyp(config_t *cfg) {
        config_destroy(cfg);
}

static void curl_urlp(CURLU **u) {
        if (*u)
                curl_url_cleanup(*u);
}

static void curl_freep(char **p) {
        if (*p)
                curl_free(*p);
}

static void secret_bufferp(char **p) {
        if (*p) {
                explicit_wipe(*p, SECRET_BUFFER_SIZE);
                free(*p);
        }
}

/*
 * Writes "FILE:LINE: GROUP.KEY: MESSAGE" about setting s into the caller's
 * buffer and returns -error. Without s (a setting that is absent), the line
 * is left out. Either of group and key may be NULL.
 *
 * NOTE: libconfig 1.5 stores line numbers as unsigned short, so a setting
 * after line 65535 is reported with a wrapped line number.
 */
_printf_(6, 7)
static int fail(const struct loader *l, const config_setting_t *s, int error,
                const char *group, const char *key, const char *fmt, ...) {
        const char *file = s && config_setting_source_file(s) ? config_setting_source_file(s) : l->path;
        char where[32] = "";
        va_list ap;
        int n;

        if (!l->error || l->error_size == 0)
                return -abs(error);

        if (s && config_setting_source_line(s) > 0)
                (void) snprintf(where, sizeof where, ":%u", config_setting_source_line(s));
        n = snprintf(l->error, l->error_size, "%s%s: %s%s%s: ", file, where,
                     strempty(group), group && key ? "." : "", strempty(key));
        if (n >= 0 && (size_t) n < l->error_size) {
                va_start(ap, fmt);
                (void) vsnprintf(l->error + n, l->error_size - (size_t) n, fmt, ap);
                va_end(ap);
        }
        return -abs(error);
}

static int fail_oom(const struct loader *l) {
        return set_reason(l->error, l->error_size, ENOMEM, "%s: out of memory", l->path);
}

static const char *type_to_string(int type) {
        switch (type) {
        case CONFIG_TYPE_GROUP:
                return "a group";
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
                return "an integer";
        case CONFIG_TYPE_FLOAT:
                return "a float";
        case CONFIG_TYPE_STRING:
                return "a string";
        case CONFIG_TYPE_BOOL:
                return "a boolean";
        case CONFIG_TYPE_ARRAY:
                return "an array";
        case CONFIG_TYPE_LIST:
                return "a list";
        default:
                return "an unknown type";
        }
}

static int expect_type(const struct loader *l, const config_setting_t *s,
                       const char *group, const char *key, int type) {
        int actual = config_setting_type(s);

        if (actual == type || (type == CONFIG_TYPE_INT && actual == CONFIG_TYPE_INT64))
                return 0;
        return fail(l, s, EINVAL, group, key, "expected %s, got %s",
                    type_to_string(type), type_to_string(actual));
}

/*
 * Every setting the loader accepts, as dotted names: "api.page_size" is the
 * member page_size of the group api, and "targets.name" the member name of
 * each group in the list targets. The unknown-key check and the test of the
 * manual page both read this table.
 */
static const char *const known_keys[] = {
        "api",
        "api.base_url",
        "api.token_url",
        "api.client_id",
        "api.client_secret_file",
        "api.scope",
        "api.ca_file",
        "api.page_size",
        "api.timeout",
        "api.max_parallel",
        "poll",
        "poll.interval",
        "poll.hold_percent",
        "poll.hold_min_users",
        "state_directory",
        "targets",
        "targets.name",
        "targets.customer_id",
        "targets.tenant_id",
        "targets.interval",
        "targets.user_emails",
        NULL
};

/* Returns whether key is the dotted name of member name of scope, or of a top-level name when scope is NULL. */
static bool key_matches(const char *key, const char *scope, const char *name) {
        size_t n;

        if (!scope)
                return !strchr(key, '.') && streq(key, name);
        n = strlen(scope);
        return strncmp(key, scope, n) == 0 && key[n] == '.' && streq(key + n + 1, name);
}

/*
 * Rejects every member of group that known_keys does not list under scope
 * (NULL for the top level). prefix names the group in messages, e.g. "targets[2]".
 */
static int check_keys(const struct loader *l, const config_setting_t *group, const char *prefix,
                      const char *scope) {
        int n = config_setting_length(group);

        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(group, (unsigned) i);
                const char *name = config_setting_name(s);
                bool known = false;

                for (size_t k = 0; known_keys[k] && !known; k++)
                        known = key_matches(known_keys[k], scope, name);
                if (!known)
                        return fail(l, s, EINVAL, prefix, name, "unknown setting");
        }
        return 0;
}

/* Describes byte c for a message without putting a control character into it. */
static void describe_byte(unsigned char c, char *buf, size_t size) {
        if (c >= 0x20 && c < 0x7f)
                (void) snprintf(buf, size, "'%c'", c);
        else
                (void) snprintf(buf, size, "byte 0x%02x", c);
}

static bool has_control_character(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return true;
        return false;
}

/*
 * Returns the length of the UTF-8 sequence at s if it encodes a character
 * that is not a control character (C0, DEL, C1), else 0. Overlong forms,
 * surrogates and code points above U+10FFFF are invalid (RFC 3629).
 */
static size_t utf8_printable_length(const unsigned char *s) {
        uint32_t cp, min;
        size_t n;

        if (*s < 0x80)
                return *s >= 0x20 && *s != 0x7f ? 1 : 0;
        if (*s >= 0xc2 && *s <= 0xdf) {
                n = 2;
                min = 0x80;
                cp = *s & 0x1f;
        } else if (*s >= 0xe0 && *s <= 0xef) {
                n = 3;
                min = 0x800;
                cp = *s & 0x0f;
        } else if (*s >= 0xf0 && *s <= 0xf4) {
                n = 4;
                min = 0x10000;
                cp = *s & 0x07;
        } else
                return 0;

        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f))
                return 0;
        return n;
}

static bool is_printable_utf8(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p; ) {
                size_t n = utf8_printable_length(p);

                if (n == 0)
                        return false;
                p += n;
        }
        return true;
}

/*
 * Reads the optional string group.key into *ret (borrowed from the libconfig
 * tree). Returns 1 when found, 0 when absent (*ret untouched), -errno when
 * it is no string, empty, longer than max_length or contains a control character.
 */
static int read_string(const struct loader *l, const config_setting_t *group, const char *prefix,
                       const char *key, size_t max_length, const char **ret) {
        const config_setting_t *s = config_setting_get_member(group, key);
        const char *value;
        int r;

        if (!s)
                return 0;
        r = expect_type(l, s, prefix, key, CONFIG_TYPE_STRING);
        if (r < 0)
                return r;

        value = config_setting_get_string(s);
        if (value[0] == '\0')
                return fail(l, s, EINVAL, prefix, key, "must not be empty");
        if (strlen(value) > max_length)
                return fail(l, s, EINVAL, prefix, key, "longer than %zu bytes", max_length);
        if (has_control_character(value))
                return fail(l, s, EINVAL, prefix, key, "contains a control character");

        *ret = value;
        return 1;
}

/* Like read_string(), but stores a copy of the value or of default_value (which may be NULL). */
static int read_string_dup(const struct loader *l, const config_setting_t *group, const char *prefix,
                           const char *key, size_t max_length, const char *default_value, char **ret) {
        const char *value = default_value;
        char *copy = NULL;
        int r;

        r = read_string(l, group, prefix, key, max_length, &value);
        if (r < 0)
                return r;
        if (value) {
                copy = strdup(value);
                if (!copy)
                        return fail_oom(l);
        }
        *ret = copy;
        return r;
}

/* Reads the optional integer group.key into *ret, and leaves *ret untouched when it is absent. */
static int read_uint(const struct loader *l, const config_setting_t *group, const char *prefix,
                     const char *key, unsigned min, unsigned max, unsigned *ret) {
        const config_setting_t *s = config_setting_get_member(group, key);
        long long value;
        int r;

        if (!s)
                return 0;
        r = expect_type(l, s, prefix, key, CONFIG_TYPE_INT);
        if (r < 0)
                return r;

        value = config_setting_get_int64(s);
        if (value < (long long) min || value > (long long) max)
                return fail(l, s, ERANGE, prefix, key, "%lld is out of range %u..%u", value, min, max);

        *ret = (unsigned) value;
        return 1;
}

static int check_absolute_path(const struct loader *l, const config_setting_t *group, const char *prefix,
                               const char *key, const char *path) {
        if (path && path[0] == '/')
                return 0;
        return fail(l, config_setting_get_member(group, key), EINVAL, prefix, key,
                    "\"%s\" is not an absolute path", strempty(path));
}

static bool host_is_loopback(const char *host) {
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        struct in_addr a4;
        size_t n;

        if (strcasecmp(host, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;

        /* The URL API returns an IPv6 address in brackets. */
        n = strlen(host);
        if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= sizeof buf)
                return false;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Returns whether the URL has this part. The URL API reports an absent part as an error. */
static bool url_has_part(CURLU *u, CURLUPart part) {
        _cleanup_(curl_freep) char *value = NULL;

        return curl_url_get(u, part, &value, 0) == CURLUE_OK && value;
}

/*
 * Checks a URL that the daemon sends the client secret or the bearer token
 * to. The messages never quote the URL, because it may contain a password.
 */
static int check_url(const struct loader *l, const config_setting_t *group, const char *key,
                     const char *url, bool allow_query) {
        const config_setting_t *s = config_setting_get_member(group, key);
        _cleanup_(curl_urlp) CURLU *u = curl_url();
        _cleanup_(curl_freep) char *scheme = NULL, *host = NULL;
        CURLUcode code;

        if (!u)
                return fail_oom(l);
        code = curl_url_set(u, CURLUPART_URL, url, 0);
        if (code == CURLUE_OK)
                code = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        if (code == CURLUE_OK)
                code = curl_url_get(u, CURLUPART_HOST, &host, 0);
        if (code != CURLUE_OK)
                return fail(l, s, EINVAL, "api", key, "invalid URL: %s", curl_url_strerror(code));

        if (url_has_part(u, CURLUPART_USER) || url_has_part(u, CURLUPART_PASSWORD))
                return fail(l, s, EINVAL, "api", key, "must not contain a user name or password");
        if (!allow_query && url_has_part(u, CURLUPART_QUERY))
                return fail(l, s, EINVAL, "api", key, "must not contain a query");
        if (url_has_part(u, CURLUPART_FRAGMENT))
                return fail(l, s, EINVAL, "api", key, "must not contain a fragment");

        if (streq(scheme, "https"))
                return 0;
        if (streq(scheme, "http") && host_is_loopback(host))
                return 0;
        if (streq(scheme, "http"))
                return fail(l, s, EINVAL, "api", key,
                            "plain http is refused for host %s because the bearer token would travel in clear text; "
                            "use https (http is allowed only for loopback addresses)", host);
        return fail(l, s, EINVAL, "api", key, "unsupported scheme \"%s\", expected https", scheme);
}

static int parse_api_urls(const struct loader *l, const config_setting_t *group, struct api_config *api) {
        size_t n;
        int r;

        r = read_string_dup(l, group, "api", "base_url", URL_LENGTH_MAX, CONFIG_DEFAULT_BASE_URL, &api->base_url);
        if (r < 0)
                return r;
        r = check_url(l, group, "base_url", api->base_url, false);
        if (r < 0)
                return r;

        /* Paths are appended as "/customers/...", so a trailing slash would double. */
        n = strlen(api->base_url);
        if (n > 0 && api->base_url[n - 1] == '/')
                api->base_url[n - 1] = '\0';

        r = read_string_dup(l, group, "api", "token_url", URL_LENGTH_MAX, CONFIG_DEFAULT_TOKEN_URL, &api->token_url);
        if (r < 0)
                return r;
        return check_url(l, group, "token_url", api->token_url, true);
}

static int check_readable_file(const struct loader *l, const config_setting_t *s, const char *group,
                               const char *key, const char *path) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int e = errno;

                return fail(l, s, e, group, key, "%s: %s", path, strerror(e));
        }
        if (!S_ISREG(st.st_mode))
                return fail(l, s, EINVAL, group, key, "%s: not a regular file", path);
        return 0;
}

static int parse_api_strings(const struct loader *l, const config_setting_t *group, struct api_config *api) {
        int r;

        r = read_string_dup(l, group, "api", "client_id", CLIENT_ID_LENGTH_MAX, NULL, &api->client_id);
        if (r < 0)
                return r;
        if (r == 0)
                return fail(l, group, EINVAL, "api", "client_id", "missing");

        r = read_string_dup(l, group, "api", "scope", SCOPE_LENGTH_MAX, CONFIG_DEFAULT_SCOPE, &api->scope);
        if (r < 0)
                return r;

        r = read_string_dup(l, group, "api", "client_secret_file", PATH_LENGTH_MAX, CONFIG_DEFAULT_SECRET_FILE,
                            &api->client_secret_file);
        if (r < 0)
                return r;
        r = check_absolute_path(l, group, "api", "client_secret_file", api->client_secret_file);
        if (r < 0)
                return r;

        r = read_string_dup(l, group, "api", "ca_file", PATH_LENGTH_MAX, NULL, &api->ca_file);
        if (r <= 0)
                return r;
        r = check_absolute_path(l, group, "api", "ca_file", api->ca_file);
        if (r < 0)
                return r;
        return check_readable_file(l, config_setting_get_member(group, "ca_file"), "api", "ca_file", api->ca_file);
}

static int parse_api(const struct loader *l, const config_setting_t *root, struct api_config *api) {
        const config_setting_t *group = config_setting_get_member(root, "api");
        int r;

        if (!group)
                return fail(l, NULL, EINVAL, "api", "client_id", "missing");
        r = expect_type(l, group, "api", NULL, CONFIG_TYPE_GROUP);
        if (r < 0)
                return r;
        r = check_keys(l, group, "api", "api");
        if (r < 0)
                return r;

        r = parse_api_urls(l, group, api);
        if (r < 0)
                return r;
        r = parse_api_strings(l, group, api);
        if (r < 0)
                return r;

        api->page_size = CONFIG_PAGE_SIZE_DEFAULT;
        api->timeout_sec = CONFIG_TIMEOUT_SEC_DEFAULT;
        api->max_parallel = CONFIG_MAX_PARALLEL_DEFAULT;
        r = read_uint(l, group, "api", "page_size", 1, CONFIG_PAGE_SIZE_MAX, &api->page_size);
        if (r < 0)
                return r;
        r = read_uint(l, group, "api", "timeout", 1, CONFIG_TIMEOUT_SEC_MAX, &api->timeout_sec);
        if (r < 0)
                return r;
        return read_uint(l, group, "api", "max_parallel", 1, CONFIG_MAX_PARALLEL_MAX, &api->max_parallel);
}

static int parse_poll(const struct loader *l, const config_setting_t *root, struct config *c) {
        const config_setting_t *group = config_setting_get_member(root, "poll");
        int r;

        c->interval_sec = CONFIG_INTERVAL_SEC_DEFAULT;
        c->hold_percent = CONFIG_HOLD_PERCENT_DEFAULT;
        c->hold_min_users = CONFIG_HOLD_MIN_USERS_DEFAULT;
        if (!group)
                return 0;

        r = expect_type(l, group, "poll", NULL, CONFIG_TYPE_GROUP);
        if (r < 0)
                return r;
        r = check_keys(l, group, "poll", "poll");
        if (r < 0)
                return r;
        r = read_uint(l, group, "poll", "interval", CONFIG_INTERVAL_SEC_MIN, CONFIG_INTERVAL_SEC_MAX,
                      &c->interval_sec);
        if (r < 0)
                return r;
        r = read_uint(l, group, "poll", "hold_percent", 0, 100, &c->hold_percent);
        if (r < 0)
                return r;
        return read_uint(l, group, "poll", "hold_min_users", 1, CONFIG_HOLD_MIN_USERS_MAX, &c->hold_min_users);
}

/* Takes the first entry of $STATE_DIRECTORY, which systemd sets to a colon-separated list. */
static int state_directory_from_environment(const struct loader *l, const char *value, char **ret) {
        _cleanup_free_ char *first = strndup(value, strcspn(value, ":"));

        if (!first)
                return fail_oom(l);
        if (has_control_character(first))
                return set_reason(l->error, l->error_size, EINVAL,
                                  "$STATE_DIRECTORY: the first entry contains a control character");
        if (first[0] != '/')
                return set_reason(l->error, l->error_size, EINVAL,
                                  "$STATE_DIRECTORY: the first entry \"%s\" is not an absolute path", first);
        *ret = TAKE_PTR(first);
        return 0;
}

static int parse_state_directory(const struct loader *l, const config_setting_t *root, char **ret) {
        const char *env = getenv("STATE_DIRECTORY");
        _cleanup_free_ char *value = NULL;
        int r;

        /* The file's value is checked even when the environment overrides it,
         * so that a bad value is reported before the daemon runs without systemd. */
        r = read_string_dup(l, root, NULL, "state_directory", PATH_LENGTH_MAX, CONFIG_DEFAULT_STATE_DIRECTORY,
                            &value);
        if (r < 0)
                return r;
        r = check_absolute_path(l, root, NULL, "state_directory", value);
        if (r < 0)
                return r;

        if (env && env[0] != '\0')
                return state_directory_from_environment(l, env, ret);
        *ret = TAKE_PTR(value);
        return 0;
}

static void target_done(struct target *t) {
        free(t->name);
        free(t->customer_id);
        free(t->tenant_id);
        for (size_t i = 0; i < t->n_user_emails; i++)
                free(t->user_emails[i]);
        free(t->user_emails);
        *t = (struct target) {};
}

/* Customer and tenant ids go into a URL path and a file name, so they get a strict alphabet. */
/* Checks an id that goes into a URL path and a file name. The snapshot's
 * file name joins customer and tenant id with '_', so a customer id may not
 * contain one: "a_b"+"c" and "a"+"b_c" would share a file. */
static int check_id(const struct loader *l, const config_setting_t *s, const char *prefix,
                    const char *key, const char *id, bool allow_underscore) {
        char byte[16];

        if (strlen(id) > ID_LENGTH_MAX)
                return fail(l, s, EINVAL, prefix, key, "longer than %d bytes", ID_LENGTH_MAX);
        if (streq(id, ".") || streq(id, ".."))
                return fail(l, s, EINVAL, prefix, key, "\"%s\" is not a valid id", id);

        for (const char *p = id; *p; p++) {
                char c = *p;

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || (c == '_' && allow_underscore))
                        continue;
                describe_byte((unsigned char) c, byte, sizeof byte);
                if (allow_underscore)
                        return fail(l, s, EINVAL, prefix, key,
                                    "invalid character %s; only letters, digits, '.', '_' and '-' are allowed", byte);
                return fail(l, s, EINVAL, prefix, key,
                            "invalid character %s; only letters, digits, '.' and '-' are allowed", byte);
        }
        return 0;
}

static int parse_target_id(const struct loader *l, const config_setting_t *s, const char *prefix,
                           const char *key, char **ret) {
        const char *value = NULL;
        int r;

        r = read_string(l, s, prefix, key, SIZE_MAX, &value);
        if (r < 0)
                return r;
        if (r == 0)
                return fail(l, s, EINVAL, prefix, key, "missing");
        r = check_id(l, config_setting_get_member(s, key), prefix, key, value, !streq(key, "customer_id"));
        if (r < 0)
                return r;

        *ret = strdup(value);
        return *ret ? 0 : fail_oom(l);
}

static int parse_target_name(const struct loader *l, const config_setting_t *s, const char *prefix,
                             struct target *t) {
        const config_setting_t *member = config_setting_get_member(s, "name");
        const char *value = t->tenant_id;
        int r;

        r = read_string(l, s, prefix, "name", TARGET_NAME_LENGTH_MAX, &value);
        if (r < 0)
                return r;
        if (r > 0 && !is_printable_utf8(value))
                return fail(l, member, EINVAL, prefix, "name",
                            "invalid UTF-8 or a control character");

        t->name = strdup(value);
        return t->name ? 0 : fail_oom(l);
}

static int check_email(const struct loader *l, const config_setting_t *s, const char *prefix,
                       const char *key, const char *email) {
        size_t n = strlen(email);

        if (n == 0 || n > EMAIL_LENGTH_MAX)
                return fail(l, s, EINVAL, prefix, key, "must be 1..%d bytes long", EMAIL_LENGTH_MAX);
        /* First, so that the messages below can quote the address. */
        if (!is_printable_utf8(email))
                return fail(l, s, EINVAL, prefix, key, "invalid UTF-8 or a control character");
        if (!strchr(email, '@'))
                return fail(l, s, EINVAL, prefix, key, "\"%s\" is not an email address: no '@'", email);
        if (strpbrk(email, " \t"))
                return fail(l, s, EINVAL, prefix, key, "\"%s\" contains whitespace", email);
        return 0;
}

static int parse_user_emails(const struct loader *l, const config_setting_t *s, const char *prefix,
                             struct target *t) {
        int n = config_setting_length(s);
        char key[48];
        int r;

        if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
                return expect_type(l, s, prefix, "user_emails", CONFIG_TYPE_ARRAY);
        if (n == 0)
                return fail(l, s, EINVAL, prefix, "user_emails",
                            "must not be empty; leave user_emails out to watch all users");
        if (n > CONFIG_USER_EMAILS_MAX)
                return fail(l, s, EINVAL, prefix, "user_emails", "%d entries, at most %d are allowed",
                            n, CONFIG_USER_EMAILS_MAX);

        t->user_emails = calloc((size_t) n, sizeof *t->user_emails);
        if (!t->user_emails)
                return fail_oom(l);

        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
                const char *email;

                (void) snprintf(key, sizeof key, "user_emails[%d]", i);
                r = expect_type(l, e, prefix, key, CONFIG_TYPE_STRING);
                if (r < 0)
                        return r;
                email = config_setting_get_string(e);
                r = check_email(l, e, prefix, key, email);
                if (r < 0)
                        return r;
                t->user_emails[i] = strdup(email);
                if (!t->user_emails[i])
                        return fail_oom(l);
                t->n_user_emails++;
        }
        return 0;
}

static int parse_target(const struct loader *l, const config_setting_t *s, size_t index,
                        unsigned default_interval, struct target *ret) {
        _cleanup_(target_done) struct target t = { .interval_sec = default_interval };
        const config_setting_t *emails;
        char prefix[32];
        int r;

        (void) snprintf(prefix, sizeof prefix, "targets[%zu]", index);
        r = expect_type(l, s, prefix, NULL, CONFIG_TYPE_GROUP);
        if (r < 0)
                return r;
        r = check_keys(l, s, prefix, "targets");
        if (r < 0)
                return r;

        r = parse_target_id(l, s, prefix, "customer_id", &t.customer_id);
        if (r < 0)
                return r;
        r = parse_target_id(l, s, prefix, "tenant_id", &t.tenant_id);
        if (r < 0)
                return r;
        /* The snapshot's file name joins both ids, and a file name has a limit. */
        if (strlen(t.customer_id) + 1 + strlen(t.tenant_id) > TARGET_IDS_LENGTH_MAX)
                return fail(l, s, EINVAL, prefix, "tenant_id",
                            "customer_id and tenant_id together are longer than %d bytes", TARGET_IDS_LENGTH_MAX);
        r = parse_target_name(l, s, prefix, &t);
        if (r < 0)
                return r;
        r = read_uint(l, s, prefix, "interval", CONFIG_INTERVAL_SEC_MIN, CONFIG_INTERVAL_SEC_MAX, &t.interval_sec);
        if (r < 0)
                return r;

        emails = config_setting_get_member(s, "user_emails");
        if (emails) {
                r = parse_user_emails(l, emails, prefix, &t);
                if (r < 0)
                        return r;
        }

        t.line = config_setting_source_line(s);
        *ret = t;
        t = (struct target) {};
        return 0;
}

static int parse_targets(const struct loader *l, const config_setting_t *root, struct config *c) {
        const config_setting_t *list = config_setting_get_member(root, "targets");
        int n, r;

        if (!list)
                return fail(l, NULL, EINVAL, "targets", NULL, "missing, no targets configured");
        n = config_setting_length(list);
        if (n == 0 && config_setting_is_aggregate(list))
                return fail(l, list, EINVAL, "targets", NULL, "empty, no targets configured");
        r = expect_type(l, list, "targets", NULL, CONFIG_TYPE_LIST);
        if (r < 0)
                return r;
        if (n > CONFIG_TARGETS_MAX)
                return fail(l, list, EINVAL, "targets", NULL, "%d targets, at most %d are allowed",
                            n, CONFIG_TARGETS_MAX);

        c->targets = calloc((size_t) n, sizeof *c->targets);
        if (!c->targets)
                return fail_oom(l);

        for (int i = 0; i < n; i++) {
                r = parse_target(l, config_setting_get_elem(list, (unsigned) i), (size_t) i,
                                 c->interval_sec, &c->targets[i]);
                if (r < 0)
                        return r;
                c->n_targets++;
        }
        return 0;
}

typedef int (*target_compare_t)(const struct target *a, const struct target *b);

/* Ids are GUIDs, which the API matches without regard to case. */
static int compare_target_ids(const struct target *a, const struct target *b) {
        int r = strcasecmp(a->customer_id, b->customer_id);

        return r != 0 ? r : strcasecmp(a->tenant_id, b->tenant_id);
}

static int compare_target_names(const struct target *a, const struct target *b) {
        return strcmp(a->name, b->name);
}

/* Sorts equal keys by position in the file, so the first of a run is the earliest target. */
static int compare_sorted_targets(const void *a, const void *b, void *userdata) {
        const struct target *x = *(const struct target *const *) a, *y = *(const struct target *const *) b;
        const target_compare_t *compare = userdata;
        int r = (*compare)(x, y);

        return r != 0 ? r : (x > y) - (x < y);
}

/*
 * Finds the earliest target (by position) that equals an earlier one under
 * compare, in O(n log n) because a file may list CONFIG_TARGETS_MAX targets.
 * Returns 1 and the two indexes when there is one, 0 when not.
 */
static int find_duplicate(const struct config *c, target_compare_t compare, size_t *ret_first, size_t *ret_duplicate) {
        _cleanup_free_ const struct target **sorted = NULL;
        size_t run = 0, first = 0, duplicate = SIZE_MAX;

        sorted = calloc(c->n_targets, sizeof *sorted);
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_targets; i++)
                sorted[i] = &c->targets[i];
        qsort_r(sorted, c->n_targets, sizeof *sorted, compare_sorted_targets, &compare);

        for (size_t i = 1; i < c->n_targets; i++) {
                if (compare(sorted[run], sorted[i]) != 0) {
                        run = i;
                        continue;
                }
                if ((size_t) (sorted[i] - c->targets) < duplicate) {
                        duplicate = (size_t) (sorted[i] - c->targets);
                        first = (size_t) (sorted[run] - c->targets);
                }
        }
        if (duplicate == SIZE_MAX)
                return 0;
        *ret_first = first;
        *ret_duplicate = duplicate;
        return 1;
}

static int check_duplicate_targets(const struct loader *l, const config_setting_t *root, const struct config *c) {
        const config_setting_t *list = config_setting_get_member(root, "targets");
        const config_setting_t *s;
        size_t first, duplicate;
        char prefix[32];
        int r;

        r = find_duplicate(c, compare_target_ids, &first, &duplicate);
        if (r < 0)
                return fail_oom(l);
        if (r > 0) {
                (void) snprintf(prefix, sizeof prefix, "targets[%zu]", duplicate);
                return fail(l, config_setting_get_elem(list, (unsigned) duplicate), EINVAL, prefix, NULL,
                            "duplicate of targets[%zu] (line %d): same customer_id and tenant_id",
                            first, c->targets[first].line);
        }

        r = find_duplicate(c, compare_target_names, &first, &duplicate);
        if (r <= 0)
                return r < 0 ? fail_oom(l) : 0;
        (void) snprintf(prefix, sizeof prefix, "targets[%zu]", duplicate);
        s = config_setting_get_elem(list, (unsigned) duplicate);
        if (!config_setting_get_member(s, "name"))
                return fail(l, s, EINVAL, prefix, NULL,
                            "the name defaults to tenant_id \"%s\", which is already the name of targets[%zu] "
                            "(line %d); set a distinct name", c->targets[duplicate].name, first,
                            c->targets[first].line);
        return fail(l, config_setting_get_member(s, "name"), EINVAL, prefix, "name",
                    "\"%s\" is already the name of targets[%zu] (line %d)",
                    c->targets[duplicate].name, first, c->targets[first].line);
}

/*
 * Reads the secret into a buffer that is wiped when freed, and stores in
 * *ret_readable_by_others whether the file's mode lets group or others read
 * it. On failure, reason gets a short text for the caller's message, without
 * the secret.
 */
static int read_secret_file(const char *path, char **ret, bool *ret_readable_by_others,
                            char *reason, size_t reason_size) {
        _cleanup_(secret_bufferp) char *buf = NULL;
        _cleanup_close_ int fd = -1;
        size_t size = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int e = errno;

                return set_reason(reason, reason_size, e, "failed to open: %s", strerror(e));
        }
        if (!S_ISREG(st.st_mode))
                return set_reason(reason, reason_size, EINVAL, "not a regular file");

        buf = calloc(1, SECRET_BUFFER_SIZE);
        if (!buf)
                return set_reason(reason, reason_size, ENOMEM, "out of memory");
        while (size < SECRET_BUFFER_SIZE - 1) {
                ssize_t k = read(fd, buf + size, SECRET_BUFFER_SIZE - 1 - size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int e = errno;

                        return set_reason(reason, reason_size, e, "failed to read: %s", strerror(e));
                }
                if (k == 0)
                        break;
                size += (size_t) k;
        }
        if (size > CONFIG_SECRET_MAX)
                return set_reason(reason, reason_size, EFBIG, "larger than %d bytes", CONFIG_SECRET_MAX);

        /* Editors end the file with a newline, which is not part of the secret. */
        while (size > 0 && (buf[size - 1] == '\n' || buf[size - 1] == '\r' ||
                            buf[size - 1] == ' ' || buf[size - 1] == '\t'))
                buf[--size] = '\0';
        if (size == 0)
                return set_reason(reason, reason_size, EINVAL, "the client secret is empty");
        for (size_t i = 0; i < size; i++)
                if ((unsigned char) buf[i] < 0x20 || buf[i] == 0x7f)
                        return set_reason(reason, reason_size, EINVAL, "the client secret contains a control character");

        *ret = TAKE_PTR(buf);
        *ret_readable_by_others = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
        return 0;
}

static char *path_join(const char *directory, const char *name) {
        size_t n = strlen(directory) + 1 + strlen(name) + 1;
        char *p = malloc(n);

        if (p)
                (void) snprintf(p, n, "%s/%s", directory, name);
        return p;
}

/*
 * Reads the client secret from the systemd credential when
 * $CREDENTIALS_DIRECTORY is set (LoadCredential=), else from
 * api.client_secret_file. api.client_secret_file is set to the file read,
 * and c->secret_readable_by_others to whether its mode lets group or others read it.
 */
static int load_secret(const struct loader *l, const config_setting_t *root, struct config *c) {
        struct api_config *api = &c->api;
        const char *credentials = getenv("CREDENTIALS_DIRECTORY");
        const config_setting_t *group = config_setting_get_member(root, "api");
        char reason[256];
        char *path;
        int r;

        if (!credentials || credentials[0] == '\0') {
                r = read_secret_file(api->client_secret_file, &api->client_secret,
                                     &c->secret_readable_by_others, reason, sizeof reason);
                if (r < 0)
                        return fail(l, config_setting_get_member(group, "client_secret_file"), r, "api",
                                    "client_secret_file", "%s: %s", api->client_secret_file, reason);
                return 0;
        }

        path = path_join(credentials, CONFIG_CREDENTIAL_NAME);
        if (!path)
                return fail_oom(l);
        free(api->client_secret_file);
        api->client_secret_file = path;
        r = read_secret_file(path, &api->client_secret, &c->secret_readable_by_others, reason, sizeof reason);
        if (r < 0)
                return set_reason(l->error, l->error_size, r, "%s: %s (credential %s from $CREDENTIALS_DIRECTORY)",
                                  path, reason, CONFIG_CREDENTIAL_NAME);
        /* systemd sets up the credential's mode, there is nothing for the admin to fix. */
        c->secret_readable_by_others = false;
        return 0;
}

/*
 * Opens the configuration file and checks that only its owner can change it,
 * because a user who can write it chooses where the client secret is sent.
 * The owner must be root or the user the daemon runs as, and group and
 * others must not have write permission. The file is opened here, not by
 * libconfig, because libconfig reports every failure to open as "file I/O
 * error", and so that the file checked is the file parsed.
 */
static int open_config_file(const struct loader *l, int *ret) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int e = errno;

                return set_reason(l->error, l->error_size, e, "%s: failed to open: %s", l->path, strerror(e));
        }
        if (!S_ISREG(st.st_mode))
                return set_reason(l->error, l->error_size, EINVAL, "%s: not a regular file", l->path);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return set_reason(l->error, l->error_size, EPERM,
                                  "%s: writable by %s (mode %04o), so others could redirect the client secret; "
                                  "run: chmod go-w %s", l->path,
                                  (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group and others" :
                                  (st.st_mode & S_IWGRP) ? "group" : "others",
                                  (unsigned) (st.st_mode & 07777), l->path);
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return set_reason(l->error, l->error_size, EPERM,
                                  "%s: owned by uid %u, which is neither root nor the user the daemon runs as "
                                  "(uid %u), so that user could redirect the client secret; run: chown root %s",
                                  l->path, (unsigned) st.st_uid, (unsigned) geteuid(), l->path);

        if (st.st_size > CONFIG_FILE_MAX)
                return set_reason(l->error, l->error_size, EFBIG, "%s: larger than %d bytes", l->path, CONFIG_FILE_MAX);

        *ret = TAKE_FD(fd);
        return 0;
}

/* Reads the whole file, at most CONFIG_FILE_MAX bytes, as one string. */
static int read_config_text(const struct loader *l, int fd, char **ret) {
        _cleanup_free_ char *text = malloc(CONFIG_FILE_MAX + 1);
        size_t size = 0;

        if (!text)
                return fail_oom(l);
        for (;;) {
                ssize_t k = read(fd, text + size, CONFIG_FILE_MAX + 1 - size);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return set_reason(l->error, l->error_size, errno, "%s: failed to read: %s",
                                          l->path, strerror(errno));
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > CONFIG_FILE_MAX)
                        return set_reason(l->error, l->error_size, EFBIG, "%s: larger than %d bytes",
                                          l->path, CONFIG_FILE_MAX);
        }
        if (memchr(text, '\0', size))
                return set_reason(l->error, l->error_size, EINVAL, "%s: contains a NUL byte", l->path);
        text[size] = '\0';
        *ret = TAKE_PTR(text);
        return 0;
}

/* Scanner state of check_config_text(): where in libconfig's syntax a byte is. */
enum text_state {
        TEXT_CODE,
        TEXT_STRING,            /* "..." */
        TEXT_LINE_COMMENT,      /* # or // up to the end of the line */
        TEXT_BLOCK_COMMENT,     /* slash-star up to star-slash */
};

/* Checks an integer literal at p that starts a token: one beyond 32 bits
 * without the L suffix is what libconfig 1.5 silently truncates. Returns the
 * literal's length. */
static size_t check_integer_token(const char *p, bool *ret_too_large) {
        const char *q = p + (*p == '-' || *p == '+');
        unsigned long long v;
        char *end;

        errno = 0;
        if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X'))
                v = strtoull(q, &end, 16);
        else
                v = strtoull(q, &end, 10);
        if (*end == '.' || *end == 'e' || *end == 'E')
                *ret_too_large = false;         /* a float, which the loader rejects by type */
        else
                *ret_too_large = *end != 'L' && (errno == ERANGE || v > INT32_MAX);
        return (size_t) (end - p);
}

/*
 * Rejects, outside strings and comments, three things libconfig 1.5 handles
 * badly. "@include" makes its scanner call exit() on a directory, and an
 * included file would escape the permission check above. An integer literal
 * beyond 32 bits without the L suffix is read as its low 32 bits, so
 * 4294967396 would pass as 100. A line longer than CONFIG_LINE_MAX slows its
 * scanner down with the square of the line's length.
 */
static int check_config_text(const struct loader *l, const char *text) {
        enum text_state state = TEXT_CODE;
        bool line_start = true;
        size_t line_length = 0;
        int line = 1;

        if (!text)
                return -EINVAL;

        for (const char *p = text; *p; p++, line_length++) {
                if (*p == '\n') {
                        line++;
                        line_length = 0;
                        line_start = true;
                        if (state == TEXT_LINE_COMMENT)
                                state = TEXT_CODE;
                        continue;
                }
                if (line_length >= CONFIG_LINE_MAX)
                        return set_reason(l->error, l->error_size, EINVAL, "%s:%d: line longer than %d bytes",
                                          l->path, line, CONFIG_LINE_MAX);

                switch (state) {
                case TEXT_STRING:
                        if (*p == '\\' && p[1] != '\0' && p[1] != '\n')
                                p++, line_length++;
                        else if (*p == '"')
                                state = TEXT_CODE;
                        continue;
                case TEXT_LINE_COMMENT:
                        continue;
                case TEXT_BLOCK_COMMENT:
                        if (p[0] == '*' && p[1] == '/')
                                p++, line_length++, state = TEXT_CODE;
                        continue;
                case TEXT_CODE:
                        break;
                }

                if (*p == ' ' || *p == '\t' || *p == '\r')
                        continue;
                if (line_start && strncmp(p, "@include", 8) == 0)
                        return set_reason(l->error, l->error_size, EINVAL,
                                          "%s:%d: @include is not supported: put every setting in this one file",
                                          l->path, line);
                line_start = false;

                if (*p == '"')
                        state = TEXT_STRING;
                else if (*p == '#' || (p[0] == '/' && p[1] == '/'))
                        state = TEXT_LINE_COMMENT;
                else if (p[0] == '/' && p[1] == '*')
                        p++, line_length++, state = TEXT_BLOCK_COMMENT;
                else if ((isdigit((unsigned char) *p) || ((*p == '-' || *p == '+') && isdigit((unsigned char) p[1]))) &&
                         (p == text || !(isalnum((unsigned char) p[-1]) || p[-1] == '_' || p[-1] == '.'))) {
                        bool too_large;
                        size_t n = check_integer_token(p, &too_large);

                        if (too_large)
                                return set_reason(l->error, l->error_size, ERANGE,
                                                  "%s:%d: integer %.*s does not fit in 32 bits and would be truncated",
                                                  l->path, line, (int) MIN(n, (size_t) 40), p);
                        if (n > 1) {
                                p += n - 1;
                                line_length += n - 1;
                        }
                }
        }
        return 0;
}

static int parse_root(const struct loader *l, const config_setting_t *root, struct config *c) {
        int r;

        r = check_keys(l, root, NULL, NULL);
        if (r < 0)
                return r;
        r = parse_api(l, root, &c->api);
        if (r < 0)
                return r;
        r = parse_poll(l, root, c);
        if (r < 0)
                return r;
        r = parse_state_directory(l, root, &c->state_directory);
        if (r < 0)
                return r;
        r = parse_targets(l, root, c);
        if (r < 0)
                return r;
        r = check_duplicate_targets(l, root, c);
        if (r < 0)
                return r;

        /* Last, so that a mistake in the file is reported before a missing secret. */
        return load_secret(l, root, c);
}

int config_load(const char *path, struct config **ret, char *error, size_t error_size) {
        const struct loader l = { .path = path ? path : CONFIG_DEFAULT_PATH, .error = error, .error_size = error_size };
        _cleanup_(config_destroyp) config_t cfg;
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -1;
        int r;

        config_init(&cfg);
        if (!ret)
                return set_reason(error, error_size, EINVAL, "%s: no place for the result", l.path);

        r = open_config_file(&l, &fd);
        if (r < 0)
                return r;
        r = read_config_text(&l, fd, &text);
        if (r < 0)
                return r;
        r = check_config_text(&l, text);
        if (r < 0)
                return r;
        if (config_read_string(&cfg, text) != CONFIG_TRUE)
                return set_reason(error, error_size, EINVAL, "%s:%d: %s",
                                  config_error_file(&cfg) ? config_error_file(&cfg) : l.path,
                                  config_error_line(&cfg), strempty(config_error_text(&cfg)));

        c = calloc(1, sizeof *c);
        if (!c)
                return fail_oom(&l);
        c->path = strdup(l.path);
        if (!c->path)
                return fail_oom(&l);

        r = parse_root(&l, config_root_setting(&cfg), c);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

static void api_config_done(struct api_config *api) {
        free(api->base_url);
        free(api->token_url);
        free(api->client_id);
        free(api->client_secret_file);
        api->client_secret = secret_free(api->client_secret);
        free(api->scope);
        free(api->ca_file);
}

struct config *config_free(struct config *c) {
        if (!c)
                return NULL;

        free(c->path);
        api_config_done(&c->api);
        free(c->state_directory);
        for (size_t i = 0; i < c->n_targets; i++)
                target_done(&c->targets[i]);
        free(c->targets);
        free(c);
        return NULL;
}

/* Returns "host" or "host:port" of url for display, or NULL. */
static char *url_authority(const char *url) {
        _cleanup_(curl_urlp) CURLU *u = curl_url();
        _cleanup_(curl_freep) char *host = NULL, *port = NULL;
        size_t n;
        char *s;

        if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                return NULL;
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
                return strdup(host);

        n = strlen(host) + 1 + strlen(port) + 1;
        s = malloc(n);
        if (s)
                (void) snprintf(s, n, "%s:%s", host, port);
        return s;
}

static void print_target(const struct target *t, FILE *f) {
        fprintf(f, "  %s: customer %s, tenant %s, every %u s, ", t->name, t->customer_id, t->tenant_id,
                t->interval_sec);
        if (t->n_user_emails == 0)
                fputs("all users\n", f);
        else
                fprintf(f, "%zu user email%s\n", t->n_user_emails, t->n_user_emails == 1 ? "" : "s");
}

void config_print_summary(const struct config *c, FILE *f) {
        _cleanup_free_ char *api_host = url_authority(c->api.base_url);
        _cleanup_free_ char *token_host = url_authority(c->api.token_url);

        fprintf(f, "Configuration file: %s\n", c->path);
        fprintf(f, "API host:           %s\n", api_host ? api_host : "?");
        fprintf(f, "Token host:         %s\n", token_host ? token_host : "?");
        fprintf(f, "Page size:          %u users\n", c->api.page_size);
        fprintf(f, "Request timeout:    %u s\n", c->api.timeout_sec);
        fprintf(f, "Max parallel:       %u requests\n", c->api.max_parallel);
        fprintf(f, "CA file:            %s\n", c->api.ca_file ? c->api.ca_file : "the system's CA store");
        fprintf(f, "Poll interval:      %u s\n", c->interval_sec);
        if (c->hold_percent > 0)
                fprintf(f, "Mass changes held:  over %u%% of a tenant of %u users or more\n",
                        c->hold_percent, c->hold_min_users);
        else
                fprintf(f, "Mass changes held:  never (poll.hold_percent = 0)\n");
        fprintf(f, "State directory:    %s\n", c->state_directory);
        fprintf(f, "Client secret from: %s\n", c->api.client_secret_file);
        fprintf(f, "Targets:            %zu\n", c->n_targets);
        for (size_t i = 0; i < c->n_targets; i++)
                print_target(&c->targets[i], f);
}

const char *const *config_known_keys(void) {
        return known_keys;
}

bool config_secret_warning(const struct config *c, char *buf, size_t size) {
        if (!c->secret_readable_by_others)
                return false;
        (void) snprintf(buf, size,
                        "Client secret file %s is readable by group or others; run: chmod 600 %s, "
                        "or pass the secret as the systemd credential \"%s\"",
                        c->api.client_secret_file, c->api.client_secret_file, CONFIG_CREDENTIAL_NAME);
        return true;
}

const struct target *config_find_target(const struct config *c, const char *customer_id, const char *tenant_id) {
        for (size_t i = 0; i < c->n_targets; i++)
                if (streq(c->targets[i].customer_id, customer_id) && streq(c->targets[i].tenant_id, tenant_id))
                        return &c->targets[i];
        return NULL;
}

bool target_equal(const struct target *a, const struct target *b) {
        if (!streq(a->name, b->name) || !streq(a->customer_id, b->customer_id) ||
            !streq(a->tenant_id, b->tenant_id) || a->interval_sec != b->interval_sec ||
            a->n_user_emails != b->n_user_emails)
                return false;

        for (size_t i = 0; i < a->n_user_emails; i++)
                if (!streq(a->user_emails[i], b->user_emails[i]))
                        return false;
        return true;
}

bool api_config_equal(const struct api_config *a, const struct api_config *b) {
        return streq_ptr(a->base_url, b->base_url) &&
                streq_ptr(a->token_url, b->token_url) &&
                streq_ptr(a->client_id, b->client_id) &&
                streq_ptr(a->client_secret_file, b->client_secret_file) &&
                streq_ptr(a->client_secret, b->client_secret) &&
                streq_ptr(a->scope, b->scope) &&
                streq_ptr(a->ca_file, b->ca_file) &&
                a->page_size == b->page_size &&
                a->timeout_sec == b->timeout_sec &&
                a->max_parallel == b->max_parallel;
}
