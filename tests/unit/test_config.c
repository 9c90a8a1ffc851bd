/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

/*
 * Every test writes its configuration into a temporary folder, which "@DIR@"
 * in a configuration text stands for. test_setup() also writes these files there:
 *
 *   secret              "s3cr3t-VALUE\n", the client secret of most tests
 *   creds/client-secret "cred-s3cr3t\n", a systemd credential
 *   ca.pem              a readable file for api.ca_file
 *
 * Every file written gets mode 0644 whatever the umask, because the loader
 * rejects a configuration file that group or others can write.
 *
 * Each line of a configuration text is one C string literal, so the line
 * numbers that a test expects can be counted from its first literal.
 */
#define ERROR_SIZE 1024

static char tmpdir[] = "/tmp/test-config-XXXXXX";
static char conf_path[PATH_MAX];
static char error[ERROR_SIZE];

#define MINIMAL_API                                     \
        "api = {\n"                                     \
        "  client_id = \"client\";\n"                   \
        "  client_secret_file = \"@DIR@/secret\";\n"    \
        "};\n"

#define ONE_TARGET "targets = ( { customer_id = \"c1\"; tenant_id = \"t1\"; } );\n"

static void tmp_path(char *buf, size_t size, const char *name) {
        int n = snprintf(buf, size, "%s/%s", tmpdir, name);

        assert_true(n > 0 && (size_t) n < size);
}

static void write_file(const char *name, const char *content, size_t size) {
        char path[PATH_MAX];
        FILE *f;

        tmp_path(path, sizeof path, name);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(content, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path, 0644), 0);
}

static void chmod_file(const char *name, mode_t mode) {
        char path[PATH_MAX];

        tmp_path(path, sizeof path, name);
        assert_int_equal(chmod(path, mode), 0);
}

static void write_text(const char *name, const char *content) {
        write_file(name, content, strlen(content));
}

/* Writes text with "@DIR@" replaced by the temporary folder into test.conf. */
static void write_config(const char *text) {
        size_t size = strlen(text) * 2 + strlen(tmpdir) * 16 + 1, n = 0;
        _cleanup_free_ char *out = malloc(size);
        const char *p = text;

        assert_non_null(out);
        while (*p) {
                if (strncmp(p, "@DIR@", 5) == 0) {
                        n += strscpy(out + n, size - n, tmpdir);
                        p += 5;
                } else
                        out[n++] = *p++;
                assert_true(n < size);
        }
        out[n] = '\0';
        write_text("test.conf", out);
}

static int load(const char *text, struct config **ret) {
        write_config(text);
        error[0] = '\0';
        return config_load(conf_path, ret, error, sizeof error);
}

/* Loads a configuration that must be valid. */
static struct config *load_ok(const char *text) {
        struct config *c = NULL;
        int r = load(text, &c);

        if (r < 0)
                fail_msg("config_load() failed: %s", error);
        assert_non_null(c);
        return c;
}

#define assert_contains(haystack, needle)                                               \
        do {                                                                            \
                if (!strstr((haystack), (needle)))                                      \
                        fail_msg("\"%s\" does not contain \"%s\"", (haystack), (needle)); \
        } while (0)

#define assert_not_contains(haystack, needle)                                           \
        do {                                                                            \
                if (strstr((haystack), (needle)))                                       \
                        fail_msg("\"%s\" contains \"%s\"", (haystack), (needle));       \
        } while (0)

/*
 * Loads a configuration that must fail, and checks that the message starts
 * with the configuration file and contains expected (":LINE: SETTING: ...").
 * No message may contain the secret.
 */
