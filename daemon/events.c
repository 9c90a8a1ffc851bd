/* SPDX-License-Identifier: MIT */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/uio.h>

#include "log.h"
#include "util.h"
#include "view.h"

/* Maximum items of one event. The largest, a user event with a module and
 * the previous user, has 16. */
#define EVENT_FIELDS_MAX 24

static const char *const event_kind_names[_EVENT_KIND_MAX] = {
        [EVENT_PROTECTION_LOST] = "protection-lost",
        [EVENT_PROTECTION_GAINED] = "protection-gained",
        [EVENT_USER_ADDED] = "user-added",
        [EVENT_USER_REMOVED] = "user-removed",
        [EVENT_USER_CHANGED] = "user-changed",
        [EVENT_BASELINE_RECORDED] = "baseline-recorded",
        [EVENT_POLL_FAILED] = "poll-failed",
        [EVENT_POLL_RECOVERED] = "poll-recovered",
        [EVENT_POLL_SUMMARY] = "poll-summary",
        [EVENT_CHANGES_HELD] = "changes-held",
};

/* Operators filter and alert on these ids, and units/cbm365-watchd.catalog
 * explains each one: never change an id once released. */
static const char *const event_message_ids[_EVENT_KIND_MAX] = {
        [EVENT_PROTECTION_LOST] = "5b07d3ac68fc402fbcc2525c0f15c478",
        [EVENT_PROTECTION_GAINED] = "dbb8bc7d99974c91bdfa56dfffb8ab3d",
        [EVENT_USER_ADDED] = "78bfa49f9a934ded919a19011c8bb0c5",
        [EVENT_USER_REMOVED] = "59db5950e50f41b19ee8683341ddeb4a",
        [EVENT_USER_CHANGED] = "de80ae8c6d424ee696627cd1b6a0da56",
        [EVENT_BASELINE_RECORDED] = "325cb61a0f744ed7b2285a3cf9a8f11c",
        [EVENT_POLL_FAILED] = "21458bbac1584d16906682d5e382994e",
        [EVENT_POLL_RECOVERED] = "e7ddcf3f29644f55a0b8bbd3b1398d26",
        [EVENT_POLL_SUMMARY] = "8ee8b4c886dd4e95a26eea62f6f7953f",
        [EVENT_CHANGES_HELD] = "ba5feb4bda364d57bf8f1910511a5f66",
};

/*
 * The items of one entry. Each item is one malloc'ed "NAME=value" buffer, so
 * that a value is copied as bytes and never read as a format. The first
 * failure sticks in error and later additions do nothing, so a builder checks
 * once, in event_send().
 */
struct event_fields {
        struct iovec iov[EVENT_FIELDS_MAX];
        size_t n;
        int error;
};

static void event_fields_done(struct event_fields *f) {
        for (size_t i = 0; i < f->n; i++)
                free(f->iov[i].iov_base);
        f->n = 0;
}

static void field_add_bytes(struct event_fields *f, const char *name, const char *value, size_t len) {
        size_t name_len = strlen(name);
        char *item;

        if (f->error < 0)
                return;
        if (f->n >= EVENT_FIELDS_MAX) {
                f->error = -E2BIG;
                return;
        }

        item = malloc(name_len + 1 + len);
        if (!item) {
                f->error = -ENOMEM;
                return;
        }
        memcpy(item, name, name_len);
        item[name_len] = '=';
        memcpy(item + name_len + 1, value, len);
        f->iov[f->n++] = (struct iovec) { item, name_len + 1 + len };
}

static void field_add(struct event_fields *f, const char *name, const char *value) {
        value = strempty(value);
        field_add_bytes(f, name, value, strlen(value));
}

static void field_add_u64(struct event_fields *f, const char *name, uint64_t value) {
        char buf[32];

        (void) snprintf(buf, sizeof buf, "%" PRIu64, value);
        field_add(f, name, buf);
}

static void field_add_i64(struct event_fields *f, const char *name, int64_t value) {
        char buf[32];

        (void) snprintf(buf, sizeof buf, "%" PRId64, value);
        field_add(f, name, buf);
}

/* Copies text for a MESSAGE, with each control character replaced by '?' so
 * the MESSAGE stays one line. The fields keep the exact bytes. */
