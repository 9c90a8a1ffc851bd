/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "auth.h"
#include "http.h"
#include "util.h"

#define TEST_SERVER FIXTURE_DIR "/../unit/http_test_server.py"
#define SERVER_START_TIMEOUT_MSEC 10000
/* Every wait for a reply in this file ends after this long. */
#define WAIT_USEC (5 * USEC_PER_SEC)
#define MAX_BODY (64u * 1024u)

static sd_event *event;
static pid_t server_pid = -1;
static int server_stdout = -1;          /* kept open so the server never writes to a closed pipe */
static unsigned server_port;

/* What a callback saw, copied out of the response. */
struct result {
        int calls;
        int error;
        int curl_code;
        long status;
        char *body;
        size_t body_size;
        char request_id[128];
        int64_t retry_after_sec;
        char content_type[128];
        char error_text[256];
        int order;                      /* completion number, from 1 */
};

static int completed;                   /* callbacks run since the test began */

static void result_done(struct result *r) {
        free(r->body);
        r->body = NULL;
}

static void on_result(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct result *r = userdata;

        r->calls++;
        r->order = ++completed;
        r->error = resp->error;
        r->curl_code = resp->curl_code;
        r->status = resp->status;
        free(r->body);
        r->body = resp->body ? strndup(resp->body, resp->body_size) : NULL;
        r->body_size = resp->body_size;
        strscpy(r->request_id, sizeof r->request_id, resp->request_id);
        r->retry_after_sec = resp->retry_after_sec;
        strscpy(r->content_type, sizeof r->content_type, resp->content_type);
        strscpy(r->error_text, sizeof r->error_text, resp->error_text);
}

/* Runs the loop until *counter reaches target or WAIT_USEC passes. */
static bool run_until(const int *counter, int target) {
        uint64_t deadline = now_monotonic_usec() + WAIT_USEC;

        while (*counter < target) {
                if (now_monotonic_usec() > deadline)
                        return false;
                assert_true(sd_event_run(event, 50 * USEC_PER_MSEC) >= 0);
        }
        return true;
}

/* Runs the loop for a fixed time, for checks that something does not happen. */
static void run_for(uint64_t usec) {
        uint64_t deadline = now_monotonic_usec() + usec;

        while (now_monotonic_usec() < deadline)
                assert_true(sd_event_run(event, 20 * USEC_PER_MSEC) >= 0);
}

static const char *url_for(char *buf, size_t size, const char *path) {
        (void) snprintf(buf, size, "http://127.0.0.1:%u%s", server_port, path);
        return buf;
}

static struct http_client *client_new(unsigned max_parallel, unsigned timeout_sec, size_t max_body) {
        struct http_client_options o = {
                .max_parallel = max_parallel,
                .timeout_sec = timeout_sec,
                .max_body_size = max_body,
                .user_agent = "cbm365-watchd-test/1",
        };
        struct http_client *c = NULL;

        assert_int_equal(http_client_new(event, &o, &c), 0);
        return c;
}

static void submit(struct http_client *c, const char *path, struct result *r, struct http_request **ret) {
        char url[256];
        struct http_request_options o = {
                .method = "GET",
                .url = url_for(url, sizeof url, path),
        };

        assert_int_equal(http_submit(c, &o, on_result, r, ret), 0);
}

/* Submits a GET and waits for its callback. */
static void fetch(struct http_client *c, const char *path, struct result *r) {
        submit(c, path, r, NULL);
        assert_true(run_until(&r->calls, 1));
}

static struct json_object *server_stats(void) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};
        struct json_object *o;
        int saved = completed;

        fetch(c, "/stats", &r);
        completed = saved;
        http_client_free(c);
        assert_int_equal(r.status, 200);
        o = json_tokener_parse(r.body);
        result_done(&r);
        assert_non_null(o);
        return o;
}

static int64_t server_stat(const char *name) {
        struct json_object *o = server_stats(), *v;
        int64_t n;

        assert_true(json_object_object_get_ex(o, name, &v));
        n = json_object_get_int64(v);
        json_object_put(o);
        return n;
}

static int test_setup(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};

        completed = 0;
        fetch(c, "/reset", &r);
        http_client_free(c);
        result_done(&r);
        completed = 0;
        if (r.status != 200)
                print_error("Failed to reset the test server: %s\n", r.error_text);
        return r.status == 200 ? 0 : -1;
}

static void server_child(int fd) {
        if (dup2(fd, STDOUT_FILENO) < 0)
                _exit(127);
        /* The server dies with the test, even when the test crashes. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("python3", "python3", TEST_SERVER, (char *) NULL);
        _exit(127);
}

/* Reads the line with the port, within SERVER_START_TIMEOUT_MSEC. */
static int server_read_port(int fd) {
        uint64_t deadline = now_monotonic_usec() + SERVER_START_TIMEOUT_MSEC * USEC_PER_MSEC;
        char line[32] = "";
        size_t size = 0;
        uint64_t port;

        while (!memchr(line, '\n', size)) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = now_monotonic_usec();
                ssize_t n;

                if (now >= deadline || size + 1 >= sizeof line)
                        return -ETIMEDOUT;
                if (poll(&p, 1, (int) ((deadline - now) / USEC_PER_MSEC) + 1) != 1)
                        return -ETIMEDOUT;
                n = read(fd, line + size, sizeof line - 1 - size);
                if (n <= 0)
                        return -EIO;
                size += (size_t) n;
                line[size] = '\0';
        }
        line[strcspn(line, "\n")] = '\0';
        if (parse_uint64(line, 65535, &port) < 0 || port == 0)
                return -EINVAL;
        server_port = (unsigned) port;
        return 0;
}

