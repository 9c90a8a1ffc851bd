/* SPDX-License-Identifier: MIT */
#include "reply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util.h"

/* The vendor documents module codes 0 and 2 and may send others.
 * NOTE: the vendor documents no upper bound. This one only keeps a garbled
 * number out of events. */
#define REPLY_MODULE_CODE_MAX 1000000

DEFINE_POINTER_CLEANUP(struct json_object, json_object_put);
DEFINE_POINTER_CLEANUP(struct json_tokener, json_tokener_free);

/* Position of a value in the reply, for the reason of a failed check. The
 * path text is formatted only when a check fails, so that valid users cost
 * no formatting. */
enum location_kind {
        LOCATION_TOP,
        LOCATION_METADATA,
        LOCATION_USER,          /* data[user] */
        LOCATION_MODULE,        /* data[user].moduleStatus[module] */
};

struct location {
        enum location_kind kind;
        size_t user;
        size_t module;
};

/* Writes "PATH.KEY: MESSAGE" (or "PATH: MESSAGE" when key is NULL) into
 * reason and returns -error. */
_printf_(6, 7)
static int location_reason(const struct location *loc, const char *key, char *reason, size_t reason_size,
                           int error, const char *fmt, ...) {
        char where[80] = "", message[160];
        va_list ap;

        switch (loc->kind) {
        case LOCATION_TOP:
                break;
        case LOCATION_METADATA:
                (void) strscpy(where, sizeof(where), "metadata");
                break;
        case LOCATION_USER:
                (void) snprintf(where, sizeof(where), "data[%zu]", loc->user);
                break;
        case LOCATION_MODULE:
                (void) snprintf(where, sizeof(where), "data[%zu].moduleStatus[%zu]", loc->user, loc->module);
                break;
        }

        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);

        return set_reason(reason, reason_size, error, "%s%s%s: %s",
                          where, where[0] && key ? "." : "", strempty(key), message);
}

static const char *type_with_article(enum json_type type) {
        switch (type) {
        case json_type_array:
                return "an array";
        case json_type_object:
                return "an object";
        case json_type_string:
                return "a string";
        case json_type_int:
                return "an integer";
        case json_type_boolean:
                return "a boolean";
        case json_type_double:
                return "a number with a fraction or exponent";
        case json_type_null:
                return "null";
        }
        return "a JSON value";
}

/* Looks up a member that must be present and of the given type. */
static int get_member(struct json_object *obj, const char *key, enum json_type type,
                      const struct location *loc, struct json_object **ret, char *reason, size_t reason_size) {
        struct json_object *value = NULL;

        if (!json_object_object_get_ex(obj, key, &value))
                return location_reason(loc, key, reason, reason_size, EBADMSG, "missing");
        if (!json_object_is_type(value, type))
                return location_reason(loc, key, reason, reason_size, EBADMSG, "expected %s",
                                       type_with_article(type));
        *ret = value;
        return 0;
}

/* Looks up a member the vendor spells two ways ("module" in its sample,
 * "Module" in its field table). Both may be present only with equal values.
 * Returns the spelling found in *ret_key, for the reason of a later check. */
static int get_member_either(struct json_object *obj, const char *key, const char *other_key,
                             const struct location *loc, struct json_object **ret, const char **ret_key,
                             char *reason, size_t reason_size) {
        struct json_object *value = NULL, *other = NULL;
        bool found, found_other;

        found = json_object_object_get_ex(obj, key, &value);
        found_other = json_object_object_get_ex(obj, other_key, &other);
        if (!found && !found_other)
                return location_reason(loc, key, reason, reason_size, EBADMSG, "missing");
        if (found && found_other && !json_object_equal(value, other))
                return location_reason(loc, NULL, reason, reason_size, EBADMSG, "%s and %s differ",
                                       key, other_key);

        *ret = found ? value : other;
        *ret_key = found ? key : other_key;
        return 0;
}

