/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "snapshot.h"
#include "util.h"

#define NAME "c1_t1.snapshot"
#define SNAPSHOT_DIR FIXTURE_DIR "/snapshot"

struct user_spec {
        const char *id, *email, *name;
        size_t n_modules;
        struct module_status modules[6];
};

struct test_dir {
        char path[64];
        int fd;
};

/* Every byte but NUL, so that the whole byte range passes through a field. */
static char all_bytes[256];

/* The users of the hostile round trip, sorted by id. */
static const struct user_spec hostile[] = {
        { "a\tb", "x\ny@example.com", "back\\slash %s%n", 2, { { 0, true }, { 2, false } } },
        { "b-utf8", "", "Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac \r\x01\x7f\x1b end\\", 1, { { 0, false } } },
        { "c-no-modules", "", "", 0, {} },
        { "d-unknown-codes", "d@example.com", all_bytes, 5,
          { { INT32_MIN, true }, { -3, false }, { 2, true }, { 7, true }, { INT32_MAX, false } } },
        { "e\\x41", "e\\t@example.com", "\\", 1, { { 1, true } } },
};

/* The users of the fixture good-v1.snapshot. */
static const struct user_spec golden[] = {
        { "0b1c9a0e-0000-4000-8000-000000000001", "ada@contoso.example", "Ada Lovelace", 2,
          { { 0, true }, { 2, true } } },
        { "0b1c9a0e-0000-4000-8000-000000000002", "bob@contoso.example", "Bob\tTab", 2,
          { { 0, true }, { 2, false } } },
        { "0b1c9a0e-0000-4000-8000-000000000003", "", "", 0, {} },
};

static void view_build(struct tenant_view *v, const struct user_spec *specs, size_t n) {
        *v = (struct tenant_view) {};
        if (n == 0)
                return;

        v->users = calloc(n, sizeof(v->users[0]));
        assert_non_null(v->users);
        v->capacity = n;
        for (size_t i = 0; i < n; i++) {
                struct user *u = &v->users[i];

                u->id = strdup(specs[i].id);
                u->email = strdup(specs[i].email);
                u->display_name = strdup(specs[i].name);
                assert_non_null(u->id);
                assert_non_null(u->email);
                assert_non_null(u->display_name);
                u->n_modules = specs[i].n_modules;
                if (u->n_modules > 0) {
                        u->modules = calloc(u->n_modules, sizeof(u->modules[0]));
                        assert_non_null(u->modules);
                        memcpy(u->modules, specs[i].modules, u->n_modules * sizeof(u->modules[0]));
                }
                v->n_users++;
        }
}

/* A view of n users "user-000000"... with every second one unprotected. */
static void view_build_many(struct tenant_view *v, size_t n) {
        *v = (struct tenant_view) {};
        v->users = calloc(n, sizeof(v->users[0]));
        assert_non_null(v->users);
        v->capacity = n;
        for (size_t i = 0; i < n; i++) {
                struct user *u = &v->users[i];
                char buf[64];

                (void) snprintf(buf, sizeof(buf), "user-%06zu", i);
                u->id = strdup(buf);
                (void) snprintf(buf, sizeof(buf), "user%zu@contoso.example", i);
                u->email = strdup(buf);
                u->display_name = strdup("Some Body");
                u->modules = calloc(2, sizeof(u->modules[0]));
                assert_non_null(u->modules);
                u->modules[0] = (struct module_status) { 0, true };
                u->modules[1] = (struct module_status) { 2, i % 2 == 0 };
                u->n_modules = 2;
                v->n_users++;
        }
}

static void assert_view_matches(const struct tenant_view *v, const struct user_spec *specs, size_t n) {
        assert_int_equal(v->n_users, n);
        for (size_t i = 0; i < n; i++) {
                const struct user *u = &v->users[i];

                assert_string_equal(u->id, specs[i].id);
                assert_string_equal(u->email, specs[i].email);
                assert_string_equal(u->display_name, specs[i].name);
                assert_int_equal(u->n_modules, specs[i].n_modules);
                for (size_t j = 0; j < u->n_modules; j++) {
                        assert_int_equal(u->modules[j].code, specs[i].modules[j].code);
                        assert_int_equal(u->modules[j].is_protected, specs[i].modules[j].is_protected);
                }
        }
}