static int group_setup(void **state) {
        int fds[2], r;

        if (sd_event_new(&event) < 0 || pipe2(fds, O_CLOEXEC) < 0)
                return -1;
        server_pid = fork();
        if (server_pid < 0)
                return -1;
        if (server_pid == 0)
                server_child(fds[1]);
        close(fds[1]);
        server_stdout = fds[0];
        r = server_read_port(fds[0]);
        if (r < 0)
                print_error("Failed to start %s: %s\n", TEST_SERVER, strerror(-r));
        return r < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
        if (server_pid > 0) {
                (void) kill(server_pid, SIGTERM);
                (void) waitpid(server_pid, NULL, 0);
        }
        if (server_stdout >= 0)
                close(server_stdout);
        event = sd_event_unref(event);
        return 0;
}

/* A port on 127.0.0.1 that is bound but not listening: connecting is refused. */
static int refused_port(unsigned *ret) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        int fd;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        *ret = ntohs(a.sin_port);
        return fd;
}

static const char *json_string_at(struct json_object *o, const char *key1, const char *key2) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key1, &v))
                return NULL;
        if (key2 && !json_object_object_get_ex(v, key2, &v))
                return NULL;
        return json_object_get_string(v);
}

static void http_echo_request(void **state) {
        struct http_client *c = client_new(2, 5, MAX_BODY);
        struct result r = {};
        char url[256];
        struct http_request_options o = {
                .method = "POST",
                .url = url_for(url, sizeof url, "/echo"),
                .content_type = "application/json",
                .body = "{\"userEmails\":[]}",
                .body_size = strlen("{\"userEmails\":[]}"),
                .bearer_token = "token-abc.123",
        };
        struct json_object *echo;

        assert_int_equal(http_submit(c, &o, on_result, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1));
        assert_int_equal(r.error, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, "application/json");

        echo = json_tokener_parse(r.body);
        assert_non_null(echo);
        assert_string_equal(json_string_at(echo, "method", NULL), "POST");
        assert_string_equal(json_string_at(echo, "body", NULL), "{\"userEmails\":[]}");
        assert_string_equal(json_string_at(echo, "headers", "authorization"), "Bearer token-abc.123");
        assert_string_equal(json_string_at(echo, "headers", "content-type"), "application/json");
        assert_string_equal(json_string_at(echo, "headers", "accept"), "application/json");
        assert_string_equal(json_string_at(echo, "headers", "user-agent"), "cbm365-watchd-test/1");
        assert_null(json_string_at(echo, "headers", "expect"));
        json_object_put(echo);

        result_done(&r);
        http_client_free(c);
}

static void http_no_bearer_header(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};
        struct json_object *echo;

        fetch(c, "/echo", &r);
        assert_int_equal(r.status, 200);
        echo = json_tokener_parse(r.body);
        assert_non_null(echo);
        assert_string_equal(json_string_at(echo, "method", NULL), "GET");
        assert_null(json_string_at(echo, "headers", "authorization"));
        json_object_put(echo);

        result_done(&r);
        http_client_free(c);
}

static void http_status_and_request_id(void **state) {
        struct http_client *c = client_new(4, 5, MAX_BODY);
        struct result missing = {}, plain = {}, x = {}, none = {};

        submit(c, "/status/404", &missing, NULL);
        submit(c, "/request-id", &plain, NULL);
        submit(c, "/x-request-id", &x, NULL);
        submit(c, "/echo", &none, NULL);
        assert_true(run_until(&completed, 4));

        assert_int_equal(missing.error, 0);
        assert_int_equal(missing.status, 404);
        assert_string_equal(missing.body, "{\"status\": 404}");
        assert_int_equal(missing.retry_after_sec, -1);
        assert_string_equal(plain.request_id, "rid-plain-1");
        assert_string_equal(x.request_id, "rid-x-2");
        assert_string_equal(none.request_id, "");

        result_done(&missing);
        result_done(&plain);
        result_done(&x);
        result_done(&none);
        http_client_free(c);
}

static void http_retry_after_header(void **state) {
        struct http_client *c = client_new(2, 5, MAX_BODY);
        struct result delta = {}, date = {};

        submit(c, "/retry-after/delta", &delta, NULL);
        submit(c, "/retry-after/date", &date, NULL);
        assert_true(run_until(&completed, 2));

        assert_int_equal(delta.status, 429);
        assert_int_equal(delta.retry_after_sec, 2);
        assert_int_equal(date.status, 503);
        /* The server sends a date 30 s ahead, in whole seconds. */
        assert_in_range(date.retry_after_sec, 27, 31);

        result_done(&delta);
        result_done(&date);
        http_client_free(c);
}

