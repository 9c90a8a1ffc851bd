/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "diff.h"
#include "util.h"
#include "view.h"

#define P MODULE_STATE_PROTECTED
#define U MODULE_STATE_UNPROTECTED
#define A MODULE_STATE_ABSENT

/* A user as a test writes it: modules as "0+ 2-", where + is protected. */
struct user_spec {
        const char *id;
        const char *email;
        const char *name;
        const char *modules;
};

struct change_spec {
        enum change_kind kind;
        const char *id;
        int module_code;
        enum module_state previous;
        enum module_state current;
};

#define MAX_SPECS 8

struct diff_case {
        const char *name;
        struct user_spec previous[MAX_SPECS];
        struct user_spec current[MAX_SPECS];
        struct change_spec expected[MAX_SPECS];
        size_t n_expected;
};

struct recorder {
        struct change *changes;
        size_t n_changes;
        size_t capacity;
        size_t fail_at;         /* 1-based call that fails with -ECANCELED, 0 for never */
};

static int record_change(const struct change *c, void *userdata) {
        struct recorder *rec = userdata;

        if (rec->fail_at > 0 && rec->n_changes + 1 == rec->fail_at)
                return -ECANCELED;
        if (rec->n_changes == rec->capacity) {
                rec->capacity = rec->capacity > 0 ? rec->capacity * 2 : 16;
                rec->changes = reallocarray(rec->changes, rec->capacity, sizeof(rec->changes[0]));
                assert_non_null(rec->changes);
        }
        rec->changes[rec->n_changes++] = *c;
        return 0;
}

static void parse_modules(const char *text, struct user *u) {
        const char *p = text ? text : "";

        u->modules = calloc(VIEW_MODULES_MAX, sizeof(u->modules[0]));
        assert_non_null(u->modules);
        while (*p) {
                char *end;
                long code;

                if (*p == ' ') {
                        p++;
                        continue;
                }
                code = strtol(p, &end, 10);
                assert_true(end > p);
                assert_true(*end == '+' || *end == '-');
                u->modules[u->n_modules++] = (struct module_status) { .code = (int) code, .is_protected = *end == '+' };
                p = end + 1;
        }
}

static void build_view(const struct user_spec *specs, struct tenant_view *v) {
        for (size_t i = 0; i < MAX_SPECS && specs[i].id; i++) {
                struct user u = {
                        .id = strdup(specs[i].id),
                        .email = strdup(specs[i].email ? specs[i].email : ""),
                        .display_name = strdup(specs[i].name ? specs[i].name : ""),
                };

                parse_modules(specs[i].modules, &u);
                assert_int_equal(tenant_view_add(v, &u), 0);
        }
        assert_int_equal(tenant_view_finish(v, NULL, 0), 0);
}

/* Checks one reported change against the expected one, including which view
 * each user pointer points into. */
static void assert_change(const struct change *c, const struct change_spec *e,
                          const struct tenant_view *previous, const struct tenant_view *current) {
        assert_int_equal(c->kind, e->kind);
        assert_string_equal(c->user->id, e->id);
        assert_int_equal(c->module_code, e->module_code);
        assert_int_equal(c->previous, e->previous);
        assert_int_equal(c->current, e->current);

        switch (e->kind) {
        case CHANGE_USER_REMOVED:
                assert_ptr_equal(c->user, tenant_view_find(previous, e->id));
                assert_null(c->previous_user);
                break;
        case CHANGE_USER_ADDED:
                assert_ptr_equal(c->user, tenant_view_find(current, e->id));
                assert_null(c->previous_user);
                break;
        default:
                assert_ptr_equal(c->user, tenant_view_find(current, e->id));
                assert_ptr_equal(c->previous_user, tenant_view_find(previous, e->id));
                break;
        }
}