static char *message_text_n(const char *s, size_t n) {
        char *copy = strndup(s, n);

        if (!copy)
                return NULL;
        for (unsigned char *p = (unsigned char *) copy; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return copy;
}

static char *message_text(const char *s) {
        s = strempty(s);
        return message_text_n(s, strlen(s));
}

/* Returns the target's name for messages and CBM365_TARGET, or its tenant id
 * when the target has no name. */
static const char *target_name(const struct event_target *t) {
        return t->name && *t->name ? t->name : strempty(t->tenant_id);
}

/* Formats a MESSAGE from a literal format; user text comes in only as "%s"
 * arguments, already passed through message_text(). */
static char *message_format(const char *fmt, ...) _printf_(1, 2);
static char *message_format(const char *fmt, ...) {
        char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

/* Adds what every event carries. message may be NULL when building it failed. */
static void event_fields_begin(struct event_fields *f, enum event_kind kind, int priority,
                               const char *message) {
        if (!message) {
                f->error = -ENOMEM;
                return;
        }
        field_add(f, "MESSAGE_ID", event_message_ids[kind]);
        field_add(f, "MESSAGE", message);
        field_add_i64(f, "PRIORITY", priority);
        field_add(f, "CBM365_EVENT", event_kind_names[kind]);
}

static void event_fields_target(struct event_fields *f, const struct event_target *t) {
        field_add(f, "CBM365_TARGET", target_name(t));
        field_add(f, "CBM365_CUSTOMER_ID", t->customer_id);
        field_add(f, "CBM365_TENANT_ID", t->tenant_id);
}

static void event_fields_user(struct event_fields *f, const struct user *u) {
        field_add(f, "CBM365_USER_ID", u->id);
        field_add(f, "CBM365_USER_EMAIL", u->email);
        field_add(f, "CBM365_USER_NAME", u->display_name);
}

static void event_fields_module(struct event_fields *f, const struct change *c) {
        char name[64];

        field_add(f, "CBM365_MODULE", module_name(c->module_code, name, sizeof name));
        field_add_i64(f, "CBM365_MODULE_CODE", c->module_code);
        field_add(f, "CBM365_PREVIOUS", module_state_to_string(c->previous));
        field_add(f, "CBM365_CURRENT", module_state_to_string(c->current));
}

static int event_send(struct event_fields *f, int priority) {
        if (f->error < 0)
                return f->error;
        return log_struct_iovec(priority, f->iov, f->n);
}

/* Names a user in a MESSAGE: "Name <email>", "<email>", "Name", or "id ID"
 * when the user has neither name nor email. */
static char *user_label(const struct user *u) {
        _cleanup_free_ char *name = message_text(u->display_name);
        _cleanup_free_ char *email = message_text(u->email);
        _cleanup_free_ char *id = message_text(u->id);

        if (!name || !email || !id)
                return NULL;
        if (*name && *email)
                return message_format("%s <%s>", name, email);
        if (*email)
                return message_format("<%s>", email);
        if (*name)
                return message_format("%s", name);
        return message_format("id %s", id);
}

static enum event_kind change_event_kind(enum change_kind kind) {
        switch (kind) {
        case CHANGE_PROTECTION_LOST:
                return EVENT_PROTECTION_LOST;
        case CHANGE_PROTECTION_GAINED:
                return EVENT_PROTECTION_GAINED;
        case CHANGE_USER_ADDED:
                return EVENT_USER_ADDED;
        case CHANGE_USER_REMOVED:
                return EVENT_USER_REMOVED;
        case CHANGE_USER_CHANGED:
                return EVENT_USER_CHANGED;
        }
        return _EVENT_KIND_MAX;
}

static int change_priority(const struct change *c) {
        switch (c->kind) {
        case CHANGE_PROTECTION_LOST:
                return LOG_WARNING;
        case CHANGE_USER_ADDED:
                /* A new user without any module is unprotected too. */
                if (c->module_code >= 0 && c->current == MODULE_STATE_PROTECTED)
                        return LOG_NOTICE;
                return LOG_WARNING;
        case CHANGE_USER_CHANGED:
                return LOG_INFO;
        case CHANGE_PROTECTION_GAINED:
        case CHANGE_USER_REMOVED:
        default:
                return LOG_NOTICE;
        }
}

/* Builds the MESSAGE of a change, with the target and the user already in
 * message form. */
static char *change_message(const struct change *c, const char *target, const char *user) {
        _cleanup_free_ char *previous_user = NULL;
        const char *previous = module_state_to_string(c->previous);
        const char *current = module_state_to_string(c->current);
        char module[64];

        module[0] = '\0';
        if (c->module_code >= 0)
                (void) module_name(c->module_code, module, sizeof module);

        switch (c->kind) {
        case CHANGE_PROTECTION_LOST:
                return message_format("%s: %s lost protection of %s (%s -> %s)",
                                      target, user, module, previous, current);
        case CHANGE_PROTECTION_GAINED:
                return message_format("%s: %s gained protection of %s (%s -> %s)",
                                      target, user, module, previous, current);
        case CHANGE_USER_ADDED:
                if (c->module_code < 0)
                        return message_format("%s: new user %s without any module", target, user);
                return message_format("%s: new user %s: %s %s", target, user, module, current);
        case CHANGE_USER_REMOVED:
                return message_format("%s: user %s removed from the tenant", target, user);
        case CHANGE_USER_CHANGED:
                if (!c->previous_user)
                        return message_format("%s: user %s changed", target, user);
                previous_user = user_label(c->previous_user);
                if (!previous_user)
                        return NULL;
                return message_format("%s: user %s is now %s", target, previous_user, user);
        }
        return NULL;
}

/* Writes a duration as "1d 2h 3min 4s", leaving out the zero parts. */
static void format_duration(char *buf, size_t size, uint64_t sec) {
        static const struct {
                uint64_t sec;
                const char *unit;
        } units[] = { { 86400, "d" }, { 3600, "h" }, { 60, "min" }, { 1, "s" } };
        size_t used = 0;

        buf[0] = '\0';
        if (sec == 0) {
                strscpy(buf, size, "0s");
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(units) && used < size; i++) {
                uint64_t n = sec / units[i].sec;
                int k;

                if (n == 0)
                        continue;
                sec %= units[i].sec;
                k = snprintf(buf + used, size - used, "%s%" PRIu64 "%s", used > 0 ? " " : "", n,
                             units[i].unit);
                if (k < 0)
                        return;
                used += (size_t) k;
        }
}

const char *event_kind_to_string(enum event_kind k) {
        if ((unsigned) k >= _EVENT_KIND_MAX)
                return NULL;
        return event_kind_names[k];
}

const char *event_message_id(enum event_kind k) {
        if ((unsigned) k >= _EVENT_KIND_MAX)
                return NULL;
        return event_message_ids[k];
}

int event_log_change(const struct event_target *t, const struct change *c) {
        _cleanup_(event_fields_done) struct event_fields f = {};
        _cleanup_free_ char *target = NULL, *user = NULL, *message = NULL;
        enum event_kind kind;
        int priority;

        if (!t || !c || !c->user)
                return -EINVAL;
        kind = change_event_kind(c->kind);
        if (kind == _EVENT_KIND_MAX)
                return -EINVAL;
        priority = change_priority(c);

        target = message_text(target_name(t));
        user = user_label(c->user);
        if (target && user)
                message = change_message(c, target, user);

        event_fields_begin(&f, kind, priority, message);
        event_fields_target(&f, t);
        event_fields_user(&f, c->user);
        if (c->module_code >= 0)
                event_fields_module(&f, c);
        else if (c->kind == CHANGE_USER_ADDED) {
                /* A user without any module gets absent states, so that field queries find it. */
                field_add(&f, "CBM365_PREVIOUS", module_state_to_string(MODULE_STATE_ABSENT));
                field_add(&f, "CBM365_CURRENT", module_state_to_string(MODULE_STATE_ABSENT));
        }
        if (c->kind == CHANGE_USER_CHANGED && c->previous_user) {
                field_add(&f, "CBM365_PREVIOUS_USER_EMAIL", c->previous_user->email);
                field_add(&f, "CBM365_PREVIOUS_USER_NAME", c->previous_user->display_name);
        }

        return event_send(&f, priority);
}

int event_log_baseline(const struct event_target *t, size_t n_users, size_t n_unprotected) {
        _cleanup_(event_fields_done) struct event_fields f = {};
        _cleanup_free_ char *target = NULL, *message = NULL;

        if (!t)
                return -EINVAL;

        target = message_text(target_name(t));
        if (target)
                message = message_format("%s: baseline recorded: %zu users, %zu unprotected",
                                         target, n_users, n_unprotected);

        event_fields_begin(&f, EVENT_BASELINE_RECORDED, LOG_INFO, message);
        event_fields_target(&f, t);
        field_add_u64(&f, "CBM365_USERS", n_users);
        field_add_u64(&f, "CBM365_UNPROTECTED", n_unprotected);

        return event_send(&f, LOG_INFO);
}

int event_log_changes_held(const struct event_target *t, size_t n_users, size_t n_removed, size_t n_lost) {
        _cleanup_(event_fields_done) struct event_fields f = {};
        _cleanup_free_ char *target = NULL, *message = NULL;

        if (!t)
                return -EINVAL;

        target = message_text(target_name(t));
        if (target)
                message = message_format("%s: holding a mass change until the next poll confirms it: "
                                         "%zu of %zu users removed, %zu losing protection",
                                         target, n_removed, n_users, n_lost);

        event_fields_begin(&f, EVENT_CHANGES_HELD, LOG_WARNING, message);
        event_fields_target(&f, t);
        field_add_u64(&f, "CBM365_USERS", n_users);
        field_add_u64(&f, "CBM365_REMOVED", n_removed);
        field_add_u64(&f, "CBM365_LOST", n_lost);

        return event_send(&f, LOG_WARNING);
}

int event_log_poll_failed(const struct event_target *t, const struct poll_failure *pf) {
        _cleanup_(event_fields_done) struct event_fields f = {};
        _cleanup_free_ char *target = NULL, *reason = NULL, *request_id = NULL, *message = NULL;
        size_t reason_len, request_id_len;

        if (!t || !pf)
                return -EINVAL;
        /* Other modules fill these arrays: a missing NUL must not make us read past them. */
        reason_len = strnlen(pf->reason, sizeof pf->reason);
        request_id_len = strnlen(pf->request_id, sizeof pf->request_id);

        target = message_text(target_name(t));
        reason = message_text_n(pf->reason, reason_len);
        request_id = message_text_n(pf->request_id, request_id_len);
        if (target && reason && request_id && request_id_len > 0)
                message = message_format("Failed to poll '%s': %s (request id %s)", target, reason,
                                         request_id);
        else if (target && reason && request_id)
                message = message_format("Failed to poll '%s': %s", target, reason);

        event_fields_begin(&f, EVENT_POLL_FAILED, LOG_WARNING, message);
        event_fields_target(&f, t);
        field_add_bytes(&f, "CBM365_REASON", pf->reason, reason_len);
        if (pf->http_status != 0)
                field_add_i64(&f, "CBM365_HTTP_STATUS", pf->http_status);
        if (request_id_len > 0)
                field_add_bytes(&f, "CBM365_REQUEST_ID", pf->request_id, request_id_len);

        return event_send(&f, LOG_WARNING);
}

int event_log_poll_recovered(const struct event_target *t, uint64_t since_realtime_usec) {
        _cleanup_(event_fields_done) struct event_fields f = {};
        _cleanup_free_ char *target = NULL, *message = NULL;
        uint64_t now = now_realtime_usec();
        uint64_t outage_sec;
        char duration[64];

        if (!t)
                return -EINVAL;
        /* The realtime clock may have been set back during the outage. */
        outage_sec = now > since_realtime_usec ? (now - since_realtime_usec) / USEC_PER_SEC : 0;
        format_duration(duration, sizeof duration, outage_sec);

        target = message_text(target_name(t));
        if (target)
                message = message_format("Polling '%s' succeeded again after %s of failures", target,
                                         duration);

        event_fields_begin(&f, EVENT_POLL_RECOVERED, LOG_NOTICE, message);
        event_fields_target(&f, t);
        field_add_u64(&f, "CBM365_OUTAGE_SEC", outage_sec);

        return event_send(&f, LOG_NOTICE);
}

int event_log_summary(const struct poll_summary *s) {
        _cleanup_(event_fields_done) struct event_fields f = {};
        _cleanup_free_ char *message = NULL;

        if (!s)
                return -EINVAL;

        message = message_format("Poll cycle: %zu of %zu targets polled, %zu failed, %zu users, "
                                 "%zu unprotected, %zu changes",
                                 s->targets_polled, s->targets, s->targets_failed, s->users,
                                 s->unprotected, s->changes);

        event_fields_begin(&f, EVENT_POLL_SUMMARY, LOG_INFO, message);
        field_add_u64(&f, "CBM365_TARGETS", s->targets);
        field_add_u64(&f, "CBM365_TARGETS_POLLED", s->targets_polled);
        field_add_u64(&f, "CBM365_TARGETS_FAILED", s->targets_failed);
        field_add_u64(&f, "CBM365_USERS", s->users);
        field_add_u64(&f, "CBM365_UNPROTECTED", s->unprotected);
        field_add_u64(&f, "CBM365_CHANGES", s->changes);

        return event_send(&f, LOG_INFO);
}
