/* SPDX-License-Identifier: MIT */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>

#include <curl/curl.h>

#include "util.h"

/* A transfer that moves less than 1 byte/s for this long (or for the whole
 * request timeout, when that is shorter) ends as timed out. */
#define HTTP_LOW_SPEED_TIME_MAX_SEC 30u
#define HTTP_CONNECT_TIMEOUT_MAX_SEC 30u
#define HTTP_TIMER_ACCURACY_USEC USEC_PER_MSEC
#define HTTP_BODY_INITIAL_SIZE (16u * 1024u)
/* Larger delta-seconds values of Retry-After are rejected as invalid. */
#define HTTP_RETRY_AFTER_MAX_SEC INT32_MAX
#define HTTP_RETRY_AFTER_LENGTH_MAX 64u
#define HTTP_DEFAULT_USER_AGENT "cbm365-watchd/" CBM365_VERSION

enum request_state {
        REQUEST_QUEUED,         /* waiting for a free slot */
        REQUEST_RUNNING,        /* its easy handle is in the multi handle */
        REQUEST_DONE,           /* finished, its callback not yet called */
};

struct request_list {
        struct http_request *head;
        struct http_request *tail;
        size_t n;
};

struct http_request {
        struct http_client *client;
        struct http_request *prev;
        struct http_request *next;
        enum request_state state;
        bool urgent;
        bool in_callback;

        CURL *easy;
        struct curl_slist *headers;     /* may hold the bearer token: wiped on free */
        char *post_body;                /* may hold the client secret: wiped on free */
        size_t post_body_size;
        char *host;                     /* for error texts, NULL when unknown */
        char error_buffer[CURL_ERROR_SIZE];

        char *body;                     /* may hold a token: wiped on free */
        size_t body_size;
        size_t body_allocated;
        bool body_too_large;
        bool out_of_memory;

        http_callback_t callback;
        void *userdata;
        struct http_response response;
};

/* One socket libcurl asked us to watch. */
struct socket_watch {
        struct http_client *client;
        sd_event_source *source;
        struct socket_watch *prev;
        struct socket_watch *next;
};

struct http_client {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;         /* curl's timeout, CLOCK_MONOTONIC */
        sd_event_source *dispatch;      /* defer source that runs pending callbacks */
        struct socket_watch *watches;

        struct request_list queued;
        struct request_list running;
        struct request_list done;

        unsigned max_parallel;
        unsigned timeout_sec;
        unsigned connect_timeout_sec;
        size_t max_body_size;
        char *ca_file;
        char *user_agent;
        uint64_t connections_opened;

        /* After a 429 or 503 no new request but urgent ones starts before
         * paused_until (CLOCK_MONOTONIC); resume ends the pause. */
        uint64_t paused_until_usec;
        unsigned throttle_count;        /* throttled replies since the last success */
        sd_event_source *resume;
        http_pause_callback_t pause_callback;
        void *pause_userdata;

        bool dispatching;
        bool free_requested;
};

static void list_remove(struct request_list *l, struct http_request *r) {
        if (r->prev)
                r->prev->next = r->next;
        else
                l->head = r->next;
        if (r->next)
                r->next->prev = r->prev;
        else
                l->tail = r->prev;
        r->prev = r->next = NULL;
        l->n--;
}

static void list_insert_after(struct request_list *l, struct http_request *after, struct http_request *r) {
        r->prev = after;
        r->next = after ? after->next : l->head;
        if (r->next)
                r->next->prev = r;
        else
                l->tail = r;
        if (after)
                after->next = r;
        else
                l->head = r;
        l->n++;
}

static void list_append(struct request_list *l, struct http_request *r) {
        list_insert_after(l, l->tail, r);
}

/* Urgent requests go ahead of the others but stay in order among themselves. */
static void queue_push(struct http_client *c, struct http_request *r) {
        struct http_request *after = NULL;

        if (!r->urgent) {
                list_append(&c->queued, r);
                return;
        }
        for (struct http_request *i = c->queued.head; i && i->urgent; i = i->next)
                after = i;
        list_insert_after(&c->queued, after, r);
}