static char *read_file_at(int dir_fd, const char *name, size_t *ret_size) {
        struct stat st;
        char *buf;
        int fd;

        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        assert_non_null(buf);
        assert_int_equal(read(fd, buf, (size_t) st.st_size), st.st_size);
        buf[st.st_size] = '\0';
        close(fd);
        *ret_size = (size_t) st.st_size;
        return buf;
}

static void write_file_at(int dir_fd, const char *name, const char *data, size_t size) {
        int fd;

        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
        close(fd);
}

/* Counts the entries of the directory, and those with ".tmp-" in the name. */
static size_t count_entries(int dir_fd, size_t *ret_temporary) {
        size_t n = 0, temporary = 0;
        struct dirent *de;
        DIR *d;

        d = fdopendir(dup(dir_fd));
        assert_non_null(d);
        rewinddir(d);
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                n++;
                if (strstr(de->d_name, ".tmp-"))
                        temporary++;
        }
        closedir(d);
        *ret_temporary = temporary;
        return n;
}

static void save_ok(int dir_fd, const char *name, const struct tenant_view *v) {
        char reason[256] = "";

        assert_int_equal(snapshot_save(dir_fd, name, v, reason, sizeof(reason)), 0);
        assert_string_equal(reason, "");
}

static int setup_dir(void **state) {
        struct test_dir *d = calloc(1, sizeof(*d));

        assert_non_null(d);
        (void) strscpy(d->path, sizeof(d->path), "/tmp/test-snapshot-XXXXXX");
        assert_non_null(mkdtemp(d->path));
        d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(d->fd >= 0);
        *state = d;
        return 0;
}

/* Removes the test directory with its files and empty subdirectories. */
static int teardown_dir(void **state) {
        struct test_dir *d = *state;
        struct dirent *de;
        DIR *dir;

        dir = opendir(d->path);
        while (dir && (de = readdir(dir))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (unlinkat(d->fd, de->d_name, 0) < 0 && errno == EISDIR)
                        (void) unlinkat(d->fd, de->d_name, AT_REMOVEDIR);
        }
        if (dir)
                closedir(dir);
        (void) rmdir(d->path);
        close(d->fd);
        free(d);
        return 0;
}

static void test_file_name_valid(void **state) {
        char buf[SNAPSHOT_FILE_NAME_MAX + 1];

        assert_int_equal(snapshot_file_name("Cust-1", "ten.2_x", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "Cust-1_ten.2_x.snapshot");
}

static void test_file_name_invalid(void **state) {
        static const char *const ids[][2] = {
                { "", "t" }, { "c", "" }, { "a/b", "t" }, { "c", "t t" }, { "c", "t\n" }, { "c\xc3\xa9", "t" },
                { "c", "t*" }, { "c", "%s" },
        };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                memset(buf, 'Z', sizeof(buf));
                assert_int_equal(snapshot_file_name(ids[i][0], ids[i][1], buf, sizeof(buf)), -EINVAL);
                assert_int_equal(buf[0], 'Z');
        }
        assert_int_equal(snapshot_file_name(NULL, "t", buf, sizeof(buf)), -EINVAL);
}

static void test_file_name_too_long(void **state) {
        char id[151], buf[512];

        memset(id, 'a', sizeof(id) - 1);
        id[sizeof(id) - 1] = '\0';
        memset(buf, 'Z', sizeof(buf));
        assert_int_equal(snapshot_file_name("c", "t", buf, 12), -ENAMETOOLONG);
        assert_int_equal(buf[0], 'Z');
        assert_int_equal(snapshot_file_name("c", "t", buf, 13), 0);
        assert_int_equal(snapshot_file_name(id, id, buf, sizeof(buf)), -ENAMETOOLONG);
}

static void test_round_trip_hostile(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v, loaded = {};
        char reason[256] = "";

        view_build(&v, hostile, ELEMENTSOF(hostile));
        save_ok(d->fd, NAME, &v);
        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), 0);
        assert_string_equal(reason, "");
        assert_view_matches(&loaded, hostile, ELEMENTSOF(hostile));

        tenant_view_done(&loaded);
        tenant_view_done(&v);
}

