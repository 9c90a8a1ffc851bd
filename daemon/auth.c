/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <errno.h>
#include <inttypes.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "util.h"

#define AUTH_TOKEN_MAX (16u * 1024u)
#define AUTH_EXPIRES_IN_MAX_SEC INT32_MAX
#define AUTH_JSON_DEPTH_MAX 16
/* OAuth "error" and "error_description" are cut to these lengths in reasons. */
#define AUTH_ERROR_CODE_MAX 64u
#define AUTH_ERROR_DESCRIPTION_MAX 200u
#define AUTH_TOKEN_TYPE_MAX 32u
#define AUTH_REASON_MAX 512u

struct auth_waiter {
        auth_callback_t callback;
        void *userdata;
        bool due;               /* to be called by the delivery in progress */
        struct auth_waiter *next;
};

/*
 * The auth object borrows both the HTTP client and the API configuration:
 * the client secret stays in the api_config only (config_free() wipes it),
 * so both must outlive the auth object.
 */
struct auth {
        struct http_client *http;
        const struct api_config *api;
        sd_event_source *deliver;       /* defer source: hands a cached token to waiters */

        char *token;                    /* secret: wiped on free */
        uint64_t renew_at_usec;         /* CLOCK_MONOTONIC */

        struct http_request *fetch;
        uint64_t fetch_started_usec;

        /* After a failed fetch, callers get its error until retry_at_usec
         * instead of a new request: refused credentials must not turn a
         * thousand polls into a thousand token requests. */
        uint64_t retry_at_usec;         /* CLOCK_MONOTONIC, 0 when not backing off */
        unsigned failures;              /* failed fetches in a row */
        int last_error;
        char last_reason[AUTH_REASON_MAX];

        struct auth_waiter *waiters;    /* FIFO */
        struct auth_waiter **waiters_tail;

        bool delivering;
        bool free_requested;            /* auth_free() was called by a waiter */
};

/* Percent-encodes everything outside the RFC 3986 unreserved set. Done by
 * hand rather than with curl_easy_escape() so that the encoded secret is
 * written straight into the buffer that secret_free() wipes. */
static size_t form_encode(char *dst, const char *src) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = 0;

        for (const unsigned char *p = (const unsigned char *) src; *p; p++) {
                bool unreserved = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';

                if (unreserved) {
                        if (dst)
                                dst[n] = (char) *p;
                        n++;
                        continue;
                }
                if (dst) {
                        dst[n] = '%';
                        dst[n + 1] = hex[*p >> 4];
                        dst[n + 2] = hex[*p & 0xf];
                }
                n += 3;
        }
        return n;
}

static size_t form_append(char *dst, size_t at, const char *name, const char *value) {
        size_t n = at;

        if (at > 0) {
                if (dst)
                        dst[n] = '&';
                n++;
        }
        if (dst)
                memcpy(dst + n, name, strlen(name));
        n += strlen(name);
        if (dst)
                dst[n] = '=';
        n++;
        return n + form_encode(dst ? dst + n : NULL, value);
}

/* Writes the form into dst (NULL: only measures it) and returns its length. */
static size_t form_build(char *dst, const char *client_id, const char *client_secret, const char *scope) {
        size_t n = 0;

        n = form_append(dst, n, "grant_type", "client_credentials");
        n = form_append(dst, n, "client_id", client_id);
        n = form_append(dst, n, "client_secret", client_secret);
        if (scope && scope[0] != '\0')
                n = form_append(dst, n, "scope", scope);
        return n;
}

int auth_build_request_body(const char *client_id, const char *client_secret, const char *scope, char **ret) {
        size_t size;
        char *body;

        if (!client_id || !client_secret || !ret || client_id[0] == '\0' || client_secret[0] == '\0')
                return -EINVAL;

        size = form_build(NULL, client_id, client_secret, scope);
        body = malloc(size + 1);
        if (!body)
                return -ENOMEM;
        (void) form_build(body, client_id, client_secret, scope);
        body[size] = '\0';

        *ret = body;
        return 0;
}