static void assert_load_error(const char *text, const char *expected) {
        struct config *c = NULL;
        int r = load(text, &c);

        assert_true(r < 0);
        assert_null(c);
        assert_int_equal(strncmp(error, conf_path, strlen(conf_path)), 0);
        assert_contains(error, expected);
        assert_not_contains(error, "s3cr3t");
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static int group_setup(void **state) {
        char path[PATH_MAX];

        if (!mkdtemp(tmpdir))
                return -1;
        tmp_path(conf_path, sizeof conf_path, "test.conf");
        tmp_path(path, sizeof path, "creds");
        if (mkdir(path, 0700) < 0)
                return -1;
        return 0;
}

static int group_teardown(void **state) {
        return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int test_setup(void **state) {
        (void) unsetenv("CREDENTIALS_DIRECTORY");
        (void) unsetenv("STATE_DIRECTORY");
        write_text("secret", "s3cr3t-VALUE\n");
        write_text("creds/client-secret", "cred-s3cr3t\n");
        write_text("ca.pem", "not parsed by the configuration\n");
        return 0;
}

static void config_full(void **state) {
        struct config *c = load_ok(
                "# every setting\n"
                "api = {\n"
                "  base_url = \"https://api.example.test/elements/\";\n"
                "  token_url = \"https://login.example.test/connect/token\";\n"
                "  client_id = \"11111111-2222-3333-4444-555555555555\";\n"
                "  client_secret_file = \"@DIR@/secret\";\n"
                "  scope = \"custom.scope\";\n"
                "  ca_file = \"@DIR@/ca.pem\";\n"
                "  page_size = 50;\n"
                "  timeout = 30L;\n"
                "  max_parallel = 4;\n"
                "};\n"
                "poll = { interval = 600; };\n"
                "state_directory = \"/srv/state\";\n"
                "targets = (\n"
                "  { name = \"contoso\"; customer_id = \"cust-1\"; tenant_id = \"ten.1\"; },\n"
                "  { customer_id = \"cust.2\"; tenant_id = \"ten-2\"; interval = 3600;\n"
                "    user_emails = [ \"ceo@fabrikam.example\", \"cfo@fabrikam.example\" ]; }\n"
                ");\n");
        char path[PATH_MAX];

        assert_string_equal(c->path, conf_path);
        assert_string_equal(c->api.base_url, "https://api.example.test/elements");
        assert_string_equal(c->api.token_url, "https://login.example.test/connect/token");
        assert_string_equal(c->api.client_id, "11111111-2222-3333-4444-555555555555");
        tmp_path(path, sizeof path, "secret");
        assert_string_equal(c->api.client_secret_file, path);
        assert_string_equal(c->api.client_secret, "s3cr3t-VALUE");
        assert_string_equal(c->api.scope, "custom.scope");
        tmp_path(path, sizeof path, "ca.pem");
        assert_string_equal(c->api.ca_file, path);
        assert_int_equal(c->api.page_size, 50);
        assert_int_equal(c->api.timeout_sec, 30);
        assert_int_equal(c->api.max_parallel, 4);
        assert_int_equal(c->interval_sec, 600);
        assert_string_equal(c->state_directory, "/srv/state");
        assert_int_equal(c->n_targets, 2);

        assert_string_equal(c->targets[0].name, "contoso");
        assert_string_equal(c->targets[0].customer_id, "cust-1");
        assert_string_equal(c->targets[0].tenant_id, "ten.1");
        assert_int_equal(c->targets[0].interval_sec, 600);
        assert_null(c->targets[0].user_emails);
        assert_int_equal(c->targets[0].n_user_emails, 0);
        assert_int_equal(c->targets[0].line, 16);

        assert_string_equal(c->targets[1].name, "ten-2");
        assert_string_equal(c->targets[1].customer_id, "cust.2");
        assert_string_equal(c->targets[1].tenant_id, "ten-2");
        assert_int_equal(c->targets[1].interval_sec, 3600);
        assert_int_equal(c->targets[1].n_user_emails, 2);
        assert_string_equal(c->targets[1].user_emails[0], "ceo@fabrikam.example");
        assert_string_equal(c->targets[1].user_emails[1], "cfo@fabrikam.example");
        assert_int_equal(c->targets[1].line, 17);
        config_free(c);
}

static void config_defaults(void **state) {
        struct config *c = load_ok(MINIMAL_API ONE_TARGET);

        assert_string_equal(c->api.base_url, CONFIG_DEFAULT_BASE_URL);
        assert_string_equal(c->api.token_url, CONFIG_DEFAULT_TOKEN_URL);
        assert_string_equal(c->api.scope, CONFIG_DEFAULT_SCOPE);
        assert_null(c->api.ca_file);
        assert_int_equal(c->api.page_size, CONFIG_PAGE_SIZE_DEFAULT);
        assert_int_equal(c->api.timeout_sec, CONFIG_TIMEOUT_SEC_DEFAULT);
        assert_int_equal(c->api.max_parallel, CONFIG_MAX_PARALLEL_DEFAULT);
        assert_int_equal(c->interval_sec, CONFIG_INTERVAL_SEC_DEFAULT);
        assert_string_equal(c->state_directory, CONFIG_DEFAULT_STATE_DIRECTORY);
        assert_int_equal(c->n_targets, 1);
        assert_string_equal(c->targets[0].name, "t1");
        assert_int_equal(c->targets[0].interval_sec, CONFIG_INTERVAL_SEC_DEFAULT);
        assert_null(c->targets[0].user_emails);
        assert_int_equal(c->targets[0].line, 5);
        config_free(c);
}

static void config_default_secret_file(void **state) {
        if (access(CONFIG_DEFAULT_SECRET_FILE, F_OK) == 0)
                skip();
        assert_load_error(
                "api = { client_id = \"client\"; };\n"
                ONE_TARGET,
                ": api.client_secret_file: " CONFIG_DEFAULT_SECRET_FILE ": failed to open");
}

static void config_unknown_key_top(void **state) {
        assert_load_error(MINIMAL_API ONE_TARGET "colour = 1;\n", ":6: colour: unknown setting");
}

static void config_unknown_key_api(void **state) {
        assert_load_error(
                "api = {\n"
                "  client_id = \"client\";\n"
                "  colour = \"blue\";\n"
                "};\n"
                ONE_TARGET,
                ":3: api.colour: unknown setting");
}

static void config_unknown_key_poll(void **state) {
        assert_load_error(MINIMAL_API "poll = {\n interval = 60;\n every = 60;\n};\n" ONE_TARGET,
                          ":7: poll.every: unknown setting");
}

static void config_unknown_key_target(void **state) {
        assert_load_error(
                MINIMAL_API
                "targets = (\n"
                "  { customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                "  { customer_id = \"c2\"; tenant_id = \"t2\";\n"
                "    emails = [ \"a@b.example\" ]; }\n"
                ");\n",
                ":8: targets[1].emails: unknown setting");
}

static void config_type_string_for_int(void **state) {
        assert_load_error(
                "api = {\n"
                "  client_id = \"client\";\n"
                "  timeout = \"60\";\n"
                "};\n"
                ONE_TARGET,
                ":3: api.timeout: expected an integer, got a string");
}

static void config_type_float_for_int(void **state) {
        assert_load_error(MINIMAL_API "poll = { interval = 60.0; };\n" ONE_TARGET,
                          ":5: poll.interval: expected an integer, got a float");
}

static void config_type_int_for_string(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { name = 5; customer_id = \"c\"; tenant_id = \"t\"; } );\n",
                          ":5: targets[0].name: expected a string, got an integer");
}

static void config_type_api_not_group(void **state) {
        assert_load_error("api = \"x\";\n" ONE_TARGET, ":1: api: expected a group, got a string");
}

static void config_type_targets_not_list(void **state) {
        assert_load_error(MINIMAL_API "targets = { customer_id = \"c\"; tenant_id = \"t\"; };\n",
                          ":5: targets: expected a list, got a group");
}

static void config_type_target_not_group(void **state) {
        assert_load_error(MINIMAL_API "targets = ( \"contoso\" );\n",
                          ":5: targets[0]: expected a group, got a string");
}

static void config_type_email_not_string(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = [ 1 ]; } );\n",
                          ":5: targets[0].user_emails[0]: expected a string, got an integer");
}

static void config_type_emails_not_array(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = \"a@b.example\"; } );\n",
                          ":5: targets[0].user_emails: expected an array, got a string");
}

static void config_int64_accepted(void **state) {
        struct config *c = load_ok(MINIMAL_API "poll = { interval = 3600L; };\n" ONE_TARGET);

        assert_int_equal(c->interval_sec, 3600);
        config_free(c);
}

static void config_emails_as_list(void **state) {
        struct config *c = load_ok(MINIMAL_API
                                   "targets = ( { customer_id = \"c\"; tenant_id = \"t\";\n"
                                   "  user_emails = ( \"a@b.example\" ); } );\n");

        assert_int_equal(c->targets[0].n_user_emails, 1);
        assert_string_equal(c->targets[0].user_emails[0], "a@b.example");
        config_free(c);
}

static void config_range_page_size_zero(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n page_size = 0;\n};\n" ONE_TARGET,
                          ":3: api.page_size: 0 is out of range 1..100");
}