static void test_round_trip_bytes(void **state) {
        static const struct user_spec one[] = {
                { "a\tb", "x\ny", "\\%s%n\r\x01\x7f\xc3\xa9", 2, { { -1, true }, { 2, false } } },
        };
        static const char expected[] =
                "cbm365-watchd-snapshot 1\n"
                "users 1\n"
                "a\\tb\tx\\ny\t\\\\%s%n\\r\\x01\\x7f\xc3\xa9\t-1=1,2=0\n"
                "end 1 ";
        struct test_dir *d = *state;
        struct tenant_view v;
        size_t size;
        char *data;

        view_build(&v, one, ELEMENTSOF(one));
        save_ok(d->fd, NAME, &v);
        data = read_file_at(d->fd, NAME, &size);
        assert_int_equal(size, strlen(expected) + 17);
        assert_memory_equal(data, expected, strlen(expected));
        assert_int_equal(strspn(data + strlen(expected), "0123456789abcdef"), 16);
        assert_int_equal(data[size - 1], '\n');

        free(data);
        tenant_view_done(&v);
}

static void test_round_trip_empty(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v = {}, loaded = {};
        char reason[256] = "";
        size_t size;
        char *data;

        save_ok(d->fd, NAME, &v);
        data = read_file_at(d->fd, NAME, &size);
        assert_int_equal(size, strlen("cbm365-watchd-snapshot 1\nusers 0\nend 0 ") + 17);
        assert_memory_equal(data, "cbm365-watchd-snapshot 1\nusers 0\nend 0 ", size - 17);
        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), 0);
        assert_int_equal(loaded.n_users, 0);
        free(data);
}

static void test_round_trip_many(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v, loaded = {};
        char reason[256] = "";

        /* Larger than the 1 MiB I/O buffer, so that lines cross reads. */
        view_build_many(&v, 30000);
        save_ok(d->fd, NAME, &v);
        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), 0);
        assert_int_equal(loaded.n_users, 30000);
        assert_string_equal(loaded.users[29999].id, "user-029999");
        assert_string_equal(loaded.users[29999].email, "user29999@contoso.example");
        assert_false(loaded.users[29999].modules[1].is_protected);
        assert_true(loaded.users[29998].modules[1].is_protected);

        tenant_view_done(&loaded);
        tenant_view_done(&v);
}

static void test_save_replaces(void **state) {
        struct test_dir *d = *state;
        struct tenant_view a, b, loaded = {};
        char reason[256] = "";

        view_build(&a, hostile, ELEMENTSOF(hostile));
        view_build(&b, golden, ELEMENTSOF(golden));
        save_ok(d->fd, NAME, &a);
        save_ok(d->fd, NAME, &b);
        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), 0);
        assert_view_matches(&loaded, golden, ELEMENTSOF(golden));

        tenant_view_done(&loaded);
        tenant_view_done(&a);
        tenant_view_done(&b);
}

static void test_save_leaves_no_temporary(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v;
        size_t temporary;
        struct stat st;

        view_build(&v, golden, ELEMENTSOF(golden));
        save_ok(d->fd, NAME, &v);
        assert_int_equal(count_entries(d->fd, &temporary), 1);
        assert_int_equal(temporary, 0);
        assert_int_equal(fstatat(d->fd, NAME, &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        tenant_view_done(&v);
}

static void test_load_golden(void **state) {
        struct tenant_view loaded = {};
        char reason[256] = "";
        int dir_fd;

        dir_fd = open(SNAPSHOT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dir_fd >= 0);
        assert_int_equal(snapshot_load(dir_fd, "good-v1.snapshot", &loaded, reason, sizeof(reason)), 0);
        assert_view_matches(&loaded, golden, ELEMENTSOF(golden));
        tenant_view_done(&loaded);
        close(dir_fd);
}

/* The file format must not change silently: saving the golden users
 * reproduces the fixture byte for byte. */
static void test_save_golden_bytes(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v;
        size_t size, expected_size;
        char *data, *expected;
        int dir_fd;

        dir_fd = open(SNAPSHOT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dir_fd >= 0);
        expected = read_file_at(dir_fd, "good-v1.snapshot", &expected_size);
        view_build(&v, golden, ELEMENTSOF(golden));
        save_ok(d->fd, NAME, &v);
        data = read_file_at(d->fd, NAME, &size);
        assert_int_equal(size, expected_size);
        assert_memory_equal(data, expected, size);

        free(data);
        free(expected);
        tenant_view_done(&v);
        close(dir_fd);
}

static void test_load_missing(void **state) {
        struct test_dir *d = *state;
        struct user sentinel_users[1] = {};
        struct tenant_view loaded = { .users = sentinel_users, .n_users = 1, .capacity = 1 };
        char reason[256];

        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), -ENOENT);
        assert_ptr_equal(loaded.users, sentinel_users);
        assert_int_equal(loaded.n_users, 1);
}