/* Copies an OAuth text for a reason: control characters dropped, cut at max bytes. */
static void copy_stripped(char *dst, size_t dst_size, const char *src, size_t max) {
        size_t n = 0;

        for (; *src && n < max && n + 1 < dst_size; src++)
                if ((unsigned char) *src >= 0x20 && *src != 0x7f)
                        dst[n++] = *src;
        dst[n] = '\0';
}

/* Parses a whole body as one JSON object. Returns NULL when it is anything else. */
static struct json_object *json_parse_object(const char *body, size_t size) {
        struct json_tokener *tok;
        struct json_object *o;
        size_t end;

        if (!body || size == 0 || size > AUTH_REPLY_MAX)
                return NULL;
        tok = json_tokener_new_ex(AUTH_JSON_DEPTH_MAX);
        if (!tok)
                return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, body, (int) size);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);

        while (end < size && strchr(" \t\r\n", body[end]))
                end++;
        if (!o || end != size || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static const char *json_get_string(struct json_object *o, const char *key) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* An error reply (RFC 6749, section 5.2): the reason carries the status,
 * "error" and "error_description", never anything else from the body. */
static int parse_error_reply(long status, const char *body, size_t size, char *reason, size_t reason_size) {
        char code[AUTH_ERROR_CODE_MAX + 1], description[AUTH_ERROR_DESCRIPTION_MAX + 1];
        int error = (status == 400 || status == 401 || status == 403) ? EACCES : EIO;
        struct json_object *root;
        const char *e, *d;

        root = json_parse_object(body, size);
        e = root ? json_get_string(root, "error") : NULL;
        if (!e || e[0] == '\0') {
                json_object_put(root);
                return set_reason(reason, reason_size, error, "HTTP %ld from the token endpoint", status);
        }

        copy_stripped(code, sizeof code, e, AUTH_ERROR_CODE_MAX);
        d = json_get_string(root, "error_description");
        copy_stripped(description, sizeof description, strempty(d), AUTH_ERROR_DESCRIPTION_MAX);
        json_object_put(root);

        if (description[0] == '\0')
                return set_reason(reason, reason_size, error, "HTTP %ld: %s", status, code);
        return set_reason(reason, reason_size, error, "HTTP %ld: %s (%s)", status, code, description);
}

/* RFC 6750 b64token characters are all printable ASCII. Spaces and control
 * characters would break the Authorization header. */
static bool token_is_valid(const char *t, size_t n) {
        if (n == 0 || n > AUTH_TOKEN_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) t[i] <= 0x20 || (unsigned char) t[i] >= 0x7f)
                        return false;
        return true;
}

static int parse_token_fields(struct json_object *root, struct token *ret, char *reason, size_t reason_size) {
        char type_copy[AUTH_TOKEN_TYPE_MAX + 1];
        struct json_object *v, *t;
        const char *type;
        int64_t expires_in;

        if (!json_object_object_get_ex(root, "access_token", &t) || !json_object_is_type(t, json_type_string))
                return set_reason(reason, reason_size, EBADMSG, "Token reply has no \"access_token\" string");
        if (!token_is_valid(json_object_get_string(t), (size_t) json_object_get_string_len(t)))
                return set_reason(reason, reason_size, EBADMSG,
                                  "Token reply has an invalid \"access_token\" (empty, over %u bytes, or with spaces or control characters)",
                                  AUTH_TOKEN_MAX);

        type = json_get_string(root, "token_type");
        if (!type)
                return set_reason(reason, reason_size, EBADMSG, "Token reply has no \"token_type\" string");
        if (strcasecmp(type, "Bearer") != 0) {
                copy_stripped(type_copy, sizeof type_copy, type, AUTH_TOKEN_TYPE_MAX);
                return set_reason(reason, reason_size, EBADMSG,
                                  "Token reply has token_type \"%s\", expected \"Bearer\"", type_copy);
        }

        /* expires_in is optional in RFC 6749 but the vendor documents it.
         * Without it no renewal time is known, so the reply is rejected. */
        if (!json_object_object_get_ex(root, "expires_in", &v) || !json_object_is_type(v, json_type_int))
                return set_reason(reason, reason_size, EBADMSG, "Token reply has no integer \"expires_in\"");
        expires_in = json_object_get_int64(v);
        if (expires_in <= 0 || expires_in > AUTH_EXPIRES_IN_MAX_SEC)
                return set_reason(reason, reason_size, EBADMSG,
                                  "Token reply has \"expires_in\" %" PRId64 ", out of range 1..%d",
                                  expires_in, AUTH_EXPIRES_IN_MAX_SEC);

        ret->access_token = strdup(json_object_get_string(t));
        if (!ret->access_token)
                return set_reason(reason, reason_size, ENOMEM, "Out of memory");
        ret->expires_in_sec = expires_in;
        return 0;
}