static void http_retry_after_parse(void **state) {
        /* Sun, 06 Nov 1994 08:49:37 GMT */
        const int64_t date = 784111777;

        assert_int_equal(http_parse_retry_after("2", date), 2);
        assert_int_equal(http_parse_retry_after(" 120\t", date), 120);
        assert_int_equal(http_parse_retry_after("0", date), 0);
        assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date - 10), 10);
        assert_int_equal(http_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", date - 10), 10);
        assert_int_equal(http_parse_retry_after("Sun Nov  6 08:49:37 1994", date - 10), 10);
        assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date + 100), 0);

        assert_int_equal(http_parse_retry_after("", date), -EINVAL);
        assert_int_equal(http_parse_retry_after("-5", date), -EINVAL);
        assert_int_equal(http_parse_retry_after("1.5", date), -EINVAL);
        assert_int_equal(http_parse_retry_after("2 s", date), -EINVAL);
        assert_int_equal(http_parse_retry_after("99999999999", date), -EINVAL);
        assert_int_equal(http_parse_retry_after("soon", date), -EINVAL);
        assert_int_equal(http_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT; x=1", date), -EINVAL);
        assert_int_equal(http_parse_retry_after(NULL, date), -EINVAL);
}

static void http_body_too_large(void **state) {
        struct http_client *c = client_new(3, 5, 100000);
        struct result chunked = {}, sized = {}, exact = {};

        submit(c, "/large/100001", &chunked, NULL);
        submit(c, "/large-length/100001", &sized, NULL);
        submit(c, "/large/100000", &exact, NULL);
        assert_true(run_until(&completed, 3));

        assert_int_equal(chunked.error, -EFBIG);
        assert_null(chunked.body);
        assert_string_equal(chunked.error_text, "Reply body from 127.0.0.1 is larger than 100000 bytes");
        assert_int_equal(sized.error, -EFBIG);
        assert_int_equal(exact.error, 0);
        assert_int_equal(exact.body_size, 100000);

        result_done(&chunked);
        result_done(&sized);
        result_done(&exact);
        http_client_free(c);
}

static void http_stalled_reply_times_out(void **state) {
        struct http_client *c = client_new(2, 1, MAX_BODY);
        struct result stall = {}, slow = {};
        uint64_t start = now_monotonic_usec(), elapsed;

        submit(c, "/stall", &stall, NULL);
        submit(c, "/delay/3000", &slow, NULL);
        assert_true(run_until(&completed, 2));
        elapsed = now_monotonic_usec() - start;

        assert_int_equal(stall.error, -ETIMEDOUT);
        assert_int_equal(slow.error, -ETIMEDOUT);
        assert_non_null(strstr(stall.error_text, "127.0.0.1"));
        assert_non_null(strstr(slow.error_text, "127.0.0.1"));
        assert_true(elapsed >= 900 * USEC_PER_MSEC);
        assert_true(elapsed < 2500 * USEC_PER_MSEC);

        result_done(&stall);
        result_done(&slow);
        http_client_free(c);
}

static void http_connection_refused(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};
        char url[256];
        struct http_request_options o = { .method = "GET", .url = url };
        unsigned port;
        int fd = refused_port(&port);

        (void) snprintf(url, sizeof url, "http://127.0.0.1:%u/echo", port);
        assert_int_equal(http_submit(c, &o, on_result, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1));
        close(fd);

        assert_int_equal(r.error, -ECONNREFUSED);
        assert_int_equal(r.status, 0);
        assert_int_not_equal(r.curl_code, 0);
        assert_non_null(strstr(r.error_text, "127.0.0.1"));

        result_done(&r);
        http_client_free(c);
}

static void http_closed_without_reply(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};

        fetch(c, "/close", &r);
        assert_int_equal(r.error, -EIO);
        assert_int_equal(r.status, 0);
        assert_string_not_equal(r.error_text, "");

        result_done(&r);
        http_client_free(c);
}

static void http_max_parallel(void **state) {
        struct http_client *c = client_new(2, 5, MAX_BODY);
        struct result r[6] = {};

        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                submit(c, "/parallel/300", &r[i], NULL);
        assert_int_equal(http_client_running(c), 2);
        assert_int_equal(http_client_queued(c), 4);

        assert_true(run_until(&completed, 6));
        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                assert_int_equal(r[i].calls, 1);
                assert_int_equal(r[i].status, 200);
                result_done(&r[i]);
        }
        assert_int_equal(http_client_running(c), 0);
        assert_int_equal(http_client_queued(c), 0);
        assert_int_equal(server_stat("max_in_flight"), 2);
        assert_int_equal(server_stat("requests"), 6);
        http_client_free(c);
}