static const struct diff_case cases[] = {
        {
                .name = "protection lost",
                .previous = { { "u1", "a@x", "A", "0+ 2+" } },
                .current = { { "u1", "a@x", "A", "0- 2+" } },
                .expected = { { CHANGE_PROTECTION_LOST, "u1", 0, P, U } },
                .n_expected = 1,
        },
        {
                .name = "protected module gone",
                .previous = { { "u1", "a@x", "A", "0+ 2+" } },
                .current = { { "u1", "a@x", "A", "0+" } },
                .expected = { { CHANGE_PROTECTION_LOST, "u1", 2, P, A } },
                .n_expected = 1,
        },
        {
                .name = "protection gained",
                .previous = { { "u1", "a@x", "A", "0- 2-" } },
                .current = { { "u1", "a@x", "A", "0+ 2-" } },
                .expected = { { CHANGE_PROTECTION_GAINED, "u1", 0, U, P } },
                .n_expected = 1,
        },
        {
                .name = "protected module appears",
                .previous = { { "u1", "a@x", "A", "0+" } },
                .current = { { "u1", "a@x", "A", "0+ 2+" } },
                .expected = { { CHANGE_PROTECTION_GAINED, "u1", 2, A, P } },
                .n_expected = 1,
        },
        {
                .name = "unprotected module appears or goes",
                .previous = { { "u1", "", "", "0-" }, { "u2", "", "", "" } },
                .current = { { "u1", "", "", "" }, { "u2", "", "", "2-" } },
                .n_expected = 0,
        },
        {
                .name = "unknown module code",
                .previous = { { "u1", "a@x", "A", "0+ 7+" } },
                .current = { { "u1", "a@x", "A", "0+ 7-" } },
                .expected = { { CHANGE_PROTECTION_LOST, "u1", 7, P, U } },
                .n_expected = 1,
        },
        {
                .name = "user added with modules",
                .previous = { { "u0", "", "", "0+" } },
                .current = { { "u0", "", "", "0+" }, { "u1", "a@x", "A", "2+ 0- 7+" } },
                .expected = {
                        { CHANGE_USER_ADDED, "u1", 0, A, U },
                        { CHANGE_USER_ADDED, "u1", 2, A, P },
                        { CHANGE_USER_ADDED, "u1", 7, A, P },
                },
                .n_expected = 3,
        },
        {
                .name = "user added without modules",
                .current = { { "u1", "a@x", "A", "" } },
                .expected = { { CHANGE_USER_ADDED, "u1", -1, A, A } },
                .n_expected = 1,
        },
        {
                .name = "user removed",
                .previous = { { "u1", "a@x", "A", "0+ 2+" }, { "u2", "b@x", "B", "0+" } },
                .current = { { "u2", "b@x", "B", "0+" } },
                .expected = { { CHANGE_USER_REMOVED, "u1", -1, A, A } },
                .n_expected = 1,
        },
        {
                .name = "email change and loss",
                .previous = { { "u1", "old@x", "A", "0+ 2+" } },
                .current = { { "u1", "new@x", "A", "0- 2+" } },
                .expected = {
                        { CHANGE_USER_CHANGED, "u1", -1, A, A },
                        { CHANGE_PROTECTION_LOST, "u1", 0, P, U },
                },
                .n_expected = 2,
        },
        {
                .name = "display name change",
                .previous = { { "u1", "a@x", "Old Name", "0+" } },
                .current = { { "u1", "a@x", "New Name", "0+" } },
                .expected = { { CHANGE_USER_CHANGED, "u1", -1, A, A } },
                .n_expected = 1,
        },
        {
                .name = "identical views",
                .previous = { { "u1", "a@x", "A", "0+ 2-" }, { "u2", "", "", "" } },
                .current = { { "u1", "a@x", "A", "0+ 2-" }, { "u2", "", "", "" } },
                .n_expected = 0,
        },
        {
                .name = "empty views",
                .n_expected = 0,
        },
        {
                .name = "empty previous",
                .current = { { "b", "", "", "0-" }, { "a", "", "", "0+ 2+" }, { "c", "", "", "" } },
                .expected = {
                        { CHANGE_USER_ADDED, "a", 0, A, P },
                        { CHANGE_USER_ADDED, "a", 2, A, P },
                        { CHANGE_USER_ADDED, "b", 0, A, U },
                        { CHANGE_USER_ADDED, "c", -1, A, A },
                },
                .n_expected = 4,
        },
        {
                .name = "empty current",
                .previous = { { "b", "", "", "0-" }, { "a", "", "", "0+" } },
                .expected = {
                        { CHANGE_USER_REMOVED, "a", -1, A, A },
                        { CHANGE_USER_REMOVED, "b", -1, A, A },
                },
                .n_expected = 2,
        },
        {
                .name = "id order across kinds",
                .previous = { { "d", "", "", "0+" }, { "b", "", "", "0+" }, { "a", "", "", "0+" } },
                .current = { { "e", "", "", "" }, { "c", "", "", "2-" }, { "b", "x", "", "0-" }, { "a", "", "", "0+" } },
                .expected = {
                        { CHANGE_USER_CHANGED, "b", -1, A, A },
                        { CHANGE_PROTECTION_LOST, "b", 0, P, U },
                        { CHANGE_USER_ADDED, "c", 2, A, U },
                        { CHANGE_USER_REMOVED, "d", -1, A, A },
                        { CHANGE_USER_ADDED, "e", -1, A, A },
                },
                .n_expected = 5,
        },
};

