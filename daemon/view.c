/* SPDX-License-Identifier: MIT */
#include "view.h"

#include <errno.h>
#include <stdint.h>

#include "util.h"

/* Initial capacity of a view's user array, which then doubles. */
#define VIEW_USERS_INITIAL 64

/* Writes s into buf with every control byte, quote and backslash as \xNN, so
 * that an id from the network cannot break a log line. Truncates to fit. */
static const char *escape_id(const char *s, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        size_t j = 0;

        for (const unsigned char *p = (const unsigned char *) s; *p && j + 5 <= size; p++) {
                if (*p >= 0x20 && *p != 0x7f && *p != '\'' && *p != '\\') {
                        buf[j++] = (char) *p;
                        continue;
                }
                buf[j++] = '\\';
                buf[j++] = 'x';
                buf[j++] = hex[*p >> 4];
                buf[j++] = hex[*p & 0xf];
        }
        buf[j] = '\0';
        return buf;
}

static int module_status_compare(const void *a, const void *b) {
        const struct module_status *x = a, *y = b;

        return (x->code > y->code) - (x->code < y->code);
}

static int user_compare(const void *a, const void *b) {
        const struct user *x = a, *y = b;

        return strcmp(x->id, y->id);
}

/* Sorts the modules of u unless they already are (the usual case for a
 * snapshot), then rejects a repeated code. */
static int user_finish_modules(struct user *u, char *reason, size_t reason_size) {
        char id[VIEW_ID_MAX * 4 + 1];
        size_t i;

        for (i = 1; i < u->n_modules; i++)
                if (u->modules[i - 1].code >= u->modules[i].code)
                        break;
        if (i >= u->n_modules)
                return 0;

        qsort(u->modules, u->n_modules, sizeof(u->modules[0]), module_status_compare);
        for (i = 1; i < u->n_modules; i++)
                if (u->modules[i - 1].code == u->modules[i].code)
                        return set_reason(reason, reason_size, EBADMSG,
                                          "user '%s': duplicate module code %d",
                                          escape_id(u->id, id, sizeof(id)), u->modules[i].code);
        return 0;
}

/* Returns true when the users are in strictly ascending id order, so that a
 * view loaded from a snapshot skips the sort. */
static bool users_sorted(const struct tenant_view *v) {
        for (size_t i = 1; i < v->n_users; i++)
                if (strcmp(v->users[i - 1].id, v->users[i].id) >= 0)
                        return false;
        return true;
}

const char *module_state_to_string(enum module_state s) {
        switch (s) {
        case MODULE_STATE_ABSENT:
                return "absent";
        case MODULE_STATE_UNPROTECTED:
                return "unprotected";
        case MODULE_STATE_PROTECTED:
                return "protected";
        }
        return "unknown";
}

const char *module_name(int code, char *buf, size_t size) {
        if (!buf || size == 0)
                return NULL;

        if (code == MODULE_CODE_MAILBOX)
                (void) strscpy(buf, size, "mailbox");
        else if (code == MODULE_CODE_ONEDRIVE)
                (void) strscpy(buf, size, "onedrive");
        else
                (void) snprintf(buf, size, "module-%d", code);
        return buf;
}

void user_done(struct user *u) {
        if (!u)
                return;

        free(u->id);
        free(u->email);
        free(u->display_name);
        free(u->modules);
        *u = (struct user) {};
}

void tenant_view_done(struct tenant_view *v) {
        if (!v)
                return;

        for (size_t i = 0; i < v->n_users; i++)
                user_done(&v->users[i]);
        free(v->users);
        *v = (struct tenant_view) {};
}

int tenant_view_reserve(struct tenant_view *v, size_t n) {
        struct user *users;

        if (n > VIEW_USERS_MAX)
                return -E2BIG;
        if (n <= v->capacity)
                return 0;
        users = reallocarray(v->users, n, sizeof(v->users[0]));
        if (!users)
                return -ENOMEM;
        v->users = users;
        v->capacity = n;
        return 0;
}

int tenant_view_add(struct tenant_view *v, struct user *u) {
        if (!v || !u || !u->id || u->id[0] == '\0' || !u->email || !u->display_name)
                return -EINVAL;
        if (u->n_modules > 0 && !u->modules)
                return -EINVAL;
        if (v->n_users >= VIEW_USERS_MAX)
                return -E2BIG;

        if (v->n_users >= v->capacity) {
                size_t capacity = v->capacity > 0 ? v->capacity * 2 : VIEW_USERS_INITIAL;
                struct user *users;

                if (capacity > VIEW_USERS_MAX)
                        capacity = VIEW_USERS_MAX;
                users = reallocarray(v->users, capacity, sizeof(v->users[0]));
                if (!users)
                        return -ENOMEM;
                v->users = users;
                v->capacity = capacity;
        }

        v->users[v->n_users++] = *u;
        *u = (struct user) {};
        return 0;
}

int tenant_view_finish(struct tenant_view *v, char *reason, size_t reason_size) {
        char id[VIEW_ID_MAX * 4 + 1];
        int r;

        if (!v)
                return -EINVAL;

        for (size_t i = 0; i < v->n_users; i++) {
                r = user_finish_modules(&v->users[i], reason, reason_size);
                if (r < 0)
                        return r;
        }

        if (users_sorted(v))
                return 0;

        qsort(v->users, v->n_users, sizeof(v->users[0]), user_compare);
        for (size_t i = 1; i < v->n_users; i++)
                if (streq(v->users[i - 1].id, v->users[i].id))
                        return set_reason(reason, reason_size, EBADMSG, "duplicate user id '%s'",
                                          escape_id(v->users[i].id, id, sizeof(id)));
        return 0;
}

const struct user *tenant_view_find(const struct tenant_view *v, const char *id) {
        struct user key = { .id = (char *) id };

        if (!v || !id || v->n_users == 0)
                return NULL;

        return bsearch(&key, v->users, v->n_users, sizeof(v->users[0]), user_compare);
}

enum module_state user_module_state(const struct user *u, int code) {
        for (size_t i = 0; u && i < u->n_modules; i++) {
                if (u->modules[i].code > code)
                        break;
                if (u->modules[i].code == code)
                        return u->modules[i].is_protected ? MODULE_STATE_PROTECTED : MODULE_STATE_UNPROTECTED;
        }
        return MODULE_STATE_ABSENT;
}

size_t tenant_view_count_unprotected(const struct tenant_view *v) {
        size_t n = 0;

        for (size_t i = 0; v && i < v->n_users; i++) {
                const struct user *u = &v->users[i];
                bool unprotected = u->n_modules == 0;

                for (size_t j = 0; j < u->n_modules && !unprotected; j++)
                        unprotected = !u->modules[j].is_protected;
                if (unprotected)
                        n++;
        }
        return n;
}