/* Cutting a good snapshot at any byte must fail to load. */
static void test_load_truncated(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v;
        size_t size;
        char *data;

        view_build(&v, hostile, ELEMENTSOF(hostile));
        save_ok(d->fd, NAME, &v);
        data = read_file_at(d->fd, NAME, &size);

        for (size_t cut = 0; cut < size; cut++) {
                struct tenant_view loaded = {};
                char reason[256] = "";

                write_file_at(d->fd, "cut.snapshot", data, cut);
                assert_int_equal(snapshot_load(d->fd, "cut.snapshot", &loaded, reason, sizeof(reason)), -EBADMSG);
                assert_int_equal(strncmp(reason, "line ", 5), 0);
                assert_null(loaded.users);
                assert_int_equal(loaded.n_users, 0);
        }

        free(data);
        tenant_view_done(&v);
}

static void test_load_corrupt(void **state) {
        static const struct {
                const char *content;
                const char *reason;
        } cases[] = {
                { "", "line 1: unexpected end of file, expected the snapshot header" },
                { "{\"users\": []}\n", "line 1: not a cbm365-watchd snapshot" },
                { "cbm365-watchd-snapshot 2\nusers 0\nend 0 0000000000000000\n",
                  "line 1: unsupported snapshot version 2 (this program reads version 1)" },
                { "cbm365-watchd-snapshot 1\nusers many\n",
                  "line 2: expected \"users COUNT\" with COUNT at most 2000000" },
                { "cbm365-watchd-snapshot 1\nusers 2000001\n",
                  "line 2: expected \"users COUNT\" with COUNT at most 2000000" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\\q\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid escape \\q in the email" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\\\t\nend 1 0000000000000000\n",
                  "line 3: incomplete escape at the end of the display name" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu\\x0g\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid \\x escape in the user id" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu\\x00\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid \\x escape in the user id" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu\\xg1\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid \\x escape in the user id" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu\\x41\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid \\x escape in the user id" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu\\x1B\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid \\x escape in the user id" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu\\x09\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: invalid \\x escape in the user id" },
                { "cbm365-watchd-snapshot 01\nusers 0\nend 0 0000000000000000\n",
                  "line 1: not a cbm365-watchd snapshot" },
                { "cbm365-watchd-snapshot 1\nusers 01\n",
                  "line 2: expected \"users COUNT\" with COUNT at most 2000000" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t02=1\nend 1 0000000000000000\n",
                  "line 3: module 1 is not CODE=0 or CODE=1 with a numeric CODE" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t-0=1\nend 1 0000000000000000\n",
                  "line 3: module 1 is not CODE=0 or CODE=1 with a numeric CODE" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t\nend 01 0000000000000000\n",
                  "line 4: user count in the trailer does not match the header (1)" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\x01\tn\t\nend 1 0000000000000000\n",
                  "line 3: unescaped control byte 0x01 in the email" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\temail\n",
                  "line 3: missing field after the email" },
                { "cbm365-watchd-snapshot 1\nusers 1\n\te\tn\t\nend 1 0000000000000000\n",
                  "line 3: empty user id" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\tmailbox=1\nend 1 0000000000000000\n",
                  "line 3: module 1 is not CODE=0 or CODE=1 with a numeric CODE" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t0=1,2=2\nend 1 0000000000000000\n",
                  "line 3: module 2 is not CODE=0 or CODE=1 with a numeric CODE" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t0=1,\nend 1 0000000000000000\n",
                  "line 3: module 2 is not CODE=0 or CODE=1 with a numeric CODE" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t2147483648=1\nend 1 0000000000000000\n",
                  "line 3: module 1 is not CODE=0 or CODE=1 with a numeric CODE" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t2=1,0=1\nend 1 0000000000000000\n",
                  "line 3: module codes out of order or repeated" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t0=1\tx\nend 1 0000000000000000\n",
                  "line 3: more than 4 fields" },
                { "cbm365-watchd-snapshot 1\nusers 3\nu1\te\tn\t\nu2\te\tn\t\nu2\te\tn\t\nend 3 0000000000000000\n",
                  "line 5: duplicate user id" },
                { "cbm365-watchd-snapshot 1\nusers 2\nu2\te\tn\t\nu1\te\tn\t\nend 2 0000000000000000\n",
                  "line 4: out of order user id" },
                { "cbm365-watchd-snapshot 1\nusers 3\nu1\te\tn\t\nu2\te\tn\t\nend 2 0000000000000000\n",
                  "line 5: trailer after 2 of 3 users" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t\nend 2 0000000000000000\n",
                  "line 4: user count in the trailer does not match the header (1)" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t\nu2\te\tn\t\n",
                  "line 4: expected the trailer \"end COUNT CHECKSUM\" after 1 users" },
                { "cbm365-watchd-snapshot 1\nusers 1\nu1\te\tn\t\n",
                  "line 4: unexpected end of file, expected the trailer" },
                { "cbm365-watchd-snapshot 1\nusers 2\nu1\te\tn\t\n",
                  "line 4: unexpected end of file after 1 of 2 users" },
        };
        struct test_dir *d = *state;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct tenant_view loaded = {};
                char reason[256] = "";

                write_file_at(d->fd, NAME, cases[i].content, strlen(cases[i].content));
                assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), -EBADMSG);
                assert_string_equal(reason, cases[i].reason);
                assert_null(loaded.users);
        }
}