static void diff_table(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct diff_case *t = &cases[i];
                struct tenant_view previous = {}, current = {};
                struct recorder rec = {};

                print_message("case: %s\n", t->name);
                build_view(t->previous, &previous);
                build_view(t->current, &current);

                assert_int_equal(diff_views(&previous, &current, record_change, &rec), (int) t->n_expected);
                assert_int_equal(rec.n_changes, t->n_expected);
                for (size_t j = 0; j < t->n_expected; j++)
                        assert_change(&rec.changes[j], &t->expected[j], &previous, &current);

                free(rec.changes);
                tenant_view_done(&previous);
                tenant_view_done(&current);
        }
}

static void diff_changed_user_pointers(void **state) {
        static const struct user_spec before[MAX_SPECS] = { { "u1", "old@x", "Old", "0+" } };
        static const struct user_spec after[MAX_SPECS] = { { "u1", "new@x", "New", "0+" } };
        struct tenant_view previous = {}, current = {};
        struct recorder rec = {};

        build_view(before, &previous);
        build_view(after, &current);

        assert_int_equal(diff_views(&previous, &current, record_change, &rec), 1);
        assert_string_equal(rec.changes[0].user->email, "new@x");
        assert_string_equal(rec.changes[0].user->display_name, "New");
        assert_string_equal(rec.changes[0].previous_user->email, "old@x");
        assert_string_equal(rec.changes[0].previous_user->display_name, "Old");

        free(rec.changes);
        tenant_view_done(&previous);
        tenant_view_done(&current);
}

static void diff_callback_error_stops(void **state) {
        static const struct user_spec users[MAX_SPECS] = {
                { "a", "", "", "0+" }, { "b", "", "", "0+" }, { "c", "", "", "0+" },
        };
        struct tenant_view previous = {}, current = {};
        struct recorder rec = { .fail_at = 2 };

        build_view(users, &current);
        assert_int_equal(diff_views(&previous, &current, record_change, &rec), -ECANCELED);
        assert_int_equal(rec.n_changes, 1);
        assert_string_equal(rec.changes[0].user->id, "a");

        free(rec.changes);
        tenant_view_done(&current);
}

static void diff_bad_arguments(void **state) {
        struct tenant_view v = {};

        assert_int_equal(diff_views(NULL, &v, record_change, NULL), -EINVAL);
        assert_int_equal(diff_views(&v, NULL, record_change, NULL), -EINVAL);
        assert_int_equal(diff_views(&v, &v, NULL, NULL), -EINVAL);
}

/* The randomized check: a deterministic generator, so that a failure can be
 * reproduced. */
#define RANDOM_USERS 10000
#define RANDOM_CODES 10

static uint64_t rng_state;

static uint32_t rng_next(void) {
        /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t) ((rng_state * UINT64_C(2685821657736338717)) >> 32);
}

