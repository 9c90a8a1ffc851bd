/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "reply.h"
#include "util.h"
#include "view.h"

#define REASON_SIZE 256

/* Reads tests/fixtures/reply/NAME into a malloc'ed buffer. *ret_size excludes
 * the NUL terminator that the buffer ends with. */
static char *read_fixture(const char *name, size_t *ret_size) {
        char path[512];
        _cleanup_close_ int fd = -1;
        struct stat st;
        char *buf;
        ssize_t n;

        (void) snprintf(path, sizeof(path), "%s/reply/%s", FIXTURE_DIR, name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        assert_non_null(buf);
        n = read(fd, buf, (size_t) st.st_size);
        assert_int_equal(n, st.st_size);
        buf[n] = '\0';
        *ret_size = (size_t) n;
        return buf;
}

static int parse_fixture(const char *name, struct tenant_view *v, struct page_meta *meta, char *reason) {
        _cleanup_free_ char *body = NULL;
        size_t size;

        body = read_fixture(name, &size);
        return reply_parse_page(body, size, v, meta, reason, REASON_SIZE);
}

static int parse_text(const char *text, struct tenant_view *v, char *reason) {
        struct page_meta meta;

        return reply_parse_page(text, strlen(text), v, &meta, reason, REASON_SIZE);
}

/* Parses a fixture that must be rejected, and checks that the view stayed
 * empty. */
static void assert_fixture_rejected(const char *name, const char *expected_reason) {
        struct tenant_view v = {};
        struct page_meta meta = { .page_index = -7 };
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture(name, &v, &meta, reason), -EBADMSG);
        assert_string_equal(reason, expected_reason);
        assert_int_equal(v.n_users, 0);
        assert_int_equal(meta.page_index, -7);
        tenant_view_done(&v);
}

static void assert_text_rejected(const char *text, const char *expected_reason) {
        struct tenant_view v = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_text(text, &v, reason), -EBADMSG);
        assert_string_equal(reason, expected_reason);
        assert_int_equal(v.n_users, 0);
        tenant_view_done(&v);
}

/* Wraps one user object (JSON text) into a page. */
static void assert_user_rejected(const char *user, const char *expected_reason) {
        char text[16384];

        (void) snprintf(text, sizeof(text),
                        "{\"data\":[%s],\"metadata\":{\"pageIndex\":1,\"pageSize\":100,\"totalCount\":1}}", user);
        assert_text_rejected(text, expected_reason);
}

static void assert_metadata_rejected(const char *metadata, const char *expected_reason) {
        char text[1024];

        (void) snprintf(text, sizeof(text), "{\"data\":[],\"metadata\":%s}", metadata);
        assert_text_rejected(text, expected_reason);
}

static void assert_vendor_sample(const struct tenant_view *v, const struct page_meta *meta) {
        const struct user *u = &v->users[0];

        assert_int_equal(v->n_users, 1);
        assert_string_equal(u->id, "96c5a607-****-12d7-****-b1a1****aeae");
        assert_string_equal(u->email, "user@domain.onmicrosoft.com");
        assert_string_equal(u->display_name, "UserA");
        assert_int_equal(u->n_modules, 2);
        assert_int_equal(u->modules[0].code, MODULE_CODE_MAILBOX);
        assert_false(u->modules[0].is_protected);
        assert_int_equal(u->modules[1].code, MODULE_CODE_ONEDRIVE);
        assert_true(u->modules[1].is_protected);
        assert_int_equal(meta->page_index, 1);
        assert_int_equal(meta->page_size, 50);
        assert_int_equal(meta->total_count, 1);
        assert_int_equal(meta->n_users, 1);
}

static void reply_vendor_sample(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("sample.json", &v, &meta, reason), 0);
        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), 0);
        assert_vendor_sample(&v, &meta);
        assert_string_equal(reason, "");
        tenant_view_done(&v);
}

static void reply_pascal_case(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("sample-pascal-case.json", &v, &meta, reason), 0);
        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), 0);
        assert_vendor_sample(&v, &meta);
        tenant_view_done(&v);
}