static void http_urgent_first(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result first = {}, normal1 = {}, normal2 = {}, urgent1 = {}, urgent2 = {};
        char url[256];
        struct http_request_options o = { .method = "GET", .url = url_for(url, sizeof url, "/echo"), .urgent = true };

        submit(c, "/delay/100", &first, NULL);
        submit(c, "/echo", &normal1, NULL);
        submit(c, "/echo", &normal2, NULL);
        assert_int_equal(http_submit(c, &o, on_result, &urgent1, NULL), 0);
        assert_int_equal(http_submit(c, &o, on_result, &urgent2, NULL), 0);
        assert_true(run_until(&completed, 5));

        assert_int_equal(first.order, 1);
        assert_int_equal(urgent1.order, 2);
        assert_int_equal(urgent2.order, 3);
        assert_int_equal(normal1.order, 4);
        assert_int_equal(normal2.order, 5);

        result_done(&first);
        result_done(&normal1);
        result_done(&normal2);
        result_done(&urgent1);
        result_done(&urgent2);
        http_client_free(c);
}

static void http_cancel_request(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result running = {}, queued = {}, last = {};
        struct http_request *a, *b;

        submit(c, "/delay/200", &running, &a);
        submit(c, "/delay/200", &queued, &b);
        run_for(50 * USEC_PER_MSEC);
        http_request_cancel(a);
        http_request_cancel(b);
        assert_int_equal(http_client_running(c), 0);
        assert_int_equal(http_client_queued(c), 0);

        fetch(c, "/echo", &last);
        run_for(300 * USEC_PER_MSEC);
        assert_int_equal(running.calls, 0);
        assert_int_equal(queued.calls, 0);
        assert_int_equal(last.status, 200);

        result_done(&last);
        http_client_free(c);
}

/* A callback that cancels one request and submits another. */
struct cancel_context {
        struct http_client *client;
        struct http_request *victim;
        struct result *next;
        struct result self;
};

static void on_cancel_other(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct cancel_context *ctx = userdata;

        on_result(req, resp, &ctx->self);
        http_request_cancel(ctx->victim);
        http_request_cancel(req);               /* its own handle: no effect */
        submit(ctx->client, "/echo", ctx->next, NULL);
}

static void http_cancel_from_callback(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result victim = {}, next = {};
        struct cancel_context ctx = { .client = c, .next = &next };
        char url[256];
        struct http_request_options o = { .method = "GET", .url = url_for(url, sizeof url, "/echo") };

        assert_int_equal(http_submit(c, &o, on_cancel_other, &ctx, NULL), 0);
        submit(c, "/delay/100", &victim, &ctx.victim);
        assert_true(run_until(&completed, 2));
        run_for(200 * USEC_PER_MSEC);

        assert_int_equal(ctx.self.calls, 1);
        assert_int_equal(victim.calls, 0);
        assert_int_equal(next.calls, 1);
        assert_int_equal(next.status, 200);

        result_done(&ctx.self);
        result_done(&next);
        http_client_free(c);
}

static void http_free_skips_callbacks(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result running = {}, queued = {};

        submit(c, "/delay/100", &running, NULL);
        submit(c, "/delay/100", &queued, NULL);
        run_for(20 * USEC_PER_MSEC);
        http_client_free(c);
        run_for(200 * USEC_PER_MSEC);

        assert_int_equal(running.calls, 0);
        assert_int_equal(queued.calls, 0);
}

static void on_free_client(struct http_request *req, const struct http_response *resp, void *userdata) {
        struct http_client **c = userdata;

        *c = http_client_free(*c);
        completed++;
}

static void http_free_from_callback(void **state) {
        struct http_client *c = client_new(2, 5, MAX_BODY);
        struct http_client *target = c;
        struct result other = {};
        char url[256];
        struct http_request_options o = { .method = "GET", .url = url_for(url, sizeof url, "/echo") };

        assert_int_equal(http_submit(c, &o, on_free_client, &target, NULL), 0);
        submit(c, "/delay/200", &other, NULL);
        assert_true(run_until(&completed, 1));
        run_for(300 * USEC_PER_MSEC);

        assert_null(target);
        assert_int_equal(other.calls, 0);
}

static void http_keep_alive(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r[5] = {};

        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                submit(c, "/echo", &r[i], NULL);
        assert_true(run_until(&completed, 5));

        for (size_t i = 0; i < ELEMENTSOF(r); i++) {
                assert_int_equal(r[i].status, 200);
                result_done(&r[i]);
        }
        assert_int_equal(http_client_connections_opened(c), 1);
        http_client_free(c);
}

static void http_submit_invalid(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};
        struct http_request_options o = { .method = "GET" };
        char url[256];

        o.url = "ftp://127.0.0.1/file";
        assert_int_equal(http_submit(c, &o, on_result, &r, NULL), -EPROTONOSUPPORT);
        o.url = "not a url";
        assert_int_equal(http_submit(c, &o, on_result, &r, NULL), -EINVAL);
        o.url = url_for(url, sizeof url, "/echo");
        o.bearer_token = "abc\r\nX-Injected: 1";
        assert_int_equal(http_submit(c, &o, on_result, &r, NULL), -EINVAL);
        o.bearer_token = NULL;
        o.content_type = "text/plain\nX: 1";
        assert_int_equal(http_submit(c, &o, on_result, &r, NULL), -EINVAL);
        assert_int_equal(http_client_queued(c), 0);
        assert_int_equal(http_client_running(c), 0);
        http_client_free(c);
}

