/* SPDX-License-Identifier: MIT */
/*
 * The scheduler: when each target is polled, and what happens to a poll's
 * result. A complete poll goes through four steps: load the previous
 * snapshot, diff and log the events, save the new snapshot, count. The
 * events are handed to the journal before the snapshot that records them is
 * saved, so a crash between the two repeats an alert rather than losing it.
 *
 * Each target polls at a fixed phase of its interval, derived from its ids,
 * so targets spread over the interval and a restart keeps their cadence. At
 * most api.max_parallel polls run at once, which also bounds memory: only
 * running polls hold a tenant view.
 */
#include "scheduler.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "auth.h"
#include "diff.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "poll.h"
#include "snapshot.h"
#include "util.h"

/* A target with no snapshot yet is polled within this many seconds of start. */
#define FIRST_POLL_SPREAD_SEC 10
/* A failing target is polled at its interval doubled for each failure in a
 * row, up to this many intervals apart. */
#define BACKOFF_MAX_INTERVALS 4
#define USER_AGENT "cbm365-watchd/" CBM365_VERSION

/* The result of a target's last poll in the current cycle. */
enum cycle_result {
        CYCLE_NOT_POLLED,
        CYCLE_POLLED,
        CYCLE_FAILED,
};

struct target_state {
        struct scheduler *scheduler;
        const struct target *target;    /* in scheduler->config */
        char snapshot_name[NAME_MAX + 1];
        char outage_name[NAME_MAX + 1]; /* "<customer>_<tenant>.outage" while polls fail */
        char held_name[NAME_MAX + 1];   /* "<customer>_<tenant>.held" while a mass change is held */
        sd_event_source *timer;
        struct poll *poll;              /* while a poll runs */
        bool queued;                    /* waiting for a free poll slot */
        bool failing;                   /* in an outage: poll-failed was logged */
        unsigned failures;              /* polls failed in a row in this process */
        bool restart;                   /* a reload cancelled its poll: poll again at once */
        bool holding;                   /* the last poll's mass change waits for confirmation; kept on disk too */
        struct tenant_view *unsaved;    /* the last complete view, while saving it fails */
        bool removed;                   /* a reload removed the target */
        uint64_t outage_since_usec;     /* CLOCK_REALTIME */
        size_t changes;                 /* user events of the running poll */
        enum cycle_result cycle_result;
        size_t cycle_users;             /* of the last complete poll in this cycle */
        size_t cycle_unprotected;
};


struct scheduler {
        sd_event *event;
        struct config *config;
        struct config *api_config_owner;        /* the config whose api settings http and auth use */
        bool once;
        bool stopped;
        bool throttled;                 /* the HTTP client delays new requests */
        int state_fd;

        struct http_client *http;
        struct auth *auth;

        struct target_state **targets;
        size_t n_targets;

        struct target_state **queue;    /* FIFO of targets waiting for a poll slot */
        size_t queue_head, queue_len;
        size_t running;

        size_t cycle_changes;           /* user events logged in this cycle */
        sd_event_source *summary_timer;
        size_t once_remaining;
        bool any_failed;
};

static void target_state_poll_done(struct poll *p, int error, struct tenant_view *view,
                                   const struct poll_failure *failure, void *userdata);
static int target_schedule(struct target_state *t, bool first);

static struct target_state *target_state_free(struct target_state *t) {
        if (!t)
                return NULL;
        if (t->poll)
                poll_cancel(t->poll);
        sd_event_source_disable_unref(t->timer);
        if (t->unsaved)
                tenant_view_done(t->unsaved);
        free(t->unsaved);
        return mfree(t);
}

static const struct event_target *event_target_of(const struct target_state *t, struct event_target *buf) {
        *buf = (struct event_target) {
                .name = t->target->name,
                .customer_id = t->target->customer_id,
                .tenant_id = t->target->tenant_id,
        };
        return buf;
}

/* Sums the per-target results of the current cycle. */
static void scheduler_count_cycle(const struct scheduler *s, struct poll_summary *ret) {
        *ret = (struct poll_summary) {
                .targets = s->n_targets,
                .changes = s->cycle_changes,
        };
        for (size_t i = 0; i < s->n_targets; i++) {
                const struct target_state *t = s->targets[i];

                if (t->cycle_result == CYCLE_POLLED) {
                        ret->targets_polled++;
                        ret->users += t->cycle_users;
                        ret->unprotected += t->cycle_unprotected;
                } else if (t->cycle_result == CYCLE_FAILED)
                        ret->targets_failed++;
        }
}

