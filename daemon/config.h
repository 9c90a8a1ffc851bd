/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The configuration file (libconfig syntax) and the client secret.
 *
 * Ownership: config_load() returns a struct config that owns every string in
 * it; config_free() frees it and wipes the secret. Nothing else frees parts.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH "/etc/cbm365-watchd/cbm365-watchd.conf"
#define CONFIG_DEFAULT_SECRET_FILE "/etc/cbm365-watchd/client-secret"
#define CONFIG_DEFAULT_STATE_DIRECTORY "/var/lib/cbm365-watchd"
#define CONFIG_DEFAULT_BASE_URL "https://graph.avepointonlineservices.com"
#define CONFIG_DEFAULT_TOKEN_URL "https://identity.avepointonlineservices.com/connect/token"
#define CONFIG_DEFAULT_SCOPE "elements.cbprotected.read.all"
#define CONFIG_CREDENTIAL_NAME "client-secret"

#define CONFIG_PAGE_SIZE_DEFAULT 100
#define CONFIG_PAGE_SIZE_MAX 100        /* the API rejects more */
#define CONFIG_TIMEOUT_SEC_DEFAULT 60
#define CONFIG_TIMEOUT_SEC_MAX 3600
#define CONFIG_MAX_PARALLEL_DEFAULT 8
#define CONFIG_MAX_PARALLEL_MAX 256
#define CONFIG_INTERVAL_SEC_DEFAULT 900
#define CONFIG_INTERVAL_SEC_MIN 10
#define CONFIG_INTERVAL_SEC_MAX 604800  /* one week */
#define CONFIG_HOLD_PERCENT_DEFAULT 50
#define CONFIG_HOLD_MIN_USERS_DEFAULT 20
#define CONFIG_HOLD_MIN_USERS_MAX 1000000
#define CONFIG_TARGETS_MAX 100000
#define CONFIG_USER_EMAILS_MAX 10000
#define CONFIG_SECRET_MAX 4096          /* bytes of the client secret */

struct target {
        char *name;             /* the tenant id when the file names none */
        char *customer_id;      /* [A-Za-z0-9.-]+ (no "_": it joins the ids in file names), at most 128 bytes */
        char *tenant_id;        /* [A-Za-z0-9._-]+, at most 128 bytes */
        unsigned interval_sec;  /* own value, or poll.interval */
        char **user_emails;     /* NULL when the target covers all users */
        size_t n_user_emails;
        int line;               /* line of the target in the file, for messages */
};

struct api_config {
        char *base_url;         /* without a trailing slash */
        char *token_url;
        char *client_id;
        char *client_secret_file;
        char *client_secret;    /* secret; never logged, wiped on free */
        char *scope;
        char *ca_file;          /* NULL: the system's CA store */
        unsigned page_size;
        unsigned timeout_sec;
        unsigned max_parallel;
};

struct config {
        char *path;
        struct api_config api;
        unsigned interval_sec;
        /* A poll that would report more than hold_percent of a tenant's users
         * (of a tenant of hold_min_users or more) as removed or losing
         * protection is held until the next poll confirms it; 0 disables. */
        unsigned hold_percent;
        unsigned hold_min_users;
        char *state_directory;  /* $STATE_DIRECTORY when set, else the file's value */
        struct target *targets;
        size_t n_targets;
        bool secret_readable_by_others; /* the secret's file mode lets group or others read it */
};

/*
 * Loads and validates the file at path and reads the client secret: from
 * $CREDENTIALS_DIRECTORY/client-secret when that variable is set, else from
 * api.client_secret_file. On failure returns -errno and writes into error a
 * message that names the file, the line and the setting, for example
 * "/etc/cbm365-watchd/cbm365-watchd.conf:12: api.page_size: 500 is out of range 1..100".
 * A configuration file that group or others can write, or that a user other
 * than root and the effective user owns, is an error (-EPERM). A secret file
 * that group or others can read is accepted but sets
 * secret_readable_by_others; see config_secret_warning().
 */
int config_load(const char *path, struct config **ret, char *error, size_t error_size);

struct config *config_free(struct config *c);

/* Prints the short summary of --check-config: targets, intervals, API host. */
void config_print_summary(const struct config *c, FILE *f);

/* Returns the target whose customer and tenant ids match, or NULL. */
const struct target *config_find_target(const struct config *c, const char *customer_id, const char *tenant_id);

/* Returns whether two targets are configured alike (ids, name, interval, emails). */
bool target_equal(const struct target *a, const struct target *b);

/* Returns whether the API settings, secret included, are the same. */
bool api_config_equal(const struct api_config *a, const struct api_config *b);

/*
 * Returns the dotted name of every setting the loader accepts ("api.page_size",
 * "targets.name" for the member of each target, ...), terminated by NULL.
 * Static storage; the caller frees nothing.
 */
const char *const *config_known_keys(void);

/*
 * Writes into buf the warning that the daemon logs after loading c when the
 * client secret's file is readable by group or others, and returns true.
 * Returns false and leaves buf untouched when there is nothing to warn about.
 * The message names the file, never the secret.
 */
bool config_secret_warning(const struct config *c, char *buf, size_t size);
