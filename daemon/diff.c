/* SPDX-License-Identifier: MIT */
#include "diff.h"

#include <errno.h>
#include <limits.h>

#include "util.h"

/* State of one diff: the callback and the number of changes reported so far. */
struct diff_walk {
        change_callback_t cb;
        void *userdata;
        int n_changes;
};

static int emit(struct diff_walk *w, const struct change *c) {
        int r;

        if (w->n_changes == INT_MAX)
                return -EOVERFLOW;
        r = w->cb(c, w->userdata);
        if (r < 0)
                return r;
        w->n_changes++;
        return 0;
}

static enum module_state state_of(const struct module_status *m) {
        return m->is_protected ? MODULE_STATE_PROTECTED : MODULE_STATE_UNPROTECTED;
}

static int diff_user_removed(struct diff_walk *w, const struct user *previous) {
        return emit(w, &(struct change) {
                .kind = CHANGE_USER_REMOVED,
                .user = previous,
                .module_code = -1,
                .previous = MODULE_STATE_ABSENT,
                .current = MODULE_STATE_ABSENT,
        });
}

/* Reports one event per module of a new user, or a single event without a
 * module, so that a new user without any module is reported too. */
static int diff_user_added(struct diff_walk *w, const struct user *current) {
        struct change c = {
                .kind = CHANGE_USER_ADDED,
                .user = current,
                .module_code = -1,
                .previous = MODULE_STATE_ABSENT,
                .current = MODULE_STATE_ABSENT,
        };
        int r;

        if (current->n_modules == 0)
                return emit(w, &c);

        for (size_t i = 0; i < current->n_modules; i++) {
                c.module_code = current->modules[i].code;
                c.current = state_of(&current->modules[i]);
                r = emit(w, &c);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int diff_module(struct diff_walk *w, const struct user *previous, const struct user *current,
                       int code, enum module_state before, enum module_state after) {
        enum change_kind kind;

        /* Absent and unprotected are the same to an operator: neither is
         * backed up. */
        if (before == MODULE_STATE_PROTECTED && after != MODULE_STATE_PROTECTED)
                kind = CHANGE_PROTECTION_LOST;
        else if (before != MODULE_STATE_PROTECTED && after == MODULE_STATE_PROTECTED)
                kind = CHANGE_PROTECTION_GAINED;
        else
                return 0;

        return emit(w, &(struct change) {
                .kind = kind,
                .user = current,
                .previous_user = previous,
                .module_code = code,
                .previous = before,
                .current = after,
        });
}

/* Walks the union of the module codes of one user. Both lists are sorted by
 * code. */
static int diff_modules(struct diff_walk *w, const struct user *previous, const struct user *current) {
        size_t i = 0, j = 0;
        int r;

        while (i < previous->n_modules || j < current->n_modules) {
                int order;

                if (i >= previous->n_modules)
                        order = 1;
                else if (j >= current->n_modules)
                        order = -1;
                else
                        order = (previous->modules[i].code > current->modules[j].code) -
                                (previous->modules[i].code < current->modules[j].code);

                if (order < 0) {
                        const struct module_status *p = &previous->modules[i++];

                        r = diff_module(w, previous, current, p->code, state_of(p), MODULE_STATE_ABSENT);
                } else if (order > 0) {
                        const struct module_status *c = &current->modules[j++];

                        r = diff_module(w, previous, current, c->code, MODULE_STATE_ABSENT, state_of(c));
                } else {
                        const struct module_status *p = &previous->modules[i++], *c = &current->modules[j++];

                        r = diff_module(w, previous, current, c->code, state_of(p), state_of(c));
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int diff_user_kept(struct diff_walk *w, const struct user *previous, const struct user *current) {
        int r;

        if (!streq(previous->email, current->email) || !streq(previous->display_name, current->display_name)) {
                r = emit(w, &(struct change) {
                        .kind = CHANGE_USER_CHANGED,
                        .user = current,
                        .previous_user = previous,
                        .module_code = -1,
                        .previous = MODULE_STATE_ABSENT,
                        .current = MODULE_STATE_ABSENT,
                });
                if (r < 0)
                        return r;
        }

        return diff_modules(w, previous, current);
}

int diff_views(const struct tenant_view *previous, const struct tenant_view *current,
               change_callback_t cb, void *userdata) {
        struct diff_walk w = { .cb = cb, .userdata = userdata };
        size_t i = 0, j = 0;
        int r;

        if (!previous || !current || !cb)
                return -EINVAL;

        while (i < previous->n_users || j < current->n_users) {
                int order;

                if (i >= previous->n_users)
                        order = 1;
                else if (j >= current->n_users)
                        order = -1;
                else
                        order = strcmp(previous->users[i].id, current->users[j].id);

                if (order < 0)
                        r = diff_user_removed(&w, &previous->users[i++]);
                else if (order > 0)
                        r = diff_user_added(&w, &current->users[j++]);
                else {
                        r = diff_user_kept(&w, &previous->users[i], &current->users[j]);
                        i++;
                        j++;
                }
                if (r < 0)
                        return r;
        }
        return w.n_changes;
}
