/* SPDX-License-Identifier: MIT */
/*
 * One poll of one target. The steps: get a token, fetch page 1 to learn
 * totalCount, fetch the remaining pages (as many at once as the HTTP client
 * allows), then check that the pages add up to one consistent tenant view.
 *
 * The API pages by index over a list that can change while we read it
 * (users added or removed shift every later page), so a user can show up
 * twice or not at all. Each page must therefore repeat the first page's
 * totalCount, hold exactly pageSize users (the last one the rest), and the
 * ids must be unique. A poll that fails these checks is read once more from
 * page 1; if it fails again it is reported as inconsistent and yields no view.
 */
#include "poll.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>

#include "log.h"
#include "reply.h"
#include "util.h"

#define POLL_RESERVE_USERS_MAX ((size_t) 200000)
#define USERS_BATCH_PATH "/partner/external/v3/general/customers/%s/tenants/%s/cloud-backup-m365/users/batch"

struct page {
        struct poll *poll;
        unsigned index;                 /* 1-based pageIndex */
        struct http_request *request;   /* while in flight */
        unsigned throttle_retries;
        unsigned token_generation;      /* of the token the request was sent with */
        bool token_renewed;             /* a 401 renewed the token once already */
        bool waiting_for_token;
        bool done;
};

struct poll {
        sd_event *event;
        struct http_client *http;
        struct auth *auth;
        poll_callback_t callback;
        void *userdata;

        char *name;                     /* for debug messages */
        char *url;                      /* users/batch without the query */
        char *body;
        unsigned page_size;

        char *token;                    /* secret: wiped on free; NULL while one is requested */
        unsigned token_generation;      /* counts the tokens this poll received */
        bool token_requested;
        bool restarted;                 /* the one restart after an inconsistent read is used */

        struct tenant_view view;
        long total_count;               /* from page 1; -1 before it came */
        unsigned n_pages;
        struct page *pages;             /* n_pages entries, once page 1 came */
        struct page first_page;         /* page 1, before n_pages is known */
        unsigned pages_done;
        unsigned next_page;             /* index into pages of the next page never asked for */
        unsigned pages_in_flight;       /* asked for and not yet done, page 1 aside */
        unsigned window;                /* pages in flight at most: more would only wait in the queue */
};

static void page_stop(struct page *p) {
        if (p->request) {
                http_request_cancel(p->request);
                p->request = NULL;
        }
        p->waiting_for_token = false;
}

static void poll_stop_pages(struct poll *p) {
        page_stop(&p->first_page);
        for (unsigned i = 0; p->pages && i < p->n_pages; i++)
                page_stop(&p->pages[i]);
}

static struct poll *poll_free(struct poll *p) {
        if (!p)
                return NULL;

        poll_stop_pages(p);
        auth_cancel(p->auth, p);
        tenant_view_done(&p->view);
        free(p->pages);
        free(p->name);
        free(p->url);
        free(p->body);
        secret_free(p->token);
        return mfree(p);
}

/* Ends the poll with a failure: no view, only the reason. */
static void poll_fail(struct poll *p, long http_status, const char *request_id, const char *fmt, ...) _printf_(4, 5);
static void poll_fail(struct poll *p, long http_status, const char *request_id, const char *fmt, ...) {
        struct poll_failure failure = {
                .http_status = http_status,
        };
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(failure.reason, sizeof(failure.reason), fmt, ap);
        va_end(ap);
        strscpy(failure.request_id, sizeof(failure.request_id), strempty(request_id));

        log_debug("Poll of '%s' failed: %s", p->name, failure.reason);
        poll_stop_pages(p);
        p->callback(p, -EIO, NULL, &failure, p->userdata);
        poll_free(p);
}

static void poll_succeed(struct poll *p) {
        log_debug("Poll of '%s' complete: %zu users in %u pages", p->name, p->view.n_users, p->n_pages);
        p->callback(p, 0, &p->view, NULL, p->userdata);
        poll_free(p);
}

static int page_submit(struct page *pg);

