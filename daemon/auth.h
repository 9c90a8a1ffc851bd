/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The OAuth 2.0 client-credentials token (RFC 6749, section 4.4). One token
 * is shared by all polls; it is reused until shortly before it expires, and
 * concurrent requests for a token wait for one fetch.
 *
 * The client secret and the token never reach a log line; reasons written
 * here carry the OAuth "error" and "error_description" only.
 */

#include <stdint.h>

#include "config.h"
#include "http.h"

/* A token is renewed this many seconds before its expires_in runs out. */
#define AUTH_RENEW_MARGIN_SEC 120
#define AUTH_REPLY_MAX (64u * 1024u)
/* After a failed token request, callers get that error without a new
 * request for AUTH_BACKOFF_BASE_SEC, doubling with each failure in a row up
 * to AUTH_BACKOFF_MAX_SEC. */
#define AUTH_BACKOFF_BASE_SEC 5u
#define AUTH_BACKOFF_MAX_SEC 600u

struct auth;

struct token {
        char *access_token;     /* secret */
        int64_t expires_in_sec;
};

/* Called with error 0 and the token, or -errno and a reason. The token is
 * valid during the call only; copy it if needed. */
typedef void (*auth_callback_t)(int error, const char *token, const char *reason, void *userdata);

/* Borrows http and api, which must outlive the auth object: the client
 * secret is read from api at each fetch and never copied. */
int auth_new(struct http_client *http, const struct api_config *api, struct auth **ret);
/* Drops pending callbacks without calling them. May be called from an auth
 * callback: the object is then freed when that callback returns. */
struct auth *auth_free(struct auth *a);

/* Gets a valid token: from the cache (the callback then runs from the event
 * loop, never inside this call) or from one fetch shared by all callers. */
int auth_get_token(struct auth *a, auth_callback_t cb, void *userdata);

/* Drops every pending callback registered with this userdata. */
void auth_cancel(struct auth *a, void *userdata);

/* Forgets the cached token if it is still this one (after an HTTP 401). */
void auth_invalidate(struct auth *a, const char *token);

/* Builds the application/x-www-form-urlencoded body of the token request.
 * The result contains the secret: free it with secret_free(). */
int auth_build_request_body(const char *client_id, const char *client_secret, const char *scope, char **ret);

/* Parses the token endpoint's reply. For an error reply, the reason names
 * the HTTP status, "error" and "error_description". Returns -EACCES for
 * HTTP 400, 401 and 403, -EIO for other statuses, -EBADMSG for a 200 reply
 * that contains no usable token, -EFBIG for a body over AUTH_REPLY_MAX. */
int auth_parse_reply(long status, const char *body, size_t size, struct token *ret,
                     char *reason, size_t reason_size);

void token_done(struct token *t);