/* Overwrites the token inside the json-c tree before the tree is freed.
 * NOTE: json-c's tokener also copied it into its own buffer, which it frees
 * without wiping, so the wipe here is best effort. */
static void json_wipe_token(struct json_object *root) {
        struct json_object *t;

        if (json_object_object_get_ex(root, "access_token", &t) && json_object_is_type(t, json_type_string))
                explicit_wipe((char *) json_object_get_string(t), (size_t) json_object_get_string_len(t));
}

int auth_parse_reply(long status, const char *body, size_t size, struct token *ret,
                     char *reason, size_t reason_size) {
        struct token t = {};
        struct json_object *root;
        int k;

        if (!ret)
                return -EINVAL;
        if (size > AUTH_REPLY_MAX)
                return set_reason(reason, reason_size, EFBIG, "Token reply is larger than %u bytes", AUTH_REPLY_MAX);
        if (status != 200)
                return parse_error_reply(status, body, size, reason, reason_size);

        root = json_parse_object(body, size);
        if (!root)
                return set_reason(reason, reason_size, EBADMSG, "Token reply is not a JSON object");
        k = parse_token_fields(root, &t, reason, reason_size);
        json_wipe_token(root);
        json_object_put(root);
        if (k < 0)
                return k;

        *ret = t;
        return 0;
}

void token_done(struct token *t) {
        if (!t)
                return;
        t->access_token = secret_free(t->access_token);
        t->expires_in_sec = 0;
}

/* Tokens are renewed AUTH_RENEW_MARGIN_SEC before they end. A token that
 * lives less than twice that margin is renewed at half its life. */
static uint64_t renew_delay_usec(int64_t expires_in_sec) {
        if (expires_in_sec >= 2 * AUTH_RENEW_MARGIN_SEC)
                return (uint64_t) (expires_in_sec - AUTH_RENEW_MARGIN_SEC) * USEC_PER_SEC;
        return (uint64_t) expires_in_sec * USEC_PER_SEC / 2;
}

static bool auth_token_is_valid(const struct auth *a) {
        return a->token && now_monotonic_usec() < a->renew_at_usec;
}

static void auth_drop_token(struct auth *a) {
        a->token = secret_free(a->token);
        a->renew_at_usec = 0;
}

static void host_of_url(const char *url, char *buf, size_t size) {
        CURLU *u = curl_url();
        char *host = NULL;

        strscpy(buf, size, "the token endpoint");
        if (!u)
                return;
        if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
                strscpy(buf, size, host);
        curl_free(host);
        curl_url_cleanup(u);
}

static void auth_destroy(struct auth *a) {
        while (a->waiters) {
                struct auth_waiter *w = a->waiters;

                a->waiters = w->next;
                free(w);
        }
        http_request_cancel(a->fetch);
        sd_event_source_disable_unref(a->deliver);
        auth_drop_token(a);
        free(a);
}

static struct auth_waiter *auth_pop_waiter(struct auth *a) {
        struct auth_waiter *w = a->waiters;

        a->waiters = w->next;
        if (!a->waiters)
                a->waiters_tail = &a->waiters;
        return w;
}

