/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util.h"
#include "view.h"

/* Appends a user with modules given as pairs (code, is_protected). */
static void add_user(struct tenant_view *v, const char *id, const char *email, size_t n_modules, ...) {
        struct user u = {
                .id = strdup(id),
                .email = strdup(email),
                .display_name = strdup("Name"),
                .n_modules = n_modules,
        };
        va_list ap;

        assert_non_null(u.id);
        if (n_modules > 0) {
                u.modules = calloc(n_modules, sizeof(u.modules[0]));
                assert_non_null(u.modules);
        }
        va_start(ap, n_modules);
        for (size_t i = 0; i < n_modules; i++) {
                u.modules[i].code = va_arg(ap, int);
                u.modules[i].is_protected = va_arg(ap, int);
        }
        va_end(ap);

        assert_int_equal(tenant_view_add(v, &u), 0);
        assert_null(u.id);
}

static void view_sorts_users_by_id(void **state) {
        struct tenant_view v = {};

        add_user(&v, "charlie", "c@x", 0);
        add_user(&v, "Bravo", "b@x", 0);
        add_user(&v, "alpha", "a@x", 0);
        add_user(&v, "alpha2", "a2@x", 0);
        assert_int_equal(tenant_view_finish(&v, NULL, 0), 0);

        assert_int_equal(v.n_users, 4);
        /* Bytewise: uppercase sorts before lowercase. */
        assert_string_equal(v.users[0].id, "Bravo");
        assert_string_equal(v.users[1].id, "alpha");
        assert_string_equal(v.users[2].id, "alpha2");
        assert_string_equal(v.users[3].id, "charlie");
        assert_string_equal(v.users[3].email, "c@x");
        tenant_view_done(&v);
}

static void view_sorts_modules_by_code(void **state) {
        struct tenant_view v = {};

        add_user(&v, "u", "u@x", 3, 7, true, 0, false, 2, true);
        assert_int_equal(tenant_view_finish(&v, NULL, 0), 0);

        assert_int_equal(v.users[0].n_modules, 3);
        assert_int_equal(v.users[0].modules[0].code, 0);
        assert_false(v.users[0].modules[0].is_protected);
        assert_int_equal(v.users[0].modules[1].code, 2);
        assert_true(v.users[0].modules[1].is_protected);
        assert_int_equal(v.users[0].modules[2].code, 7);
        assert_true(v.users[0].modules[2].is_protected);
        tenant_view_done(&v);
}

static void view_duplicate_id_rejected(void **state) {
        struct tenant_view v = {};
        char reason[128] = "";

        add_user(&v, "b", "b@x", 0);
        add_user(&v, "dup-7", "one@x", 0);
        add_user(&v, "a", "a@x", 0);
        add_user(&v, "dup-7", "two@x", 0);

        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "duplicate user id 'dup-7'");
        tenant_view_done(&v);
}

static void view_duplicate_sorted_id_rejected(void **state) {
        struct tenant_view v = {};
        char reason[128] = "";

        add_user(&v, "a", "a@x", 0);
        add_user(&v, "a", "a@x", 0);

        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "duplicate user id 'a'");
        tenant_view_done(&v);
}

static void view_duplicate_id_escaped(void **state) {
        struct tenant_view v = {};
        char reason[128] = "";

        add_user(&v, "x\n'y", "a@x", 0);
        add_user(&v, "x\n'y", "b@x", 0);

        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "duplicate user id 'x\\x0a\\x27y'");
        tenant_view_done(&v);
}

static void view_duplicate_module_rejected(void **state) {
        struct tenant_view v = {};
        char reason[128] = "";

        add_user(&v, "a", "a@x", 1, 0, true);
        add_user(&v, "u-42", "u@x", 3, 2, true, 0, true, 2, false);

        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "user 'u-42': duplicate module code 2");
        tenant_view_done(&v);
}

static void view_add_rejects_missing_id(void **state) {
        struct tenant_view v = {};
        struct user u = { .id = (char *) "", .email = (char *) "", .display_name = (char *) "" };

        assert_int_equal(tenant_view_add(&v, &u), -EINVAL);
        assert_int_equal(v.n_users, 0);
        u.id = NULL;
        assert_int_equal(tenant_view_add(&v, &u), -EINVAL);
}

static void view_add_past_limit(void **state) {
        /* A full view is faked: tenant_view_add() checks the count before it
         * touches the array. */
        struct tenant_view v = { .n_users = VIEW_USERS_MAX, .capacity = VIEW_USERS_MAX };
        struct user u = {
                .id = strdup("u"),
                .email = strdup(""),
                .display_name = strdup(""),
        };

        assert_int_equal(tenant_view_add(&v, &u), -E2BIG);
        assert_int_equal(v.n_users, VIEW_USERS_MAX);
        assert_string_equal(u.id, "u");
        user_done(&u);
}