static void config_range_page_size_101(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n page_size = 101;\n};\n" ONE_TARGET,
                          ":3: api.page_size: 101 is out of range 1..100");
}

static void config_range_page_size_negative(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n page_size = -1;\n};\n" ONE_TARGET,
                          ":3: api.page_size: -1 is out of range 1..100");
}

static void config_range_page_size_int64(void **state) {
        /* 2^32 + 100: must not wrap to 100. */
        assert_load_error("api = {\n client_id = \"c\";\n page_size = 4294967396L;\n};\n" ONE_TARGET,
                          ":3: api.page_size: 4294967396 is out of range 1..100");
}

static void config_range_timeout(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n timeout = 3601;\n};\n" ONE_TARGET,
                          ":3: api.timeout: 3601 is out of range 1..3600");
}

static void config_range_max_parallel_zero(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n max_parallel = 0;\n};\n" ONE_TARGET,
                          ":3: api.max_parallel: 0 is out of range 1..256");
}

static void config_range_poll_interval(void **state) {
        assert_load_error(MINIMAL_API "poll = { interval = 5; };\n" ONE_TARGET,
                          ":5: poll.interval: 5 is out of range 10..604800");
}

static void config_range_target_interval(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = (\n"
                          "  { customer_id = \"c\"; tenant_id = \"t\"; interval = 5; }\n"
                          ");\n",
                          ":6: targets[0].interval: 5 is out of range 10..604800");
}

static void config_missing_client_id(void **state) {
        assert_load_error("\napi = {\n  scope = \"x\";\n};\n" ONE_TARGET, ":2: api.client_id: missing");
}

static void config_missing_api(void **state) {
        char expected[PATH_MAX + 64];

        assert_load_error(ONE_TARGET, "api.client_id: missing");
        (void) snprintf(expected, sizeof expected, "%s: api.client_id: missing", conf_path);
        assert_string_equal(error, expected);
}

static void config_missing_customer_id(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = (\n"
                          "  { customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                          "  { tenant_id = \"t2\"; }\n"
                          ");\n",
                          ":7: targets[1].customer_id: missing");
}

static void config_missing_tenant_id(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c1\"; } );\n",
                          ":5: targets[0].tenant_id: missing");
}

static void config_missing_targets(void **state) {
        assert_load_error(MINIMAL_API, "targets: missing, no targets configured");
}

static void config_empty_targets(void **state) {
        assert_load_error(MINIMAL_API "\ntargets = ( );\n", ":6: targets: empty, no targets configured");
}

static void config_id_bad_character(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c1\"; tenant_id = \"t/1\"; } );\n",
                          ":5: targets[0].tenant_id: invalid character '/'");
}

static void config_hold_defaults(void **state) {
        struct config *c = load_ok(MINIMAL_API ONE_TARGET);

        assert_int_equal(c->hold_percent, 50);
        assert_int_equal(c->hold_min_users, 20);
        config_free(c);
}

static void config_hold_settings(void **state) {
        struct config *c = load_ok(MINIMAL_API "poll = { hold_percent = 0; hold_min_users = 5; };\n" ONE_TARGET);

        assert_int_equal(c->hold_percent, 0);
        assert_int_equal(c->hold_min_users, 5);
        config_free(c);
}

static void config_hold_percent_range(void **state) {
        assert_load_error(MINIMAL_API "poll = { hold_percent = 101; };\n" ONE_TARGET,
                          ":5: poll.hold_percent: 101 is out of range 0..100");
}

static void config_hold_min_users_range(void **state) {
        assert_load_error(MINIMAL_API "poll = { hold_min_users = 0; };\n" ONE_TARGET,
                          ":5: poll.hold_min_users: 0 is out of range 1..1000000");
}

static void config_customer_id_underscore(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"a_b\"; tenant_id = \"c\"; } );\n",
                          ":5: targets[0].customer_id: invalid character '_'");
}

static void config_tenant_id_underscore(void **state) {
        struct config *c = load_ok(MINIMAL_API "targets = ( { customer_id = \"a\"; tenant_id = \"b_c\"; } );\n");

        assert_string_equal(c->targets[0].tenant_id, "b_c");
        config_free(c);
}

static void config_id_control_character(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c1\"; tenant_id = \"t\\n1\"; } );\n",
                          ":5: targets[0].tenant_id: contains a control character");
}

static void config_id_non_ascii(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c\xc3\xa9\"; tenant_id = \"t\"; } );\n",
                          ":5: targets[0].customer_id: invalid character byte 0xc3");
}

static void config_id_dot_dot(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"..\"; tenant_id = \"t\"; } );\n",
                          ":5: targets[0].customer_id: \"..\" is not a valid id");
}

static void config_id_empty(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c\"; tenant_id = \"\"; } );\n",
                          ":5: targets[0].tenant_id: must not be empty");
}

static void config_id_too_long(void **state) {
        char text[1024], id[130];
        struct config *c;

        memset(id, 'a', 128);
        id[128] = '\0';
        (void) snprintf(text, sizeof text, MINIMAL_API "targets = ( { customer_id = \"%s\"; tenant_id = \"t\"; } );\n", id);
        c = load_ok(text);
        assert_int_equal(strlen(c->targets[0].customer_id), 128);
        config_free(c);

        strscpy(id + 128, 2, "b");
        (void) snprintf(text, sizeof text, MINIMAL_API "targets = ( { customer_id = \"%s\"; tenant_id = \"t\"; } );\n", id);
        assert_load_error(text, ":5: targets[0].customer_id: longer than 128 bytes");
}

