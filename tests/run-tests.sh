#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds cbm365-watchd and runs every test. On Debian 12 as root it first
# installs the Debian packages the build and the tests need. It configures
# build/ with warnings as errors and builds. It starts a systemd-journald when
# none runs, because the integration tests read their events back from a real
# journal, and then runs ctest. Exits with ctest's status. Running it again is
# harmless: it installs only what is missing and rebuilds only what changed.
#
# Usage: tests/run-tests.sh [--build-only] [CTEST OPTION]...
#   --build-only   install and build, run no test (tests/demo.sh uses this)
#   other options go to ctest, e.g. -L unit, -R integration/once, -j2
# CBM365_BUILD_DIR=DIR builds into DIR instead of build/. A full run then
# repeats the unit and integration tests in a sanitizer build, DIR-sanitize;
# CBM365_SKIP_SANITIZERS=1 leaves that out.

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${CBM365_BUILD_DIR:-$top/build}"
python=/usr/bin/python3

packages=(
        gcc libc6-dev make cmake pkg-config
        libcurl4-openssl-dev libjson-c-dev libconfig-dev libsystemd-dev libcmocka-dev
        python3 systemd curl openssl
)

say() {
        printf 'run-tests: %s\n' "$*"
}

install_packages() {
        local missing=() p log
        for p in "${packages[@]}"; do
                if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
                        missing+=("$p")
                fi
        done
        [ ${#missing[@]} -eq 0 ] && return 0

        if [ "$(id -u)" -ne 0 ]; then
                say "missing Debian packages: ${missing[*]}; run this script as root or install them" >&2
                exit 1
        fi
        say "installing ${missing[*]}"
        log=$(mktemp)
        if ! { apt-get update -qq &&
               DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
                >"$log" 2>&1; then
                cat "$log" >&2
                rm -f "$log"
                say "apt-get failed" >&2
                exit 1
        fi
        rm -f "$log"
}

build_project() {
        local log
        log=$(mktemp)
        if ! cmake -S "$top" -B "$build" -DCBM365_WERROR=ON >"$log" 2>&1; then
                cat "$log" >&2
                rm -f "$log"
                say "cmake configuration failed" >&2
                exit 1
        fi
        rm -f "$log"
        cmake --build "$build" -j"$(nproc)"
}

build_only=0
ctest_args=()
for arg in "$@"; do
        case "$arg" in
                --build-only) build_only=1 ;;
                *) ctest_args+=("$arg") ;;
        esac
done

install_packages
build_project
[ "$build_only" -eq 1 ] && exit 0

# A journald started here is stopped on exit; one that already ran is left alone.
journald_pid_file="$build/run-tests-journald.pid"
"$python" "$top/tests/integration/journald.py" start --pid-file "$journald_pid_file"
trap '"$python" "$top/tests/integration/journald.py" stop --pid-file "$journald_pid_file" >/dev/null' EXIT

status=0
ctest --test-dir "$build" --output-on-failure "${ctest_args[@]}" || status=$?

# The unit and integration tests once more with AddressSanitizer and
# UndefinedBehaviorSanitizer, which make the daemon exit non-zero on a memory
# error or leak. Only on a full run: options given to ctest select tests of
# the main build alone.
if [ ${#ctest_args[@]} -eq 0 ] && [ "${CBM365_SKIP_SANITIZERS:-0}" != 1 ]; then
        sanitize_build="$build-sanitize"
        say "sanitizer build in $sanitize_build"
        log=$(mktemp)
        if ! cmake -S "$top" -B "$sanitize_build" -DCBM365_WERROR=ON -DCBM365_SANITIZE=ON >"$log" 2>&1; then
                cat "$log" >&2
                status=1
        fi
        rm -f "$log"
        cmake --build "$sanitize_build" -j"$(nproc)" || status=1
        ctest --test-dir "$sanitize_build" --output-on-failure -L 'unit|integration' || status=1
fi
exit "$status"