static void reply_unknown_module(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "", name[32];
        const struct user *u;

        assert_int_equal(parse_fixture("unknown-module.json", &v, &meta, reason), 0);
        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), 0);

        u = &v.users[0];
        assert_string_equal(u->id, "4f0c2d7e-1b3a-4c5d-9e8f-0a1b2c3d4e5f");
        assert_string_equal(u->email, "teams.user@contoso.example");
        assert_string_equal(u->display_name, "Teams User");
        assert_int_equal(u->n_modules, 2);
        assert_int_equal(u->modules[0].code, 0);
        assert_true(u->modules[0].is_protected);
        assert_int_equal(u->modules[1].code, 7);
        assert_true(u->modules[1].is_protected);
        assert_string_equal(module_name(u->modules[1].code, name, sizeof(name)), "module-7");
        assert_int_equal(meta.page_size, 100);
        tenant_view_done(&v);
}

static void reply_empty_last_page(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("empty-last-page.json", &v, &meta, reason), 0);
        assert_int_equal(v.n_users, 0);
        assert_int_equal(meta.n_users, 0);
        assert_int_equal(meta.page_index, 3);
        assert_int_equal(meta.page_size, 100);
        assert_int_equal(meta.total_count, 200);
        tenant_view_done(&v);
}

static void reply_mixed_page(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("mixed-page.json", &v, &meta, reason), 0);
        assert_int_equal(meta.n_users, 3);
        assert_int_equal(meta.page_index, 2);
        assert_int_equal(meta.page_size, 3);
        assert_int_equal(meta.total_count, 5);
        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), 0);

        assert_string_equal(v.users[0].id, "a1");
        assert_string_equal(v.users[0].email, "Zo\xc3\xab.O'Neil@contoso.example");
        assert_string_equal(v.users[0].display_name, "Zo\xc3\xab \"Z\" O'Neil");
        assert_int_equal(v.users[0].n_modules, 1);
        assert_int_equal(v.users[0].modules[0].code, 2);
        assert_false(v.users[0].modules[0].is_protected);

        assert_string_equal(v.users[1].id, "b2");
        assert_string_equal(v.users[1].email, "");
        assert_int_equal(v.users[1].n_modules, 1);
        assert_int_equal(v.users[1].modules[0].code, 0);
        assert_true(v.users[1].modules[0].is_protected);

        assert_string_equal(v.users[2].id, "c3");
        assert_string_equal(v.users[2].email, "");
        assert_string_equal(v.users[2].display_name, "");
        assert_int_equal(v.users[2].n_modules, 0);
        assert_null(v.users[2].modules);
        tenant_view_done(&v);
}

static void reply_pages_append(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("sample.json", &v, &meta, reason), 0);
        assert_int_equal(parse_fixture("unknown-module.json", &v, &meta, reason), 0);
        assert_int_equal(meta.n_users, 1);
        assert_int_equal(v.n_users, 2);
        assert_int_equal(tenant_view_finish(&v, reason, sizeof(reason)), 0);
        assert_string_equal(v.users[0].id, "4f0c2d7e-1b3a-4c5d-9e8f-0a1b2c3d4e5f");
        assert_string_equal(v.users[1].id, "96c5a607-****-12d7-****-b1a1****aeae");
        tenant_view_done(&v);
}

static void reply_failure_keeps_view(void **state) {
        struct tenant_view v = {};
        struct page_meta meta = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("sample.json", &v, &meta, reason), 0);
        /* data[0] is valid and appended before data[1] fails. */
        assert_int_equal(parse_fixture("bad-is-protected-string.json", &v, &meta, reason), -EBADMSG);
        assert_int_equal(v.n_users, 1);
        assert_string_equal(v.users[0].id, "96c5a607-****-12d7-****-b1a1****aeae");
        assert_int_equal(meta.page_size, 50);
        tenant_view_done(&v);
}

