/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Snapshots: the last complete tenant view of each target, one file per
 * target in the state directory, named after the customer and tenant ids.
 * A text format with a version line and a trailer, so that a truncated or
 * foreign file is detected rather than read as a smaller tenant.
 */

#include <stddef.h>

#include "view.h"

#define SNAPSHOT_FORMAT_VERSION 1
#define SNAPSHOT_FILE_MAX (1024u * 1024u * 1024u)      /* bytes */

/* Maximum length of a name from snapshot_file_name(), without the NUL. It
 * leaves room for the temporary and set-aside names within NAME_MAX. */
#define SNAPSHOT_FILE_NAME_MAX 200

/* Writes the file name of a target's snapshot ("<customer>_<tenant>.snapshot"). */
int snapshot_file_name(const char *customer_id, const char *tenant_id, char *buf, size_t size);

/*
 * Reads the snapshot of a target from the directory dir_fd into an empty view.
 * Returns 0, -ENOENT when there is none, -EBADMSG with a reason when the file
 * cannot be parsed (wrong version, bad line, missing trailer), or another
 * -errno when it cannot be read.
 */
int snapshot_load(int dir_fd, const char *file_name, struct tenant_view *ret,
                  char *reason, size_t reason_size);

/*
 * Writes the view atomically: a temporary file in the same directory, fsync,
 * rename over the old file, fsync of the directory. On failure the old
 * snapshot is left as it was and the temporary file removed.
 */
int snapshot_save(int dir_fd, const char *file_name, const struct tenant_view *view,
                  char *reason, size_t reason_size);

/* Renames an unreadable snapshot to "<file_name>.corrupt-<UTC time>" and
 * writes the new name into new_name. */
int snapshot_set_aside(int dir_fd, const char *file_name, char *new_name, size_t size);

/* Returns whether a target has a snapshot file (0 or 1), or -errno. */
int snapshot_exists(int dir_fd, const char *file_name);

/* Removes the temporary files a crash left behind during a save. Returns how
 * many were removed, or -errno. Call it before any save of this process. */
int snapshot_remove_stale_temporary(int dir_fd);