/* Fetches every page the poll has not yet asked for. */
static int poll_submit_remaining(struct poll *p) {
        while (p->next_page < p->n_pages && p->pages_in_flight < p->window) {
                int r = page_submit(&p->pages[p->next_page]);

                if (r < 0)
                        return r;
                p->next_page++;
                p->pages_in_flight++;
        }
        return 0;
}

/* Reads the poll again from page 1, once, after the pages did not add up. */
static void poll_restart(struct poll *p, const char *why) {
        log_debug("Pages of '%s' do not add up (%s), reading again from page 1", p->name, why);
        poll_stop_pages(p);
        tenant_view_done(&p->view);
        p->pages = mfree(p->pages);
        p->n_pages = 0;
        p->pages_done = 0;
        p->next_page = 1;
        p->pages_in_flight = 0;
        p->total_count = -1;
        p->restarted = true;
        p->first_page = (struct page) { .poll = p, .index = 1 };

        if (page_submit(&p->first_page) < 0)
                poll_fail(p, 0, NULL, "Failed to send the request for page 1");
}

/* Handles pages that do not add up: one restart, then failure. */
static void poll_inconsistent(struct poll *p, const char *fmt, ...) _printf_(2, 3);
static void poll_inconsistent(struct poll *p, const char *fmt, ...) {
        char why[256];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);

        if (!p->restarted) {
                poll_restart(p, why);
                return;
        }
        poll_fail(p, 0, NULL, "inconsistent: %s", why);
}

/* Learns the page count from page 1 and allocates the page table. */
static int poll_learn_pages(struct poll *p, const struct page_meta *meta) {
        uint64_t n;

        p->total_count = meta->total_count;
        n = meta->total_count == 0 ? 1 : ((uint64_t) meta->total_count + p->page_size - 1) / p->page_size;
        if (n > POLL_PAGES_MAX || (uint64_t) meta->total_count > VIEW_USERS_MAX)
                return -E2BIG;

        p->pages = calloc(n, sizeof(struct page));
        if (!p->pages)
                return -ENOMEM;
        /* Sized from totalCount, but a hostile count reserves no more than this. */
        if (tenant_view_reserve(&p->view, MIN((size_t) meta->total_count, POLL_RESERVE_USERS_MAX)) < 0)
                return -ENOMEM;
        p->n_pages = (unsigned) n;
        for (unsigned i = 0; i < p->n_pages; i++)
                p->pages[i] = (struct page) { .poll = p, .index = i + 1 };
        p->pages[0].done = true;
        return 0;
}

/* Checks one page's metadata against what the poll expects of it. Returns
 * false (after restarting or failing the poll) when it does not fit. */
static bool poll_check_page(struct poll *p, unsigned index, const struct page_meta *meta) {
        uint64_t expected;

        if (meta->page_index != (long) index) {
                poll_inconsistent(p, "page %u came back as pageIndex %ld", index, meta->page_index);
                return false;
        }
        if (meta->page_size != (long) p->page_size) {
                poll_fail(p, 0, NULL, "the API answered pageSize %ld to a request for %u", meta->page_size, p->page_size);
                return false;
        }
        if (p->total_count >= 0 && meta->total_count != p->total_count) {
                poll_inconsistent(p, "totalCount changed from %ld to %ld on page %u",
                                  p->total_count, meta->total_count, index);
                return false;
        }

        if (p->total_count < 0)
                expected = meta->total_count <= (long) p->page_size ? (uint64_t) meta->total_count : p->page_size;
        else if (index < p->n_pages)
                expected = p->page_size;
        else
                expected = (uint64_t) p->total_count - (uint64_t) (p->n_pages - 1) * p->page_size;

        if (meta->n_users != expected) {
                poll_inconsistent(p, "page %u holds %zu users, expected %" PRIu64 " of totalCount %ld",
                                  index, meta->n_users, expected, meta->total_count);
                return false;
        }
        return true;
}