static void http_client_options_invalid(void **state) {
        struct http_client_options o = { .max_parallel = 0, .timeout_sec = 5, .max_body_size = 10 };
        struct http_client *c = NULL;

        assert_int_equal(http_client_new(event, &o, &c), -EINVAL);
        o.max_parallel = 1;
        o.timeout_sec = 0;
        assert_int_equal(http_client_new(event, &o, &c), -EINVAL);
        o.timeout_sec = 5;
        o.max_body_size = 0;
        assert_int_equal(http_client_new(event, &o, &c), -EINVAL);
        assert_null(c);
}

/* The server's arrival time (CLOCK_MONOTONIC usec) of the first request
 * with this path and query, or 0 when none came. */
static uint64_t server_arrival_usec(const char *path) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result r = {};
        struct json_object *list;
        uint64_t found = 0;
        int saved = completed;

        fetch(c, "/arrivals", &r);
        completed = saved;
        http_client_free(c);
        assert_int_equal(r.status, 200);
        list = json_tokener_parse(r.body);
        result_done(&r);
        assert_non_null(list);
        assert_true(json_object_is_type(list, json_type_array));

        for (size_t i = 0; i < json_object_array_length(list) && found == 0; i++) {
                struct json_object *item = json_object_array_get_idx(list, i), *v;

                if (!streq(strempty(json_string_at(item, "path", NULL)), path))
                        continue;
                assert_true(json_object_object_get_ex(item, "monotonic", &v));
                found = (uint64_t) (json_object_get_double(v) * (double) USEC_PER_SEC);
        }
        json_object_put(list);
        return found;
}

/* What the pause callback was told, in order. */
struct pause_record {
        int calls;
        uint64_t until[4];
};

static void on_pause(uint64_t until_usec, void *userdata) {
        struct pause_record *p = userdata;

        if ((size_t) p->calls < ELEMENTSOF(p->until))
                p->until[p->calls] = until_usec;
        p->calls++;
}

static void http_throttle_holds_queue(void **state) {
        struct http_client *c = client_new(2, 5, MAX_BODY);
        struct result running = {}, held1 = {}, held2 = {}, urgent = {};
        struct pause_record pause = {};
        char url[256];
        struct http_request_options o = {
                .method = "GET",
                .url = url_for(url, sizeof url, "/echo?urgent"),
                .urgent = true,
        };
        uint64_t until;

        http_client_set_pause_callback(c, on_pause, &pause);
        submit(c, "/delay/300?running", &running, NULL);
        assert_int_equal(http_client_throttle(c, 1), USEC_PER_SEC);
        until = http_client_paused_until(c);
        assert_true(until > now_monotonic_usec());
        assert_int_equal(pause.calls, 1);
        assert_int_equal(pause.until[0], until);

        submit(c, "/echo?held-1", &held1, NULL);
        submit(c, "/echo?held-2", &held2, NULL);
        assert_int_equal(http_submit(c, &o, on_result, &urgent, NULL), 0);
        assert_int_equal(http_client_running(c), 2);
        assert_int_equal(http_client_queued(c), 2);

        /* The request in flight and the urgent one end during the pause;
         * the queued ones have not reached the server. */
        assert_true(run_until(&completed, 2));
        assert_int_equal(running.status, 200);
        assert_int_equal(urgent.status, 200);
        assert_int_equal(held1.calls, 0);
        assert_int_equal(held2.calls, 0);
        assert_true(now_monotonic_usec() < until);
        assert_int_equal(server_stat("requests"), 2);

        assert_true(run_until(&completed, 4));
        assert_int_equal(held1.status, 200);
        assert_int_equal(held2.status, 200);
        assert_true(server_arrival_usec("/echo?held-1") >= until);
        assert_true(server_arrival_usec("/echo?held-2") >= until);
        assert_true(server_arrival_usec("/echo?urgent") < until);
        assert_int_equal(http_client_paused_until(c), 0);
        assert_int_equal(pause.calls, 2);
        assert_int_equal(pause.until[1], 0);

        result_done(&running);
        result_done(&held1);
        result_done(&held2);
        result_done(&urgent);
        http_client_free(c);
}

static void http_throttle_retry_after(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        uint64_t until;

        assert_int_equal(http_client_throttle(c, 0), 0);
        assert_int_equal(http_client_paused_until(c), 0);

        assert_int_equal(http_client_throttle(c, 2), 2 * USEC_PER_SEC);
        until = http_client_paused_until(c);
        assert_in_range(until - now_monotonic_usec(), USEC_PER_SEC, 2 * USEC_PER_SEC);

        /* A shorter pause leaves the longer one in place. */
        assert_int_equal(http_client_throttle(c, 1), USEC_PER_SEC);
        assert_int_equal(http_client_paused_until(c), until);

        /* Retry-After is capped at HTTP_PAUSE_MAX_SEC. */
        assert_int_equal(http_client_throttle(c, 100000), (uint64_t) HTTP_PAUSE_MAX_SEC * USEC_PER_SEC);
        assert_true(http_client_paused_until(c) > now_monotonic_usec() + (uint64_t) (HTTP_PAUSE_MAX_SEC - 1) * USEC_PER_SEC);
        http_client_free(c);
}

