/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Journal events: one entry per event with a fixed MESSAGE_ID per kind, a
 * readable MESSAGE, a PRIORITY and the CBM365_* fields. Text the API sent
 * (names, emails) goes into fields verbatim and never into a format string.
 */

#include <stddef.h>
#include <stdint.h>

#include "diff.h"

enum event_kind {
        EVENT_PROTECTION_LOST,
        EVENT_PROTECTION_GAINED,
        EVENT_USER_ADDED,
        EVENT_USER_REMOVED,
        EVENT_USER_CHANGED,
        EVENT_BASELINE_RECORDED,
        EVENT_POLL_FAILED,
        EVENT_POLL_RECOVERED,
        EVENT_POLL_SUMMARY,
        EVENT_CHANGES_HELD,
        _EVENT_KIND_MAX,
};

/* The CBM365_EVENT value, e.g. "protection-lost". */
const char *event_kind_to_string(enum event_kind k);

/* The MESSAGE_ID of a kind: 32 lowercase hex digits, fixed once released. */
const char *event_message_id(enum event_kind k);

/* The target fields that every event of a target carries. */
struct event_target {
        const char *name;
        const char *customer_id;
        const char *tenant_id;
};

/* The reason a poll failed, as poll-failed reports it. */
struct poll_failure {
        char reason[512];       /* e.g. "HTTP 403 on page 2", "inconsistent: totalCount changed from 120 to 121" */
        long http_status;       /* 0 when no HTTP reply came */
        char request_id[128];   /* the API's request id, "" when none */
};

/* Logs one change of the diff (protection-lost, ..., user-changed). */
int event_log_change(const struct event_target *t, const struct change *c);

/* Logs baseline-recorded: the first complete poll of a target, counts only. */
int event_log_baseline(const struct event_target *t, size_t n_users, size_t n_unprotected);

/* Logs changes-held: a poll would report more of the tenant's n_users as
 * removed (n_removed) or losing protection (n_lost) than the hold setting
 * allows, so its user events wait for the next poll. */
int event_log_changes_held(const struct event_target *t, size_t n_users, size_t n_removed, size_t n_lost);

/* Logs poll-failed with the reason, the HTTP status and the request id. */
int event_log_poll_failed(const struct event_target *t, const struct poll_failure *f);

/* Logs poll-recovered after an outage that began at since_realtime_usec. */
int event_log_poll_recovered(const struct event_target *t, uint64_t since_realtime_usec);

struct poll_summary {
        size_t targets;         /* configured */
        size_t targets_polled;  /* completed a poll in this cycle */
        size_t targets_failed;
        size_t users;           /* seen in the polls of this cycle */
        size_t unprotected;
        size_t changes;         /* user events logged in this cycle */
};

/* Logs poll-summary: one per cycle. */
int event_log_summary(const struct poll_summary *s);
