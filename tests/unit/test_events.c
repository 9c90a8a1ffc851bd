/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include <cmocka.h>

#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

#include "events.h"
#include "log.h"

#include "fake_journal.h"

/* Returns true when the console line contains the field "NAME=value" exactly,
 * as one whole item between "[" or " " and " " or "]". */
static bool line_has_field(const char *line, const char *item) {
        size_t n = strlen(item);

        for (const char *p = strstr(line, item); p; p = strstr(p + 1, item))
                if ((p[-1] == '[' || p[-1] == ' ') && (p[n] == ' ' || p[n] == ']'))
                        return true;
        return false;
}

static bool line_has_name(const char *line, const char *name) {
        char item[128];

        (void) snprintf(item, sizeof item, " %s=", name);
        if (strstr(line, item))
                return true;
        (void) snprintf(item, sizeof item, "[%s=", name);
        return strstr(line, item) != NULL;
}

/* Compares the start of a console line, where the MESSAGE is, as a string so
 * that a failure shows both texts. */
static void assert_prefix(const char *line, const char *prefix) {
        _cleanup_free_ char *head = strndup(line, strlen(prefix));

        assert_non_null(head);
        assert_string_equal(head, prefix);
}

static const struct event_target contoso = {
        .name = "contoso",
        .customer_id = "cust-1",
        .tenant_id = "tenant-1",
};

static struct module_status adele_modules[] = {
        { .code = MODULE_CODE_MAILBOX, .is_protected = false },
        { .code = MODULE_CODE_ONEDRIVE, .is_protected = true },
};

static struct user adele = {
        .id = (char *) "u-1",
        .email = (char *) "adele@contoso.example",
        .display_name = (char *) "Adele Vance",
        .modules = adele_modules,
        .n_modules = ELEMENTSOF(adele_modules),
};

static int setup_console(void **state) {
        (void) log_open(LOG_TARGET_CONSOLE);
        log_set_max_priority(LOG_INFO);
        return 0;
}

static int setup_journal(void **state) {
        (void) log_open(LOG_TARGET_JOURNAL);
        log_set_max_priority(LOG_INFO);
        fake_journal_clear();
        fake_journal.calls = 0;
        return 0;
}

static int teardown_group(void **state) {
        fake_journal_clear();
        return 0;
}

static char *log_change_console(const struct change *c, int *ret) {
        capture_begin();
        *ret = event_log_change(&contoso, c);
        return capture_end();
}

static void kind_names(void **state) {
        assert_string_equal(event_kind_to_string(EVENT_PROTECTION_LOST), "protection-lost");
        assert_string_equal(event_kind_to_string(EVENT_PROTECTION_GAINED), "protection-gained");
        assert_string_equal(event_kind_to_string(EVENT_USER_ADDED), "user-added");
        assert_string_equal(event_kind_to_string(EVENT_USER_REMOVED), "user-removed");
        assert_string_equal(event_kind_to_string(EVENT_USER_CHANGED), "user-changed");
        assert_string_equal(event_kind_to_string(EVENT_BASELINE_RECORDED), "baseline-recorded");
        assert_string_equal(event_kind_to_string(EVENT_POLL_FAILED), "poll-failed");
        assert_string_equal(event_kind_to_string(EVENT_POLL_RECOVERED), "poll-recovered");
        assert_string_equal(event_kind_to_string(EVENT_POLL_SUMMARY), "poll-summary");
        assert_null(event_kind_to_string(_EVENT_KIND_MAX));
        assert_null(event_kind_to_string((enum event_kind) -1));
}

static void message_ids_distinct_hex(void **state) {
        for (int i = 0; i < _EVENT_KIND_MAX; i++) {
                const char *id = event_message_id((enum event_kind) i);

                assert_non_null(id);
                assert_int_equal(strlen(id), 32);
                assert_int_equal(strspn(id, "0123456789abcdef"), 32);
                for (int j = 0; j < i; j++)
                        assert_string_not_equal(id, event_message_id((enum event_kind) j));
        }
        assert_null(event_message_id(_EVENT_KIND_MAX));
}

/* The ids are a released interface: a change here must be deliberate. */
static void message_ids_fixed(void **state) {
        assert_string_equal(event_message_id(EVENT_PROTECTION_LOST), "5b07d3ac68fc402fbcc2525c0f15c478");
        assert_string_equal(event_message_id(EVENT_POLL_SUMMARY), "8ee8b4c886dd4e95a26eea62f6f7953f");
}