/* Calls every waiter marked due, oldest first. Waiters registered meanwhile
 * are appended unmarked, and auth_cancel() may unlink marked ones, so the
 * list is re-read after every call. token is a private copy: a callback may
 * invalidate the cached one. A callback may free the auth object: the caller
 * must not touch it after this returns. */
static void auth_deliver_due(struct auth *a, int error, const char *token, const char *reason) {
        a->delivering = true;
        while (a->waiters && a->waiters->due && !a->free_requested) {
                struct auth_waiter *w = auth_pop_waiter(a);

                w->callback(error, token, reason, w->userdata);
                free(w);
        }
        a->delivering = false;
        if (a->free_requested)
                auth_destroy(a);
}

static void auth_mark_all_due(struct auth *a) {
        for (struct auth_waiter *w = a->waiters; w; w = w->next)
                w->due = true;
}

static void auth_deliver_token(struct auth *a) {
        char *copy;

        copy = strdup(a->token);
        if (!copy) {
                auth_mark_all_due(a);
                auth_deliver_due(a, -ENOMEM, NULL, "Out of memory");
                return;
        }
        auth_mark_all_due(a);
        auth_deliver_due(a, 0, copy, NULL);
        secret_free(copy);
}

static void auth_deliver_error(struct auth *a, int error, const char *reason) {
        auth_mark_all_due(a);
        auth_deliver_due(a, error, NULL, reason);
}

/* Builds the failure reason. A server that echoes the client secret in
 * error_description must not get it into a log line. */
static void token_failure_reason(const struct auth *a, long status, const char *detail, char *buf, size_t size) {
        char host[256];

        host_of_url(a->api->token_url, host, sizeof host);
        (void) snprintf(buf, size, "Failed to get a token from %s: %s", host, detail);
        if (a->api->client_secret && a->api->client_secret[0] != '\0' && strstr(buf, a->api->client_secret))
                (void) snprintf(buf, size, "Failed to get a token from %s: HTTP %ld from the token endpoint", host, status);
}

/* Starts (or lengthens) the pause after a failed fetch: AUTH_BACKOFF_BASE_SEC
 * doubling up to AUTH_BACKOFF_MAX_SEC. */
static void auth_back_off(struct auth *a, int error, const char *reason) {
        unsigned shift = a->failures < 16 ? a->failures : 16;
        uint64_t delay = (uint64_t) AUTH_BACKOFF_BASE_SEC << shift;

        if (delay > AUTH_BACKOFF_MAX_SEC)
                delay = AUTH_BACKOFF_MAX_SEC;
        a->failures++;
        a->retry_at_usec = now_monotonic_usec() + delay * USEC_PER_SEC;
        a->last_error = error;
        strscpy(a->last_reason, sizeof a->last_reason, reason);
}

static bool auth_backing_off(const struct auth *a) {
        return a->retry_at_usec > now_monotonic_usec();
}

static void on_token_reply(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct auth *a = userdata;
        char detail[AUTH_REASON_MAX], reason[AUTH_REASON_MAX];
        struct token t = {};
        int k;

        a->fetch = NULL;

        if (resp->error < 0) {
                token_failure_reason(a, resp->status, resp->error_text, reason, sizeof reason);
                auth_back_off(a, resp->error, reason);
                auth_deliver_error(a, resp->error, reason);
                return;
        }
        k = auth_parse_reply(resp->status, resp->body, resp->body_size, &t, detail, sizeof detail);
        if (k < 0) {
                token_failure_reason(a, resp->status, detail, reason, sizeof reason);
                auth_back_off(a, k, reason);
                auth_deliver_error(a, k, reason);
                return;
        }

        a->failures = 0;
        a->retry_at_usec = 0;

        secret_free(a->token);
        a->token = TAKE_PTR(t.access_token);
        a->renew_at_usec = a->fetch_started_usec + renew_delay_usec(t.expires_in_sec);
        token_done(&t);
        auth_deliver_token(a);
}