static void slist_free_wiped(struct curl_slist *l) {
        for (struct curl_slist *i = l; i; i = i->next)
                explicit_wipe(i->data, strlen(i->data));
        curl_slist_free_all(l);
}

static struct http_request *request_free(struct http_request *r) {
        if (!r)
                return NULL;
        if (r->easy)
                curl_easy_cleanup(r->easy);
        slist_free_wiped(r->headers);
        explicit_wipe(r->post_body, r->post_body_size);
        free(r->post_body);
        explicit_wipe(r->body, r->body_size);
        free(r->body);
        free(r->host);
        return mfree(r);
}

DEFINE_POINTER_CLEANUP(struct http_request, request_free);

static bool is_header_safe(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/* Copies a header value for a log line: printable ASCII only, others become '?'. */
static void copy_printable(char *dst, size_t dst_size, const char *src, size_t n) {
        size_t i;

        if (dst_size == 0)
                return;
        for (i = 0; i < n && i + 1 < dst_size; i++)
                dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
        dst[i] = '\0';
}

static int errno_from_curl(CURLcode code) {
        switch (code) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
                return -EACCES;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_USE_SSL_FAILED:
                return -EPROTO;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EPROTONOSUPPORT;
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        default:
                return -EIO;
        }
}

/* Fills error and error_text of a failed transfer. The text names the host:
 * curl's own text does for connect and resolve errors, and the host is
 * appended where it does not (timeouts, for example). */
static void response_set_error(struct http_request *r, CURLcode code) {
        struct http_response *resp = &r->response;
        const char *text = r->error_buffer[0] ? r->error_buffer : curl_easy_strerror(code);
        const char *host = strempty(r->host);

        resp->curl_code = (int) code;
        if (r->body_too_large || code == CURLE_FILESIZE_EXCEEDED) {
                resp->error = -EFBIG;
                (void) snprintf(resp->error_text, sizeof resp->error_text,
                                "Reply body from %s is larger than %zu bytes", host, r->client->max_body_size);
                return;
        }
        if (r->out_of_memory) {
                resp->error = -ENOMEM;
                (void) snprintf(resp->error_text, sizeof resp->error_text,
                                "Out of memory while receiving the reply from %s", host);
                return;
        }

        resp->error = errno_from_curl(code);
        if (!r->host || strstr(text, r->host))
                strscpy(resp->error_text, sizeof resp->error_text, text);
        else {
                size_t n = strscpy(resp->error_text, sizeof resp->error_text, text);

                n += strscpy(resp->error_text + n, sizeof resp->error_text - n, " (host ");
                n += strscpy(resp->error_text + n, sizeof resp->error_text - n, r->host);
                (void) strscpy(resp->error_text + n, sizeof resp->error_text - n, ")");
        }
}

/* Fills the response passed to the callback once the transfer has ended. */
static void request_finish(struct http_request *r, CURLcode code) {
        struct http_response *resp = &r->response;
        long status = 0, connects = 0;

        if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
                resp->status = status;
        if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
                r->client->connections_opened += (uint64_t) connects;

        if (code != CURLE_OK || r->body_too_large || r->out_of_memory) {
                response_set_error(r, code);
                return;
        }
        resp->error = 0;
        resp->curl_code = 0;
        resp->error_text[0] = '\0';
        resp->body = r->body_size > 0 ? r->body : NULL;
        resp->body_size = r->body_size;
}

/* Grows the body buffer by hand rather than with realloc(), so that no
 * unwiped copy of a token reply is left in freed memory. */