static void poll_finish(struct poll *p) {
        char reason[256] = "";
        int r;

        r = tenant_view_finish(&p->view, reason, sizeof(reason));
        if (r == -EBADMSG) {
                poll_inconsistent(p, "%s", reason);
                return;
        }
        if (r < 0) {
                poll_fail(p, 0, NULL, "Failed to sort the users: %s", strerror(-r));
                return;
        }
        poll_succeed(p);
}

static void page_on_ok(struct page *pg, const struct http_response *resp) {
        struct poll *p = pg->poll;
        struct page_meta meta;
        char reason[256] = "";
        int r;

        r = reply_parse_page(resp->body, resp->body_size, &p->view, &meta, reason, sizeof(reason));
        if (r < 0) {
                poll_fail(p, resp->status, resp->request_id, "invalid reply on page %u: %s", pg->index, reason);
                return;
        }
        if (!poll_check_page(p, pg->index, &meta))
                return;

        pg->done = true;
        p->pages_done++;
        if (p->pages)
                p->pages_in_flight--;

        if (pg->index == 1 && !p->pages) {
                r = poll_learn_pages(p, &meta);
                if (r == -E2BIG) {
                        poll_fail(p, 0, NULL, "totalCount %ld is more than this daemon supports", meta.total_count);
                        return;
                }
                if (r < 0) {
                        poll_fail(p, 0, NULL, "Failed to allocate the page table: %s", strerror(-r));
                        return;
                }
        }
        if (poll_submit_remaining(p) < 0) {
                poll_fail(p, 0, NULL, "Failed to send the requests for the other pages");
                return;
        }

        if (p->pages_done == p->n_pages)
                poll_finish(p);
}

static void on_token(int error, const char *token, const char *reason, void *userdata);

static int poll_request_token(struct poll *p) {
        int r;

        if (p->token_requested)
                return 0;
        r = auth_get_token(p->auth, on_token, p);
        if (r < 0)
                return r;
        p->token_requested = true;
        return 0;
}

static void page_on_unauthorized(struct page *pg, const struct http_response *resp) {
        struct poll *p = pg->poll;

        /* Sent with a token this poll has since replaced: try the new one. */
        if (pg->token_generation != p->token_generation) {
                if (page_submit(pg) < 0)
                        poll_fail(p, resp->status, resp->request_id, "Failed to send the request for page %u", pg->index);
                return;
        }
        if (pg->token_renewed) {
                poll_fail(p, resp->status, resp->request_id,
                          "HTTP 401 on page %u with a freshly issued token", pg->index);
                return;
        }

        /* The token expired or was revoked early: renew it once and ask again. */
        pg->token_renewed = true;
        pg->waiting_for_token = true;
        if (p->token) {
                auth_invalidate(p->auth, p->token);
                p->token = secret_free(p->token);
        }
        if (poll_request_token(p) < 0)
                poll_fail(p, resp->status, resp->request_id, "Failed to request a new token");
}

/* A 429 or 503 pauses every request to the API, not just this page's, for
 * Retry-After or a backoff. The page waits in the queue meanwhile. */
static void page_on_throttled(struct page *pg, const struct http_response *resp) {
        struct poll *p = pg->poll;
        uint64_t pause_usec;

        pause_usec = http_client_throttle(p->http, resp->retry_after_sec);
        if (pg->throttle_retries >= POLL_THROTTLE_RETRIES) {
                poll_fail(p, resp->status, resp->request_id, "HTTP %ld on page %u, still after %u retries",
                          resp->status, pg->index, pg->throttle_retries);
                return;
        }
        if (resp->retry_after_sec > POLL_RETRY_AFTER_MAX_SEC) {
                poll_fail(p, resp->status, resp->request_id, "HTTP %ld on page %u with Retry-After %" PRIi64 " s",
                          resp->status, pg->index, resp->retry_after_sec);
                return;
        }

        pg->throttle_retries++;
        log_debug("HTTP %ld on page %u of '%s', requests paused for %" PRIu64 " ms",
                  resp->status, pg->index, p->name, pause_usec / USEC_PER_MSEC);
        if (page_submit(pg) < 0)
                poll_fail(p, resp->status, resp->request_id, "Failed to send the request for page %u", pg->index);
}