static bool rng_chance(unsigned percent) {
        return rng_next() % 100 < percent;
}

static void random_modules(struct user *u) {
        static const int codes[] = { 0, 1, 2, 7, 9 };

        u->modules = calloc(ELEMENTSOF(codes), sizeof(u->modules[0]));
        assert_non_null(u->modules);
        u->n_modules = 0;
        /* Added in descending order so that tenant_view_finish() has to sort. */
        for (size_t i = ELEMENTSOF(codes); i-- > 0;)
                if (rng_chance(50))
                        u->modules[u->n_modules++] = (struct module_status) {
                                .code = codes[i],
                                .is_protected = rng_chance(70),
                        };
}

static void make_random_user(struct user *u, unsigned number) {
        char buf[64];

        (void) snprintf(buf, sizeof(buf), "user-%06u", number);
        u->id = strdup(buf);
        (void) snprintf(buf, sizeof(buf), "u%u@contoso.example", number);
        u->email = strdup(buf);
        u->display_name = strdup("User");
        assert_non_null(u->id);
        random_modules(u);
}

/* Copies u with random changes to its modules, email and name. */
static void mutate_user(const struct user *u, struct user *ret) {
        *ret = (struct user) {
                .id = strdup(u->id),
                .email = strdup(rng_chance(5) ? "moved@contoso.example" : u->email),
                .display_name = strdup(rng_chance(5) ? "Renamed" : u->display_name),
        };
        if (rng_chance(25)) {
                random_modules(ret);
                return;
        }
        ret->modules = calloc(u->n_modules + 1, sizeof(ret->modules[0]));
        assert_non_null(ret->modules);
        ret->n_modules = u->n_modules;
        if (u->n_modules > 0)
                memcpy(ret->modules, u->modules, u->n_modules * sizeof(u->modules[0]));
        for (size_t i = 0; i < ret->n_modules; i++)
                if (rng_chance(10))
                        ret->modules[i].is_protected = !ret->modules[i].is_protected;
}

static void build_random_views(struct tenant_view *previous, struct tenant_view *current) {
        _cleanup_free_ unsigned *numbers = calloc(RANDOM_USERS * 4, sizeof(unsigned));

        /* Distinct user numbers in random order: a shuffle of 0..4n-1. */
        assert_non_null(numbers);
        for (unsigned i = 0; i < RANDOM_USERS * 4; i++)
                numbers[i] = i;
        for (unsigned i = RANDOM_USERS * 4 - 1; i > 0; i--) {
                unsigned j = rng_next() % (i + 1), t = numbers[i];

                numbers[i] = numbers[j];
                numbers[j] = t;
        }

        for (unsigned i = 0; i < RANDOM_USERS; i++) {
                struct user u = {};

                make_random_user(&u, numbers[i]);
                assert_int_equal(tenant_view_add(previous, &u), 0);
        }
        assert_int_equal(tenant_view_finish(previous, NULL, 0), 0);

        for (size_t i = 0; i < previous->n_users; i++) {
                struct user u = {};

                if (rng_chance(5))
                        continue;
                mutate_user(&previous->users[i], &u);
                assert_int_equal(tenant_view_add(current, &u), 0);
        }
        for (unsigned i = 0; i < RANDOM_USERS / 20; i++) {
                struct user u = {};

                make_random_user(&u, numbers[RANDOM_USERS + i]);
                assert_int_equal(tenant_view_add(current, &u), 0);
        }
        assert_int_equal(tenant_view_finish(current, NULL, 0), 0);
}

static const struct user *reference_find(const struct tenant_view *v, const char *id) {
        for (size_t i = 0; i < v->n_users; i++)
                if (streq(v->users[i].id, id))
                        return &v->users[i];
        return NULL;
}

static enum module_state reference_state(const struct user *u, int code) {
        for (size_t i = 0; i < u->n_modules; i++)
                if (u->modules[i].code == code)
                        return u->modules[i].is_protected ? P : U;
        return A;
}

