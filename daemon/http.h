/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Asynchronous HTTP requests: libcurl's multi interface driven by an sd-event
 * loop through curl's socket and timer callbacks. One client holds the
 * connection cache, so connections are reused (HTTP/2 multiplexing when the
 * server offers it, keep-alive otherwise). At most max_parallel requests are
 * in flight; more wait in a queue, in the order submitted (urgent ones first).
 *
 * Ownership: the client owns its requests. A request's callback runs once,
 * from the event loop, unless the request is cancelled first; the response
 * it receives is valid only during the call. http_client_free() cancels what
 * is left without calling callbacks; called from a callback, it frees the
 * client once that callback returns.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

struct http_client;
struct http_request;

struct http_response {
        int error;              /* 0, or -errno when no complete reply came */
        int curl_code;          /* CURLcode of the transfer, 0 on success */
        char error_text[256];   /* curl's error text naming host and cause, "" on success */
        long status;            /* HTTP status, 0 when none came */
        const char *body;       /* NUL-terminated; NULL when empty */
        size_t body_size;
        char request_id[128];   /* "request-id" or "x-request-id" header, else "" */
        int64_t retry_after_sec;/* Retry-After in seconds from now (either form), -1 when absent */
        char content_type[128];
};

typedef void (*http_callback_t)(struct http_request *req, const struct http_response *resp, void *userdata);

struct http_request_options {
        const char *method;             /* "POST" */
        const char *url;
        const char *content_type;       /* of the body */
        const char *body;               /* copied */
        size_t body_size;
        const char *bearer_token;       /* copied; sent as "Authorization: Bearer ...", never logged */
        bool urgent;                    /* queue ahead of the others (token requests) */
};

struct http_client_options {
        unsigned max_parallel;          /* requests in flight, >= 1 */
        unsigned timeout_sec;           /* whole request */
        unsigned connect_timeout_sec;   /* 0: min(timeout, 30) */
        const char *ca_file;            /* NULL: the system's CA store */
        size_t max_body_size;           /* larger replies fail with -EFBIG */
        const char *user_agent;
};

int http_client_new(sd_event *event, const struct http_client_options *opts, struct http_client **ret);
struct http_client *http_client_free(struct http_client *c);

/* Queues a request. *ret (if not NULL) is a handle valid until its callback
 * returns or it is cancelled. */
int http_submit(struct http_client *c, const struct http_request_options *opts,
                http_callback_t cb, void *userdata, struct http_request **ret);

/* Cancels a queued or running request; its callback is not called. */
void http_request_cancel(struct http_request *r);

/* Requests in flight and queued. */
size_t http_client_running(const struct http_client *c);
size_t http_client_queued(const struct http_client *c);

/* Connections libcurl opened since the client was created. */
uint64_t http_client_connections_opened(const struct http_client *c);

/* The event loop the client runs on (borrowed, not referenced). */
sd_event *http_client_get_event(const struct http_client *c);

/* Maximum pause one Retry-After imposes, and the backoff when a 429 or 503
 * came without one: HTTP_BACKOFF_BASE_SEC doubling to HTTP_BACKOFF_MAX_SEC. */
#define HTTP_PAUSE_MAX_SEC 900
#define HTTP_BACKOFF_BASE_SEC 1
#define HTTP_BACKOFF_MAX_SEC 120

/* Called when a pause begins (until: CLOCK_MONOTONIC usec) and ends (until 0). */
typedef void (*http_pause_callback_t)(uint64_t until_usec, void *userdata);

/*
 * Pauses the start of new requests after the server throttled one (HTTP 429
 * or 503): for retry_after_sec when it is >= 0 (at most HTTP_PAUSE_MAX_SEC),
 * else for an exponential backoff with jitter that grows with each throttled
 * reply and starts over after a successful one. Running requests go on, and
 * urgent requests (the token) are not held. Returns the pause in usec.
 */
uint64_t http_client_throttle(struct http_client *c, int64_t retry_after_sec);

/* Returns when the current pause ends (CLOCK_MONOTONIC usec), or 0. */
uint64_t http_client_paused_until(const struct http_client *c);

void http_client_set_pause_callback(struct http_client *c, http_pause_callback_t cb, void *userdata);

/* Parses a Retry-After value (delta seconds or an HTTP date) against now.
 * Returns seconds >= 0, or -EINVAL. */
int64_t http_parse_retry_after(const char *value, int64_t now_realtime_sec);