static int body_reserve(struct http_request *r, size_t need) {
        size_t limit = r->client->max_body_size + 1, n;
        char *p;

        if (need <= r->body_allocated)
                return 0;
        n = r->body_allocated > 0 ? r->body_allocated : HTTP_BODY_INITIAL_SIZE;
        while (n < need && n < limit / 2)
                n *= 2;
        if (n < need || n > limit)
                n = need > limit ? need : limit;

        p = malloc(n);
        if (!p)
                return -ENOMEM;
        if (r->body) {
                memcpy(p, r->body, r->body_size);
                explicit_wipe(r->body, r->body_size);
                free(r->body);
        }
        r->body = p;
        r->body_allocated = n;
        return 0;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userdata) {
        struct http_request *r = userdata;
        size_t n = size * nmemb;

        if (n > r->client->max_body_size - r->body_size) {
                r->body_too_large = true;
                return 0;       /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        if (body_reserve(r, r->body_size + n + 1) < 0) {
                r->out_of_memory = true;
                return 0;
        }
        memcpy(r->body + r->body_size, data, n);
        r->body_size += n;
        r->body[r->body_size] = '\0';
        return n;
}

/* Matches "name:" case-insensitively at the start of a header line and
 * returns the value with surrounding whitespace removed. */
static bool header_match(const char *line, size_t size, const char *name, const char **ret_value, size_t *ret_size) {
        size_t name_size = strlen(name);
        const char *v, *end = line + size;

        if (size <= name_size || strncasecmp(line, name, name_size) != 0 || line[name_size] != ':')
                return false;
        v = line + name_size + 1;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && isspace((unsigned char) end[-1]))
                end--;
        *ret_value = v;
        *ret_size = (size_t) (end - v);
        return true;
}

static void header_parse_retry_after(struct http_request *r, const char *value, size_t size) {
        char buf[HTTP_RETRY_AFTER_LENGTH_MAX + 1];
        int64_t sec;

        if (size > HTTP_RETRY_AFTER_LENGTH_MAX)
                return;
        memcpy(buf, value, size);
        buf[size] = '\0';
        sec = http_parse_retry_after(buf, (int64_t) (now_realtime_usec() / USEC_PER_SEC));
        if (sec >= 0)
                r->response.retry_after_sec = sec;
}

static size_t on_curl_header(char *line, size_t size, size_t nmemb, void *userdata) {
        struct http_request *r = userdata;
        size_t n = size * nmemb, value_size;
        const char *value;

        /* A new status line starts a new header block (after "100 Continue",
         * for example): only the final reply's headers count. */
        if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
                r->response.request_id[0] = '\0';
                r->response.content_type[0] = '\0';
                r->response.retry_after_sec = -1;
                return n;
        }

        if (header_match(line, n, "request-id", &value, &value_size) ||
            header_match(line, n, "x-request-id", &value, &value_size))
                copy_printable(r->response.request_id, sizeof r->response.request_id, value, value_size);
        else if (header_match(line, n, "content-type", &value, &value_size))
                copy_printable(r->response.content_type, sizeof r->response.content_type, value, value_size);
        else if (header_match(line, n, "retry-after", &value, &value_size))
                header_parse_retry_after(r, value, value_size);
        return n;
}

static int request_set_url(struct http_request *r, const char *url) {
        CURLU *u;
        char *scheme = NULL, *host = NULL;
        int ret = 0;

        u = curl_url();
        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                ret = -EINVAL;
        else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
                ret = -EPROTONOSUPPORT;
        else {
                r->host = strdup(host);
                if (!r->host)
                        ret = -ENOMEM;
        }
        curl_free(scheme);
        curl_free(host);
        curl_url_cleanup(u);
        if (ret < 0)
                return ret;

        return curl_easy_setopt(r->easy, CURLOPT_URL, url) == CURLE_OK ? 0 : -EINVAL;
}

static int headers_append(struct curl_slist **l, const char *prefix, const char *value) {
        _cleanup_free_ char *line = NULL;
        struct curl_slist *n;
        size_t size;

        if (!is_header_safe(value))
                return -EINVAL;
        size = strlen(prefix) + strlen(value) + 1;
        line = malloc(size);
        if (!line)
                return -ENOMEM;
        (void) snprintf(line, size, "%s%s", prefix, value);

        /* curl copies the line; ours is wiped here, the copy by slist_free_wiped().
         * NOTE: curl also builds each request in its own send buffer, which
         * it frees without wiping. */
        n = curl_slist_append(*l, line);
        explicit_wipe(line, size);
        if (!n)
                return -ENOMEM;
        *l = n;
        return 0;
}