static int compare_id_pointers(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static void reference_push(struct recorder *rec, enum change_kind kind, const struct user *user,
                           const struct user *previous_user, int code, enum module_state before,
                           enum module_state after) {
        struct change c = {
                .kind = kind,
                .user = user,
                .previous_user = previous_user,
                .module_code = code,
                .previous = before,
                .current = after,
        };

        assert_int_equal(record_change(&c, rec), 0);
}

static void reference_user(struct recorder *rec, const struct user *p, const struct user *c) {
        if (!c) {
                reference_push(rec, CHANGE_USER_REMOVED, p, NULL, -1, A, A);
                return;
        }
        if (!p) {
                if (c->n_modules == 0)
                        reference_push(rec, CHANGE_USER_ADDED, c, NULL, -1, A, A);
                for (int code = 0; code < RANDOM_CODES; code++)
                        if (reference_state(c, code) != A)
                                reference_push(rec, CHANGE_USER_ADDED, c, NULL, code, A, reference_state(c, code));
                return;
        }
        if (!streq(p->email, c->email) || !streq(p->display_name, c->display_name))
                reference_push(rec, CHANGE_USER_CHANGED, c, p, -1, A, A);
        for (int code = 0; code < RANDOM_CODES; code++) {
                enum module_state before = reference_state(p, code), after = reference_state(c, code);

                if (before == P && after != P)
                        reference_push(rec, CHANGE_PROTECTION_LOST, c, p, code, before, after);
                else if (before != P && after == P)
                        reference_push(rec, CHANGE_PROTECTION_GAINED, c, p, code, before, after);
        }
}

/* The O(n^2) reference: every id of both views in sorted order, each looked
 * up by a linear search, each module code tried in turn. */
static void reference_diff(const struct tenant_view *previous, const struct tenant_view *current,
                           struct recorder *rec) {
        size_t n = previous->n_users + current->n_users, n_ids = 0;
        _cleanup_free_ const char **ids = calloc(n, sizeof(char *));

        assert_non_null(ids);
        for (size_t i = 0; i < previous->n_users; i++)
                ids[n_ids++] = previous->users[i].id;
        for (size_t i = 0; i < current->n_users; i++)
                ids[n_ids++] = current->users[i].id;
        qsort(ids, n_ids, sizeof(ids[0]), compare_id_pointers);

        for (size_t i = 0; i < n_ids; i++) {
                if (i > 0 && streq(ids[i - 1], ids[i]))
                        continue;
                reference_user(rec, reference_find(previous, ids[i]), reference_find(current, ids[i]));
        }
}

static void diff_random_matches_reference(void **state) {
        struct tenant_view previous = {}, current = {};
        struct recorder got = {}, expected = {};
        size_t kinds[CHANGE_USER_CHANGED + 1] = {};

        rng_state = UINT64_C(0x9e3779b97f4a7c15);
        build_random_views(&previous, &current);
        reference_diff(&previous, &current, &expected);

        assert_int_equal(diff_views(&previous, &current, record_change, &got), (int) expected.n_changes);
        assert_int_equal(got.n_changes, expected.n_changes);
        for (size_t i = 0; i < got.n_changes; i++) {
                const struct change *g = &got.changes[i], *e = &expected.changes[i];

                assert_int_equal(g->kind, e->kind);
                assert_ptr_equal(g->user, e->user);
                assert_ptr_equal(g->previous_user, e->previous_user);
                assert_int_equal(g->module_code, e->module_code);
                assert_int_equal(g->previous, e->previous);
                assert_int_equal(g->current, e->current);
                kinds[g->kind]++;
        }

        /* The generator must have produced every kind, or the check proves little. */
        for (size_t k = 0; k < ELEMENTSOF(kinds); k++)
                assert_true(kinds[k] > 100);

        free(got.changes);
        free(expected.changes);
        tenant_view_done(&previous);
        tenant_view_done(&current);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(diff_table),
                cmocka_unit_test(diff_changed_user_pointers),
                cmocka_unit_test(diff_callback_error_stops),
                cmocka_unit_test(diff_bad_arguments),
                cmocka_unit_test(diff_random_matches_reference),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