static void test_load_too_long(void **state) {
        struct test_dir *d = *state;
        struct tenant_view loaded = {};
        char content[600], reason[256] = "";
        int n;

        n = snprintf(content, sizeof(content), "cbm365-watchd-snapshot 1\nusers 1\n%0*d\te\tn\t\nend 1 0\n",
                     VIEW_ID_MAX + 1, 0);
        write_file_at(d->fd, NAME, content, (size_t) n);
        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "line 3: user id longer than 256 bytes");
}

static void test_load_checksum_mismatch(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v, loaded = {};
        char reason[256] = "";
        size_t size;
        char *data, *p;

        view_build(&v, golden, ELEMENTSOF(golden));
        save_ok(d->fd, NAME, &v);
        data = read_file_at(d->fd, NAME, &size);
        p = strstr(data, "Ada Lovelace");
        assert_non_null(p);
        p[0] = 'E';
        write_file_at(d->fd, NAME, data, size);

        assert_int_equal(snapshot_load(d->fd, NAME, &loaded, reason, sizeof(reason)), -EBADMSG);
        assert_int_equal(strncmp(reason, "line 6: checksum mismatch (file ", 32), 0);
        assert_null(loaded.users);
        free(data);
        tenant_view_done(&v);
}

static void test_load_trailing_data(void **state) {
        struct tenant_view loaded = {};
        char reason[256] = "";
        int dir_fd;

        dir_fd = open(SNAPSHOT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dir_fd >= 0);
        assert_int_equal(snapshot_load(dir_fd, "trailing-data.snapshot", &loaded, reason, sizeof(reason)),
                         -EBADMSG);
        assert_string_equal(reason, "line 7: unexpected data after the trailer");
        assert_null(loaded.users);
        close(dir_fd);
}