static void config_duplicate_target(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = (\n"
                          "  { name = \"a\"; customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                          "  { name = \"b\"; customer_id = \"c1\"; tenant_id = \"t2\"; },\n"
                          "  { name = \"c\"; customer_id = \"c1\"; tenant_id = \"t1\"; }\n"
                          ");\n",
                          ":8: targets[2]: duplicate of targets[0] (line 6): same customer_id and tenant_id");
}

static void config_duplicate_name(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = (\n"
                          "  { name = \"contoso\"; customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                          "  { name = \"contoso\";\n"
                          "    customer_id = \"c2\"; tenant_id = \"t2\"; }\n"
                          ");\n",
                          ":7: targets[1].name: \"contoso\" is already the name of targets[0] (line 6)");
}

static void config_duplicate_default_name(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = (\n"
                          "  { customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                          "  { customer_id = \"c2\"; tenant_id = \"t1\"; }\n"
                          ");\n",
                          ":7: targets[1]: the name defaults to tenant_id \"t1\", which is already the name of "
                          "targets[0] (line 6)");
}

static void config_name_utf8(void **state) {
        struct config *c = load_ok(MINIMAL_API
                                   "targets = ( { name = \"Z\xc3\xbcrich \xe2\x82\xac \xf0\x9f\x98\x80\";"
                                   " customer_id = \"c\"; tenant_id = \"t\"; } );\n");

        assert_string_equal(c->targets[0].name, "Z\xc3\xbcrich \xe2\x82\xac \xf0\x9f\x98\x80");
        config_free(c);
}

static void config_name_invalid(void **state) {
        static const char *const names[] = {
                "\\x01",                /* C0 control, as a libconfig escape */
                "a\x7f",                /* DEL */
                "a\xc2\x85",            /* C1 control U+0085 */
                "a\xff",                /* not UTF-8 */
                "a\xc0\xaf",            /* overlong '/' */
                "a\xed\xa0\x80",        /* surrogate U+D800 */
                "a\xf4\x90\x80\x80",    /* above U+10FFFF */
                "a\xe2\x82",            /* truncated */
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char text[512];

                (void) snprintf(text, sizeof text,
                                MINIMAL_API "targets = ( { name = \"%s\"; customer_id = \"c\"; tenant_id = \"t\"; } );\n",
                                names[i]);
                assert_load_error(text, ":5: targets[0].name: ");
        }
}

static void config_name_too_long(void **state) {
        char text[1024], name[130];

        memset(name, 'n', 129);
        name[129] = '\0';
        (void) snprintf(text, sizeof text,
                        MINIMAL_API "targets = ( { name = \"%s\"; customer_id = \"c\"; tenant_id = \"t\"; } );\n", name);
        assert_load_error(text, ":5: targets[0].name: longer than 128 bytes");
}

static void config_emails_empty(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = [ ]; } );\n",
                          ":5: targets[0].user_emails: must not be empty");
}

static void config_email_without_at(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = ( { customer_id = \"c\"; tenant_id = \"t\";\n"
                          "  user_emails = [ \"a@b.example\", \"ceo.example\" ]; } );\n",
                          ":6: targets[0].user_emails[1]: \"ceo.example\" is not an email address");
}

static void config_email_whitespace(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = [ \"a b@c.example\" ]; } );\n",
                          ":5: targets[0].user_emails[0]: \"a b@c.example\" contains whitespace");
}

static void config_email_control(void **state) {
        assert_load_error(MINIMAL_API
                          "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = [ \"a\\t@c.example\" ]; } );\n",
                          ":5: targets[0].user_emails[0]: invalid UTF-8 or a control character");
}

static void config_email_too_long(void **state) {
        char text[1024], email[330];

        memset(email, 'e', 321);
        email[0] = '@';
        email[321] = '\0';
        (void) snprintf(text, sizeof text,
                        MINIMAL_API "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = [ \"%s\" ]; } );\n",
                        email);
        assert_load_error(text, ":5: targets[0].user_emails[0]: must be 1..320 bytes long");
}

static void config_emails_too_many(void **state) {
        size_t size = 64 * (CONFIG_USER_EMAILS_MAX + 1) + 1024, n;
        _cleanup_free_ char *text = malloc(size);

        assert_non_null(text);
        n = strscpy(text, size, MINIMAL_API "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; user_emails = [\n");
        for (int i = 0; i <= CONFIG_USER_EMAILS_MAX; i++)
                n += (size_t) snprintf(text + n, size - n, "%s\"u%d@example.test\"\n", i > 0 ? "," : "", i);
        (void) snprintf(text + n, size - n, "]; } );\n");
        assert_load_error(text, ":5: targets[0].user_emails: 10001 entries, at most 10000 are allowed");
}

static void config_http_rejected(void **state) {
        assert_load_error("api = {\n"
                          "  client_id = \"client\";\n"
                          "  base_url = \"http://api.example.test\";\n"
                          "};\n" ONE_TARGET,
                          ":3: api.base_url: plain http is refused for host api.example.test because the bearer "
                          "token would travel in clear text");
}

static void config_http_token_rejected(void **state) {
        assert_load_error("api = {\n"
                          "  client_id = \"client\";\n"
                          "  token_url = \"http://10.0.0.1/connect/token\";\n"
                          "};\n" ONE_TARGET,
                          ":3: api.token_url: plain http is refused for host 10.0.0.1");
}

static void config_http_loopback_accepted(void **state) {
        static const char *const urls[] = {
                "http://127.0.0.1:8080",
                "http://127.1.2.3/",
                "http://localhost:8080/api/",
                "http://[::1]:8080",
        };

        for (size_t i = 0; i < ELEMENTSOF(urls); i++) {
                char text[512];
                struct config *c;

                (void) snprintf(text, sizeof text,
                                "api = {\n client_id = \"c\";\n client_secret_file = \"@DIR@/secret\";\n"
                                " base_url = \"%s\";\n token_url = \"%s/token\";\n};\n" ONE_TARGET,
                                urls[i], urls[i]);
                c = load_ok(text);
                assert_int_equal(strncmp(c->api.base_url, "http://", 7), 0);
                config_free(c);
        }
}

static void config_base_url_slash(void **state) {
        struct config *c = load_ok("api = {\n client_id = \"c\";\n client_secret_file = \"@DIR@/secret\";\n"
                                   " base_url = \"http://127.0.0.1:8080/\";\n};\n" ONE_TARGET);

        assert_string_equal(c->api.base_url, "http://127.0.0.1:8080");
        config_free(c);
}

static void config_url_other_scheme(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n base_url = \"ftp://api.example.test\";\n};\n" ONE_TARGET,
                          ":3: api.base_url: unsupported scheme \"ftp\", expected https");
}

static void config_url_invalid(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n base_url = \"not a url\";\n};\n" ONE_TARGET,
                          ":3: api.base_url: invalid URL: ");
}

static void config_url_password(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n token_url = \"https://user:hunter2@login.example.test/\";\n};\n"
                          ONE_TARGET,
                          ":3: api.token_url: must not contain a user name or password");
        assert_not_contains(error, "hunter2");
}

static void config_url_query(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n base_url = \"https://api.example.test/?x=1\";\n};\n" ONE_TARGET,
                          ":3: api.base_url: must not contain a query");
}

static void config_url_fragment(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n base_url = \"https://api.example.test/#x\";\n};\n" ONE_TARGET,
                          ":3: api.base_url: must not contain a fragment");
}