static void http_throttle_backoff_grows(void **state) {
        struct http_client *c = client_new(1, 5, MAX_BODY);
        struct result throttled[3] = {}, ok = {};
        uint64_t pause[3], again, last = 0;
        char url[256];
        /* Urgent, so that the pause the previous reply began does not hold them. */
        struct http_request_options o = {
                .method = "GET",
                .url = url_for(url, sizeof url, "/status/429"),
                .urgent = true,
        };

        for (size_t i = 0; i < ELEMENTSOF(throttled); i++) {
                assert_int_equal(http_submit(c, &o, on_result, &throttled[i], NULL), 0);
                assert_true(run_until(&throttled[i].calls, 1));
                assert_int_equal(throttled[i].status, 429);
                assert_int_equal(throttled[i].retry_after_sec, -1);
                pause[i] = http_client_throttle(c, throttled[i].retry_after_sec);
                result_done(&throttled[i]);
        }
        /* HTTP_BACKOFF_BASE_SEC doubling, each with jitter on its upper half. */
        assert_in_range(pause[0], USEC_PER_SEC / 2, USEC_PER_SEC);
        assert_in_range(pause[1], USEC_PER_SEC, 2 * USEC_PER_SEC);
        assert_in_range(pause[2], 2 * USEC_PER_SEC, 4 * USEC_PER_SEC);

        /* A 2xx reply starts the backoff over. */
        o.url = url_for(url, sizeof url, "/echo");
        assert_int_equal(http_submit(c, &o, on_result, &ok, NULL), 0);
        assert_true(run_until(&ok.calls, 1));
        assert_int_equal(ok.status, 200);
        again = http_client_throttle(c, -1);
        assert_in_range(again, USEC_PER_SEC / 2, USEC_PER_SEC);

        /* It grows no further than HTTP_BACKOFF_MAX_SEC. */
        for (int i = 0; i < 20; i++)
                last = http_client_throttle(c, -1);
        assert_in_range(last, (uint64_t) HTTP_BACKOFF_MAX_SEC * USEC_PER_SEC / 2,
                        (uint64_t) HTTP_BACKOFF_MAX_SEC * USEC_PER_SEC);

        result_done(&ok);
        http_client_free(c);
}

/* The token endpoint, end to end. */

#define CLIENT_SECRET "a&b=c +%/\xc3\xa9"

struct auth_fixture {
        char token_url[256];
        char client_id[32];
        char client_secret[64];
        char scope[64];
        struct api_config api;
        struct http_client *http;
        struct auth *auth;
};

static void auth_fixture_init(struct auth_fixture *f, const char *path, const char *secret) {
        *f = (struct auth_fixture) {};
        url_for(f->token_url, sizeof f->token_url, path);
        strscpy(f->client_id, sizeof f->client_id, "watchd-test");
        strscpy(f->client_secret, sizeof f->client_secret, secret);
        strscpy(f->scope, sizeof f->scope, "elements.cbprotected.read.all");
        f->api.token_url = f->token_url;
        f->api.client_id = f->client_id;
        f->api.client_secret = f->client_secret;
        f->api.scope = f->scope;
        f->http = client_new(2, 5, MAX_BODY);
        assert_int_equal(auth_new(f->http, &f->api, &f->auth), 0);
}

static void auth_fixture_done(struct auth_fixture *f) {
        f->auth = auth_free(f->auth);
        f->http = http_client_free(f->http);
}

struct token_result {
        int calls;
        int error;
        char token[64];
        char reason[512];
};

static void on_token(int error, const char *token, const char *reason, void *userdata) {
        struct token_result *t = userdata;

        t->calls++;
        completed++;
        t->error = error;
        strscpy(t->token, sizeof t->token, strempty(token));
        strscpy(t->reason, sizeof t->reason, strempty(reason));
}

static void auth_one_fetch_for_two(void **state) {
        struct auth_fixture f;
        struct token_result a = {}, b = {};

        auth_fixture_init(&f, "/token?delay_ms=200", CLIENT_SECRET);
        assert_int_equal(auth_get_token(f.auth, on_token, &a), 0);
        assert_int_equal(auth_get_token(f.auth, on_token, &b), 0);
        assert_int_equal(a.calls, 0);
        assert_true(run_until(&completed, 2));

        assert_int_equal(a.error, 0);
        assert_string_equal(a.token, "tok-1");
        assert_int_equal(b.error, 0);
        assert_string_equal(b.token, "tok-1");
        assert_int_equal(server_stat("token_requests"), 1);
        auth_fixture_done(&f);
}