static void scheduler_notify_status(struct scheduler *s) {
        uint64_t paused_until = s->http ? http_client_paused_until(s->http) : 0;
        char pause[64] = "";
        struct poll_summary c;

        if (s->stopped)
                return;
        if (paused_until > 0)
                (void) snprintf(pause, sizeof(pause), "; API throttled, requests paused for %" PRIu64 " s",
                                (paused_until - now_monotonic_usec() + USEC_PER_SEC - 1) / USEC_PER_SEC);
        scheduler_count_cycle(s, &c);
        (void) sd_notifyf(false,
                          "STATUS=%zu targets: %zu polls running, %zu waiting; this cycle %zu polled, %zu failed, %zu changes%s",
                          s->n_targets, s->running, s->queue_len, c.targets_polled, c.targets_failed, c.changes, pause);
}

static void on_http_pause(uint64_t until_usec, void *userdata) {
        struct scheduler *s = userdata;

        /* Logged once per pause: a throttled API replies 429 to many requests. */
        if (until_usec > 0 && !s->throttled)
                log_warning("The API throttled requests (HTTP 429 or 503): new requests wait %" PRIu64 " s",
                            (until_usec - now_monotonic_usec() + USEC_PER_SEC - 1) / USEC_PER_SEC);
        else if (until_usec == 0 && s->throttled)
                log_info("Requests to the API resume after throttling");
        s->throttled = until_usec > 0;
        scheduler_notify_status(s);
}

/* Opens the state directory (creating its last component) and checks that a
 * file can be created in it: an unusable state directory is fatal, never an
 * empty baseline. */