static void on_page_reply(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct page *pg = userdata;
        struct poll *p = pg->poll;

        pg->request = NULL;

        if (resp->error < 0) {
                poll_fail(p, 0, NULL, "page %u: %s", pg->index,
                          resp->error_text[0] ? resp->error_text : strerror(-resp->error));
                return;
        }

        switch (resp->status) {
        case 200:
                page_on_ok(pg, resp);
                break;
        case 401:
                page_on_unauthorized(pg, resp);
                break;
        case 429:
        case 503:
                page_on_throttled(pg, resp);
                break;
        default:
                poll_fail(p, resp->status, resp->request_id, "HTTP %ld on page %u", resp->status, pg->index);
        }
}

static int page_submit(struct page *pg) {
        struct poll *p = pg->poll;
        _cleanup_free_ char *url = NULL;
        struct http_request_options opts = {
                .method = "POST",
                .content_type = "application/json",
                .body = p->body,
                .body_size = strlen(p->body),
                .bearer_token = p->token,
        };

        /* The token is being renewed: this page goes out when it comes. */
        if (!p->token) {
                pg->waiting_for_token = true;
                return poll_request_token(p);
        }

        if (asprintf(&url, "%s?pageIndex=%u&pageSize=%u", p->url, pg->index, p->page_size) < 0)
                return -ENOMEM;
        opts.url = url;
        pg->token_generation = p->token_generation;
        log_debug("Requesting page %u of '%s'", pg->index, p->name);

        return http_submit(p->http, &opts, on_page_reply, pg, &pg->request);
}

/* Resends the pages that waited for a new token; page 1 first when the
 * page count is not yet known. */
static int poll_submit_waiting(struct poll *p) {
        if (!p->pages) {
                if (!p->first_page.waiting_for_token)
                        return 0;
                p->first_page.waiting_for_token = false;
                return page_submit(&p->first_page);
        }
        for (unsigned i = 0; i < p->n_pages; i++) {
                struct page *pg = &p->pages[i];
                int r;

                if (!pg->waiting_for_token)
                        continue;
                pg->waiting_for_token = false;
                r = page_submit(pg);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void on_token(int error, const char *token, const char *reason, void *userdata) {
        struct poll *p = userdata;

        p->token_requested = false;
        log_debug("Token for '%s': %s", p->name, error < 0 ? "failed" : "ready");
        if (error < 0) {
                poll_fail(p, 0, NULL, "%s", reason && reason[0] ? reason : "Failed to get a token");
                return;
        }

        secret_free(p->token);
        p->token = strdup(token);
        if (!p->token) {
                poll_fail(p, 0, NULL, "Failed to store the token: out of memory");
                return;
        }
        p->token_generation++;

        if (poll_submit_waiting(p) < 0)
                poll_fail(p, 0, NULL, "Failed to send the users/batch request");
}

int poll_start(const struct poll_context *ctx, const struct target *target,
               poll_callback_t cb, void *userdata, struct poll **ret) {
        struct poll *p;
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;

        *p = (struct poll) {
                .event = ctx->event,
                .http = ctx->http,
                .auth = ctx->auth,
                .callback = cb,
                .userdata = userdata,
                .page_size = ctx->api->page_size,
                .window = ctx->api->max_parallel,
                .next_page = 1,
                .total_count = -1,
        };
        p->first_page = (struct page) { .poll = p, .index = 1, .waiting_for_token = true };

        p->name = strdup(target->name);
        if (!p->name ||
            asprintf(&p->url, "%s" USERS_BATCH_PATH, ctx->api->base_url, target->customer_id, target->tenant_id) < 0) {
                poll_free(p);
                return -ENOMEM;
        }

        r = reply_build_request_body(target->user_emails, target->n_user_emails, &p->body);
        if (r < 0) {
                poll_free(p);
                return r;
        }

        r = poll_request_token(p);
        if (r < 0) {
                poll_free(p);
                return r;
        }

        if (ret)
                *ret = p;
        return 0;
}

void poll_cancel(struct poll *p) {
        poll_free(p);
}