static void config_ca_file_missing(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n ca_file = \"@DIR@/no-such-ca.pem\";\n};\n" ONE_TARGET,
                          "/no-such-ca.pem: No such file or directory");
        assert_contains(error, ":3: api.ca_file: ");
}

static void config_ca_file_directory(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n ca_file = \"@DIR@\";\n};\n" ONE_TARGET,
                          ": not a regular file");
        assert_contains(error, ":3: api.ca_file: ");
}

static void config_ca_file_relative(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n ca_file = \"ca.pem\";\n};\n" ONE_TARGET,
                          ":3: api.ca_file: \"ca.pem\" is not an absolute path");
}

static void config_secret_trailing_newline(void **state) {
        struct config *c;

        write_text("secret", "s3cr3t-VALUE \r\n\n");
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_string_equal(c->api.client_secret, "s3cr3t-VALUE");
        config_free(c);
}

static void config_secret_missing(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n client_secret_file = \"@DIR@/no-secret\";\n};\n" ONE_TARGET,
                          ":3: api.client_secret_file: ");
        assert_contains(error, "/no-secret: failed to open: No such file or directory");
}

static void config_secret_empty(void **state) {
        write_text("secret", "");
        assert_load_error(MINIMAL_API ONE_TARGET, ":3: api.client_secret_file: ");
        assert_contains(error, "/secret: the client secret is empty");
}

static void config_secret_whitespace_only(void **state) {
        write_text("secret", " \n");
        assert_load_error(MINIMAL_API ONE_TARGET, "/secret: the client secret is empty");
}

static void config_secret_control_character(void **state) {
        write_text("secret", "s3cr3t-\x01VALUE\n");
        assert_load_error(MINIMAL_API ONE_TARGET, "/secret: the client secret contains a control character");
}

static void config_secret_nul_byte(void **state) {
        write_file("secret", "s3cr3t\0VALUE", 12);
        assert_load_error(MINIMAL_API ONE_TARGET, "/secret: the client secret contains a control character");
}

static void config_secret_too_large(void **state) {
        char big[CONFIG_SECRET_MAX + 1];

        memset(big, 's', sizeof big);
        memcpy(big, "s3cr3t", 6);
        write_file("secret", big, sizeof big);
        assert_load_error(MINIMAL_API ONE_TARGET, "/secret: larger than 4096 bytes");
}

static void config_secret_max_size(void **state) {
        char big[CONFIG_SECRET_MAX];
        struct config *c;

        memset(big, 's', sizeof big);
        write_file("secret", big, sizeof big);
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_int_equal(strlen(c->api.client_secret), CONFIG_SECRET_MAX);
        config_free(c);
}

static void config_secret_directory(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n client_secret_file = \"@DIR@/creds\";\n};\n" ONE_TARGET,
                          "/creds: not a regular file");
}

static void config_secret_relative(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n client_secret_file = \"secret\";\n};\n" ONE_TARGET,
                          ":3: api.client_secret_file: \"secret\" is not an absolute path");
}

static void config_credentials_precedence(void **state) {
        char path[PATH_MAX];
        struct config *c;

        tmp_path(path, sizeof path, "creds");
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", path, 1), 0);
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_string_equal(c->api.client_secret, "cred-s3cr3t");
        tmp_path(path, sizeof path, "creds/client-secret");
        assert_string_equal(c->api.client_secret_file, path);
        config_free(c);
}

static void config_credentials_missing(void **state) {
        char path[PATH_MAX];
        struct config *c = NULL;

        tmp_path(path, sizeof path, "creds");
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", path, 1), 0);
        tmp_path(path, sizeof path, "creds/client-secret");
        assert_int_equal(unlink(path), 0);
        assert_true(load(MINIMAL_API ONE_TARGET, &c) < 0);
        assert_null(c);
        assert_contains(error, path);
        assert_contains(error, ": failed to open: No such file or directory");
        assert_contains(error, "$CREDENTIALS_DIRECTORY");
}

static void config_credentials_bad_content(void **state) {
        char path[PATH_MAX];
        struct config *c = NULL;

        tmp_path(path, sizeof path, "creds");
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", path, 1), 0);
        write_text("creds/client-secret", "cred-s3cr3t\x1b[0m\n");
        assert_true(load(MINIMAL_API ONE_TARGET, &c) < 0);
        assert_contains(error, "the client secret contains a control character");
        assert_not_contains(error, "s3cr3t");
}

static void config_state_directory_env(void **state) {
        struct config *c;

        assert_int_equal(setenv("STATE_DIRECTORY", "/run/state-a:/run/state-b", 1), 0);
        c = load_ok(MINIMAL_API "state_directory = \"/srv/state\";\n" ONE_TARGET);
        assert_string_equal(c->state_directory, "/run/state-a");
        config_free(c);
}

static void config_state_directory_env_empty(void **state) {
        struct config *c;

        assert_int_equal(setenv("STATE_DIRECTORY", "", 1), 0);
        c = load_ok(MINIMAL_API "state_directory = \"/srv/state\";\n" ONE_TARGET);
        assert_string_equal(c->state_directory, "/srv/state");
        config_free(c);
}

static void config_state_directory_env_relative(void **state) {
        struct config *c = NULL;

        assert_int_equal(setenv("STATE_DIRECTORY", "state", 1), 0);
        assert_true(load(MINIMAL_API ONE_TARGET, &c) < 0);
        assert_contains(error, "$STATE_DIRECTORY: the first entry \"state\" is not an absolute path");
}

static void config_state_directory_relative(void **state) {
        assert_load_error(MINIMAL_API "state_directory = \"state\";\n" ONE_TARGET,
                          ":5: state_directory: \"state\" is not an absolute path");
}

static void config_syntax_error(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n page_size = ;\n};\n" ONE_TARGET, ":3: syntax error");
}

static void config_duplicate_setting(void **state) {
        assert_load_error("api = {\n client_id = \"c\";\n client_id = \"d\";\n};\n" ONE_TARGET,
                          ":3: duplicate setting name");
}

static void config_file_missing(void **state) {
        char path[PATH_MAX];
        struct config *c = NULL;
        int r;

        tmp_path(path, sizeof path, "no-such.conf");
        r = config_load(path, &c, error, sizeof error);
        assert_int_equal(r, -ENOENT);
        assert_null(c);
        assert_contains(error, path);
        assert_contains(error, ": failed to open: No such file or directory");
}