static int request_set_headers(struct http_request *r, const struct http_request_options *opts) {
        int ret;

        if (opts->content_type) {
                ret = headers_append(&r->headers, "Content-Type: ", opts->content_type);
                if (ret < 0)
                        return ret;
        }
        ret = headers_append(&r->headers, "Accept: ", "application/json");
        if (ret < 0)
                return ret;
        /* An empty "Expect:" stops curl from waiting for "100 Continue" on large bodies. */
        ret = headers_append(&r->headers, "Expect:", "");
        if (ret < 0)
                return ret;
        if (opts->bearer_token) {
                if (opts->bearer_token[0] == '\0' || strchr(opts->bearer_token, ' '))
                        return -EINVAL;
                ret = headers_append(&r->headers, "Authorization: Bearer ", opts->bearer_token);
                if (ret < 0)
                        return ret;
        }
        return curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK ? 0 : -EINVAL;
}

/* Sets the method and the body. The body is kept in our own buffer (not
 * CURLOPT_COPYPOSTFIELDS) so that a client secret in it can be wiped. */
static int request_set_body(struct http_request *r, const struct http_request_options *opts) {
        const char *method = opts->method ? opts->method : (opts->body_size > 0 ? "POST" : "GET");
        CURL *e = r->easy;

        if (opts->body_size > 0 && !opts->body)
                return -EINVAL;
        if (!is_header_safe(method) || method[0] == '\0' || strchr(method, ' '))
                return -EINVAL;

        if (strcmp(method, "GET") == 0) {
                if (opts->body_size > 0)
                        return -EINVAL;
                return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK ? 0 : -EINVAL;
        }

        r->post_body = malloc(opts->body_size + 1);
        if (!r->post_body)
                return -ENOMEM;
        if (opts->body_size > 0)
                memcpy(r->post_body, opts->body, opts->body_size);
        r->post_body[opts->body_size] = '\0';
        r->post_body_size = opts->body_size;

        if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) r->post_body_size) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post_body) != CURLE_OK)
                return -EINVAL;
        if (strcmp(method, "POST") != 0 && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
                return -EINVAL;
        return 0;
}

/* Protocols: HTTP(S) only. No redirect is followed at all (FOLLOWLOCATION
 * off), so a bearer token is never sent to another location. The redirect
 * protocols are narrowed to HTTPS as well, because libcurl 7.88 rejects an
 * empty list with CURLE_BAD_FUNCTION_ARGUMENT. */
static int request_set_protocols(CURL *e) {
        CURLcode rc;

#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long) CURLPROTO_HTTPS);
#endif
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        return rc == CURLE_OK ? 0 : -EINVAL;
}

static int request_set_transfer_options(struct http_request *r) {
        const struct http_client *c = r->client;
        unsigned low_speed_sec = c->timeout_sec < HTTP_LOW_SPEED_TIME_MAX_SEC ? c->timeout_sec : HTTP_LOW_SPEED_TIME_MAX_SEC;
        CURL *e = r->easy;
        CURLcode rc = CURLE_OK;

#define SETOPT(opt, value) if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, value)
        SETOPT(CURLOPT_PRIVATE, (void *) r);
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
        SETOPT(CURLOPT_PIPEWAIT, 1L);
        SETOPT(CURLOPT_TIMEOUT, (long) c->timeout_sec);
        SETOPT(CURLOPT_CONNECTTIMEOUT, (long) c->connect_timeout_sec);
        SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
        SETOPT(CURLOPT_LOW_SPEED_TIME, (long) low_speed_sec);
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) c->max_body_size);
        SETOPT(CURLOPT_ERRORBUFFER, r->error_buffer);
        SETOPT(CURLOPT_USERAGENT, c->user_agent);
        SETOPT(CURLOPT_ACCEPT_ENCODING, "");
        SETOPT(CURLOPT_WRITEFUNCTION, on_curl_write);
        SETOPT(CURLOPT_WRITEDATA, (void *) r);
        SETOPT(CURLOPT_HEADERFUNCTION, on_curl_header);
        SETOPT(CURLOPT_HEADERDATA, (void *) r);
        if (c->ca_file)
                SETOPT(CURLOPT_CAINFO, c->ca_file);