static void auth_cached_and_invalidated(void **state) {
        struct auth_fixture f;
        struct token_result first = {}, cached = {}, kept = {}, renewed = {};

        auth_fixture_init(&f, "/token", CLIENT_SECRET);
        assert_int_equal(auth_get_token(f.auth, on_token, &first), 0);
        assert_true(run_until(&completed, 1));
        assert_string_equal(first.reason, "");
        assert_string_equal(first.token, "tok-1");

        assert_int_equal(auth_get_token(f.auth, on_token, &cached), 0);
        assert_int_equal(cached.calls, 0);      /* never inside the call */
        assert_true(run_until(&completed, 2));
        assert_string_equal(cached.token, "tok-1");
        assert_int_equal(server_stat("token_requests"), 1);

        auth_invalidate(f.auth, "some-other-token");
        assert_int_equal(auth_get_token(f.auth, on_token, &kept), 0);
        assert_true(run_until(&completed, 3));
        assert_string_equal(kept.token, "tok-1");

        auth_invalidate(f.auth, "tok-1");
        assert_int_equal(auth_get_token(f.auth, on_token, &renewed), 0);
        assert_true(run_until(&completed, 4));
        assert_int_equal(renewed.error, 0);
        assert_string_equal(renewed.token, "tok-2");
        assert_int_equal(server_stat("token_requests"), 2);
        auth_fixture_done(&f);
}

static void auth_short_lifetime_renewed(void **state) {
        struct auth_fixture f;
        struct token_result first = {}, early = {}, late = {};

        /* expires_in=2 is under twice the renewal margin: renewed after 1 s. */
        auth_fixture_init(&f, "/token?expires_in=2", CLIENT_SECRET);
        assert_int_equal(auth_get_token(f.auth, on_token, &first), 0);
        assert_true(run_until(&completed, 1));
        assert_int_equal(auth_get_token(f.auth, on_token, &early), 0);
        assert_true(run_until(&completed, 2));
        assert_string_equal(early.token, "tok-1");

        run_for(1100 * USEC_PER_MSEC);
        assert_int_equal(auth_get_token(f.auth, on_token, &late), 0);
        assert_true(run_until(&completed, 3));
        assert_string_equal(late.token, "tok-2");
        auth_fixture_done(&f);
}

static void auth_rejected_secret(void **state) {
        struct auth_fixture f;
        struct token_result t = {};

        auth_fixture_init(&f, "/token", "wrong-secret");
        assert_int_equal(auth_get_token(f.auth, on_token, &t), 0);
        assert_true(run_until(&completed, 1));

        assert_int_equal(t.error, -EACCES);
        assert_string_equal(t.token, "");
        assert_string_equal(t.reason,
                            "Failed to get a token from 127.0.0.1: HTTP 400: invalid_client (Invalid client credentials)");
        assert_null(strstr(t.reason, "wrong-secret"));
        auth_fixture_done(&f);
}

static void auth_endpoint_refused(void **state) {
        struct auth_fixture f;
        struct token_result t = {};
        char path[64];
        unsigned port;
        int fd = refused_port(&port);

        auth_fixture_init(&f, "/token", CLIENT_SECRET);
        (void) snprintf(path, sizeof path, "http://127.0.0.1:%u/token", port);
        strscpy(f.token_url, sizeof f.token_url, path);
        assert_int_equal(auth_get_token(f.auth, on_token, &t), 0);
        assert_true(run_until(&completed, 1));
        close(fd);

        assert_int_equal(t.error, -ECONNREFUSED);
        assert_non_null(strstr(t.reason, "Failed to get a token from 127.0.0.1: "));
        assert_non_null(strstr(t.reason, "Failed to connect to 127.0.0.1"));
        auth_fixture_done(&f);
}

static void auth_cancel_waiter(void **state) {
        struct auth_fixture f;
        struct token_result gone = {}, kept = {};

        auth_fixture_init(&f, "/token?delay_ms=100", CLIENT_SECRET);
        assert_int_equal(auth_get_token(f.auth, on_token, &gone), 0);
        assert_int_equal(auth_get_token(f.auth, on_token, &kept), 0);
        auth_cancel(f.auth, &gone);
        assert_true(run_until(&completed, 1));
        run_for(100 * USEC_PER_MSEC);

        assert_int_equal(gone.calls, 0);
        assert_int_equal(kept.calls, 1);
        assert_string_equal(kept.token, "tok-1");
        auth_fixture_done(&f);
}

/* A waiter that requests a new token from its callback, as a poll does after an HTTP 401. */
struct reentry {
        struct auth *auth;
        struct token_result first;
        struct token_result second;
};

static void on_token_again(int error, const char *token, const char *reason, void *userdata) {
        struct reentry *r = userdata;

        on_token(error, token, reason, &r->first);
        auth_invalidate(r->auth, token);
        assert_int_equal(auth_get_token(r->auth, on_token, &r->second), 0);
        assert_int_equal(r->second.calls, 0);
}

static void auth_get_token_from_callback(void **state) {
        struct auth_fixture f;
        struct reentry r = {};

        auth_fixture_init(&f, "/token", CLIENT_SECRET);
        r.auth = f.auth;
        assert_int_equal(auth_get_token(f.auth, on_token_again, &r), 0);
        assert_true(run_until(&completed, 2));

        assert_string_equal(r.first.token, "tok-1");
        assert_string_equal(r.second.token, "tok-2");
        auth_fixture_done(&f);
}