static void config_file_directory(void **state) {
        struct config *c = NULL;

        assert_int_equal(config_load(tmpdir, &c, error, sizeof error), -EINVAL);
        assert_contains(error, ": not a regular file");
}

static void config_small_error_buffer(void **state) {
        char small[16];
        struct config *c = NULL;

        write_config("api = {\n client_id = \"c\";\n page_size = 0;\n};\n" ONE_TARGET);
        assert_int_equal(config_load(conf_path, &c, small, sizeof small), -ERANGE);
        assert_int_equal(strlen(small), sizeof small - 1);
}

static void config_example_file(void **state) {
        char path[PATH_MAX];
        struct config *c = NULL;
        int r;

        tmp_path(path, sizeof path, "creds");
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", path, 1), 0);
        r = config_load(FIXTURE_DIR "/../../conf/cbm365-watchd.conf", &c, error, sizeof error);
        if (r < 0)
                fail_msg("the example configuration failed to load: %s", error);
        assert_string_equal(c->api.base_url, CONFIG_DEFAULT_BASE_URL);
        assert_string_equal(c->api.token_url, CONFIG_DEFAULT_TOKEN_URL);
        assert_string_equal(c->api.scope, CONFIG_DEFAULT_SCOPE);
        assert_int_equal(c->api.page_size, CONFIG_PAGE_SIZE_DEFAULT);
        assert_int_equal(c->api.timeout_sec, CONFIG_TIMEOUT_SEC_DEFAULT);
        assert_int_equal(c->api.max_parallel, CONFIG_MAX_PARALLEL_DEFAULT);
        assert_int_equal(c->interval_sec, CONFIG_INTERVAL_SEC_DEFAULT);
        assert_string_equal(c->state_directory, CONFIG_DEFAULT_STATE_DIRECTORY);
        assert_int_equal(c->n_targets, 1);
        assert_string_equal(c->targets[0].name, "contoso");
        config_free(c);
}

static char *summary_of(const struct config *c) {
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        assert_non_null(f);
        config_print_summary(c, f);
        assert_int_equal(fclose(f), 0);
        assert_non_null(text);
        return text;
}