#undef SETOPT
        return rc == CURLE_OK ? 0 : -EINVAL;
}

static int request_new(struct http_client *c, const struct http_request_options *opts,
                       http_callback_t cb, void *userdata, struct http_request **ret) {
        _cleanup_(request_freep) struct http_request *r = NULL;
        int k;

        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->client = c;
        r->urgent = opts->urgent;
        r->callback = cb;
        r->userdata = userdata;
        r->response.retry_after_sec = -1;

        r->easy = curl_easy_init();
        if (!r->easy)
                return -ENOMEM;
        k = request_set_transfer_options(r);
        if (k >= 0)
                k = request_set_protocols(r->easy);
        if (k >= 0)
                k = request_set_url(r, opts->url);
        if (k >= 0)
                k = request_set_body(r, opts);
        if (k >= 0)
                k = request_set_headers(r, opts);
        if (k < 0)
                return k;

        *ret = TAKE_PTR(r);
        return 0;
}

static void client_schedule_dispatch(struct http_client *c) {
        (void) sd_event_source_set_enabled(c->dispatch, SD_EVENT_ONESHOT);
}

/* Moves queued requests into the multi handle while slots are free. A
 * request curl refuses ends with an error, reported from the event loop. */
static void client_start_queued(struct http_client *c) {
        bool paused = c->paused_until_usec > now_monotonic_usec();

        while (c->queued.head && c->running.n < c->max_parallel) {
                struct http_request *r = c->queued.head;
                CURLMcode mc;

                /* Urgent requests sit at the front, so the rest wait behind them. */
                if (paused && !r->urgent)
                        break;

                list_remove(&c->queued, r);
                mc = curl_multi_add_handle(c->multi, r->easy);
                if (mc == CURLM_OK) {
                        r->state = REQUEST_RUNNING;
                        list_append(&c->running, r);
                        continue;
                }

                r->response.error = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
                r->response.curl_code = (int) CURLE_FAILED_INIT;
                (void) snprintf(r->response.error_text, sizeof r->response.error_text,
                                "Failed to start the request to %s: %s", strempty(r->host), curl_multi_strerror(mc));
                r->state = REQUEST_DONE;
                list_append(&c->done, r);
                client_schedule_dispatch(c);
        }
}

/* Moves every transfer curl reports finished to the done list. */
static void client_collect_done(struct http_client *c) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(c->multi, &left))) {
                struct http_request *r = NULL;
                CURLcode code;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                /* msg is invalid once the handle is removed: read it first. */
                code = msg->data.result;
                if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &r) != CURLE_OK || !r)
                        continue;

                request_finish(r, code);
                if (r->response.error == 0 && r->response.status < 400)
                        c->throttle_count = 0;
                (void) curl_multi_remove_handle(c->multi, r->easy);
                list_remove(&c->running, r);
                r->state = REQUEST_DONE;
                list_append(&c->done, r);
        }
}

static void client_destroy(struct http_client *c) {
        struct http_request *r;

        while ((r = c->done.head)) {
                list_remove(&c->done, r);
                request_free(r);
        }
        while ((r = c->queued.head)) {
                list_remove(&c->queued, r);
                request_free(r);
        }
        while ((r = c->running.head)) {
                list_remove(&c->running, r);
                (void) curl_multi_remove_handle(c->multi, r->easy);
                request_free(r);
        }
        if (c->multi)
                (void) curl_multi_cleanup(c->multi);

        /* curl may leave sockets it never reported removed. */
        while (c->watches) {
                struct socket_watch *w = c->watches;

                c->watches = w->next;
                sd_event_source_disable_unref(w->source);
                free(w);
        }
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->dispatch);
        sd_event_source_disable_unref(c->resume);
        sd_event_unref(c->event);
        free(c->ca_file);
        free(c->user_agent);
        free(c);
}