static int get_integer(struct json_object *obj, const char *key, int64_t min, int64_t max,
                       const struct location *loc, int64_t *ret, char *reason, size_t reason_size) {
        struct json_object *value = NULL;
        int64_t v;
        int r;

        r = get_member(obj, key, json_type_int, loc, &value, reason, reason_size);
        if (r < 0)
                return r;

        /* json-c 0.16 clamps integers outside int64_t to INT64_MIN or
         * INT64_MAX, which the range check then rejects. */
        v = json_object_get_int64(value);
        if (v < min || v > max)
                return location_reason(loc, key, reason, reason_size, EBADMSG,
                                       "%" PRId64 " is out of range %" PRId64 "..%" PRId64, v, min, max);
        *ret = v;
        return 0;
}

/* Copies a string member into a new allocation. A JSON null becomes "" when
 * null_ok is set. */
static int copy_string(struct json_object *obj, const char *key, size_t max, bool null_ok,
                       const struct location *loc, char **ret, char *reason, size_t reason_size) {
        struct json_object *value = NULL;
        const char *s = "";
        size_t len = 0;
        char *copy;

        if (!json_object_object_get_ex(obj, key, &value))
                return location_reason(loc, key, reason, reason_size, EBADMSG, "missing");

        if (value || !null_ok) {
                if (!json_object_is_type(value, json_type_string))
                        return location_reason(loc, key, reason, reason_size, EBADMSG, "expected a string");
                s = json_object_get_string(value);
                len = (size_t) json_object_get_string_len(value);
        }

        if (len > max)
                return location_reason(loc, key, reason, reason_size, EBADMSG, "longer than %zu bytes", max);
        /* A "\u0000" escape would silently cut the C string short. */
        if (memchr(s, '\0', len))
                return location_reason(loc, key, reason, reason_size, EBADMSG, "contains a NUL character");

        copy = malloc(len + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, s, len);
        copy[len] = '\0';
        *ret = copy;
        return 0;
}

static int parse_module(struct json_object *obj, const struct location *loc, struct module_status *ret,
                        char *reason, size_t reason_size) {
        struct json_object *code, *is_protected;
        const char *key;
        int64_t v;
        int r;

        if (!json_object_is_type(obj, json_type_object))
                return location_reason(loc, NULL, reason, reason_size, EBADMSG, "expected an object");

        r = get_member_either(obj, "module", "Module", loc, &code, &key, reason, reason_size);
        if (r < 0)
                return r;
        if (!json_object_is_type(code, json_type_int))
                return location_reason(loc, key, reason, reason_size, EBADMSG, "expected an integer");
        v = json_object_get_int64(code);
        if (v < 0 || v > REPLY_MODULE_CODE_MAX)
                return location_reason(loc, key, reason, reason_size, EBADMSG, "%" PRId64 " is out of range 0..%d",
                                       v, REPLY_MODULE_CODE_MAX);

        /* Only a JSON boolean counts: guessing from a string or a number could
         * report a user as protected who is not. */
        r = get_member_either(obj, "isProtected", "IsProtected", loc, &is_protected, &key, reason, reason_size);
        if (r < 0)
                return r;
        if (!json_object_is_type(is_protected, json_type_boolean))
                return location_reason(loc, key, reason, reason_size, EBADMSG, "expected a boolean");

        *ret = (struct module_status) {
                .code = (int) v,
                .is_protected = json_object_get_boolean(is_protected),
        };
        return 0;
}

/* Parses moduleStatus, which must be an array. Reading a missing list as "no
 * modules" would report a user as unprotected without evidence. */
