/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The diff of two finished tenant views: a pure function that reports each
 * change through a callback, in user id order.
 */

#include "view.h"

enum change_kind {
        CHANGE_PROTECTION_LOST,         /* protected -> unprotected or absent */
        CHANGE_PROTECTION_GAINED,       /* unprotected or absent -> protected */
        CHANGE_USER_ADDED,              /* one per module of the new user, or one with module -1 */
        CHANGE_USER_REMOVED,            /* one per user */
        CHANGE_USER_CHANGED,            /* same id, other email or display name */
};

struct change {
        enum change_kind kind;
        const struct user *user;                /* current user; the previous one for USER_REMOVED */
        const struct user *previous_user;       /* for USER_CHANGED (and module changes), else NULL */
        int module_code;                        /* -1 when the change concerns no module */
        enum module_state previous;
        enum module_state current;
};

typedef int (*change_callback_t)(const struct change *c, void *userdata);

/*
 * Calls cb for each change from previous to current. Both views must be
 * finished (sorted). Returns the number of changes, or the first negative
 * value cb returned.
 *
 * A module that goes from absent to unprotected, or from unprotected to
 * absent, is no change: neither gains nor loses protection.
 */
int diff_views(const struct tenant_view *previous, const struct tenant_view *current,
               change_callback_t cb, void *userdata);