/* Calls the callbacks of finished requests, one at a time. A callback may
 * submit or cancel requests and may free the client: the loop never holds a
 * pointer across a callback except to the request being completed, which no
 * list contains during its call. */
static void client_dispatch(struct http_client *c) {
        if (c->dispatching)
                return;
        c->dispatching = true;

        client_start_queued(c);
        while (c->done.head && !c->free_requested) {
                struct http_request *r = c->done.head;

                list_remove(&c->done, r);
                r->in_callback = true;
                r->callback(r, &r->response, r->userdata);
                request_free(r);
                if (!c->free_requested)
                        client_start_queued(c);
        }

        c->dispatching = false;
        if (c->free_requested)
                client_destroy(c);
}

static void client_socket_action(struct http_client *c, curl_socket_t fd, int events) {
        int running;

        (void) curl_multi_socket_action(c->multi, fd, events, &running);
        client_collect_done(c);
        client_dispatch(c);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct socket_watch *w = userdata;
        int events = 0;

        if (revents & (EPOLLIN | EPOLLHUP))
                events |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                events |= CURL_CSELECT_OUT;
        if (revents & EPOLLERR)
                events |= CURL_CSELECT_ERR;

        /* w may be freed inside curl: use only the client from here on. */
        client_socket_action(w->client, fd, events);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        client_socket_action(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

static int on_dispatch(sd_event_source *s, void *userdata) {
        client_dispatch(userdata);
        return 0;
}

static int on_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        struct http_client *c = userdata;

        c->paused_until_usec = 0;
        if (c->pause_callback)
                c->pause_callback(0, c->pause_userdata);
        client_dispatch(c);
        return 0;
}

static void watch_free(struct http_client *c, struct socket_watch *w) {
        if (w->prev)
                w->prev->next = w->next;
        else
                c->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        sd_event_source_disable_unref(w->source);
        free(w);
}

static int watch_new(struct http_client *c, curl_socket_t fd, uint32_t events) {
        struct socket_watch *w;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->client = c;
        if (sd_event_add_io(c->event, &w->source, fd, events, on_io, w) < 0) {
                free(w);
                return -EIO;
        }
        if (curl_multi_assign(c->multi, fd, w) != CURLM_OK) {
                sd_event_source_disable_unref(w->source);
                free(w);
                return -EIO;
        }
        w->next = c->watches;
        if (w->next)
                w->next->prev = w;
        c->watches = w;
        return 0;
}

/* CURLMOPT_SOCKETFUNCTION: mirrors the sockets curl wants watched as sd-event
 * IO sources. Returning -1 makes curl fail the transfers on that socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct http_client *c = userp;
        struct socket_watch *w = socketp;
        uint32_t events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (w)
                        watch_free(c, w);
                return 0;
        }

        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (w)
                return sd_event_source_set_io_events(w->source, events) < 0 ? -1 : 0;
        return watch_new(c, fd, events) < 0 ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer source, disabled when curl wants none.
 * curl must not be called back from here, so even a timeout of 0 goes
 * through the event loop. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
        struct http_client *c = userp;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;

        if (sd_event_source_set_time(c->timer, now_monotonic_usec() + (uint64_t) timeout_ms * USEC_PER_MSEC) < 0 ||
            sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

/* curl_global_init() is not thread-safe in every libcurl build; the daemon
 * has one thread, which is the only caller. */
static int curl_global_init_once(void) {
        static bool done = false;

        if (done)
                return 0;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        done = true;
        return 0;
}

static int client_setup_multi(struct http_client *c) {
        CURLMcode mc = CURLM_OK;

        c->multi = curl_multi_init();
        if (!c->multi)
                return -ENOMEM;

#define MSETOPT(opt, value) if (mc == CURLM_OK) mc = curl_multi_setopt(c->multi, opt, value)
        MSETOPT(CURLMOPT_SOCKETFUNCTION, on_curl_socket);
        MSETOPT(CURLMOPT_SOCKETDATA, (void *) c);
        MSETOPT(CURLMOPT_TIMERFUNCTION, on_curl_timer);
        MSETOPT(CURLMOPT_TIMERDATA, (void *) c);
        MSETOPT(CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
        MSETOPT(CURLMOPT_MAX_HOST_CONNECTIONS, (long) c->max_parallel);
#undef MSETOPT
        return mc == CURLM_OK ? 0 : -EINVAL;
}

static int client_setup_sources(struct http_client *c) {
        int k;

        k = sd_event_add_time(c->event, &c->timer, CLOCK_MONOTONIC, 0, HTTP_TIMER_ACCURACY_USEC, on_timer, c);
        if (k < 0)
                return k;
        k = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (k < 0)
                return k;
        k = sd_event_add_time(c->event, &c->resume, CLOCK_MONOTONIC, 0, HTTP_TIMER_ACCURACY_USEC, on_resume, c);
        if (k < 0)
                return k;
        k = sd_event_source_set_enabled(c->resume, SD_EVENT_OFF);
        if (k < 0)
                return k;
        k = sd_event_add_defer(c->event, &c->dispatch, on_dispatch, c);
        if (k < 0)
                return k;
        return sd_event_source_set_enabled(c->dispatch, SD_EVENT_OFF);
}

static void client_destroyp(struct http_client **c) {
        if (*c)
                client_destroy(*c);
}

int http_client_new(sd_event *event, const struct http_client_options *opts, struct http_client **ret) {
        _cleanup_(client_destroyp) struct http_client *c = NULL;
        unsigned connect_default;
        int k;

        if (!event || !opts || !ret || opts->max_parallel < 1 || opts->timeout_sec < 1 || opts->max_body_size < 1 ||
            opts->max_body_size >= SIZE_MAX / 2)
                return -EINVAL;
        k = curl_global_init_once();
        if (k < 0)
                return k;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->max_parallel = opts->max_parallel;
        c->timeout_sec = opts->timeout_sec;
        connect_default = opts->timeout_sec < HTTP_CONNECT_TIMEOUT_MAX_SEC ? opts->timeout_sec : HTTP_CONNECT_TIMEOUT_MAX_SEC;
        c->connect_timeout_sec = opts->connect_timeout_sec > 0 ? opts->connect_timeout_sec : connect_default;
        c->max_body_size = opts->max_body_size;
        c->user_agent = strdup(opts->user_agent ? opts->user_agent : HTTP_DEFAULT_USER_AGENT);
        if (!c->user_agent)
                return -ENOMEM;
        if (opts->ca_file) {
                c->ca_file = strdup(opts->ca_file);
                if (!c->ca_file)
                        return -ENOMEM;
        }

        k = client_setup_multi(c);
        if (k < 0)
                return k;
        k = client_setup_sources(c);
        if (k < 0)
                return k;

        *ret = TAKE_PTR(c);
        return 0;
}

struct http_client *http_client_free(struct http_client *c) {
        if (!c)
                return NULL;
        /* Called from a callback: the dispatch loop frees the client once
         * that callback returns. */
        if (c->dispatching) {
                c->free_requested = true;
                return NULL;
        }
        client_destroy(c);
        return NULL;
}

int http_submit(struct http_client *c, const struct http_request_options *opts,
                http_callback_t cb, void *userdata, struct http_request **ret) {
        struct http_request *r;
        int k;

        if (!c || !opts || !opts->url || !cb)
                return -EINVAL;
        if (c->free_requested)
                return -ESHUTDOWN;

        k = request_new(c, opts, cb, userdata, &r);
        if (k < 0)
                return k;
        r->state = REQUEST_QUEUED;
        queue_push(c, r);
        client_start_queued(c);

        if (ret)
                *ret = r;
        return 0;
}

void http_request_cancel(struct http_request *r) {
        struct http_client *c;

        /* The handle is valid until the callback returns, so a callback may
         * cancel its own request: that changes nothing. */
        if (!r || r->in_callback)
                return;
        c = r->client;

        switch (r->state) {
        case REQUEST_QUEUED:
                list_remove(&c->queued, r);
                break;
        case REQUEST_RUNNING:
                (void) curl_multi_remove_handle(c->multi, r->easy);
                list_remove(&c->running, r);
                break;
        case REQUEST_DONE:
                list_remove(&c->done, r);
                break;
        }
        request_free(r);

        if (!c->free_requested)
                client_start_queued(c);
}

size_t http_client_running(const struct http_client *c) {
        return c ? c->running.n : 0;
}

size_t http_client_queued(const struct http_client *c) {
        return c ? c->queued.n : 0;
}

uint64_t http_client_connections_opened(const struct http_client *c) {
        return c ? c->connections_opened : 0;
}

uint64_t http_client_throttle(struct http_client *c, int64_t retry_after_sec) {
        uint64_t pause_usec, until;

        if (retry_after_sec >= 0)
                pause_usec = (uint64_t) (retry_after_sec < HTTP_PAUSE_MAX_SEC ? retry_after_sec : HTTP_PAUSE_MAX_SEC) * USEC_PER_SEC;
        else {
                unsigned shift = c->throttle_count < 16 ? c->throttle_count : 16;
                uint64_t base = (uint64_t) HTTP_BACKOFF_BASE_SEC * USEC_PER_SEC << shift;

                if (base > (uint64_t) HTTP_BACKOFF_MAX_SEC * USEC_PER_SEC)
                        base = (uint64_t) HTTP_BACKOFF_MAX_SEC * USEC_PER_SEC;
                /* Full jitter on the upper half, so throttled clients do not retry in step. */
                pause_usec = base / 2 + (uint64_t) random() % (base / 2 + 1);
        }
        c->throttle_count++;

        until = now_monotonic_usec() + pause_usec;
        if (until <= c->paused_until_usec)
                return pause_usec;
        c->paused_until_usec = until;
        if (sd_event_source_set_time(c->resume, until) >= 0)
                (void) sd_event_source_set_enabled(c->resume, SD_EVENT_ONESHOT);
        if (c->pause_callback)
                c->pause_callback(until, c->pause_userdata);
        return pause_usec;
}

uint64_t http_client_paused_until(const struct http_client *c) {
        return c->paused_until_usec > now_monotonic_usec() ? c->paused_until_usec : 0;
}

void http_client_set_pause_callback(struct http_client *c, http_pause_callback_t cb, void *userdata) {
        c->pause_callback = cb;
        c->pause_userdata = userdata;
}

sd_event *http_client_get_event(const struct http_client *c) {
        return c ? c->event : NULL;
}

static bool is_http_date_text(const char *s) {
        bool letter = false;

        for (; *s; s++) {
                if (isalpha((unsigned char) *s))
                        letter = true;
                else if (!isdigit((unsigned char) *s) && !strchr(" ,:-", *s))
                        return false;
        }
        return letter;
}

/* Retry-After is delta-seconds or an HTTP-date (RFC 9110, section 10.2.3).
 * curl_getdate() reads the IMF-fixdate and the two obsolete date forms that
 * section 5.6.7 asks recipients to accept. */
int64_t http_parse_retry_after(const char *value, int64_t now_realtime_sec) {
        char buf[HTTP_RETRY_AFTER_LENGTH_MAX + 1];
        const char *start, *end;
        uint64_t delta;
        time_t t;

        if (!value)
                return -EINVAL;
        start = value;
        while (*start == ' ' || *start == '\t')
                start++;
        end = start + strlen(start);
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        if (end == start || (size_t) (end - start) > HTTP_RETRY_AFTER_LENGTH_MAX)
                return -EINVAL;
        memcpy(buf, start, (size_t) (end - start));
        buf[end - start] = '\0';

        if (isdigit((unsigned char) buf[0]))
                return parse_uint64(buf, HTTP_RETRY_AFTER_MAX_SEC, &delta) < 0 ? -EINVAL : (int64_t) delta;

        if (!is_http_date_text(buf))
                return -EINVAL;
        t = curl_getdate(buf, NULL);
        if (t == (time_t) -1)
                return -EINVAL;
        return (int64_t) t > now_realtime_sec ? (int64_t) t - now_realtime_sec : 0;
}
