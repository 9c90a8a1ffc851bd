/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One poll of one target: a token, then every page of users/batch, checked
 * to add up to one consistent tenant view. All or nothing: either the
 * callback gets a complete, finished view, or a failure with its reason.
 */

#include "auth.h"
#include "config.h"
#include "events.h"
#include "http.h"
#include "view.h"

/* Pages of one poll, at most: users above this are not supported. */
#define POLL_PAGES_MAX 20000
/* Times one page is tried again after 429 or 503, and the longest
 * Retry-After a poll waits out rather than failing. */
#define POLL_THROTTLE_RETRIES 5
#define POLL_RETRY_AFTER_MAX_SEC 300

struct poll;

/*
 * Called once when the poll ends. On success error is 0 and *view holds the
 * finished view (the callee takes its contents, e.g. with a struct copy and a
 * memset). On failure error is -errno, view is NULL and failure says why.
 * The poll object is freed after the callback returns.
 */
typedef void (*poll_callback_t)(struct poll *p, int error, struct tenant_view *view,
                                const struct poll_failure *failure, void *userdata);

struct poll_context {
        sd_event *event;
        struct http_client *http;
        struct auth *auth;
        const struct api_config *api;
};

/* Starts polling target. Everything needed from target and api is copied. */
int poll_start(const struct poll_context *ctx, const struct target *target,
               poll_callback_t cb, void *userdata, struct poll **ret);

/* Stops a poll; its callback is not called. */
void poll_cancel(struct poll *p);