/* A waiter that frees the auth object: later waiters are dropped silently. */
struct free_context {
        struct auth_fixture *fixture;
        struct token_result self;
};

static void on_token_free_auth(int error, const char *token, const char *reason, void *userdata) {
        struct free_context *ctx = userdata;

        on_token(error, token, reason, &ctx->self);
        ctx->fixture->auth = auth_free(ctx->fixture->auth);
}

static void auth_free_from_callback(void **state) {
        struct auth_fixture f;
        struct free_context ctx = { .fixture = &f };
        struct token_result later = {};

        auth_fixture_init(&f, "/token", CLIENT_SECRET);
        assert_int_equal(auth_get_token(f.auth, on_token_free_auth, &ctx), 0);
        assert_int_equal(auth_get_token(f.auth, on_token, &later), 0);
        assert_true(run_until(&completed, 1));
        run_for(100 * USEC_PER_MSEC);

        assert_int_equal(ctx.self.calls, 1);
        assert_string_equal(ctx.self.token, "tok-1");
        assert_null(f.auth);
        assert_int_equal(later.calls, 0);
        auth_fixture_done(&f);
}

static void auth_backoff_after_failure(void **state) {
        struct auth_fixture f;
        struct token_result first = {}, cached = {}, later = {};
        char expected[sizeof first.reason + 64];
        uint64_t failed_at, backoff_end;

        auth_fixture_init(&f, "/token", "wrong-secret");
        assert_int_equal(auth_get_token(f.auth, on_token, &first), 0);
        assert_true(run_until(&completed, 1));
        failed_at = now_monotonic_usec();
        assert_int_equal(first.error, -EACCES);

        /* The secret is right now, but within the backoff the error comes
         * back without a request, and never inside the call. */
        strscpy(f.client_secret, sizeof f.client_secret, CLIENT_SECRET);
        assert_int_equal(auth_get_token(f.auth, on_token, &cached), 0);
        assert_int_equal(cached.calls, 0);
        assert_true(run_until(&completed, 2));
        assert_int_equal(cached.error, -EACCES);
        (void) snprintf(expected, sizeof expected, "%s (next token request in %u s)", first.reason, AUTH_BACKOFF_BASE_SEC);
        assert_string_equal(cached.reason, expected);
        assert_int_equal(server_stat("token_requests"), 1);

        /* Once AUTH_BACKOFF_BASE_SEC has passed, a new request is made. */
        backoff_end = failed_at + AUTH_BACKOFF_BASE_SEC * USEC_PER_SEC + 50 * USEC_PER_MSEC;
        if (now_monotonic_usec() < backoff_end)
                run_for(backoff_end - now_monotonic_usec());
        assert_int_equal(auth_get_token(f.auth, on_token, &later), 0);
        assert_true(run_until(&completed, 3));
        assert_int_equal(later.error, 0);
        assert_string_equal(later.token, "tok-2");
        assert_int_equal(server_stat("token_requests"), 2);
        auth_fixture_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(http_echo_request, test_setup),
                cmocka_unit_test_setup(http_no_bearer_header, test_setup),
                cmocka_unit_test_setup(http_status_and_request_id, test_setup),
                cmocka_unit_test_setup(http_retry_after_header, test_setup),
                cmocka_unit_test(http_retry_after_parse),
                cmocka_unit_test_setup(http_body_too_large, test_setup),
                cmocka_unit_test_setup(http_stalled_reply_times_out, test_setup),
                cmocka_unit_test_setup(http_connection_refused, test_setup),
                cmocka_unit_test_setup(http_closed_without_reply, test_setup),
                cmocka_unit_test_setup(http_max_parallel, test_setup),
                cmocka_unit_test_setup(http_urgent_first, test_setup),
                cmocka_unit_test_setup(http_cancel_request, test_setup),
                cmocka_unit_test_setup(http_cancel_from_callback, test_setup),
                cmocka_unit_test_setup(http_free_skips_callbacks, test_setup),
                cmocka_unit_test_setup(http_free_from_callback, test_setup),
                cmocka_unit_test_setup(http_keep_alive, test_setup),
                cmocka_unit_test(http_submit_invalid),
                cmocka_unit_test(http_client_options_invalid),
                cmocka_unit_test_setup(http_throttle_holds_queue, test_setup),
                cmocka_unit_test(http_throttle_retry_after),
                cmocka_unit_test_setup(http_throttle_backoff_grows, test_setup),
                cmocka_unit_test_setup(auth_one_fetch_for_two, test_setup),
                cmocka_unit_test_setup(auth_cached_and_invalidated, test_setup),
                cmocka_unit_test_setup(auth_short_lifetime_renewed, test_setup),
                cmocka_unit_test_setup(auth_rejected_secret, test_setup),
                cmocka_unit_test_setup(auth_endpoint_refused, test_setup),
                cmocka_unit_test_setup(auth_cancel_waiter, test_setup),
                cmocka_unit_test_setup(auth_get_token_from_callback, test_setup),
                cmocka_unit_test_setup(auth_free_from_callback, test_setup),
                cmocka_unit_test_setup(auth_backoff_after_failure, test_setup),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