static int parse_modules(struct json_object *obj, const struct location *user_loc, struct user *u,
                         char *reason, size_t reason_size) {
        _cleanup_free_ struct module_status *modules = NULL;
        struct json_object *array = NULL;
        size_t n;
        int r;

        r = get_member(obj, "moduleStatus", json_type_array, user_loc, &array, reason, reason_size);
        if (r < 0)
                return r;

        n = json_object_array_length(array);
        if (n > VIEW_MODULES_MAX)
                return location_reason(user_loc, "moduleStatus", reason, reason_size, EBADMSG,
                                       "%zu entries exceed the limit of %d", n, VIEW_MODULES_MAX);
        if (n > 0) {
                modules = calloc(n, sizeof(modules[0]));
                if (!modules)
                        return -ENOMEM;
        }

        for (size_t i = 0; i < n; i++) {
                struct location loc = { .kind = LOCATION_MODULE, .user = user_loc->user, .module = i };

                r = parse_module(json_object_array_get_idx(array, i), &loc, &modules[i], reason, reason_size);
                if (r < 0)
                        return r;
        }

        u->modules = TAKE_PTR(modules);
        u->n_modules = n;
        return 0;
}

static int parse_user(struct json_object *obj, size_t index, struct user *ret, char *reason, size_t reason_size) {
        _cleanup_(user_done) struct user u = {};
        struct location loc = { .kind = LOCATION_USER, .user = index };
        int r;

        if (!json_object_is_type(obj, json_type_object))
                return location_reason(&loc, NULL, reason, reason_size, EBADMSG, "expected an object");

        r = copy_string(obj, "id", VIEW_ID_MAX, false, &loc, &u.id, reason, reason_size);
        if (r < 0)
                return r;
        if (u.id[0] == '\0')
                return location_reason(&loc, "id", reason, reason_size, EBADMSG, "empty");

        r = copy_string(obj, "email", VIEW_EMAIL_MAX, true, &loc, &u.email, reason, reason_size);
        if (r < 0)
                return r;
        r = copy_string(obj, "displayName", VIEW_NAME_MAX, true, &loc, &u.display_name, reason, reason_size);
        if (r < 0)
                return r;

        r = parse_modules(obj, &loc, &u, reason, reason_size);
        if (r < 0)
                return r;

        *ret = u;
        u = (struct user) {};
        return 0;
}

