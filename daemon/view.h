/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A tenant view: every user of one tenant with the protection state of each
 * of the user's modules, as one complete poll (or one snapshot) shows it.
 *
 * Ownership: a tenant_view owns its users, and each user owns its strings and
 * module array. tenant_view_done() frees all of it.
 */

#include <stdbool.h>
#include <stddef.h>

/* Module codes the vendor documents. Any other code is kept as it is. */
#define MODULE_CODE_MAILBOX 0
#define MODULE_CODE_ONEDRIVE 2

/* Limits on what the network controls. A reply beyond them is rejected. */
#define VIEW_ID_MAX 256           /* bytes of a user id */
#define VIEW_EMAIL_MAX 512        /* bytes of an email address */
#define VIEW_NAME_MAX 1024        /* bytes of a display name */
#define VIEW_MODULES_MAX 64       /* module entries of one user */
#define VIEW_USERS_MAX 2000000    /* users of one tenant */

struct module_status {
        int code;
        bool is_protected;
};

struct user {
        char *id;                       /* never NULL or empty */
        char *email;                    /* never NULL, may be "" */
        char *display_name;             /* never NULL, may be "" */
        struct module_status *modules;  /* sorted by code, codes unique */
        size_t n_modules;
};

struct tenant_view {
        struct user *users;             /* sorted by id after tenant_view_finish() */
        size_t n_users;
        size_t capacity;
};

/* The protection state of one module of one user, as events name it. */
enum module_state {
        MODULE_STATE_ABSENT,
        MODULE_STATE_UNPROTECTED,
        MODULE_STATE_PROTECTED,
};

/* Returns "absent", "unprotected" or "protected". */
const char *module_state_to_string(enum module_state s);

/* Writes the module's name into buf: "mailbox", "onedrive" or "module-N". */
const char *module_name(int code, char *buf, size_t size);

/* Frees the strings and modules of one user and zeroes it. */
void user_done(struct user *u);

/* Frees every user and zeroes the view; the view may be reused. */
void tenant_view_done(struct tenant_view *v);

/* Makes room for n users at once, so that a view of known size is not grown
 * by doubling (which leaves up to half the array unused). */
int tenant_view_reserve(struct tenant_view *v, size_t n);

/* Appends *u to the view, taking ownership of its contents (and zeroing *u)
 * on success. Fails with -E2BIG past VIEW_USERS_MAX, -ENOMEM. */
int tenant_view_add(struct tenant_view *v, struct user *u);

/* Sorts the modules of each user and the users by id (bytewise), and rejects
 * a repeated user id or a repeated module code of one user with -EBADMSG and
 * a reason naming the id. */
int tenant_view_finish(struct tenant_view *v, char *reason, size_t reason_size);

/* Returns the user with this id in a finished view, or NULL. */
const struct user *tenant_view_find(const struct tenant_view *v, const char *id);

/* Returns the state of a module in a user's (sorted) module list. */
enum module_state user_module_state(const struct user *u, int code);

/* Counts users with at least one unprotected module, or with no module. */
size_t tenant_view_count_unprotected(const struct tenant_view *v);