static void config_summary(void **state) {
        struct config *c = load_ok("api = {\n"
                                   "  client_id = \"c\";\n"
                                   "  client_secret_file = \"@DIR@/secret\";\n"
                                   "  base_url = \"http://127.0.0.1:8080/elements\";\n"
                                   "  token_url = \"https://login.example.test/connect/token\";\n"
                                   "};\n"
                                   "targets = (\n"
                                   "  { name = \"contoso\"; customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                                   "  { customer_id = \"c2\"; tenant_id = \"t2\"; interval = 60;\n"
                                   "    user_emails = [ \"a@b.example\", \"c@d.example\" ]; }\n"
                                   ");\n");
        _cleanup_free_ char *text = summary_of(c);
        char line[PATH_MAX + 64];

        assert_contains(text, "API host:           127.0.0.1:8080\n");
        assert_contains(text, "Token host:         login.example.test\n");
        assert_not_contains(text, "/elements");
        assert_contains(text, "Page size:          100 users\n");
        assert_contains(text, "Request timeout:    60 s\n");
        assert_contains(text, "Max parallel:       8 requests\n");
        assert_contains(text, "Poll interval:      900 s\n");
        assert_contains(text, "State directory:    /var/lib/cbm365-watchd\n");
        (void) snprintf(line, sizeof line, "Client secret from: %s/secret\n", tmpdir);
        assert_contains(text, line);
        assert_contains(text, "  contoso: customer c1, tenant t1, every 900 s, all users\n");
        assert_contains(text, "  t2: customer c2, tenant t2, every 60 s, 2 user emails\n");
        assert_not_contains(text, "s3cr3t");
        config_free(c);
}

static void config_find(void **state) {
        struct config *c = load_ok(MINIMAL_API
                                   "targets = ( { customer_id = \"c1\"; tenant_id = \"t1\"; },\n"
                                   "  { customer_id = \"c1\"; tenant_id = \"t2\"; } );\n");

        assert_ptr_equal(config_find_target(c, "c1", "t2"), &c->targets[1]);
        assert_ptr_equal(config_find_target(c, "c1", "t1"), &c->targets[0]);
        assert_null(config_find_target(c, "c2", "t1"));
        assert_null(config_find_target(c, "t1", "c1"));
        config_free(c);
}

static void config_equal(void **state) {
        static const char *const text =
                MINIMAL_API
                "targets = ( { name = \"n\"; customer_id = \"c1\"; tenant_id = \"t1\";\n"
                "  user_emails = [ \"a@b.example\" ]; } );\n";
        struct config *a = load_ok(text), *b = load_ok(text), *d;

        assert_true(api_config_equal(&a->api, &b->api));
        assert_true(target_equal(&a->targets[0], &b->targets[0]));

        write_text("secret", "other-secret\n");
        d = load_ok(MINIMAL_API
                    "targets = ( { name = \"n\"; customer_id = \"c1\"; tenant_id = \"t1\";\n"
                    "  user_emails = [ \"x@b.example\" ]; } );\n");
        assert_false(api_config_equal(&a->api, &d->api));
        assert_false(target_equal(&a->targets[0], &d->targets[0]));
        config_free(d);

        d = load_ok("api = {\n client_id = \"c\";\n client_secret_file = \"@DIR@/secret\";\n page_size = 10;\n};\n"
                    "targets = ( { name = \"n\"; customer_id = \"c1\"; tenant_id = \"t1\"; interval = 60; } );\n");
        assert_false(api_config_equal(&a->api, &d->api));
        assert_false(target_equal(&a->targets[0], &d->targets[0]));
        config_free(d);

        config_free(a);
        config_free(b);
}

static void config_free_null(void **state) {
        assert_null(config_free(NULL));
}

static void config_mode_group_writable(void **state) {
        struct config *c = NULL;

        write_config(MINIMAL_API ONE_TARGET);
        chmod_file("test.conf", 0664);
        assert_int_equal(config_load(conf_path, &c, error, sizeof error), -EPERM);
        assert_null(c);
        assert_int_equal(strncmp(error, conf_path, strlen(conf_path)), 0);
        assert_contains(error, ": writable by group (mode 0664)");
        assert_contains(error, "run: chmod go-w ");
}

static void config_mode_others_writable(void **state) {
        struct config *c = NULL;

        write_config(MINIMAL_API ONE_TARGET);
        chmod_file("test.conf", 0602);
        assert_int_equal(config_load(conf_path, &c, error, sizeof error), -EPERM);
        assert_null(c);
        assert_contains(error, ": writable by others (mode 0602)");
}

static void config_mode_both_writable(void **state) {
        struct config *c = NULL;

        write_config(MINIMAL_API ONE_TARGET);
        chmod_file("test.conf", 0666);
        assert_int_equal(config_load(conf_path, &c, error, sizeof error), -EPERM);
        assert_contains(error, ": writable by group and others (mode 0666)");
}

static void config_mode_private_accepted(void **state) {
        struct config *c = NULL;

        write_config(MINIMAL_API ONE_TARGET);
        chmod_file("test.conf", 0600);
        assert_int_equal(config_load(conf_path, &c, error, sizeof error), 0);
        assert_non_null(c);
        config_free(c);
}

static void config_owner_other_user(void **state) {
        struct config *c = NULL;

        if (geteuid() != 0)
                skip();
        write_config(MINIMAL_API ONE_TARGET);
        assert_int_equal(chown(conf_path, 4242, 0), 0);
        assert_int_equal(config_load(conf_path, &c, error, sizeof error), -EPERM);
        assert_null(c);
        assert_int_equal(chown(conf_path, 0, 0), 0);
        assert_contains(error, ": owned by uid 4242, which is neither root nor the user the daemon runs as (uid 0)");
        assert_contains(error, "run: chown root ");
}

static void config_owner_group_other_accepted(void **state) {
        struct config *c = NULL;

        if (geteuid() != 0)
                skip();
        /* Only the owner matters: the group cannot write a 0644 file. */
        write_config(MINIMAL_API ONE_TARGET);
        assert_int_equal(chown(conf_path, 0, 4242), 0);
        assert_int_equal(config_load(conf_path, &c, error, sizeof error), 0);
        assert_int_equal(chown(conf_path, 0, 0), 0);
        config_free(c);
}

static void config_secret_readable_group(void **state) {
        char warning[PATH_MAX * 2 + 128], path[PATH_MAX];
        struct config *c;

        chmod_file("secret", 0640);
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_true(c->secret_readable_by_others);
        assert_true(config_secret_warning(c, warning, sizeof warning));
        tmp_path(path, sizeof path, "secret");
        assert_contains(warning, path);
        assert_contains(warning, " is readable by group or others; run: chmod 600 ");
        assert_contains(warning, "credential \"client-secret\"");
        assert_not_contains(warning, "s3cr3t");
        config_free(c);
}

static void config_secret_readable_others(void **state) {
        struct config *c;

        chmod_file("secret", 0604);
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_true(c->secret_readable_by_others);
        config_free(c);
}

static void config_secret_private(void **state) {
        char warning[64] = "untouched";
        struct config *c;

        chmod_file("secret", 0600);
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_false(c->secret_readable_by_others);
        assert_false(config_secret_warning(c, warning, sizeof warning));
        assert_string_equal(warning, "untouched");
        config_free(c);
}

/* systemd sets a credential's mode: no warning the admin could act on. */
static void config_credential_readable(void **state) {
        char path[PATH_MAX];
        struct config *c;

        tmp_path(path, sizeof path, "creds");
        assert_int_equal(setenv("CREDENTIALS_DIRECTORY", path, 1), 0);
        chmod_file("creds/client-secret", 0644);
        c = load_ok(MINIMAL_API ONE_TARGET);
        assert_false(c->secret_readable_by_others);
        config_free(c);
}

static void config_huge_literal_rejected(void **state) {
        /* libconfig 1.5 reads 4294967396 without the L suffix as 100. */
        assert_load_error("api = {\n  client_id = \"client\";\n  client_secret_file = \"@DIR@/secret\";\n"
                          "  page_size = 4294967396;\n};\n" ONE_TARGET,
                          ":4: integer 4294967396 does not fit in 32 bits and would be truncated");
        assert_load_error("api = {\n  client_id = \"client\";\n  client_secret_file = \"@DIR@/secret\";\n"
                          "  page_size = 0x100000010;\n};\n" ONE_TARGET,
                          ":4: integer 0x100000010 does not fit in 32 bits");
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; interval = 4294967306; } );\n",
                          ":5: integer 4294967306 does not fit in 32 bits");
        /* Layouts that hide the literal from a search for "key =". */
        assert_load_error("api = { client_id = \"client\"; client_secret_file = \"@DIR@/secret\";\n"
                          "  /* timeout = 10 */ timeout = 4294967306; };\n" ONE_TARGET,
                          ":2: integer 4294967306 does not fit in 32 bits");
        assert_load_error("api = { client_id = \"client\"; client_secret_file = \"@DIR@/secret\";\n"
                          "  timeout\n  = # a comment\n  4294967306; };\n" ONE_TARGET,
                          ":4: integer 4294967306 does not fit in 32 bits");
}

static void config_big_number_in_string_accepted(void **state) {
        struct config *c = load_ok(MINIMAL_API "targets = ( { name = \"interval = 99999999999\"; customer_id = \"c\";"
                                   " tenant_id = \"t\"; interval = 60; } );\n"
                                   "# 99999999999 in a comment\n/* and 88888888888 in a block */\n");

        assert_string_equal(c->targets[0].name, "interval = 99999999999");
        assert_int_equal(c->targets[0].interval_sec, 60);
        config_free(c);
}

static void config_include_in_comment_accepted(void **state) {
        struct config *c = load_ok(MINIMAL_API ONE_TARGET "/*\n@include \"x\"\n*/\n# @include \"y\"\n");

        assert_int_equal(c->n_targets, 1);
        config_free(c);
}

static void config_plain_literals_accepted(void **state) {
        struct config *c = load_ok("api = {\n  client_id = \"client\";\n  client_secret_file = \"@DIR@/secret\";\n"
                                   "  page_size = 0x10; timeout = 30;\n};\n"
                                   "targets = ( { customer_id = \"c\"; tenant_id = \"t\"; interval = 600; } );\n");

        assert_int_equal(c->api.page_size, 16);
        assert_int_equal(c->api.timeout_sec, 30);
        assert_int_equal(c->targets[0].interval_sec, 600);
        config_free(c);
}

static void config_include_rejected(void **state) {
        assert_load_error("# settings\n  @include \"/tmp\"\n" MINIMAL_API ONE_TARGET,
                          ":2: @include is not supported");
}