static void reply_bad_fixtures(void **state) {
        assert_fixture_rejected("bad-invalid-json.json", "invalid JSON at offset 10: unexpected character");
        assert_fixture_rejected("bad-truncated.json", "invalid JSON at offset 148: unexpected end of data");
        assert_fixture_rejected("bad-data-missing.json", "data: missing");
        assert_fixture_rejected("bad-metadata-missing.json", "metadata: missing");
        assert_fixture_rejected("bad-total-count-string.json", "metadata.totalCount: expected an integer");
        assert_fixture_rejected("bad-is-protected-string.json",
                                "data[1].moduleStatus[1].isProtected: expected a boolean");
        assert_fixture_rejected("bad-module-status-missing.json", "data[0].moduleStatus: missing");
        assert_fixture_rejected("bad-id-empty.json", "data[0].id: empty");
        assert_fixture_rejected("bad-id-not-string.json", "data[0].id: expected a string");
        assert_fixture_rejected("bad-embedded-nul.json", "data[0].displayName: contains a NUL character");
        assert_fixture_rejected("bad-too-deep.json", "invalid JSON at offset 512: nesting too deep");
        assert_fixture_rejected("bad-trailing-garbage.json", "invalid JSON at offset 198: unexpected character");
}

static void reply_bad_json(void **state) {
        assert_text_rejected("", "invalid JSON at offset 0: unexpected end of data");
        assert_text_rejected("   \n", "invalid JSON at offset 4: unexpected end of data");
        assert_text_rejected("[]", "top-level value: expected an object, got an array");
        assert_text_rejected("42", "top-level value: expected an object, got an integer");
        assert_text_rejected("null", "top-level value: expected an object, got null");
        assert_text_rejected("1.5", "top-level value: expected an object, got a number with a fraction or exponent");
        assert_text_rejected("\"x\"", "top-level value: expected an object, got a string");
        assert_text_rejected("{\"data\":[],}", "invalid JSON at offset 11: unexpected character");
        assert_text_rejected("{\"data\":[]} {}", "invalid JSON at offset 12: unexpected character");
        assert_text_rejected("{\"data\":tru}", "invalid JSON at offset 11: boolean expected");
}

static void reply_raw_nul_byte(void **state) {
        static const char body[] = "{\"data\":[]\0,\"metadata\":{}}";
        struct tenant_view v = {};
        struct page_meta meta;
        char reason[REASON_SIZE] = "";

        assert_int_equal(reply_parse_page(body, sizeof(body) - 1, &v, &meta, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "invalid JSON at offset 10: unexpected end of data");
}

static void reply_nul_after_object(void **state) {
        static const char body[] = "{\"data\":[],\"metadata\":{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":0}}\0junk";
        struct tenant_view v = {};
        struct page_meta meta;
        char reason[REASON_SIZE] = "";

        assert_int_equal(reply_parse_page(body, sizeof(body) - 1, &v, &meta, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "invalid JSON at offset 66: unexpected data after the top-level value");
}

static void reply_trailing_whitespace(void **state) {
        struct tenant_view v = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_text(" \t{\"data\":[],\"metadata\":{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":0}}"
                                    " \r\n\t\n", &v, reason), 0);
        assert_int_equal(v.n_users, 0);
}

static void reply_body_too_large(void **state) {
        struct tenant_view v = {};
        struct page_meta meta;
        char reason[REASON_SIZE] = "";
        _cleanup_free_ char *body = NULL;

        body = malloc(REPLY_BODY_MAX + 1);
        assert_non_null(body);
        memset(body, ' ', REPLY_BODY_MAX + 1);
        assert_int_equal(reply_parse_page(body, REPLY_BODY_MAX + 1, &v, &meta, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "reply body of 16777217 bytes exceeds the limit of 16777216 bytes");
}

/* Parses a page whose user has an "extra" member of `arrays` nested arrays.
 * The page itself adds three levels (top, data, user). */
static void assert_depth(int arrays, int expected) {
        char text[1024];
        struct tenant_view v = {};
        char reason[REASON_SIZE] = "";
        size_t n = 0;

        n += (size_t) snprintf(text + n, sizeof(text) - n, "{\"data\":[{\"id\":\"u\",\"email\":\"\",\"displayName\":\"\","
                               "\"moduleStatus\":[],\"extra\":");
        for (int i = 0; i < arrays; i++)
                text[n++] = '[';
        for (int i = 0; i < arrays; i++)
                text[n++] = ']';
        (void) snprintf(text + n, sizeof(text) - n, "}],\"metadata\":{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":1}}");

        assert_int_equal(parse_text(text, &v, reason), expected);
        tenant_view_done(&v);
}

