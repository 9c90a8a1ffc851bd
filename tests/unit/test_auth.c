/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth.h"
#include "util.h"

#define TOKEN "eyJhbGciOi.SECRET-TOKEN-VALUE_x-1~"
#define SECRET "a&b=c +%/\xc3\xa9"

static int parse(long status, const char *body, struct token *t, char *reason, size_t reason_size) {
        return auth_parse_reply(status, body, body ? strlen(body) : 0, t, reason, reason_size);
}

static void body_special_characters(void **state) {
        char *body = NULL;

        assert_int_equal(auth_build_request_body("watchd-test", SECRET, "elements.cbprotected.read.all", &body), 0);
        assert_string_equal(body,
                            "grant_type=client_credentials&client_id=watchd-test"
                            "&client_secret=a%26b%3Dc%20%2B%25%2F%C3%A9"
                            "&scope=elements.cbprotected.read.all");
        secret_free(body);
}

static void body_unreserved_kept(void **state) {
        char *body = NULL;

        assert_int_equal(auth_build_request_body("id-1._~", "Az09-._~", "a b", &body), 0);
        assert_string_equal(body,
                            "grant_type=client_credentials&client_id=id-1._~&client_secret=Az09-._~&scope=a%20b");
        secret_free(body);
}

static void body_without_scope(void **state) {
        char *body = NULL;

        assert_int_equal(auth_build_request_body("id", "s", NULL, &body), 0);
        assert_string_equal(body, "grant_type=client_credentials&client_id=id&client_secret=s");
        secret_free(body);
}

static void body_missing_secret(void **state) {
        char *body = (char *) "unchanged";

        assert_int_equal(auth_build_request_body("id", NULL, "scope", &body), -EINVAL);
        assert_int_equal(auth_build_request_body("id", "", "scope", &body), -EINVAL);
        assert_int_equal(auth_build_request_body(NULL, "s", "scope", &body), -EINVAL);
        assert_string_equal(body, "unchanged");
}

static void parse_good_reply(void **state) {
        struct token t = {};
        char reason[256] = "";

        assert_int_equal(parse(200,
                               "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\","
                               "\"expires_in\":3600,\"ext_expires_in\":3600,\"scope\":\"x\"}\n",
                               &t, reason, sizeof reason), 0);
        assert_string_equal(t.access_token, TOKEN);
        assert_int_equal(t.expires_in_sec, 3600);
        assert_string_equal(reason, "");
        token_done(&t);
        assert_null(t.access_token);
}

static void parse_bearer_any_case(void **state) {
        struct token t = {};

        assert_int_equal(parse(200, "{\"access_token\":\"abc\",\"token_type\":\"bEaReR\",\"expires_in\":60}",
                               &t, NULL, 0), 0);
        assert_string_equal(t.access_token, "abc");
        assert_int_equal(t.expires_in_sec, 60);
        token_done(&t);
}

/* Each bad 200 reply with the reason it must give. */
static const struct {
        const char *body;
        const char *reason;
} bad_replies[] = {
        { "{\"token_type\":\"Bearer\",\"expires_in\":3600}",
          "Token reply has no \"access_token\" string" },
        { "{\"access_token\":42,\"token_type\":\"Bearer\",\"expires_in\":3600}",
          "Token reply has no \"access_token\" string" },
        { "{\"access_token\":\"\",\"token_type\":\"Bearer\",\"expires_in\":3600}",
          "Token reply has an invalid \"access_token\" (empty, over 16384 bytes, or with spaces or control characters)" },
        { "{\"access_token\":\"" TOKEN " x\",\"token_type\":\"Bearer\",\"expires_in\":3600}",
          "Token reply has an invalid \"access_token\" (empty, over 16384 bytes, or with spaces or control characters)" },
        { "{\"access_token\":\"" TOKEN "\\n\",\"token_type\":\"Bearer\",\"expires_in\":3600}",
          "Token reply has an invalid \"access_token\" (empty, over 16384 bytes, or with spaces or control characters)" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"mac\",\"expires_in\":3600}",
          "Token reply has token_type \"mac\", expected \"Bearer\"" },
        { "{\"access_token\":\"" TOKEN "\",\"expires_in\":3600}",
          "Token reply has no \"token_type\" string" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"expires_in\":\"3600\"}",
          "Token reply has no integer \"expires_in\"" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"expires_in\":3600.5}",
          "Token reply has no integer \"expires_in\"" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\"}",
          "Token reply has no integer \"expires_in\"" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"expires_in\":0}",
          "Token reply has \"expires_in\" 0, out of range 1..2147483647" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"expires_in\":-5}",
          "Token reply has \"expires_in\" -5, out of range 1..2147483647" },
        { "[\"" TOKEN "\"]", "Token reply is not a JSON object" },
        { "{\"access_token\":\"" TOKEN "\",\"token_type\":\"Bearer\",\"expires_in\":1} trailing",
          "Token reply is not a JSON object" },
        { "<html>" TOKEN "</html>", "Token reply is not a JSON object" },
        { "", "Token reply is not a JSON object" },
};

