/* SPDX-License-Identifier: MIT */
/*
 * cbm365-watchd: watches the Cloud Backup for Microsoft 365 protection of
 * every user of the configured tenants and logs each change to the journal.
 * This file contains the command line and the signal handling; everything else
 * lives in the library the tests link too.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

enum {
        EXIT_OK = 0,
        EXIT_USAGE = 1,         /* usage or configuration error, and fatal errors */
        EXIT_POLL_FAILED = 2,   /* --once: at least one target could not be polled */
};

struct options {
        const char *config_path;
        bool check_config;
        bool once;
        enum log_target log_target;
};

struct daemon {
        sd_event *event;
        struct scheduler *scheduler;
        const char *config_path;
        bool once;
};

static void print_help(FILE *f) {
        fprintf(f,
                "Usage: cbm365-watchd [OPTION]...\n"
                "Watch the Cloud Backup for Microsoft 365 protection of every user of the\n"
                "configured tenants and log each change to the systemd journal.\n"
                "\n"
                "  -c, --config FILE      configuration file (default %s)\n"
                "      --check-config     validate the configuration, print a summary, exit\n"
                "      --once             poll every target once, log the changes, save the\n"
                "                         snapshots and exit (status 2 if a poll failed)\n"
                "      --log-target=auto|journal|console\n"
                "                         where messages go; auto is the journal when it is\n"
                "                         reachable, else standard error (default auto)\n"
                "  -h, --help             show this help and exit\n"
                "      --version          show the version and exit\n"
                "\n"
                "Signals: SIGHUP reloads the configuration, SIGTERM and SIGINT stop.\n"
                "See cbm365-watchd(8) and cbm365-watchd.conf(5).\n",
                CONFIG_DEFAULT_PATH);
}