static void test_load_not_regular(void **state) {
        struct test_dir *d = *state;
        struct tenant_view loaded = {};
        char reason[256] = "";

        assert_int_equal(mkdirat(d->fd, "dir.snapshot", 0700), 0);
        assert_int_equal(snapshot_load(d->fd, "dir.snapshot", &loaded, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "snapshot 'dir.snapshot' is not a regular file");

        assert_int_equal(mkfifoat(d->fd, "fifo.snapshot", 0600), 0);
        assert_int_equal(snapshot_load(d->fd, "fifo.snapshot", &loaded, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "snapshot 'fifo.snapshot' is not a regular file");

        assert_int_equal(symlinkat("/etc/passwd", d->fd, "link.snapshot"), 0);
        assert_int_equal(snapshot_load(d->fd, "link.snapshot", &loaded, reason, sizeof(reason)), -EBADMSG);
        assert_string_equal(reason, "snapshot 'link.snapshot' is a symbolic link");
        assert_null(loaded.users);
}

static void test_bad_file_name(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v = {}, loaded = {};
        char reason[256] = "", new_name[256];

        assert_int_equal(snapshot_load(d->fd, "../x.snapshot", &loaded, reason, sizeof(reason)), -EINVAL);
        assert_int_equal(snapshot_save(d->fd, "", &v, reason, sizeof(reason)), -EINVAL);
        assert_int_equal(snapshot_save(d->fd, "..", &v, reason, sizeof(reason)), -EINVAL);
        assert_int_equal(snapshot_set_aside(d->fd, "a/b", new_name, sizeof(new_name)), -EINVAL);
        assert_int_equal(snapshot_exists(d->fd, "/etc/passwd"), -EINVAL);
}

static void test_save_removed_directory(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v;
        char reason[256] = "";

        view_build(&v, golden, ELEMENTSOF(golden));
        assert_int_equal(rmdir(d->path), 0);
        assert_int_equal(snapshot_save(d->fd, NAME, &v, reason, sizeof(reason)), -ENOENT);
        assert_string_equal(reason,
                            "Failed to create a temporary file for snapshot '" NAME "': No such file or directory");
        tenant_view_done(&v);
}

/* A write that fails half way (here at the file size limit) keeps the old
 * snapshot and removes the temporary file. */
static void test_save_write_failure(void **state) {
        struct test_dir *d = *state;
        struct tenant_view old, big;
        size_t size_before, size_after, temporary;
        char *before, *after, reason[256] = "";
        struct rlimit saved, limited;
        void (*saved_handler)(int);

        view_build(&old, golden, ELEMENTSOF(golden));
        view_build_many(&big, 2000);
        save_ok(d->fd, NAME, &old);
        before = read_file_at(d->fd, NAME, &size_before);

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        limited = (struct rlimit) { .rlim_cur = 8192, .rlim_max = saved.rlim_max };
        saved_handler = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &limited), 0);
        assert_int_equal(snapshot_save(d->fd, NAME, &big, reason, sizeof(reason)), -EFBIG);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        (void) signal(SIGXFSZ, saved_handler);

        assert_string_equal(reason, "Failed to write snapshot '" NAME "': File too large");
        after = read_file_at(d->fd, NAME, &size_after);
        assert_int_equal(size_after, size_before);
        assert_memory_equal(after, before, size_before);
        assert_int_equal(count_entries(d->fd, &temporary), 1);
        assert_int_equal(temporary, 0);

        free(before);
        free(after);
        tenant_view_done(&old);
        tenant_view_done(&big);
}