static void lost_console_line(void **state) {
        const struct change c = {
                .kind = CHANGE_PROTECTION_LOST,
                .user = &adele,
                .module_code = MODULE_CODE_MAILBOX,
                .previous = MODULE_STATE_PROTECTED,
                .current = MODULE_STATE_UNPROTECTED,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_int_equal(r, 0);
        assert_string_equal(out,
                            "warning: contoso: Adele Vance <adele@contoso.example> lost protection of "
                            "mailbox (protected -> unprotected) [CBM365_EVENT=protection-lost "
                            "CBM365_TARGET=contoso CBM365_CUSTOMER_ID=cust-1 CBM365_TENANT_ID=tenant-1 "
                            "CBM365_USER_ID=u-1 CBM365_USER_EMAIL=adele@contoso.example "
                            "CBM365_USER_NAME=\"Adele Vance\" CBM365_MODULE=mailbox CBM365_MODULE_CODE=0 "
                            "CBM365_PREVIOUS=protected CBM365_CURRENT=unprotected]\n");
}

static void lost_to_absent_fields(void **state) {
        const struct change c = {
                .kind = CHANGE_PROTECTION_LOST,
                .user = &adele,
                .module_code = MODULE_CODE_ONEDRIVE,
                .previous = MODULE_STATE_PROTECTED,
                .current = MODULE_STATE_ABSENT,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_prefix(out, "warning: ");
        assert_true(line_has_field(out, "CBM365_EVENT=protection-lost"));
        assert_true(line_has_field(out, "CBM365_MODULE=onedrive"));
        assert_true(line_has_field(out, "CBM365_MODULE_CODE=2"));
        assert_true(line_has_field(out, "CBM365_PREVIOUS=protected"));
        assert_true(line_has_field(out, "CBM365_CURRENT=absent"));
}

static void gained_notice(void **state) {
        const struct change c = {
                .kind = CHANGE_PROTECTION_GAINED,
                .user = &adele,
                .module_code = MODULE_CODE_MAILBOX,
                .previous = MODULE_STATE_ABSENT,
                .current = MODULE_STATE_PROTECTED,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_prefix(out, "notice: contoso: Adele Vance <adele@contoso.example> gained protection of "
                                 "mailbox (absent -> protected) [");
        assert_true(line_has_field(out, "CBM365_EVENT=protection-gained"));
        assert_true(line_has_field(out, "CBM365_PREVIOUS=absent"));
        assert_true(line_has_field(out, "CBM365_CURRENT=protected"));
}

static void added_unprotected_warning(void **state) {
        const struct change c = {
                .kind = CHANGE_USER_ADDED,
                .user = &adele,
                .module_code = MODULE_CODE_ONEDRIVE,
                .previous = MODULE_STATE_ABSENT,
                .current = MODULE_STATE_UNPROTECTED,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_prefix(out, "warning: contoso: new user Adele Vance <adele@contoso.example>: "
                                 "onedrive unprotected [");
        assert_true(line_has_field(out, "CBM365_EVENT=user-added"));
        assert_true(line_has_field(out, "CBM365_CURRENT=unprotected"));
        assert_true(line_has_field(out, "CBM365_PREVIOUS=absent"));
}

static void added_protected_notice(void **state) {
        const struct change c = {
                .kind = CHANGE_USER_ADDED,
                .user = &adele,
                .module_code = MODULE_CODE_MAILBOX,
                .previous = MODULE_STATE_ABSENT,
                .current = MODULE_STATE_PROTECTED,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_prefix(out, "notice: contoso: new user Adele Vance <adele@contoso.example>: mailbox protected [");
}

static void added_no_module_warning(void **state) {
        const struct user bare = { .id = (char *) "u-9", .email = (char *) "", .display_name = (char *) "" };
        const struct change c = {
                .kind = CHANGE_USER_ADDED,
                .user = &bare,
                .module_code = -1,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_int_equal(r, 0);
        assert_prefix(out, "warning: contoso: new user id u-9 without any module [");
        assert_true(line_has_field(out, "CBM365_USER_ID=u-9"));
        assert_true(line_has_field(out, "CBM365_USER_EMAIL=\"\""));
        assert_false(line_has_name(out, "CBM365_MODULE"));
        assert_false(line_has_name(out, "CBM365_MODULE_CODE"));
        assert_true(line_has_field(out, "CBM365_PREVIOUS=absent"));
        assert_true(line_has_field(out, "CBM365_CURRENT=absent"));
}

static void removed_notice(void **state) {
        const struct change c = {
                .kind = CHANGE_USER_REMOVED,
                .user = &adele,
                .module_code = -1,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_prefix(out, "notice: contoso: user Adele Vance <adele@contoso.example> removed from the tenant [");
        assert_true(line_has_field(out, "CBM365_EVENT=user-removed"));
        assert_true(line_has_field(out, "CBM365_USER_ID=u-1"));
        assert_false(line_has_name(out, "CBM365_MODULE"));
}

static void changed_info_previous(void **state) {
        const struct user before = {
                .id = (char *) "u-1",
                .email = (char *) "adele@old.example",
                .display_name = (char *) "Adele V.",
        };
        const struct change c = {
                .kind = CHANGE_USER_CHANGED,
                .user = &adele,
                .previous_user = &before,
                .module_code = -1,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_prefix(out, "info: contoso: user Adele V. <adele@old.example> is now Adele Vance "
                                 "<adele@contoso.example> [");
        assert_true(line_has_field(out, "CBM365_EVENT=user-changed"));
        assert_true(line_has_field(out, "CBM365_USER_EMAIL=adele@contoso.example"));
        assert_true(line_has_field(out, "CBM365_USER_NAME=\"Adele Vance\""));
        assert_true(line_has_field(out, "CBM365_PREVIOUS_USER_EMAIL=adele@old.example"));
        assert_true(line_has_field(out, "CBM365_PREVIOUS_USER_NAME=\"Adele V.\""));
}

static void module_code_seven(void **state) {
        const struct change c = {
                .kind = CHANGE_PROTECTION_GAINED,
                .user = &adele,
                .module_code = 7,
                .previous = MODULE_STATE_UNPROTECTED,
                .current = MODULE_STATE_PROTECTED,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_non_null(strstr(out, " gained protection of module-7 (unprotected -> protected) ["));
        assert_true(line_has_field(out, "CBM365_MODULE=module-7"));
        assert_true(line_has_field(out, "CBM365_MODULE_CODE=7"));
}

static void name_format_verbatim(void **state) {
        const struct user u = { .id = (char *) "u-%n", .email = (char *) "%x@x", .display_name = (char *) "%s%n" };
        const struct change c = {
                .kind = CHANGE_USER_REMOVED,
                .user = &u,
                .module_code = -1,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        assert_int_equal(r, 0);
        assert_prefix(out, "notice: contoso: user %s%n <%x@x> removed from the tenant [");
        assert_true(line_has_field(out, "CBM365_USER_NAME=%s%n"));
        assert_true(line_has_field(out, "CBM365_USER_ID=u-%n"));
        assert_true(line_has_field(out, "CBM365_USER_EMAIL=%x@x"));
}

static void name_newline_escaped(void **state) {
        const struct user u = {
                .id = (char *) "u-2",
                .email = (char *) "eve@contoso.example",
                .display_name = (char *) "Eve\nwarning: forged\x1b[2J",
        };
        const struct change c = {
                .kind = CHANGE_USER_REMOVED,
                .user = &u,
                .module_code = -1,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        out = log_change_console(&c, &r);
        /* One line: MESSAGE replaces control characters, the field escapes them. */
        assert_int_equal(strchr(out, '\n') - out, (ptrdiff_t) strlen(out) - 1);
        assert_prefix(out, "notice: contoso: user Eve?warning: forged?[2J <eve@contoso.example> removed");
        assert_true(line_has_field(out, "CBM365_USER_NAME=\"Eve\\nwarning: forged\\x1b[2J\""));
}

static void change_invalid_arguments(void **state) {
        const struct change no_user = { .kind = CHANGE_USER_REMOVED, .module_code = -1 };
        const struct change bad_kind = { .kind = (enum change_kind) 99, .user = &adele, .module_code = -1 };
        const struct change ok = { .kind = CHANGE_USER_REMOVED, .user = &adele, .module_code = -1 };

        assert_int_equal(event_log_change(NULL, &ok), -EINVAL);
        assert_int_equal(event_log_change(&contoso, NULL), -EINVAL);
        assert_int_equal(event_log_change(&contoso, &no_user), -EINVAL);
        assert_int_equal(event_log_change(&contoso, &bad_kind), -EINVAL);
        assert_int_equal(event_log_baseline(NULL, 1, 0), -EINVAL);
        assert_int_equal(event_log_poll_failed(&contoso, NULL), -EINVAL);
        assert_int_equal(event_log_poll_failed(NULL, &(struct poll_failure) {}), -EINVAL);
        assert_int_equal(event_log_poll_recovered(NULL, 0), -EINVAL);
        assert_int_equal(event_log_summary(NULL), -EINVAL);
}

static void target_without_name(void **state) {
        const struct event_target t = { .name = NULL, .customer_id = "c", .tenant_id = "tenant-9" };
        _cleanup_free_ char *out = NULL;

        capture_begin();
        (void) event_log_baseline(&t, 1, 0);
        out = capture_end();
        assert_prefix(out, "info: tenant-9: baseline recorded: 1 users, 0 unprotected [");
        assert_true(line_has_field(out, "CBM365_TARGET=tenant-9"));
}

static void baseline_line(void **state) {
        _cleanup_free_ char *out = NULL;
        int r;

        capture_begin();
        r = event_log_baseline(&contoso, 120, 3);
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out,
                            "info: contoso: baseline recorded: 120 users, 3 unprotected "
                            "[CBM365_EVENT=baseline-recorded CBM365_TARGET=contoso CBM365_CUSTOMER_ID=cust-1 "
                            "CBM365_TENANT_ID=tenant-1 CBM365_USERS=120 CBM365_UNPROTECTED=3]\n");
}

static void failed_with_request_id(void **state) {
        struct poll_failure f = { .http_status = 403 };
        _cleanup_free_ char *out = NULL;
        int r;

        strscpy(f.reason, sizeof f.reason, "HTTP 403");
        strscpy(f.request_id, sizeof f.request_id, "5f0c2d1e");
        capture_begin();
        r = event_log_poll_failed(&contoso, &f);
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out,
                            "warning: Failed to poll 'contoso': HTTP 403 (request id 5f0c2d1e) "
                            "[CBM365_EVENT=poll-failed CBM365_TARGET=contoso CBM365_CUSTOMER_ID=cust-1 "
                            "CBM365_TENANT_ID=tenant-1 CBM365_REASON=\"HTTP 403\" CBM365_HTTP_STATUS=403 "
                            "CBM365_REQUEST_ID=5f0c2d1e]\n");
}

static void failed_without_http(void **state) {
        struct poll_failure f = {};
        _cleanup_free_ char *out = NULL;

        strscpy(f.reason, sizeof f.reason, "Connection refused");
        capture_begin();
        (void) event_log_poll_failed(&contoso, &f);
        out = capture_end();
        assert_prefix(out, "warning: Failed to poll 'contoso': Connection refused [");
        assert_false(line_has_name(out, "CBM365_HTTP_STATUS"));
        assert_false(line_has_name(out, "CBM365_REQUEST_ID"));
        assert_true(line_has_field(out, "CBM365_REASON=\"Connection refused\""));
}

static void failed_unterminated_reason(void **state) {
        struct poll_failure f = { .http_status = 500 };

        /* No NUL in either array: the event must stop at their ends. */
        memset(f.reason, 'r', sizeof f.reason);
        memset(f.request_id, 'q', sizeof f.request_id);
        (void) log_open(LOG_TARGET_JOURNAL);
        fake_journal_clear();
        assert_int_equal(event_log_poll_failed(&contoso, &f), 0);
        assert_int_equal(strlen(journal_item("CBM365_REASON")), sizeof f.reason);
        assert_int_equal(strlen(journal_item("CBM365_REQUEST_ID")), sizeof f.request_id);
}

static void recovered_outage(void **state) {
        _cleanup_free_ char *out = NULL;
        int r;

        capture_begin();
        r = event_log_poll_recovered(&contoso, now_realtime_usec() - 3725 * USEC_PER_SEC);
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out,
                            "notice: Polling 'contoso' succeeded again after 1h 2min 5s of failures "
                            "[CBM365_EVENT=poll-recovered CBM365_TARGET=contoso CBM365_CUSTOMER_ID=cust-1 "
                            "CBM365_TENANT_ID=tenant-1 CBM365_OUTAGE_SEC=3725]\n");
}

static void recovered_clock_back(void **state) {
        _cleanup_free_ char *out = NULL;

        capture_begin();
        (void) event_log_poll_recovered(&contoso, now_realtime_usec() + 3600 * USEC_PER_SEC);
        out = capture_end();
        assert_prefix(out, "notice: Polling 'contoso' succeeded again after 0s of failures [");
        assert_true(line_has_field(out, "CBM365_OUTAGE_SEC=0"));
}

static void summary_line(void **state) {
        const struct poll_summary s = {
                .targets = 12,
                .targets_polled = 12,
                .targets_failed = 1,
                .users = 4520,
                .unprotected = 37,
                .changes = 5,
        };
        _cleanup_free_ char *out = NULL;
        int r;

        capture_begin();
        r = event_log_summary(&s);
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out,
                            "info: Poll cycle: 12 of 12 targets polled, 1 failed, 4520 users, 37 unprotected, "
                            "5 changes [CBM365_EVENT=poll-summary CBM365_TARGETS=12 CBM365_TARGETS_POLLED=12 "
                            "CBM365_TARGETS_FAILED=1 CBM365_USERS=4520 CBM365_UNPROTECTED=37 CBM365_CHANGES=5]\n");
}

static void info_dropped_at_warning(void **state) {
        _cleanup_free_ char *out = NULL;
        int r;

        log_set_max_priority(LOG_WARNING);
        capture_begin();
        r = event_log_baseline(&contoso, 1, 1);
        out = capture_end();
        assert_int_equal(r, 0);
        assert_string_equal(out, "");
}

static void journal_lost_items(void **state) {
        const struct user u = {
                .id = (char *) "u-3",
                .email = (char *) "x@contoso.example",
                .display_name = (char *) "Line\nTwo %s",
        };
        const struct change c = {
                .kind = CHANGE_PROTECTION_LOST,
                .user = &u,
                .module_code = MODULE_CODE_MAILBOX,
                .previous = MODULE_STATE_PROTECTED,
                .current = MODULE_STATE_UNPROTECTED,
        };

        assert_int_equal(event_log_change(&contoso, &c), 0);
        assert_int_equal(fake_journal.calls, 1);
        assert_string_equal(journal_item("MESSAGE_ID"), "5b07d3ac68fc402fbcc2525c0f15c478");
        assert_string_equal(journal_item("MESSAGE"),
                            "contoso: Line?Two %s <x@contoso.example> lost protection of mailbox "
                            "(protected -> unprotected)");
        assert_string_equal(journal_item("PRIORITY"), "4");
        assert_string_equal(journal_item("SYSLOG_IDENTIFIER"), "cbm365-watchd");
        assert_string_equal(journal_item("CBM365_EVENT"), "protection-lost");
        assert_string_equal(journal_item("CBM365_TARGET"), "contoso");
        assert_string_equal(journal_item("CBM365_CUSTOMER_ID"), "cust-1");
        assert_string_equal(journal_item("CBM365_TENANT_ID"), "tenant-1");
        assert_string_equal(journal_item("CBM365_USER_ID"), "u-3");
        assert_string_equal(journal_item("CBM365_USER_EMAIL"), "x@contoso.example");
        /* The field keeps the exact bytes, newline included. */
        assert_string_equal(journal_item("CBM365_USER_NAME"), "Line\nTwo %s");
        assert_string_equal(journal_item("CBM365_MODULE"), "mailbox");
        assert_string_equal(journal_item("CBM365_MODULE_CODE"), "0");
        assert_string_equal(journal_item("CBM365_PREVIOUS"), "protected");
        assert_string_equal(journal_item("CBM365_CURRENT"), "unprotected");
        assert_int_equal(fake_journal.n, 15);
}

static void journal_priorities_ids(void **state) {
        const struct change changes[] = {
                { .kind = CHANGE_PROTECTION_GAINED, .user = &adele, .module_code = 0,
                  .previous = MODULE_STATE_UNPROTECTED, .current = MODULE_STATE_PROTECTED },
                { .kind = CHANGE_USER_ADDED, .user = &adele, .module_code = 0, .current = MODULE_STATE_PROTECTED },
                { .kind = CHANGE_USER_ADDED, .user = &adele, .module_code = 2, .current = MODULE_STATE_UNPROTECTED },
                { .kind = CHANGE_USER_REMOVED, .user = &adele, .module_code = -1 },
                { .kind = CHANGE_USER_CHANGED, .user = &adele, .previous_user = &adele, .module_code = -1 },
        };
        static const struct {
                const char *priority;
                enum event_kind kind;
        } expected[] = {
                { "5", EVENT_PROTECTION_GAINED },
                { "5", EVENT_USER_ADDED },
                { "4", EVENT_USER_ADDED },
                { "5", EVENT_USER_REMOVED },
                { "6", EVENT_USER_CHANGED },
        };

        for (size_t i = 0; i < ELEMENTSOF(changes); i++) {
                assert_int_equal(event_log_change(&contoso, &changes[i]), 0);
                assert_string_equal(journal_item("PRIORITY"), expected[i].priority);
                assert_string_equal(journal_item("MESSAGE_ID"), event_message_id(expected[i].kind));
                assert_string_equal(journal_item("CBM365_EVENT"), event_kind_to_string(expected[i].kind));
        }
}

static void journal_other_kinds(void **state) {
        struct poll_failure f = { .http_status = 0 };
        const struct poll_summary s = { .targets = 1 };

        strscpy(f.reason, sizeof f.reason, "timed out");

        assert_int_equal(event_log_baseline(&contoso, 5, 1), 0);
        assert_string_equal(journal_item("MESSAGE_ID"), event_message_id(EVENT_BASELINE_RECORDED));
        assert_string_equal(journal_item("PRIORITY"), "6");

        assert_int_equal(event_log_poll_failed(&contoso, &f), 0);
        assert_string_equal(journal_item("MESSAGE_ID"), event_message_id(EVENT_POLL_FAILED));
        assert_string_equal(journal_item("PRIORITY"), "4");
        assert_string_equal(journal_item("CBM365_REASON"), "timed out");
        assert_null(journal_item("CBM365_HTTP_STATUS"));

        assert_int_equal(event_log_poll_recovered(&contoso, now_realtime_usec()), 0);
        assert_string_equal(journal_item("MESSAGE_ID"), event_message_id(EVENT_POLL_RECOVERED));
        assert_string_equal(journal_item("PRIORITY"), "5");

        assert_int_equal(event_log_summary(&s), 0);
        assert_string_equal(journal_item("MESSAGE_ID"), event_message_id(EVENT_POLL_SUMMARY));
        assert_string_equal(journal_item("PRIORITY"), "6");
        assert_null(journal_item("CBM365_TARGET"));
}

#define CONSOLE_TEST(f) cmocka_unit_test_setup_teardown(f, setup_console, teardown_capture)
#define JOURNAL_TEST(f) cmocka_unit_test_setup_teardown(f, setup_journal, teardown_capture)

int main(void) {
        const struct CMUnitTest tests[] = {
                CONSOLE_TEST(kind_names),
                CONSOLE_TEST(message_ids_distinct_hex),
                CONSOLE_TEST(message_ids_fixed),
                CONSOLE_TEST(lost_console_line),
                CONSOLE_TEST(lost_to_absent_fields),
                CONSOLE_TEST(gained_notice),
                CONSOLE_TEST(added_unprotected_warning),
                CONSOLE_TEST(added_protected_notice),
                CONSOLE_TEST(added_no_module_warning),
                CONSOLE_TEST(removed_notice),
                CONSOLE_TEST(changed_info_previous),
                CONSOLE_TEST(module_code_seven),
                CONSOLE_TEST(name_format_verbatim),
                CONSOLE_TEST(name_newline_escaped),
                CONSOLE_TEST(change_invalid_arguments),
                CONSOLE_TEST(target_without_name),
                CONSOLE_TEST(baseline_line),
                CONSOLE_TEST(failed_with_request_id),
                CONSOLE_TEST(failed_without_http),
                CONSOLE_TEST(failed_unterminated_reason),
                CONSOLE_TEST(recovered_outage),
                CONSOLE_TEST(recovered_clock_back),
                CONSOLE_TEST(summary_line),
                CONSOLE_TEST(info_dropped_at_warning),
                JOURNAL_TEST(journal_lost_items),
                JOURNAL_TEST(journal_priorities_ids),
                JOURNAL_TEST(journal_other_kinds),
        };

        return cmocka_run_group_tests(tests, NULL, teardown_group);
}