static void view_grows_by_doubling(void **state) {
        struct tenant_view v = {};
        char id[32];
        size_t last_capacity = 0;

        for (int i = 0; i < 1000; i++) {
                (void) snprintf(id, sizeof(id), "user-%04d", 999 - i);
                add_user(&v, id, "", 0);
                if (v.capacity != last_capacity) {
                        if (last_capacity > 0)
                                assert_int_equal(v.capacity, last_capacity * 2);
                        last_capacity = v.capacity;
                }
        }
        assert_int_equal(v.n_users, 1000);
        assert_true(v.capacity >= 1000);
        assert_int_equal(tenant_view_finish(&v, NULL, 0), 0);
        assert_string_equal(v.users[0].id, "user-0000");
        assert_string_equal(v.users[999].id, "user-0999");
        tenant_view_done(&v);
        assert_null(v.users);
        assert_int_equal(v.n_users, 0);
        assert_int_equal(v.capacity, 0);
}

static void view_find_user(void **state) {
        struct tenant_view v = {};
        const struct user *u;

        assert_null(tenant_view_find(&v, "a"));
        add_user(&v, "m", "m@x", 0);
        add_user(&v, "c", "c@x", 0);
        add_user(&v, "x", "x@x", 0);
        assert_int_equal(tenant_view_finish(&v, NULL, 0), 0);

        u = tenant_view_find(&v, "c");
        assert_non_null(u);
        assert_string_equal(u->email, "c@x");
        u = tenant_view_find(&v, "x");
        assert_non_null(u);
        assert_string_equal(u->email, "x@x");
        assert_null(tenant_view_find(&v, "d"));
        assert_null(tenant_view_find(&v, ""));
        assert_null(tenant_view_find(&v, "zzz"));
        tenant_view_done(&v);
}

static void view_module_state(void **state) {
        struct tenant_view v = {};

        add_user(&v, "u", "u@x", 3, 9, false, 2, true, 0, false);
        assert_int_equal(tenant_view_finish(&v, NULL, 0), 0);

        assert_int_equal(user_module_state(&v.users[0], 0), MODULE_STATE_UNPROTECTED);
        assert_int_equal(user_module_state(&v.users[0], 2), MODULE_STATE_PROTECTED);
        assert_int_equal(user_module_state(&v.users[0], 9), MODULE_STATE_UNPROTECTED);
        assert_int_equal(user_module_state(&v.users[0], 1), MODULE_STATE_ABSENT);
        assert_int_equal(user_module_state(&v.users[0], 10), MODULE_STATE_ABSENT);
        assert_string_equal(module_state_to_string(MODULE_STATE_ABSENT), "absent");
        assert_string_equal(module_state_to_string(MODULE_STATE_UNPROTECTED), "unprotected");
        assert_string_equal(module_state_to_string(MODULE_STATE_PROTECTED), "protected");
        tenant_view_done(&v);
}

static void view_count_unprotected(void **state) {
        struct tenant_view v = {};

        assert_int_equal(tenant_view_count_unprotected(&v), 0);
        add_user(&v, "all-protected", "", 2, 0, true, 2, true);
        add_user(&v, "no-modules", "", 0);
        add_user(&v, "one-unprotected", "", 2, 0, true, 2, false);
        add_user(&v, "all-unprotected", "", 2, 0, false, 2, false);
        add_user(&v, "unknown-protected", "", 1, 7, true);
        assert_int_equal(tenant_view_finish(&v, NULL, 0), 0);

        assert_int_equal(tenant_view_count_unprotected(&v), 3);
        tenant_view_done(&v);
}

static void view_module_name(void **state) {
        char buf[32];
        char small[5];

        assert_string_equal(module_name(0, buf, sizeof(buf)), "mailbox");
        assert_string_equal(module_name(2, buf, sizeof(buf)), "onedrive");
        assert_string_equal(module_name(1, buf, sizeof(buf)), "module-1");
        assert_string_equal(module_name(7, buf, sizeof(buf)), "module-7");
        assert_string_equal(module_name(1000000, buf, sizeof(buf)), "module-1000000");
        assert_string_equal(module_name(7, small, sizeof(small)), "modu");
        assert_ptr_equal(module_name(0, buf, sizeof(buf)), buf);
}

static void view_done_twice(void **state) {
        struct tenant_view v = {};

        add_user(&v, "a", "a@x", 1, 0, true);
        tenant_view_done(&v);
        tenant_view_done(&v);
        add_user(&v, "b", "b@x", 0);
        assert_int_equal(v.n_users, 1);
        tenant_view_done(&v);
        tenant_view_done(NULL);
        user_done(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(view_sorts_users_by_id),
                cmocka_unit_test(view_sorts_modules_by_code),
                cmocka_unit_test(view_duplicate_id_rejected),
                cmocka_unit_test(view_duplicate_sorted_id_rejected),
                cmocka_unit_test(view_duplicate_id_escaped),
                cmocka_unit_test(view_duplicate_module_rejected),
                cmocka_unit_test(view_add_rejects_missing_id),
                cmocka_unit_test(view_add_past_limit),
                cmocka_unit_test(view_grows_by_doubling),
                cmocka_unit_test(view_find_user),
                cmocka_unit_test(view_module_state),
                cmocka_unit_test(view_count_unprotected),
                cmocka_unit_test(view_module_name),
                cmocka_unit_test(view_done_twice),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