static void parse_bad_replies(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(bad_replies); i++) {
                struct token t = { .access_token = (char *) "unchanged", .expires_in_sec = 7 };
                char reason[256] = "";

                assert_int_equal(parse(200, bad_replies[i].body, &t, reason, sizeof reason), -EBADMSG);
                assert_string_equal(reason, bad_replies[i].reason);
                assert_null(strstr(reason, "SECRET-TOKEN-VALUE"));
                assert_string_equal(t.access_token, "unchanged");
                assert_int_equal(t.expires_in_sec, 7);
        }
}

static void parse_token_too_long(void **state) {
        size_t n = 16 * 1024 + 1;
        _cleanup_free_ char *body = malloc(n + 128);
        struct token t = {};
        char reason[256] = "";
        int len;

        assert_non_null(body);
        len = snprintf(body, n + 128, "{\"access_token\":\"%0*d\",\"token_type\":\"Bearer\",\"expires_in\":60}", (int) n, 1);
        assert_true(len > 0);
        assert_int_equal(auth_parse_reply(200, body, (size_t) len, &t, reason, sizeof reason), -EBADMSG);
        assert_non_null(strstr(reason, "invalid \"access_token\""));
}

static void parse_reply_too_large(void **state) {
        _cleanup_free_ char *body = malloc(AUTH_REPLY_MAX + 1);
        struct token t = {};
        char reason[256] = "";

        assert_non_null(body);
        memset(body, ' ', AUTH_REPLY_MAX + 1);
        memcpy(body, "{}", 2);
        assert_int_equal(auth_parse_reply(200, body, AUTH_REPLY_MAX + 1, &t, reason, sizeof reason), -EFBIG);
        assert_string_equal(reason, "Token reply is larger than 65536 bytes");
}

static void parse_oauth_error(void **state) {
        struct token t = {};
        char reason[256] = "";

        assert_int_equal(parse(400, "{\"error\":\"invalid_client\",\"error_description\":\"Invalid client credentials\"}",
                               &t, reason, sizeof reason), -EACCES);
        assert_string_equal(reason, "HTTP 400: invalid_client (Invalid client credentials)");
        assert_null(t.access_token);
}

static void parse_oauth_error_no_description(void **state) {
        char reason[256] = "";
        struct token t = {};

        assert_int_equal(parse(401, "{\"error\":\"invalid_scope\"}", &t, reason, sizeof reason), -EACCES);
        assert_string_equal(reason, "HTTP 401: invalid_scope");
}

static void parse_oauth_error_stripped(void **state) {
        char description[400], body[512], reason[512] = "", expected[300];
        struct token t = {};

        memset(description, 'd', 300);
        description[300] = '\0';
        (void) snprintf(body, sizeof body, "{\"error\":\"bad\\u0007_\\nclient\",\"error_description\":\"%s\"}", description);
        memset(expected, 'd', 200);
        expected[200] = '\0';

        assert_int_equal(parse(500, body, &t, reason, sizeof reason), -EIO);
        assert_non_null(strstr(reason, "HTTP 500: bad_client ("));
        assert_non_null(strstr(reason, expected));
        assert_null(strstr(reason, description));
}

static void parse_html_error(void **state) {
        char reason[256] = "";
        struct token t = {};

        assert_int_equal(parse(502, "<html><body>Bad Gateway</body></html>", &t, reason, sizeof reason), -EIO);
        assert_string_equal(reason, "HTTP 502 from the token endpoint");
}

static void parse_error_without_error_field(void **state) {
        char reason[256] = "";
        struct token t = {};

        assert_int_equal(parse(403, "{\"message\":\"forbidden\"}", &t, reason, sizeof reason), -EACCES);
        assert_string_equal(reason, "HTTP 403 from the token endpoint");
        assert_int_equal(parse(503, NULL, &t, reason, sizeof reason), -EIO);
        assert_string_equal(reason, "HTTP 503 from the token endpoint");
}

/* An error reply that also carries a token must not put it into the reason. */
static void parse_error_hides_token(void **state) {
        char reason[256] = "";
        struct token t = {};

        assert_int_equal(parse(400, "{\"error\":\"invalid_request\",\"access_token\":\"" TOKEN "\","
                                    "\"token_type\":\"Bearer\",\"expires_in\":60}",
                               &t, reason, sizeof reason), -EACCES);
        assert_string_equal(reason, "HTTP 400: invalid_request");
        assert_null(strstr(reason, "SECRET-TOKEN-VALUE"));
        assert_null(t.access_token);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(body_special_characters),
                cmocka_unit_test(body_unreserved_kept),
                cmocka_unit_test(body_without_scope),
                cmocka_unit_test(body_missing_secret),
                cmocka_unit_test(parse_good_reply),
                cmocka_unit_test(parse_bearer_any_case),
                cmocka_unit_test(parse_bad_replies),
                cmocka_unit_test(parse_token_too_long),
                cmocka_unit_test(parse_reply_too_large),
                cmocka_unit_test(parse_oauth_error),
                cmocka_unit_test(parse_oauth_error_no_description),
                cmocka_unit_test(parse_oauth_error_stripped),
                cmocka_unit_test(parse_html_error),
                cmocka_unit_test(parse_error_without_error_field),
                cmocka_unit_test(parse_error_hides_token),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