static int auth_start_fetch(struct auth *a) {
        char *body = NULL;
        struct http_request_options opts = {
                .method = "POST",
                .url = a->api->token_url,
                .content_type = "application/x-www-form-urlencoded",
                .urgent = true,
        };
        int k;

        k = auth_build_request_body(a->api->client_id, a->api->client_secret, a->api->scope, &body);
        if (k < 0)
                return k;
        opts.body = body;
        opts.body_size = strlen(body);

        /* The lifetime counts from before the request, so a slow reply
         * cannot make the token look fresher than it is. */
        a->fetch_started_usec = now_monotonic_usec();
        k = http_submit(a->http, &opts, on_token_reply, a, &a->fetch);
        secret_free(body);
        return k;
}

static int on_deliver(sd_event_source *s, void *userdata) {
        struct auth *a = userdata;
        char reason[AUTH_REASON_MAX + 64];
        int k;

        if (auth_token_is_valid(a)) {
                auth_deliver_token(a);
                return 0;
        }
        if (auth_backing_off(a)) {
                (void) snprintf(reason, sizeof reason, "%s (next token request in %" PRIu64 " s)", a->last_reason,
                                (a->retry_at_usec - now_monotonic_usec() + USEC_PER_SEC - 1) / USEC_PER_SEC);
                auth_deliver_error(a, a->last_error, reason);
                return 0;
        }
        /* The token was invalidated or expired after it was promised. */
        if (a->fetch || !a->waiters)
                return 0;
        k = auth_start_fetch(a);
        if (k < 0) {
                (void) snprintf(reason, sizeof reason, "Failed to start the token request: %s", strerror(-k));
                auth_deliver_error(a, k, reason);
        }
        return 0;
}

int auth_new(struct http_client *http, const struct api_config *api, struct auth **ret) {
        struct auth *a;
        sd_event *event = http_client_get_event(http);
        int k;

        if (!http || !api || !ret || !event || !api->token_url || !api->client_id || !api->client_secret)
                return -EINVAL;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->http = http;
        a->api = api;
        a->waiters_tail = &a->waiters;

        k = sd_event_add_defer(event, &a->deliver, on_deliver, a);
        if (k >= 0)
                k = sd_event_source_set_enabled(a->deliver, SD_EVENT_OFF);
        if (k < 0) {
                auth_free(a);
                return k;
        }

        *ret = a;
        return 0;
}

struct auth *auth_free(struct auth *a) {
        if (!a)
                return NULL;
        /* Called from a waiter's callback: freed once that callback returns. */
        if (a->delivering) {
                a->free_requested = true;
                return NULL;
        }
        auth_destroy(a);
        return NULL;
}

int auth_get_token(struct auth *a, auth_callback_t cb, void *userdata) {
        struct auth_waiter *w, **tail;
        int k = 0;

        if (!a || !cb)
                return -EINVAL;
        if (a->free_requested)
                return -ESHUTDOWN;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->callback = cb;
        w->userdata = userdata;
        tail = a->waiters_tail;
        *tail = w;
        a->waiters_tail = &w->next;

        if (auth_token_is_valid(a) || auth_backing_off(a))
                k = sd_event_source_set_enabled(a->deliver, SD_EVENT_ONESHOT);
        else if (!a->fetch)
                k = auth_start_fetch(a);
        if (k < 0) {
                /* w is still the last waiter: nothing ran in between. */
                *tail = NULL;
                a->waiters_tail = tail;
                free(w);
                return k;
        }
        return 0;
}

void auth_cancel(struct auth *a, void *userdata) {
        struct auth_waiter **p;

        if (!a)
                return;
        p = &a->waiters;
        while (*p) {
                struct auth_waiter *w = *p;

                if (w->userdata != userdata) {
                        p = &w->next;
                        continue;
                }
                *p = w->next;
                free(w);
        }
        a->waiters_tail = p;
}

void auth_invalidate(struct auth *a, const char *token) {
        if (!a || !a->token || !token)
                return;
        if (streq(a->token, token))
                auth_drop_token(a);
}
