/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The scheduler owns the running configuration and every target's state:
 * it starts each target's poll on its timer, and for each complete poll runs
 * the steps diff, log events, save snapshot. Failures become poll-failed
 * (once per outage) and poll-recovered; each cycle ends in poll-summary.
 */

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "config.h"

struct scheduler;

/*
 * Creates the scheduler and takes ownership of config (also on failure).
 * once: poll every target once, then leave the event loop.
 * Fails when the state directory cannot be opened, read or written.
 */
int scheduler_new(sd_event *event, struct config *config, bool once, struct scheduler **ret);
struct scheduler *scheduler_free(struct scheduler *s);

/* Replaces the running configuration (taking ownership of config, also on
 * failure): removed targets stop, added ones are scheduled, changed ones take
 * their new settings. */
int scheduler_reload(struct scheduler *s, struct config *config);

/* Cancels every poll in flight; no snapshot is written after this. */
void scheduler_stop(struct scheduler *s);

/* For --once: 0 when every target was polled, 2 when at least one failed. */
int scheduler_exit_status(const struct scheduler *s);