static void reply_depth_limit(void **state) {
        assert_depth(REPLY_DEPTH_MAX - 3, 0);
        assert_depth(REPLY_DEPTH_MAX - 2, -EBADMSG);
}

static void reply_bad_metadata(void **state) {
        assert_text_rejected("{\"data\":{},\"metadata\":{}}", "data: expected an array");
        assert_text_rejected("{\"data\":[],\"metadata\":[]}", "metadata: expected an object");
        assert_text_rejected("{\"data\":[],\"metadata\":null}", "metadata: expected an object");
        assert_metadata_rejected("{\"pageSize\":1,\"totalCount\":0}", "metadata.pageIndex: missing");
        assert_metadata_rejected("{\"pageIndex\":1,\"totalCount\":0}", "metadata.pageSize: missing");
        assert_metadata_rejected("{\"pageIndex\":1,\"pageSize\":1}", "metadata.totalCount: missing");
        assert_metadata_rejected("{\"pageIndex\":0,\"pageSize\":1,\"totalCount\":0}",
                                 "metadata.pageIndex: 0 is out of range 1..2000000");
        assert_metadata_rejected("{\"pageIndex\":1,\"pageSize\":0,\"totalCount\":0}",
                                 "metadata.pageSize: 0 is out of range 1..2000000");
        assert_metadata_rejected("{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":-1}",
                                 "metadata.totalCount: -1 is out of range 0..2000000");
        assert_metadata_rejected("{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":99999999999999999999}",
                                 "metadata.totalCount: 9223372036854775807 is out of range 0..2000000");
        assert_metadata_rejected("{\"pageIndex\":1.0,\"pageSize\":1,\"totalCount\":0}",
                                 "metadata.pageIndex: expected an integer");
        assert_metadata_rejected("{\"pageIndex\":1,\"pageSize\":true,\"totalCount\":0}",
                                 "metadata.pageSize: expected an integer");
}

static void reply_bad_users(void **state) {
        char id[VIEW_ID_MAX + 2], user[4096];

        assert_text_rejected("{\"data\":[null],\"metadata\":{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":1}}",
                             "data[0]: expected an object");
        assert_user_rejected("{\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":[]}", "data[0].id: missing");
        assert_user_rejected("{\"id\":null,\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":[]}",
                             "data[0].id: expected a string");
        assert_user_rejected("{\"id\":\"u\",\"displayName\":\"\",\"moduleStatus\":[]}", "data[0].email: missing");
        assert_user_rejected("{\"id\":\"u\",\"email\":3,\"displayName\":\"\",\"moduleStatus\":[]}",
                             "data[0].email: expected a string");
        assert_user_rejected("{\"id\":\"u\",\"email\":\"\",\"moduleStatus\":[]}", "data[0].displayName: missing");
        assert_user_rejected("{\"id\":\"u\",\"email\":\"a\\u0000b\",\"displayName\":\"\",\"moduleStatus\":[]}",
                             "data[0].email: contains a NUL character");
        assert_user_rejected("{\"id\":\"\\u0000\",\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":[]}",
                             "data[0].id: contains a NUL character");

        memset(id, 'i', sizeof(id) - 1);
        id[sizeof(id) - 1] = '\0';
        (void) snprintf(user, sizeof(user), "{\"id\":\"%s\",\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":[]}", id);
        assert_user_rejected(user, "data[0].id: longer than 256 bytes");
}

