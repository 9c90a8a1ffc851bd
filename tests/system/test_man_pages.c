/* SPDX-License-Identifier: MIT */
/*
 * Checks that cbm365-watchd.conf(5) documents exactly the settings the
 * loader accepts. Each dotted name from config_known_keys() must head an
 * entry of the SETTINGS section (".TP" followed by ".B name"). Each such
 * entry must name a known setting, so a documented key that the loader no
 * longer reads fails too.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

#define PAGE_SIZE_MAX (1024 * 1024)

static char *page;

static bool is_known_key(const char *name) {
        for (const char *const *k = config_known_keys(); *k; k++)
                if (streq(*k, name))
                        return true;
        return false;
}

/* Returns the text of the SETTINGS section: from ".SH SETTINGS" to the next ".SH". */
static char *settings_section(void) {
        const char *start = strstr(page, "\n.SH SETTINGS\n");
        const char *end;

        assert_non_null(start);
        end = strstr(start + 1, "\n.SH ");
        assert_non_null(end);
        return strndup(start, (size_t) (end - start) + 1);
}

static int group_setup(void **state) {
        _cleanup_fclose_ FILE *f = fopen(CONF_MAN_PAGE, "re");
        size_t n;

        if (!f) {
                fprintf(stderr, "Failed to open %s: %s\n", CONF_MAN_PAGE, strerror(errno));
                return -1;
        }
        page = calloc(1, PAGE_SIZE_MAX + 1);
        if (!page)
                return -1;
        n = fread(page, 1, PAGE_SIZE_MAX, f);
        if (ferror(f) || n == PAGE_SIZE_MAX)
                return -1;
        return 0;
}

static int group_teardown(void **state) {
        page = mfree(page);
        return 0;
}

static void man_known_keys_nonempty(void **state) {
        const char *const *keys = config_known_keys();

        assert_non_null(keys);
        assert_non_null(keys[0]);
}

static void man_every_key_documented(void **state) {
        _cleanup_free_ char *section = settings_section();
        size_t missing = 0;

        for (const char *const *k = config_known_keys(); *k; k++) {
                char entry[256];
                int n = snprintf(entry, sizeof entry, "\n.TP\n.B %s\n", *k);

                assert_true(n > 0 && (size_t) n < sizeof entry);
                if (!strstr(section, entry)) {
                        print_error("%s: setting %s has no entry \".TP\\n.B %s\" in SETTINGS\n",
                                    CONF_MAN_PAGE, *k, *k);
                        missing++;
                }
        }
        assert_int_equal(missing, 0);
}

static void man_no_unknown_entry(void **state) {
        _cleanup_free_ char *section = settings_section();
        size_t unknown = 0, entries = 0;

        for (const char *p = strstr(section, "\n.TP\n.B "); p; p = strstr(p + 1, "\n.TP\n.B ")) {
                const char *name = p + strlen("\n.TP\n.B ");
                _cleanup_free_ char *key = strndup(name, strcspn(name, "\n"));

                assert_non_null(key);
                entries++;
                if (!is_known_key(key)) {
                        print_error("%s: entry \"%s\" is no setting the loader accepts\n", CONF_MAN_PAGE, key);
                        unknown++;
                }
        }
        assert_int_not_equal(entries, 0);
        assert_int_equal(unknown, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(man_known_keys_nonempty),
                cmocka_unit_test(man_every_key_documented),
                cmocka_unit_test(man_no_unknown_entry),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