static void test_save_rename_failure(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v;
        char reason[256] = "";
        size_t temporary;
        struct stat st;

        view_build(&v, golden, ELEMENTSOF(golden));
        assert_int_equal(mkdirat(d->fd, NAME, 0700), 0);
        assert_int_equal(snapshot_save(d->fd, NAME, &v, reason, sizeof(reason)), -EISDIR);
        assert_string_equal(reason, "Failed to replace snapshot '" NAME "': Is a directory");
        assert_int_equal(fstatat(d->fd, NAME, &st, 0), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(count_entries(d->fd, &temporary), 1);
        assert_int_equal(temporary, 0);
        tenant_view_done(&v);
}

static void test_save_rejects_unsorted(void **state) {
        static const struct user_spec unsorted[] = {
                { "b", "", "", 0, {} },
                { "a", "", "", 0, {} },
        };
        static const struct user_spec bad_modules[] = {
                { "a", "", "", 2, { { 2, true }, { 2, false } } },
        };
        struct test_dir *d = *state;
        struct tenant_view v;
        char reason[256] = "";
        size_t temporary;

        view_build(&v, unsorted, ELEMENTSOF(unsorted));
        assert_int_equal(snapshot_save(d->fd, NAME, &v, reason, sizeof(reason)), -EINVAL);
        assert_string_equal(reason, "Failed to save snapshot '" NAME
                            "': user 1 is out of order or repeats an id (the view is not finished)");
        tenant_view_done(&v);

        view_build(&v, bad_modules, ELEMENTSOF(bad_modules));
        assert_int_equal(snapshot_save(d->fd, NAME, &v, reason, sizeof(reason)), -EINVAL);
        assert_string_equal(reason, "Failed to save snapshot '" NAME
                            "': user 0 has module codes out of order or repeated");
        tenant_view_done(&v);

        assert_int_equal(count_entries(d->fd, &temporary), 0);
}

static void assert_corrupt_name(const char *name, const char *suffix) {
        const char *stamp = name + strlen(NAME ".corrupt-");

        assert_int_equal(strncmp(name, NAME ".corrupt-", strlen(NAME ".corrupt-")), 0);
        /* YYYYmmddTHHMMSSZ */
        assert_int_equal(strspn(stamp, "0123456789"), 8);
        assert_int_equal(stamp[8], 'T');
        assert_int_equal(strspn(stamp + 9, "0123456789"), 6);
        assert_int_equal(stamp[15], 'Z');
        assert_string_equal(stamp + 16, suffix);
}

static void test_set_aside(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v;
        char new_name[256];
        size_t size_before, size_after;
        char *before, *after;

        view_build(&v, golden, ELEMENTSOF(golden));
        save_ok(d->fd, NAME, &v);
        before = read_file_at(d->fd, NAME, &size_before);

        assert_int_equal(snapshot_set_aside(d->fd, NAME, new_name, sizeof(new_name)), 0);
        assert_corrupt_name(new_name, "");
        assert_int_equal(snapshot_exists(d->fd, NAME), 0);
        assert_int_equal(snapshot_exists(d->fd, new_name), 1);
        after = read_file_at(d->fd, new_name, &size_after);
        assert_int_equal(size_after, size_before);
        assert_memory_equal(after, before, size_before);

        free(before);
        free(after);
        tenant_view_done(&v);
}

/* A set-aside name that exists gets a numeric suffix. The names of the next
 * ten seconds are taken, so that the result does not depend on the clock. */
static void test_set_aside_suffix(void **state) {
        struct test_dir *d = *state;
        char new_name[256], small[20], taken[128], stamp[32];
        time_t now = time(NULL);

        for (time_t t = now; t < now + 10; t++) {
                struct tm tm;

                assert_non_null(gmtime_r(&t, &tm));
                assert_true(strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) > 0);
                (void) snprintf(taken, sizeof(taken), NAME ".corrupt-%s", stamp);
                write_file_at(d->fd, taken, "x", 1);
        }
        write_file_at(d->fd, NAME, "y", 1);

        memset(small, 'Z', sizeof(small));
        assert_int_equal(snapshot_set_aside(d->fd, NAME, small, sizeof(small)), -ENAMETOOLONG);
        assert_int_equal(small[0], 'Z');
        assert_int_equal(snapshot_exists(d->fd, NAME), 1);

        assert_int_equal(snapshot_set_aside(d->fd, NAME, new_name, sizeof(new_name)), 0);
        assert_corrupt_name(new_name, ".1");
        assert_int_equal(snapshot_exists(d->fd, NAME), 0);
}

static void test_set_aside_missing(void **state) {
        struct test_dir *d = *state;
        char new_name[256];

        assert_int_equal(snapshot_set_aside(d->fd, NAME, new_name, sizeof(new_name)), -ENOENT);
}

static void test_exists(void **state) {
        struct test_dir *d = *state;
        struct tenant_view v = {};

        assert_int_equal(snapshot_exists(d->fd, NAME), 0);
        save_ok(d->fd, NAME, &v);
        assert_int_equal(snapshot_exists(d->fd, NAME), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_file_name_valid),
                cmocka_unit_test(test_file_name_invalid),
                cmocka_unit_test(test_file_name_too_long),
                cmocka_unit_test_setup_teardown(test_round_trip_hostile, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_round_trip_bytes, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_round_trip_empty, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_round_trip_many, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_save_replaces, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_save_leaves_no_temporary, setup_dir, teardown_dir),
                cmocka_unit_test(test_load_golden),
                cmocka_unit_test_setup_teardown(test_save_golden_bytes, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_load_missing, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_load_truncated, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_load_corrupt, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_load_too_long, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_load_checksum_mismatch, setup_dir, teardown_dir),
                cmocka_unit_test(test_load_trailing_data),
                cmocka_unit_test_setup_teardown(test_load_not_regular, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_bad_file_name, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_save_removed_directory, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_save_write_failure, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_save_rename_failure, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_save_rejects_unsorted, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_set_aside, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_set_aside_suffix, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_set_aside_missing, setup_dir, teardown_dir),
                cmocka_unit_test_setup_teardown(test_exists, setup_dir, teardown_dir),
        };

        for (size_t i = 1; i < sizeof(all_bytes); i++)
                all_bytes[i - 1] = (char) i;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