static int open_state_directory(const char *path, int *ret) {
        _cleanup_close_ int fd = -1;
        char probe[64];
        int probe_fd;

        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return log_error_errno(-errno, "Failed to create state directory %s: %m", path);

        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open state directory %s: %m", path);

        /* Two processes on one directory would remove each other's temporary
         * files and diff against each other's snapshots. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return log_error_errno(-EBUSY, "State directory %s is in use by another cbm365-watchd; "
                                               "stop it, or give this one another state_directory", path);
                return log_error_errno(-errno, "Failed to lock state directory %s: %m", path);
        }

        (void) snprintf(probe, sizeof(probe), ".write-test-%ld", (long) getpid());
        probe_fd = openat(fd, probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (probe_fd < 0)
                return log_error_errno(-errno, "State directory %s is not writable: %m", path);
        close(probe_fd);
        (void) unlinkat(fd, probe, 0);

        probe_fd = snapshot_remove_stale_temporary(fd);
        if (probe_fd > 0)
                log_info("Removed %d temporary files an interrupted save left in %s", probe_fd, path);

        *ret = TAKE_FD(fd);
        return 0;
}

static int scheduler_setup_api(struct scheduler *s, struct config *owner) {
        struct http_client_options opts = {
                .max_parallel = owner->api.max_parallel,
                .timeout_sec = owner->api.timeout_sec,
                .ca_file = owner->api.ca_file,
                .max_body_size = 16u * 1024u * 1024u,
                .user_agent = USER_AGENT,
        };
        int r;

        s->auth = auth_free(s->auth);
        s->http = http_client_free(s->http);

        r = http_client_new(s->event, &opts, &s->http);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the HTTP client: %m");
        http_client_set_pause_callback(s->http, on_http_pause, s);
        r = auth_new(s->http, &owner->api, &s->auth);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the token client: %m");

        s->api_config_owner = owner;
        return 0;
}

static void scheduler_try_start(struct scheduler *s);

static void scheduler_enqueue(struct scheduler *s, struct target_state *t) {
        if (t->queued || t->poll)
                return;
        s->queue[(s->queue_head + s->queue_len) % s->n_targets] = t;
        s->queue_len++;
        t->queued = true;
}

static struct target_state *scheduler_pop(struct scheduler *s) {
        struct target_state *t;

        if (s->queue_len == 0)
                return NULL;
        t = s->queue[s->queue_head];
        s->queue_head = (s->queue_head + 1) % s->n_targets;
        s->queue_len--;
        t->queued = false;
        return t;
}

static void scheduler_exit(struct scheduler *s, int code) {
        scheduler_stop(s);
        (void) sd_event_exit(s->event, code);
}

static void scheduler_log_summary(struct scheduler *s) {
        struct poll_summary summary;

        scheduler_count_cycle(s, &summary);
        (void) event_log_summary(&summary);

        s->cycle_changes = 0;
        for (size_t i = 0; i < s->n_targets; i++)
                s->targets[i]->cycle_result = CYCLE_NOT_POLLED;
}

static void scheduler_poll_ended(struct scheduler *s) {
        s->running--;
        if (s->once && --s->once_remaining == 0) {
                scheduler_log_summary(s);
                scheduler_exit(s, 0);
                return;
        }
        scheduler_try_start(s);
        scheduler_notify_status(s);
}

static void target_state_start_poll(struct target_state *t) {
        struct scheduler *s = t->scheduler;
        struct poll_context ctx = {
                .event = s->event,
                .http = s->http,
                .auth = s->auth,
                .api = &s->api_config_owner->api,
        };
        int r;

        t->changes = 0;
        r = poll_start(&ctx, t->target, target_state_poll_done, t, &t->poll);
        if (r < 0) {
                struct poll_failure failure = {};

                (void) snprintf(failure.reason, sizeof(failure.reason), "Failed to start the poll: %s", strerror(-r));
                s->running++;
                target_state_poll_done(NULL, r, NULL, &failure, t);
                return;
        }
        s->running++;
}

static void scheduler_try_start(struct scheduler *s) {
        while (!s->stopped && s->running < s->api_config_owner->api.max_parallel) {
                struct target_state *t = scheduler_pop(s);

                if (!t)
                        break;
                target_state_start_poll(t);
        }
}

static int on_target_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct target_state *t = userdata;
        struct scheduler *s = t->scheduler;

        if (t->poll || t->queued)
                log_debug("Target '%s' is still being polled, skipping this turn", t->target->name);
        else
                scheduler_enqueue(s, t);

        (void) target_schedule(t, false);
        scheduler_try_start(s);
        scheduler_notify_status(s);
        return 0;
}

/* Arms the target's timer for its next turn: the next time at its fixed
 * phase within the interval, or soon after start when it has no snapshot. */
static int target_schedule(struct target_state *t, bool first) {
        struct scheduler *s = t->scheduler;
        const struct target *target = t->target;
        uint64_t interval_usec = (uint64_t) target->interval_sec * USEC_PER_SEC;
        uint64_t seed = hash64(target->customer_id, strlen(target->customer_id), 0);
        uint64_t phase, delay, now = now_realtime_usec();
        int r;

        seed = hash64(target->tenant_id, strlen(target->tenant_id), seed);
        phase = seed % interval_usec;
        delay = (phase + interval_usec - now % interval_usec) % interval_usec;
        /* After an early first poll, skip a turn that would follow within half an interval. */
        if (delay < interval_usec / 2 && !first)
                delay += interval_usec;

        if (first && snapshot_exists(s->state_fd, t->snapshot_name) == 0) {
                uint64_t spread = (uint64_t) FIRST_POLL_SPREAD_SEC * USEC_PER_SEC;

                if (spread > interval_usec)
                        spread = interval_usec;
                delay = seed % spread;
        }

        if (t->timer) {
                r = sd_event_source_set_time_relative(t->timer, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(s->event, &t->timer, CLOCK_MONOTONIC, delay,
                                               USEC_PER_SEC / 10, on_target_timer, t);
        if (r < 0)
                return log_error_errno(r, "Failed to schedule target '%s': %m", target->name);

        log_debug("Target '%s' is polled next in %" PRIu64 " s", target->name, delay / USEC_PER_SEC);
        return 0;
}

/* Moves the next poll of a failing target further out, so a tenant that
 * replies 403 for days costs little; the others keep their schedule. */
static void target_state_back_off(struct target_state *t) {
        struct scheduler *s = t->scheduler;
        unsigned shift = t->failures - 1, factor;
        uint64_t interval_usec = (uint64_t) t->target->interval_sec * USEC_PER_SEC, delay;
        int r;

        if (s->once || s->stopped || !t->timer)
                return;
        factor = shift >= 2 ? BACKOFF_MAX_INTERVALS : 1u << shift;
        delay = interval_usec * factor + (uint64_t) random() % (interval_usec / 10 + 1);

        r = sd_event_source_set_time_relative(t->timer, delay);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to reschedule target '%s': %m", t->target->name);
        else
                log_debug("Target '%s' failed %u times in a row, polled next in %" PRIu64 " s",
                          t->target->name, t->failures, delay / USEC_PER_SEC);
}

/* Step 1: the previous snapshot. Returns 1 when there is one, 0 when the
 * target is to be baselined, or a negative errno when the state directory
 * cannot be read. */
static int target_state_load_previous(struct target_state *t, struct tenant_view *previous) {
        struct scheduler *s = t->scheduler;
        char reason[256] = "", aside[NAME_MAX + 1] = "";
        int r;

        r = snapshot_load(s->state_fd, t->snapshot_name, previous, reason, sizeof(reason));
        if (r >= 0)
                return 1;
        if (r == -ENOENT)
                return 0;
        if (r != -EBADMSG)
                return log_error_errno(r, "Failed to read snapshot %s of target '%s': %s",
                                       t->snapshot_name, t->target->name, reason[0] ? reason : strerror(-r));

        r = snapshot_set_aside(s->state_fd, t->snapshot_name, aside, sizeof(aside));
        if (r < 0)
                return log_error_errno(r, "Snapshot %s of target '%s' is unreadable (%s), and setting it aside failed: %m",
                                       t->snapshot_name, t->target->name, reason);
        log_error("Snapshot %s of target '%s' is unreadable (%s); moved it to %s and recording a new baseline",
                  t->snapshot_name, t->target->name, reason, aside);
        return 0;
}

static int on_change(const struct change *c, void *userdata) {
        struct target_state *t = userdata;
        struct event_target et;

        t->changes++;
        return event_log_change(event_target_of(t, &et), c);
}

/* Step 2: log what changed, or the baseline. */
static int target_state_log_events(struct target_state *t, const struct tenant_view *previous,
                                   bool have_previous, const struct tenant_view *current) {
        struct event_target et;
        int r;

        if (!have_previous)
                return event_log_baseline(event_target_of(t, &et), current->n_users,
                                          tenant_view_count_unprotected(current));

        r = diff_views(previous, current, on_change, t);
        if (r < 0)
                return log_error_errno(r, "Failed to log the changes of target '%s': %m", t->target->name);
        return 0;
}

/*
 * An outage is kept on disk as "<customer>_<tenant>.outage" holding the
 * CLOCK_REALTIME microseconds it began, so that poll-failed is logged once
 * per outage and poll-recovered follows it even across restarts and --once
 * runs. Returns 1 and the start when the target is in an outage, else 0.
 */
static int target_state_read_outage(struct target_state *t, uint64_t *ret_since) {
        _cleanup_close_ int fd = -1;
        char buf[32] = "";
        struct stat st;
        ssize_t n;

        fd = openat(t->scheduler->state_fd, t->outage_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return 0;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                n = -1;
        else
                n = read(fd, buf, sizeof(buf) - 1);
        /* Only a file this daemon wrote counts: anything else would raise a false poll-recovered. */
        if (n <= 0 || parse_uint64(strndupa(buf, strcspn(buf, "\n")), UINT64_MAX, ret_since) < 0) {
                log_warning("Ignoring %s in the state directory: not an outage record of this daemon",
                            t->outage_name);
                return 0;
        }
        return 1;
}

static void target_state_write_outage(struct target_state *t, uint64_t since) {
        _cleanup_close_ int fd = -1;
        char buf[32];
        int n;

        fd = openat(t->scheduler->state_fd, t->outage_name,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", since);
        if (fd < 0 || write(fd, buf, (size_t) n) != n)
                log_warning_errno(fd < 0 ? -errno : -EIO, "Failed to record the outage of target '%s' in %s: %m",
                                  t->target->name, t->outage_name);
}

static void target_state_recovered(struct target_state *t) {
        struct event_target et;

        if (!t->failing)
                return;
        (void) event_log_poll_recovered(event_target_of(t, &et), t->outage_since_usec);
        if (unlinkat(t->scheduler->state_fd, t->outage_name, 0) < 0 && errno != ENOENT)
                log_warning_errno(-errno, "Failed to remove %s: %m", t->outage_name);
        t->failing = false;
}

static void target_state_failed(struct target_state *t, const struct poll_failure *failure) {
        struct scheduler *s = t->scheduler;
        struct event_target et;

        t->cycle_result = CYCLE_FAILED;
        s->any_failed = true;
        t->failures++;
        target_state_back_off(t);

        /* Once per outage: later failures of the same target are debug only. */
        if (t->failing) {
                /* An operator running --once by hand wants the reason each time. */
                log_full_errno(s->once ? LOG_WARNING : LOG_DEBUG, 0, "Failed to poll '%s' again: %s",
                               t->target->name, failure->reason);
                return;
        }
        t->failing = true;
        t->outage_since_usec = now_realtime_usec();
        (void) event_log_poll_failed(event_target_of(t, &et), failure);
        target_state_write_outage(t, t->outage_since_usec);
}

/* Returns whether the marker of a held change exists: an empty regular file,
 * as target_state_set_holding() writes it. Anything else is ignored. */
static bool target_state_read_held(int dir_fd, const char *name) {
        struct stat st;

        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return false;
        if (S_ISREG(st.st_mode) && st.st_size == 0)
                return true;
        log_warning("Ignoring %s in the state directory: not a held-change record of this daemon", name);
        return false;
}

/* Keeps the hold in "<customer>_<tenant>.held", so that --once runs and
 * restarts confirm or drop it like a running daemon does. */
static void target_state_set_holding(struct target_state *t, bool holding) {
        int fd;

        if (t->holding == holding)
                return;
        t->holding = holding;
        if (!holding) {
                if (unlinkat(t->scheduler->state_fd, t->held_name, 0) < 0 && errno != ENOENT)
                        log_warning_errno(-errno, "Failed to remove %s: %m", t->held_name);
                return;
        }
        fd = openat(t->scheduler->state_fd, t->held_name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                log_warning_errno(-errno, "Failed to record the held change of target '%s' in %s: %m",
                                  t->target->name, t->held_name);
        else
                close(fd);
}

struct mass_change {
        size_t removed;                 /* users gone */
        size_t lost;                    /* users losing protection of at least one module */
        const struct user *last_lost;
};

static int on_count_change(const struct change *c, void *userdata) {
        struct mass_change *m = userdata;

        if (c->kind == CHANGE_USER_REMOVED)
                m->removed++;
        else if (c->kind == CHANGE_PROTECTION_LOST && c->user != m->last_lost) {
                m->lost++;
                m->last_lost = c->user;
        }
        return 0;
}

/*
 * Decides whether this poll's changes are logged now. A poll that would
 * report more than poll.hold_percent of a tenant's users as removed or losing
 * protection is held once: such a jump is more often a passing fault of the
 * API than a real change. The next poll confirms it (its events are logged
 * then) or drops it. Returns true when the events are to be logged now.
 */
static bool target_state_release_changes(struct target_state *t, const struct tenant_view *previous,
                                         const struct tenant_view *current) {
        const struct config *config = t->scheduler->config;
        struct mass_change m = {};
        struct event_target et;
        bool mass;

        if (config->hold_percent == 0 || previous->n_users < config->hold_min_users) {
                target_state_set_holding(t, false);
                return true;
        }

        (void) diff_views(previous, current, on_count_change, &m);
        mass = (m.removed + m.lost) * 100 > (size_t) config->hold_percent * previous->n_users;

        if (mass && !t->holding) {
                (void) event_log_changes_held(event_target_of(t, &et), previous->n_users, m.removed, m.lost);
                target_state_set_holding(t, true);
                return false;
        }
        if (mass)
                log_notice("%s: the mass change held at the last poll is confirmed, logging its events",
                           t->target->name);
        else if (t->holding)
                log_notice("%s: the mass change held at the last poll is gone, logging only the changes since the last snapshot",
                           t->target->name);
        target_state_set_holding(t, false);
        return true;
}

/* Counts a complete poll in the cycle, and ends a failing target's backoff. */
static void target_state_count_poll(struct target_state *t, const struct tenant_view *current) {
        struct scheduler *s = t->scheduler;

        if (t->failures > 0 && !s->once) {
                t->failures = 0;
                (void) target_schedule(t, false);
        }
        t->cycle_result = CYCLE_POLLED;
        t->cycle_users = current->n_users;
        t->cycle_unprotected = tenant_view_count_unprotected(current);
        s->cycle_changes += t->changes;
}

/*
 * Keeps a view whose snapshot could not be saved (a full disk, say) in memory
 * as the target's previous view, so the next poll diffs against it instead of
 * repeating its alerts, and tries the save again then. Takes current's
 * contents.
 */
static int target_state_keep_unsaved(struct target_state *t, struct tenant_view *current, const char *reason) {
        struct scheduler *s = t->scheduler;

        if (!t->unsaved) {
                t->unsaved = calloc(1, sizeof(*t->unsaved));
                if (!t->unsaved)
                        return log_error_errno(-ENOMEM, "Failed to keep the view of target '%s': %m", t->target->name);
                log_error("Failed to save snapshot %s of target '%s': %s; keeping it in memory and trying again at the next poll",
                          t->snapshot_name, t->target->name, reason);
        } else
                tenant_view_done(t->unsaved);

        *t->unsaved = *current;
        *current = (struct tenant_view) {};
        s->any_failed = true;
        return 0;
}

static void target_state_saved(struct target_state *t) {
        if (!t->unsaved)
                return;
        log_info("Saved snapshot %s of target '%s' again", t->snapshot_name, t->target->name);
        tenant_view_done(t->unsaved);
        t->unsaved = mfree(t->unsaved);
}

/* The steps for one complete poll: load, log events, save, count. */
static int target_state_process(struct target_state *t, struct tenant_view *current) {
        struct scheduler *s = t->scheduler;
        _cleanup_(tenant_view_done) struct tenant_view loaded = {};
        const struct tenant_view *previous = t->unsaved ? t->unsaved : &loaded;
        char reason[256] = "";
        int have_previous, r;

        have_previous = t->unsaved ? 1 : target_state_load_previous(t, &loaded);
        if (have_previous < 0)
                return have_previous;

        target_state_recovered(t);

        if (have_previous && !target_state_release_changes(t, previous, current)) {
                target_state_count_poll(t, current);
                return 0;
        }

        r = target_state_log_events(t, previous, have_previous, current);
        if (r < 0)
                return r;
        target_state_count_poll(t, current);

        r = snapshot_save(s->state_fd, t->snapshot_name, current, reason, sizeof(reason));
        if (r < 0)
                return target_state_keep_unsaved(t, current, reason[0] ? reason : strerror(-r));
        target_state_saved(t);
        return 0;
}

static void target_state_poll_done(struct poll *p, int error, struct tenant_view *view,
                                   const struct poll_failure *failure, void *userdata) {
        struct target_state *t = userdata;
        struct scheduler *s = t->scheduler;
        int r;

        t->poll = NULL;

        if (error < 0)
                target_state_failed(t, failure);
        else {
                r = target_state_process(t, view);
                if (r < 0) {
                        log_error("Stopping: the state directory %s cannot be used", s->config->state_directory);
                        scheduler_exit(s, EXIT_FAILURE);
                        return;
                }
        }

        scheduler_poll_ended(s);
}

static int on_summary_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        struct scheduler *s = userdata;
        uint64_t interval_usec = (uint64_t) s->config->interval_sec * USEC_PER_SEC;
        uint64_t now = now_realtime_usec();
        uint64_t delay = interval_usec - now % interval_usec;
        int r;

        /* Cycles end at multiples of poll.interval in wall-clock time; the
         * first one is a whole interval or more, not the rest of one. */
        if (source)
                scheduler_log_summary(s);
        else
                delay += interval_usec;

        r = sd_event_source_set_time_relative(s->summary_timer, delay);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->summary_timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Failed to schedule the next poll summary: %m");
        return 0;
}

static int target_state_new(struct scheduler *s, const struct target *target, struct target_state **ret) {
        _cleanup_free_ struct target_state *t = NULL;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->scheduler = s;
        t->target = target;

        r = snapshot_file_name(target->customer_id, target->tenant_id, t->snapshot_name, sizeof(t->snapshot_name));
        if (r < 0)
                return log_error_errno(r, "Invalid ids of target '%s': %m", target->name);
        (void) snprintf(t->outage_name, sizeof(t->outage_name), "%s_%s.outage", target->customer_id, target->tenant_id);
        (void) snprintf(t->held_name, sizeof(t->held_name), "%s_%s.held", target->customer_id, target->tenant_id);
        t->holding = target_state_read_held(s->state_fd, t->held_name);
        if (target_state_read_outage(t, &t->outage_since_usec) > 0)
                t->failing = true;

        *ret = TAKE_PTR(t);
        return 0;
}

/* Makes the target list and queue fit n targets. */
static int scheduler_resize(struct scheduler *s, size_t n) {
        struct target_state **targets, **queue;

        targets = calloc(n ? n : 1, sizeof(*targets));
        queue = calloc(n ? n : 1, sizeof(*queue));
        if (!targets || !queue) {
                free(targets);
                free(queue);
                return -ENOMEM;
        }
        free(s->targets);
        free(s->queue);
        s->targets = targets;
        s->queue = queue;
        s->queue_head = s->queue_len = 0;
        return 0;
}

static int scheduler_add_targets(struct scheduler *s) {
        int r;

        r = scheduler_resize(s, s->config->n_targets);
        if (r < 0)
                return r;

        for (size_t i = 0; i < s->config->n_targets; i++) {
                r = target_state_new(s, &s->config->targets[i], &s->targets[i]);
                if (r < 0)
                        return r;
                s->n_targets++;
        }
        return 0;
}

static int scheduler_start_daemon(struct scheduler *s) {
        int r;

        for (size_t i = 0; i < s->n_targets; i++) {
                r = target_schedule(s->targets[i], true);
                if (r < 0)
                        return r;
        }

        r = sd_event_add_time_relative(s->event, &s->summary_timer, CLOCK_MONOTONIC, USEC_PER_SEC,
                                       USEC_PER_SEC, on_summary_timer, s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the poll summary timer: %m");
        return on_summary_timer(NULL, 0, s);
}

static void scheduler_start_once(struct scheduler *s) {
        s->once_remaining = s->n_targets;
        for (size_t i = 0; i < s->n_targets; i++)
                scheduler_enqueue(s, s->targets[i]);
        scheduler_try_start(s);
}

DEFINE_POINTER_CLEANUP(struct scheduler, scheduler_free);
DEFINE_POINTER_CLEANUP(struct config, config_free);

int scheduler_new(sd_event *event, struct config *config, bool once, struct scheduler **ret) {
        _cleanup_(config_freep) struct config *owned = config;
        _cleanup_(scheduler_freep) struct scheduler *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->config = TAKE_PTR(owned);
        s->once = once;
        s->state_fd = -1;

        r = open_state_directory(config->state_directory, &s->state_fd);
        if (r < 0)
                return r;
        r = scheduler_setup_api(s, config);
        if (r < 0)
                return r;
        r = scheduler_add_targets(s);
        if (r < 0)
                return r;

        if (once)
                scheduler_start_once(s);
        else {
                r = scheduler_start_daemon(s);
                if (r < 0)
                        return r;
        }

        scheduler_notify_status(s);
        *ret = TAKE_PTR(s);
        return 0;
}

/* Cancels the running poll of t, if any; nothing of it is saved. */
static void target_state_cancel_poll(struct target_state *t) {
        if (!t->poll)
                return;
        poll_cancel(t->poll);
        t->poll = NULL;
        t->scheduler->running--;
}

static struct target_state *scheduler_find_state(struct scheduler *s, const struct target *target) {
        for (size_t i = 0; i < s->n_targets; i++) {
                struct target_state *t = s->targets[i];

                if (t && streq(t->target->customer_id, target->customer_id) &&
                    streq(t->target->tenant_id, target->tenant_id))
                        return t;
        }
        return NULL;
}

/* Creates the states of the targets that config adds; touches nothing else,
 * so a failure leaves the running configuration as it was. */
static int scheduler_create_added(struct scheduler *s, const struct config *config, struct target_state **targets) {
        for (size_t i = 0; i < config->n_targets; i++) {
                int r;

                if (scheduler_find_state(s, &config->targets[i]))
                        continue;
                r = target_state_new(s, &config->targets[i], &targets[i]);
                if (r < 0) {
                        for (size_t j = 0; j < i; j++)
                                targets[j] = target_state_free(targets[j]);
                        return r;
                }
        }
        return 0;
}

/*
 * Moves the states of the targets that stay into targets[], bound to the new
 * configuration. A target whose settings changed (or all, when the API
 * settings changed) has its running poll cancelled and is marked to poll
 * again at once. The states left in s->targets are those removed.
 */
static void scheduler_adopt_kept(struct scheduler *s, const struct config *config, bool restart_all,
                                 struct target_state **targets) {
        for (size_t i = 0; i < config->n_targets; i++) {
                const struct target *target = &config->targets[i];
                struct target_state *t;
                bool changed;

                if (targets[i]) {
                        log_info("Target '%s' added", target->name);
                        continue;
                }

                /* Never NULL: scheduler_create_added() made a state for each target without one. */
                t = scheduler_find_state(s, target);
                if (!t)
                        continue;
                for (size_t j = 0; j < s->n_targets; j++)
                        if (s->targets[j] == t)
                                s->targets[j] = NULL;

                changed = !target_equal(t->target, target);
                if (changed)
                        log_info("Target '%s' changed, applying its new settings", target->name);
                if ((changed || restart_all) && t->poll) {
                        target_state_cancel_poll(t);
                        t->restart = true;
                }
                t->target = target;
                targets[i] = t;
        }
}

/* Rebuilds the queue: the kept targets that waited, in their order, then
 * those whose poll was restarted. */
static int scheduler_requeue(struct scheduler *s, struct target_state **old_queue, size_t n_old_queue) {
        s->queue = calloc(s->n_targets ? s->n_targets : 1, sizeof(*s->queue));
        s->queue_head = s->queue_len = 0;
        if (!s->queue)
                return -ENOMEM;

        for (size_t i = 0; i < n_old_queue; i++)
                if (!old_queue[i]->removed) {
                        old_queue[i]->queued = false;
                        scheduler_enqueue(s, old_queue[i]);
                }
        for (size_t i = 0; i < s->n_targets; i++)
                if (s->targets[i]->restart) {
                        s->targets[i]->restart = false;
                        scheduler_enqueue(s, s->targets[i]);
                }
        return 0;
}

static void scheduler_remove_left(struct scheduler *s) {
        for (size_t i = 0; i < s->n_targets; i++) {
                struct target_state *t = s->targets[i];

                if (!t)
                        continue;
                log_info("Target '%s' removed", t->target->name);
                target_state_cancel_poll(t);
                t->removed = true;
                /* Its snapshot stays, but a hold or outage would be stale if it came back. */
                (void) unlinkat(s->state_fd, t->held_name, 0);
                (void) unlinkat(s->state_fd, t->outage_name, 0);
        }
}

static void scheduler_swap_config(struct scheduler *s, struct config *config, bool api_changed) {
        struct config *old_config = s->config, *old_owner = s->api_config_owner;

        s->config = config;
        if (api_changed) {
                if (old_owner != old_config)
                        config_free(old_owner);
                s->api_config_owner = NULL;
        }
        /* With the same API settings, http and auth keep using the owner's. */
        if (old_config != s->api_config_owner)
                config_free(old_config);
}

int scheduler_reload(struct scheduler *s, struct config *config) {
        _cleanup_(config_freep) struct config *new_config = config;
        _cleanup_free_ struct target_state **targets = NULL, **old_queue = NULL, **removed = NULL;
        _cleanup_close_ int state_fd = -1;
        size_t n_old_queue = 0, n_removed;
        bool api_changed;
        int r;

        api_changed = !api_config_equal(&s->api_config_owner->api, &config->api);

        if (!streq(s->config->state_directory, config->state_directory)) {
                r = open_state_directory(config->state_directory, &state_fd);
                if (r < 0)
                        return r;
        }

        targets = calloc(config->n_targets ? config->n_targets : 1, sizeof(*targets));
        old_queue = calloc(s->queue_len ? s->queue_len : 1, sizeof(*old_queue));
        if (!targets || !old_queue)
                return log_error_errno(-ENOMEM, "Failed to apply the new configuration: %m");

        r = scheduler_create_added(s, config, targets);
        if (r < 0)
                return log_error_errno(r, "Failed to apply the new configuration: %m");

        /* From here on nothing fails: the new configuration takes over. */
        while (s->queue_len > 0)
                old_queue[n_old_queue++] = scheduler_pop(s);

        scheduler_adopt_kept(s, config, api_changed, targets);
        scheduler_remove_left(s);

        /* Every poll of the old http client and token is cancelled by now. */
        if (api_changed) {
                s->auth = auth_free(s->auth);
                s->http = http_client_free(s->http);
        }

        removed = TAKE_PTR(s->targets);
        n_removed = s->n_targets;
        s->targets = TAKE_PTR(targets);
        s->n_targets = config->n_targets;
        s->queue = mfree(s->queue);

        r = scheduler_requeue(s, old_queue, n_old_queue);
        for (size_t i = 0; i < n_removed; i++)
                target_state_free(removed[i]);
        if (r < 0)
                return log_error_errno(r, "Failed to rebuild the poll queue: %m");

        if (state_fd >= 0) {
                closep(&s->state_fd);
                s->state_fd = TAKE_FD(state_fd);
        }

        scheduler_swap_config(s, TAKE_PTR(new_config), api_changed);
        if (api_changed) {
                r = scheduler_setup_api(s, s->config);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < s->n_targets; i++)
                if (!s->targets[i]->timer)
                        (void) target_schedule(s->targets[i], true);

        scheduler_try_start(s);
        scheduler_notify_status(s);
        return 0;
}

void scheduler_stop(struct scheduler *s) {
        if (!s || s->stopped)
                return;
        s->stopped = true;
        for (size_t i = 0; i < s->n_targets; i++) {
                target_state_cancel_poll(s->targets[i]);
                s->targets[i]->timer = sd_event_source_disable_unref(s->targets[i]->timer);
        }
        s->queue_len = 0;
        s->summary_timer = sd_event_source_disable_unref(s->summary_timer);
}

struct scheduler *scheduler_free(struct scheduler *s) {
        if (!s)
                return NULL;

        scheduler_stop(s);
        for (size_t i = 0; i < s->n_targets; i++)
                target_state_free(s->targets[i]);
        free(s->targets);
        free(s->queue);
        s->auth = auth_free(s->auth);
        s->http = http_client_free(s->http);
        if (s->api_config_owner != s->config)
                config_free(s->api_config_owner);
        config_free(s->config);
        closep(&s->state_fd);
        sd_event_unref(s->event);
        return mfree(s);
}

int scheduler_exit_status(const struct scheduler *s) {
        return s->any_failed ? 2 : 0;
}