static int parse_users(struct json_object *data, struct tenant_view *view, char *reason, size_t reason_size) {
        size_t n = json_object_array_length(data);
        int r;

        for (size_t i = 0; i < n; i++) {
                _cleanup_(user_done) struct user u = {};

                r = parse_user(json_object_array_get_idx(data, i), i, &u, reason, reason_size);
                if (r < 0)
                        return r;

                r = tenant_view_add(view, &u);
                if (r == -E2BIG)
                        return set_reason(reason, reason_size, r, "data[%zu]: the tenant has more than %d users",
                                          i, VIEW_USERS_MAX);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_metadata(struct json_object *root, struct page_meta *ret, char *reason, size_t reason_size) {
        struct location loc = { .kind = LOCATION_METADATA };
        struct json_object *metadata = NULL;
        int64_t page_index, page_size, total_count;
        int r;

        r = get_member(root, "metadata", json_type_object, &(struct location) { .kind = LOCATION_TOP },
                       &metadata, reason, reason_size);
        if (r < 0)
                return r;

        /* No tenant can list more than VIEW_USERS_MAX users, so no larger
         * value is meaningful here. */
        r = get_integer(metadata, "pageIndex", 1, VIEW_USERS_MAX, &loc, &page_index, reason, reason_size);
        if (r < 0)
                return r;
        r = get_integer(metadata, "pageSize", 1, VIEW_USERS_MAX, &loc, &page_size, reason, reason_size);
        if (r < 0)
                return r;
        r = get_integer(metadata, "totalCount", 0, VIEW_USERS_MAX, &loc, &total_count, reason, reason_size);
        if (r < 0)
                return r;

        *ret = (struct page_meta) {
                .page_index = (long) page_index,
                .page_size = (long) page_size,
                .total_count = (long) total_count,
        };
        return 0;
}

static bool all_whitespace(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
                        return false;
        return true;
}

/* Parses the body into a tree whose top is an object. */
static int parse_json(const char *body, size_t size, struct json_object **ret, char *reason, size_t reason_size) {
        _cleanup_(json_tokener_freep) struct json_tokener *tok = NULL;
        _cleanup_(json_object_putp) struct json_object *root = NULL;
        enum json_tokener_error error;
        size_t end;

        if (size > REPLY_BODY_MAX)
                return set_reason(reason, reason_size, EBADMSG, "reply body of %zu bytes exceeds the limit of %u bytes",
                                  size, REPLY_BODY_MAX);

        tok = json_tokener_new_ex(REPLY_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

        /* The size fits an int because REPLY_BODY_MAX does. */
        root = json_tokener_parse_ex(tok, body, (int) size);
        error = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        if (error == json_tokener_continue) {
                /* json-c reads a NUL byte as the end of input, so it either
                 * completes a top-level number or reports the early end. */
                root = json_tokener_parse_ex(tok, "", 1);
                error = json_tokener_get_error(tok);
                end = size;
        }
        /* A top-level JSON null parses successfully into NULL. */
        if (!root && error != json_tokener_success)
                return set_reason(reason, reason_size, EBADMSG, "invalid JSON at offset %zu: %s",
                                  end, json_tokener_error_desc(error));
        /* In strict mode json-c rejects most trailing data itself, but it
         * stops at a NUL byte after the value and reports success. */
        if (!all_whitespace(body + end, size - end))
                return set_reason(reason, reason_size, EBADMSG,
                                  "invalid JSON at offset %zu: unexpected data after the top-level value", end);
        if (!json_object_is_type(root, json_type_object))
                return set_reason(reason, reason_size, EBADMSG, "top-level value: expected an object, got %s",
                                  type_with_article(json_object_get_type(root)));

        *ret = TAKE_PTR(root);
        return 0;
}

int reply_parse_page(const char *body, size_t size, struct tenant_view *view,
                     struct page_meta *ret_meta, char *reason, size_t reason_size) {
        _cleanup_(json_object_putp) struct json_object *root = NULL;
        struct json_object *data = NULL;
        struct page_meta meta;
        size_t n_before;
        int r;

        if ((!body && size > 0) || !view)
                return -EINVAL;

        r = parse_json(body ? body : "", size, &root, reason, reason_size);
        if (r < 0)
                return r;

        r = get_member(root, "data", json_type_array, &(struct location) { .kind = LOCATION_TOP },
                       &data, reason, reason_size);
        if (r < 0)
                return r;
        r = parse_metadata(root, &meta, reason, reason_size);
        if (r < 0)
                return r;

        /* On failure, remove this page's users so that the view is as the
         * caller passed it. */
        n_before = view->n_users;
        r = parse_users(data, view, reason, reason_size);
        if (r < 0) {
                while (view->n_users > n_before)
                        user_done(&view->users[--view->n_users]);
                return r;
        }

        meta.n_users = view->n_users - n_before;
        if (ret_meta)
                *ret_meta = meta;
        return 0;
}

int reply_build_request_body(char *const *user_emails, size_t n_user_emails, char **ret) {
        _cleanup_(json_object_putp) struct json_object *root = NULL;
        struct json_object *array = NULL;
        const char *text;
        char *copy;

        if (!ret || (n_user_emails > 0 && !user_emails))
                return -EINVAL;

        if (n_user_emails == 0) {
                copy = strdup("{}");
                if (!copy)
                        return -ENOMEM;
                *ret = copy;
                return 0;
        }

        root = json_object_new_object();
        array = json_object_new_array();
        if (!root || !array || json_object_object_add(root, "userEmails", array) < 0) {
                json_object_put(array);
                return -ENOMEM;
        }

        for (size_t i = 0; i < n_user_emails; i++) {
                struct json_object *s;

                if (!user_emails[i])
                        return -EINVAL;
                s = json_object_new_string(user_emails[i]);
                if (!s || json_object_array_add(array, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }

        /* json-c escapes quotes, backslashes and control characters. */
        text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        copy = strdup(text);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}