static void config_long_line_rejected(void **state) {
        char *text = malloc(70000);

        assert_non_null(text);
        memset(text, '#', 69999);
        text[69999] = '\0';
        assert_load_error(text, ":1: line longer than 65536 bytes");
        free(text);
}

static void config_fifo_rejected(void **state) {
        char path[PATH_MAX], message[1024] = "";
        struct config *c = NULL;

        tmp_path(path, sizeof path, "fifo.conf");
        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(config_load(path, &c, message, sizeof message), -EINVAL);
        assert_non_null(strstr(message, "not a regular file"));
        assert_null(c);
}

static void config_ids_too_long_together(void **state) {
        char text[1024];

        (void) snprintf(text, sizeof text, MINIMAL_API "targets = ( { customer_id = \"%0128d\"; tenant_id = \"%070d\"; } );\n",
                        1, 2);
        assert_load_error(text, "targets[0].tenant_id: customer_id and tenant_id together are longer than 180 bytes");
}

static void config_duplicate_ids_any_case(void **state) {
        assert_load_error(MINIMAL_API "targets = ( { customer_id = \"cust-a\"; tenant_id = \"ten-1\"; },\n"
                          "  { customer_id = \"CUST-A\"; tenant_id = \"TEN-1\"; } );\n",
                          "targets[1]: duplicate of targets[0]");
}

static bool known_key(const char *key) {
        for (const char *const *k = config_known_keys(); *k; k++)
                if (streq(*k, key))
                        return true;
        return false;
}

static void config_known_keys_list(void **state) {
        size_t n = 0;

        for (const char *const *k = config_known_keys(); *k; k++)
                n++;
        assert_int_equal(n, 21);
        assert_true(known_key("poll.hold_percent"));
        assert_true(known_key("poll.hold_min_users"));
        assert_true(known_key("api"));
        assert_true(known_key("api.client_id"));
        assert_true(known_key("poll.interval"));
        assert_true(known_key("state_directory"));
        assert_true(known_key("targets.user_emails"));
        assert_false(known_key("interval"));
        assert_false(known_key("targets.page_size"));
}

static void config_unknown_key_other_group(void **state) {
        /* A key of another group is unknown here, though the table lists it. */
        assert_load_error(MINIMAL_API
                          "targets = ( { customer_id = \"c1\"; tenant_id = \"t1\";\n"
                          "  page_size = 10; } );\n",
                          ":6: targets[0].page_size: unknown setting");
}

static void config_unknown_key_group_name(void **state) {
        /* "api" is a group name, not a member of poll. */
        assert_load_error(MINIMAL_API "poll = { api = 1; };\n" ONE_TARGET,
                          ":5: poll.api: unknown setting");
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup(name, test_setup)
                T(config_full),
                T(config_defaults),
                T(config_default_secret_file),
                T(config_unknown_key_top),
                T(config_unknown_key_api),
                T(config_unknown_key_poll),
                T(config_unknown_key_target),
                T(config_type_string_for_int),
                T(config_type_float_for_int),
                T(config_type_int_for_string),
                T(config_type_api_not_group),
                T(config_type_targets_not_list),
                T(config_type_target_not_group),
                T(config_type_email_not_string),
                T(config_type_emails_not_array),
                T(config_int64_accepted),
                T(config_emails_as_list),
                T(config_range_page_size_zero),
                T(config_range_page_size_101),
                T(config_range_page_size_negative),
                T(config_range_page_size_int64),
                T(config_range_timeout),
                T(config_range_max_parallel_zero),
                T(config_range_poll_interval),
                T(config_range_target_interval),
                T(config_missing_client_id),
                T(config_missing_api),
                T(config_missing_customer_id),
                T(config_missing_tenant_id),
                T(config_missing_targets),
                T(config_empty_targets),
                T(config_id_bad_character),
                T(config_id_control_character),
                T(config_customer_id_underscore),
                T(config_hold_defaults),
                T(config_include_rejected),
                T(config_huge_literal_rejected),
                T(config_plain_literals_accepted),
                T(config_big_number_in_string_accepted),
                T(config_include_in_comment_accepted),
                T(config_long_line_rejected),
                T(config_fifo_rejected),
                T(config_ids_too_long_together),
                T(config_duplicate_ids_any_case),
                T(config_hold_settings),
                T(config_hold_percent_range),
                T(config_hold_min_users_range),
                T(config_tenant_id_underscore),
                T(config_id_non_ascii),
                T(config_id_dot_dot),
                T(config_id_empty),
                T(config_id_too_long),
                T(config_duplicate_target),
                T(config_duplicate_name),
                T(config_duplicate_default_name),
                T(config_name_utf8),
                T(config_name_invalid),
                T(config_name_too_long),
                T(config_emails_empty),
                T(config_email_without_at),
                T(config_email_whitespace),
                T(config_email_control),
                T(config_email_too_long),
                T(config_emails_too_many),
                T(config_http_rejected),
                T(config_http_token_rejected),
                T(config_http_loopback_accepted),
                T(config_base_url_slash),
                T(config_url_other_scheme),
                T(config_url_invalid),
                T(config_url_password),
                T(config_url_query),
                T(config_url_fragment),
                T(config_ca_file_missing),
                T(config_ca_file_directory),
                T(config_ca_file_relative),
                T(config_secret_trailing_newline),
                T(config_secret_missing),
                T(config_secret_empty),
                T(config_secret_whitespace_only),
                T(config_secret_control_character),
                T(config_secret_nul_byte),
                T(config_secret_too_large),
                T(config_secret_max_size),
                T(config_secret_directory),
                T(config_secret_relative),
                T(config_credentials_precedence),
                T(config_credentials_missing),
                T(config_credentials_bad_content),
                T(config_state_directory_env),
                T(config_state_directory_env_empty),
                T(config_state_directory_env_relative),
                T(config_state_directory_relative),
                T(config_syntax_error),
                T(config_duplicate_setting),
                T(config_file_missing),
                T(config_file_directory),
                T(config_small_error_buffer),
                T(config_example_file),
                T(config_summary),
                T(config_find),
                T(config_equal),
                T(config_free_null),
                T(config_mode_group_writable),
                T(config_mode_others_writable),
                T(config_mode_both_writable),
                T(config_mode_private_accepted),
                T(config_owner_other_user),
                T(config_owner_group_other_accepted),
                T(config_secret_readable_group),
                T(config_secret_readable_others),
                T(config_secret_private),
                T(config_credential_readable),
                T(config_known_keys_list),
                T(config_unknown_key_other_group),
                T(config_unknown_key_group_name),
#undef T
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