static void reply_string_limits(void **state) {
        char email[VIEW_EMAIL_MAX + 2], name[VIEW_NAME_MAX + 2], text[4096];
        struct tenant_view v = {};
        char reason[REASON_SIZE] = "";

        memset(email, 'e', VIEW_EMAIL_MAX);
        email[VIEW_EMAIL_MAX] = '\0';
        memset(name, 'n', VIEW_NAME_MAX);
        name[VIEW_NAME_MAX] = '\0';
        (void) snprintf(text, sizeof(text),
                        "{\"data\":[{\"id\":\"u\",\"email\":\"%s\",\"displayName\":\"%s\",\"moduleStatus\":[]}],"
                        "\"metadata\":{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":1}}", email, name);
        assert_int_equal(parse_text(text, &v, reason), 0);
        assert_int_equal(strlen(v.users[0].email), VIEW_EMAIL_MAX);
        assert_int_equal(strlen(v.users[0].display_name), VIEW_NAME_MAX);
        tenant_view_done(&v);

        email[VIEW_EMAIL_MAX] = 'e';
        email[VIEW_EMAIL_MAX + 1] = '\0';
        (void) snprintf(text, sizeof(text), "{\"id\":\"u\",\"email\":\"%s\",\"displayName\":\"\",\"moduleStatus\":[]}",
                        email);
        assert_user_rejected(text, "data[0].email: longer than 512 bytes");

        name[VIEW_NAME_MAX] = 'n';
        name[VIEW_NAME_MAX + 1] = '\0';
        (void) snprintf(text, sizeof(text), "{\"id\":\"u\",\"email\":\"\",\"displayName\":\"%s\",\"moduleStatus\":[]}",
                        name);
        assert_user_rejected(text, "data[0].displayName: longer than 1024 bytes");
}

static void reply_bad_modules(void **state) {
#define USER_WITH(modules) "{\"id\":\"u\",\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":" modules "}"
        assert_user_rejected(USER_WITH("null"), "data[0].moduleStatus: expected an array");
        assert_user_rejected(USER_WITH("{}"), "data[0].moduleStatus: expected an array");
        assert_user_rejected(USER_WITH("[1]"), "data[0].moduleStatus[0]: expected an object");
        assert_user_rejected(USER_WITH("[{\"isProtected\":true}]"), "data[0].moduleStatus[0].module: missing");
        assert_user_rejected(USER_WITH("[{\"module\":0}]"), "data[0].moduleStatus[0].isProtected: missing");
        assert_user_rejected(USER_WITH("[{\"module\":0,\"Module\":2,\"isProtected\":true}]"),
                             "data[0].moduleStatus[0]: module and Module differ");
        assert_user_rejected(USER_WITH("[{\"module\":0,\"isProtected\":true,\"IsProtected\":false}]"),
                             "data[0].moduleStatus[0]: isProtected and IsProtected differ");
        assert_user_rejected(USER_WITH("[{\"module\":0,\"isProtected\":true},{\"Module\":\"2\",\"isProtected\":true}]"),
                             "data[0].moduleStatus[1].Module: expected an integer");
        assert_user_rejected(USER_WITH("[{\"module\":2.0,\"isProtected\":true}]"),
                             "data[0].moduleStatus[0].module: expected an integer");
        assert_user_rejected(USER_WITH("[{\"module\":-1,\"isProtected\":true}]"),
                             "data[0].moduleStatus[0].module: -1 is out of range 0..1000000");
        assert_user_rejected(USER_WITH("[{\"module\":1000001,\"isProtected\":true}]"),
                             "data[0].moduleStatus[0].module: 1000001 is out of range 0..1000000");
        assert_user_rejected(USER_WITH("[{\"module\":0,\"IsProtected\":\"true\"}]"),
                             "data[0].moduleStatus[0].IsProtected: expected a boolean");
        assert_user_rejected(USER_WITH("[{\"module\":0,\"isProtected\":1}]"),
                             "data[0].moduleStatus[0].isProtected: expected a boolean");
        assert_user_rejected(USER_WITH("[{\"module\":0,\"isProtected\":null}]"),
                             "data[0].moduleStatus[0].isProtected: expected a boolean");
#undef USER_WITH
}

static void reply_module_code_limit(void **state) {
        struct tenant_view v = {};
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_text("{\"data\":[{\"id\":\"u\",\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":"
                                    "[{\"module\":1000000,\"isProtected\":false}]}],"
                                    "\"metadata\":{\"pageIndex\":1,\"pageSize\":1,\"totalCount\":1}}", &v, reason), 0);
        assert_int_equal(v.users[0].modules[0].code, 1000000);
        assert_false(v.users[0].modules[0].is_protected);
        tenant_view_done(&v);
}