static int parse_options(int argc, char *argv[], struct options *ret) {
        enum { OPT_CHECK_CONFIG = 0x100, OPT_ONCE, OPT_LOG_TARGET, OPT_VERSION };
        static const struct option long_options[] = {
                { "config",       required_argument, NULL, 'c' },
                { "check-config", no_argument,       NULL, OPT_CHECK_CONFIG },
                { "once",         no_argument,       NULL, OPT_ONCE },
                { "log-target",   required_argument, NULL, OPT_LOG_TARGET },
                { "help",         no_argument,       NULL, 'h' },
                { "version",      no_argument,       NULL, OPT_VERSION },
                {}
        };
        struct options o = {
                .config_path = CONFIG_DEFAULT_PATH,
                .log_target = LOG_TARGET_AUTO,
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", long_options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        o.config_path = optarg;
                        break;
                case OPT_CHECK_CONFIG:
                        o.check_config = true;
                        break;
                case OPT_ONCE:
                        o.once = true;
                        break;
                case OPT_LOG_TARGET:
                        if (log_target_from_string(optarg, &o.log_target) < 0) {
                                fprintf(stderr, "cbm365-watchd: invalid --log-target '%s': expected auto, journal or console\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'h':
                        print_help(stdout);
                        return 0;
                case OPT_VERSION:
                        printf("cbm365-watchd %s\n", CBM365_VERSION);
                        return 0;
                default:
                        fprintf(stderr, "Try 'cbm365-watchd --help' for more information.\n");
                        return -EINVAL;
                }

        if (optind < argc) {
                fprintf(stderr, "cbm365-watchd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        if (o.check_config && o.once) {
                fprintf(stderr, "cbm365-watchd: --check-config and --once exclude each other\n");
                return -EINVAL;
        }

        *ret = o;
        return 1;
}

/* Warns when the secret file's mode lets group or others read it. */
static void warn_about_secret(const struct config *config, bool to_console) {
        char warning[PATH_MAX * 2 + 128];

        if (!config_secret_warning(config, warning, sizeof(warning)))
                return;
        if (to_console)
                fprintf(stderr, "Warning: %s\n", warning);
        else
                log_warning("%s", warning);
}

/* Checks for --check-config that the state directory, or the folder it
 * would be created in, is a directory; the daemon itself also writes to it. */
static int check_state_directory(const char *path) {
        _cleanup_free_ char *parent = strdup(path);
        struct stat st;
        char *slash;

        if (!parent)
                return -ENOMEM;
        if (stat(path, &st) >= 0) {
                if (S_ISDIR(st.st_mode))
                        return 0;
                fprintf(stderr, "State directory %s is not a directory\n", path);
                return -ENOTDIR;
        }
        if (errno != ENOENT) {
                fprintf(stderr, "Failed to access state directory %s: %s\n", path, strerror(errno));
                return -errno;
        }

        slash = strrchr(parent, '/');
        if (slash && slash != parent)
                *slash = '\0';
        else if (slash)
                slash[1] = '\0';
        if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "State directory %s does not exist, and its parent %s is not a directory\n", path, parent);
                return -ENOENT;
        }
        return 0;
}

/* Keeps the client secret and tokens out of core files. */
static void disable_core_dumps(void) {
        struct rlimit none = {};

        (void) setrlimit(RLIMIT_CORE, &none);
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct daemon *d = userdata;
        struct config *config = NULL;
        char error[1024] = "";
        int r;

        (void) sd_notify(false, "RELOADING=1\nSTATUS=Reloading the configuration");
        log_info("Reloading configuration %s", d->config_path);

        r = config_load(d->config_path, &config, error, sizeof(error));
        if (r < 0)
                log_error("Failed to reload the configuration, keeping the running one: %s", error);
        else {
                warn_about_secret(config, false);
                r = scheduler_reload(d->scheduler, config);
                if (r < 0)
                        log_error_errno(r, "Failed to apply the reloaded configuration: %m");
                else
                        log_info("Configuration reloaded");
        }

        (void) sd_notify(false, "READY=1");
        return 0;
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct daemon *d = userdata;

        log_info("Received %s, stopping", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        scheduler_stop(d->scheduler);
        /* A --once run stopped early did not poll every target. */
        return sd_event_exit(d->event, d->once ? EXIT_POLL_FAILED : EXIT_OK);
}

static int setup_signals(struct daemon *d, bool once) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;

        r = sd_event_add_signal(d->event, NULL, SIGTERM, on_stop_signal, d);
        if (r >= 0)
                r = sd_event_add_signal(d->event, NULL, SIGINT, on_stop_signal, d);
        if (r >= 0 && !once)
                r = sd_event_add_signal(d->event, NULL, SIGHUP, on_reload_signal, d);
        return r;
}

DEFINE_POINTER_CLEANUP(struct scheduler, scheduler_free);
DEFINE_POINTER_CLEANUP(struct config, config_free);

/* Runs the event loop until SIGTERM, or the end of --once. Takes config. */
static int run(const struct options *o, struct config *config) {
        _cleanup_(config_freep) struct config *owned = config;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(scheduler_freep) struct scheduler *scheduler = NULL;
        struct daemon d = { .config_path = o->config_path, .once = o->once };
        int r;

        r = sd_event_default(&event);
        if (r < 0) {
                log_error_errno(r, "Failed to create the event loop: %m");
                return EXIT_USAGE;
        }
        d.event = event;

        r = setup_signals(&d, o->once);
        if (r < 0) {
                log_error_errno(r, "Failed to set up signal handling: %m");
                return EXIT_USAGE;
        }

        /* Sends the watchdog keep-alive from the loop when WatchdogSec= is set. */
        (void) sd_event_set_watchdog(event, true);

        log_info("cbm365-watchd %s starting%s: %zu targets", CBM365_VERSION,
                 o->once ? " for one poll of every target" : "", config->n_targets);
        r = scheduler_new(event, TAKE_PTR(owned), o->once, &scheduler);
        if (r < 0) {
                log_error_errno(r, "Failed to start: %m");
                return EXIT_USAGE;
        }
        d.scheduler = scheduler;

        (void) sd_notify(false, "READY=1");

        r = sd_event_loop(event);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_USAGE;
        }
        if (r > 0)
                return r;
        return o->once ? scheduler_exit_status(scheduler) : EXIT_OK;
}

int main(int argc, char *argv[]) {
        struct options o;
        struct config *config = NULL;
        char error[1024] = "";
        const char *debug;
        int r;

        disable_core_dumps();

        r = parse_options(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_OK;

        (void) log_open(o.log_target);
        debug = getenv("CBM365_DEBUG");
        if (debug && streq(debug, "1"))
                log_set_max_priority(LOG_DEBUG);

        srandom((unsigned) now_monotonic_usec() ^ (unsigned) getpid());
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                log_error("Failed to initialize libcurl");
                return EXIT_USAGE;
        }

        r = config_load(o.config_path, &config, error, sizeof(error));
        if (r < 0) {
                if (o.check_config)
                        fprintf(stderr, "%s\n", error);
                else
                        log_error("Failed to load the configuration: %s", error);
                return EXIT_USAGE;
        }

        warn_about_secret(config, o.check_config);
        if (o.check_config) {
                r = check_state_directory(config->state_directory);
                if (r < 0) {
                        config_free(config);
                        return EXIT_USAGE;
                }
                config_print_summary(config, stdout);
                config_free(config);
                return EXIT_OK;
        }

        r = run(&o, config);
        curl_global_cleanup();
        return r;
}
