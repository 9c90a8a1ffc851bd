/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The users/batch reply: one page of
 *   {"data": [{"id", "email", "displayName", "moduleStatus": [{"module", "isProtected"}]}],
 *    "metadata": {"pageIndex", "pageSize", "totalCount"}}
 * The field table of the vendor's page spells the module fields "Module" and
 * "IsProtected" while its sample spells them "module" and "isProtected", so
 * both spellings are accepted. No json-c object leaves this module.
 */

#include <stddef.h>

#include "view.h"

#define REPLY_BODY_MAX (16u * 1024u * 1024u)   /* bytes of one page */
#define REPLY_DEPTH_MAX 16                      /* JSON nesting */

struct page_meta {
        long page_index;
        long page_size;
        long total_count;
        size_t n_users;         /* users in this page's data */
};

/*
 * Parses one reply body and appends its users to view. On failure returns
 * -EBADMSG (or -ENOMEM, -E2BIG) with a reason such as
 * "data[3].moduleStatus[0].isProtected: expected a boolean", and the view is
 * left as the caller passed it.
 */
int reply_parse_page(const char *body, size_t size, struct tenant_view *view,
                     struct page_meta *ret_meta, char *reason, size_t reason_size);

/*
 * Builds the request body: "{}" for all users, else {"userEmails": [...]}.
 * Returns a malloc'ed string in *ret.
 */
int reply_build_request_body(char *const *user_emails, size_t n_user_emails, char **ret);