static void reply_too_many_modules(void **state) {
        char text[4096];
        size_t n = 0;

        n += (size_t) snprintf(text + n, sizeof(text) - n, "{\"id\":\"u\",\"email\":\"\",\"displayName\":\"\",\"moduleStatus\":[");
        for (int i = 0; i <= VIEW_MODULES_MAX; i++)
                n += (size_t) snprintf(text + n, sizeof(text) - n, "%s{\"module\":%d,\"isProtected\":true}",
                                       i > 0 ? "," : "", i);
        (void) snprintf(text + n, sizeof(text) - n, "]}");
        assert_user_rejected(text, "data[0].moduleStatus: 65 entries exceed the limit of 64");
}

static void reply_tenant_too_large(void **state) {
        /* A full view is faked: nothing reads its users before the size check. */
        struct tenant_view v = { .n_users = VIEW_USERS_MAX, .capacity = VIEW_USERS_MAX };
        char reason[REASON_SIZE] = "";

        assert_int_equal(parse_fixture("sample.json", &v, NULL, reason), -E2BIG);
        assert_string_equal(reason, "data[0]: the tenant has more than 2000000 users");
        assert_int_equal(v.n_users, VIEW_USERS_MAX);
}

static void reply_request_body_all(void **state) {
        _cleanup_free_ char *body = NULL;

        assert_int_equal(reply_build_request_body(NULL, 0, &body), 0);
        assert_string_equal(body, "{}");
}

static void reply_request_body_emails(void **state) {
        char *emails[] = { (char *) "a@x", (char *) "b@y" };
        _cleanup_free_ char *body = NULL;

        assert_int_equal(reply_build_request_body(emails, ELEMENTSOF(emails), &body), 0);
        assert_string_equal(body, "{\"userEmails\":[\"a@x\",\"b@y\"]}");
}

static void reply_request_body_escaped(void **state) {
        char *emails[] = { (char *) "q\"b\\s/\x01@x" };
        _cleanup_free_ char *body = NULL;

        assert_int_equal(reply_build_request_body(emails, ELEMENTSOF(emails), &body), 0);
        assert_string_equal(body, "{\"userEmails\":[\"q\\\"b\\\\s/\\u0001@x\"]}");
}

static void reply_request_body_null_email(void **state) {
        char *emails[] = { (char *) "a@x", NULL };
        char *body = NULL;

        assert_int_equal(reply_build_request_body(emails, ELEMENTSOF(emails), &body), -EINVAL);
        assert_null(body);
        assert_int_equal(reply_build_request_body(NULL, 1, &body), -EINVAL);
        assert_null(body);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(reply_vendor_sample),
                cmocka_unit_test(reply_pascal_case),
                cmocka_unit_test(reply_unknown_module),
                cmocka_unit_test(reply_empty_last_page),
                cmocka_unit_test(reply_mixed_page),
                cmocka_unit_test(reply_pages_append),
                cmocka_unit_test(reply_failure_keeps_view),
                cmocka_unit_test(reply_bad_fixtures),
                cmocka_unit_test(reply_bad_json),
                cmocka_unit_test(reply_raw_nul_byte),
                cmocka_unit_test(reply_nul_after_object),
                cmocka_unit_test(reply_trailing_whitespace),
                cmocka_unit_test(reply_body_too_large),
                cmocka_unit_test(reply_depth_limit),
                cmocka_unit_test(reply_bad_metadata),
                cmocka_unit_test(reply_bad_users),
                cmocka_unit_test(reply_string_limits),
                cmocka_unit_test(reply_bad_modules),
                cmocka_unit_test(reply_module_code_limit),
                cmocka_unit_test(reply_too_many_modules),
                cmocka_unit_test(reply_tenant_too_large),
                cmocka_unit_test(reply_request_body_all),
                cmocka_unit_test(reply_request_body_emails),
                cmocka_unit_test(reply_request_body_escaped),
                cmocka_unit_test(reply_request_body_null_email),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
