#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# System test: installs the Debian package into a small Debian 12 root, boots
# it with systemd-nspawn, and checks the service under a real systemd there
# (in-container-checks.sh lists the checks). The mock Elements API runs on
# this machine's 127.0.0.1, which the container shares.
#
# Usage: run-system-test.sh PACKAGE_DIR WORK_DIR
#   PACKAGE_DIR  folder with cbm365-watchd_*.deb; the package is built there
#                with packaging/build-deb.sh when none is found
#   WORK_DIR     folder for this run's root copy, logs and results; emptied first
#
# The debootstrapped root is cached in $CBM365_ROOT_CACHE (default
# /var/cache/cbm365-watchd-tests) and copied for each run, so only the first
# run needs the Debian archive. Exit status: 0 all checks passed, 1 a check
# failed, 77 the machine cannot run the test (not root, no systemd-nspawn,
# no archive for debootstrap, or nspawn cannot start a container here).
# Takes about two minutes with a cached root.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
skip=77
suite=bookworm
mirror=${CBM365_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd and libnss-systemd for DynamicUser=, curl for the checks to steer
# the mock, and the package's dependencies so that it installs offline.
include=systemd,systemd-sysv,dbus,libnss-systemd,curl,libcurl4,libjson-c5,libconfig9,procps
cache=${CBM365_ROOT_CACHE:-/var/cache/cbm365-watchd-tests}
boot_timeout_sec=600

say() {
        printf 'system-test: %s\n' "$*" >&2
}

die() {
        say "FAIL: $*"
        exit 1
}

skip() {
        say "SKIPPED: $*"
        exit "$skip"
}

[ $# -eq 2 ] || die "usage: $0 PACKAGE_DIR WORK_DIR"
package_dir=$1
work=$2

# Installs Debian packages that are missing; returns 1 when apt-get fails.
install_missing() {
        local missing=() p

        for p in "$@"; do
                dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        say "installing ${missing[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
                >"$work/apt.log" 2>&1
}

# Prints the path of the cached root, making it with debootstrap first when
# needed. The name carries a hash of the suite and the package list, so a
# change of either makes a new root.
cached_root() {
        local key root

        key=$(printf '%s %s\n' "$suite" "$include" | sha256sum | cut -c1-12)
        root="$cache/$suite-$key"
        mkdir -p "$cache"
        (
                flock -w 900 9 || exit 1
                [ -f "$root/.cbm365-complete" ] && exit 0
                say "making a $suite root in $root with debootstrap (about two minutes)"
                rm -rf "$root.tmp"
                if ! timeout 900 debootstrap --variant=minbase --include="$include" "$suite" "$root.tmp" "$mirror" \
                        >"$work/debootstrap.log" 2>&1; then
                        rm -rf "$root.tmp"
                        exit 2
                fi
                rm -rf "$root"
                mv "$root.tmp" "$root"
                touch "$root/.cbm365-complete"
                # Roots made for another package list are no longer used.
                find "$cache" -mindepth 1 -maxdepth 1 -type d -name "$suite-*" ! -path "$root" \
                        -exec test -f '{}/.cbm365-complete' ';' -exec rm -rf '{}' +
        ) 9>"$cache/.lock" || return $?
        printf '%s\n' "$root"
}

find_deb() {
        find "$package_dir" -maxdepth 1 -name 'cbm365-watchd_*.deb' -printf '%T@ %p\n' 2>/dev/null |
                sort -rn | head -n 1 | cut -d' ' -f2-
}

# Writes the scenario of the mock, the configurations, the users that change
# and the secret into the staging folder given.
write_inputs() {
        local dir=$1 port=$2

        cat >"$dir/env" <<EOF
PORT=$port
CUSTOMER_A=$customer_a
TENANT_A=$tenant_a
CUSTOMER_B=$customer_b
TENANT_B=$tenant_b
EOF
        config "alpha" >"$dir/alpha.conf"
        config "alpha beta" >"$dir/alpha-beta.conf"
        { config "alpha"; echo "no_such_setting = 1;"; } >"$dir/bad.conf"
        users protected >"$dir/alpha-users-changed.json"
        sed -i '0,/"isProtected": true/s//"isProtected": false/' "$dir/alpha-users-changed.json"
}

# Prints a configuration with the targets named (alpha, beta).
config() {
        local name

        cat <<EOF
api = {
  base_url = "http://127.0.0.1:$port";
  token_url = "http://127.0.0.1:$port/connect/token";
  client_id = "system-test-client";
  client_secret_file = "/etc/cbm365-watchd/client-secret";
  timeout = 10;
};
poll = { interval = 10; };
targets = (
EOF
        for name in $1; do
                case "$name" in
                alpha) echo "  { name = \"alpha\"; customer_id = \"$customer_a\"; tenant_id = \"$tenant_a\"; }," ;;
                beta) echo "  { name = \"beta\"; customer_id = \"$customer_b\"; tenant_id = \"$tenant_b\"; }," ;;
                esac
        done | sed '$ s/,$//'
        echo ");"
}

# Prints the two users of tenant alpha, every module protected.
users() {
        cat <<'EOF'
[
  {"id": "u-1", "email": "ada@alpha.example", "displayName": "Ada Alpha",
   "moduleStatus": [{"module": 0, "isProtected": true}, {"module": 1, "isProtected": true}]},
  {"id": "u-2", "email": "bob@alpha.example", "displayName": "Bob Alpha",
   "moduleStatus": [{"module": 0, "isProtected": true}, {"module": 1, "isProtected": true}]}
]
EOF
}

scenario() {
        cat <<EOF
{"clients": {"system-test-client": {"secret": "$secret", "scopes": ["elements.cbprotected.read.all"]}},
 "token_lifetime": 3600,
 "tenants": [
  {"customer_id": "$customer_a", "tenant_id": "$tenant_a", "users": $(users)},
  {"customer_id": "$customer_b", "tenant_id": "$tenant_b", "users": [
   {"id": "v-1", "email": "cyd@beta.example", "displayName": "Cyd Beta",
    "moduleStatus": [{"module": 0, "isProtected": true}]}]}
 ],
 "faults": []}
EOF
}

# Writes the target and the oneshot service that runs the checks and then
# powers the container off, whether they passed or not.
write_units() {
        local dir=$1

        cat >"$dir/cbm365-system-test.target" <<'EOF'
[Unit]
Description=cbm365-watchd system test
Requires=basic.target cbm365-system-test.service
After=basic.target
AllowIsolate=yes
EOF
        cat >"$dir/cbm365-system-test.service" <<EOF
[Unit]
Description=cbm365-watchd system test checks
# After the flush to /var/log/journal: a cursor taken before it no longer
# finds its entry afterwards.
After=basic.target systemd-journald.service systemd-journal-flush.service
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/lib/cbm365-system-test/checks.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=$((boot_timeout_sec - 60))
EOF
}

# Checks the fields of the journal entries the checks copied out, and that no
# entry carries the client secret.
check_journal() {
        python3 - "$work/results/journal.json" "$secret" "$customer_a" "$tenant_a" <<'EOF'
import json, sys

path, secret, customer, tenant = sys.argv[1:5]
text = open(path, encoding="utf-8").read()
entries = [json.loads(line) for line in text.splitlines() if line.strip()]
failures = []

def expect(name, entry, field, value):
    if entry.get(field) != value:
        failures.append(f"{name}: {field} is {entry.get(field)!r}, expected {value!r}")

def first(**match):
    for e in entries:
        if all(e.get(k) == v for k, v in match.items()):
            return e
    failures.append(f"no entry with {match}")
    return {}

if secret in text:
    failures.append("the client secret appears in the journal")

e = first(CBM365_EVENT="baseline-recorded", CBM365_TARGET="alpha")
for field, value in [("MESSAGE_ID", "325cb61a0f744ed7b2285a3cf9a8f11c"), ("PRIORITY", "6"),
                     ("CBM365_CUSTOMER_ID", customer), ("CBM365_TENANT_ID", tenant),
                     ("CBM365_USERS", "2"), ("CBM365_UNPROTECTED", "0"),
                     ("_SYSTEMD_UNIT", "cbm365-watchd.service")]:
    expect("baseline-recorded", e, field, value)
if e and e.get("_UID") in (None, "0"):
    failures.append(f"baseline-recorded: _UID is {e.get('_UID')!r}, expected the dynamic user")

e = first(CBM365_EVENT="protection-lost", CBM365_TARGET="alpha")
for field, value in [("MESSAGE_ID", "5b07d3ac68fc402fbcc2525c0f15c478"), ("PRIORITY", "4"),
                     ("CBM365_CUSTOMER_ID", customer), ("CBM365_TENANT_ID", tenant),
                     ("CBM365_USER_ID", "u-1"), ("CBM365_USER_EMAIL", "ada@alpha.example"),
                     ("CBM365_USER_NAME", "Ada Alpha"), ("CBM365_MODULE", "mailbox"),
                     ("CBM365_MODULE_CODE", "0"), ("CBM365_PREVIOUS", "protected"),
                     ("CBM365_CURRENT", "unprotected")]:
    expect("protection-lost", e, field, value)
lost = [x for x in entries if x.get("CBM365_EVENT") == "protection-lost"]
if len(lost) != 1:
    failures.append(f"{len(lost)} protection-lost entries, expected 1")

e = first(CBM365_EVENT="baseline-recorded", CBM365_TARGET="beta")
expect("baseline-recorded beta", e, "CBM365_USERS", "1")

for f in failures:
    print(f"FAIL journal: {f}")
print(f"journal: {len(entries)} entries checked, {len(failures)} failures")
sys.exit(1 if failures else 0)
EOF
}

cleanup() {
        if [ -n "${mock_pid:-}" ]; then
                kill "$mock_pid" 2>/dev/null || true
                wait "$mock_pid" 2>/dev/null || true
        fi
        # The root copy is large; the logs and results stay for inspection.
        [ -n "${root:-}" ] && rm -rf "$root"
}

main() {
        local deb cache_root started status

        [ "$(id -u)" -eq 0 ] || skip "needs root for systemd-nspawn and debootstrap"
        rm -rf "$work"
        mkdir -p "$work/results" "$package_dir"
        work=$(cd "$work" && pwd)
        install_missing systemd-container debootstrap python3 ||
                skip "cannot install systemd-container and debootstrap (see $work/apt.log)"

        deb=$(find_deb)
        if [ -z "$deb" ]; then
                say "no .deb in $package_dir, building one"
                "$top/packaging/build-deb.sh" "$package_dir" >/dev/null || die "packaging/build-deb.sh failed"
                deb=$(find_deb)
        fi
        [ -n "$deb" ] || die "no cbm365-watchd_*.deb in $package_dir"
        say "package: $deb"

        status=0
        cache_root=$(cached_root) || status=$?
        [ "$status" -ne 2 ] || skip "debootstrap of $suite from $mirror failed (see $work/debootstrap.log)"
        [ "$status" -eq 0 ] || die "could not make or lock the cached root in $cache"

        started=$SECONDS
        root="$work/root"
        cp -a "$cache_root" "$root"
        timeout 60 systemd-nspawn --register=no --keep-unit --quiet --directory="$root" --pipe /bin/true \
                >"$work/nspawn-probe.log" 2>&1 ||
                skip "systemd-nspawn cannot start a container on this machine (see $work/nspawn-probe.log)"

        secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
        customer_a=cust-alpha-$RANDOM
        tenant_a=ten-alpha-$RANDOM
        customer_b=cust-beta-$RANDOM
        tenant_b=ten-beta-$RANDOM

        scenario >"$work/scenario.json"
        python3 "$top/tests/mock/elements_mock.py" --scenario "$work/scenario.json" --port 0 \
                --port-file "$work/mock.port" >"$work/mock.log" 2>&1 &
        mock_pid=$!
        for _ in $(seq 100); do
                [ -s "$work/mock.port" ] && break
                kill -0 "$mock_pid" 2>/dev/null || die "the mock API exited (see $work/mock.log)"
                sleep 0.1
        done
        [ -s "$work/mock.port" ] || die "the mock API did not listen within 10 s"
        port=$(cat "$work/mock.port")
        say "mock API on 127.0.0.1:$port"

        local staging="$root/var/tmp/cbm365-system-test"
        mkdir -p "$staging" "$root/usr/local/lib/cbm365-system-test"
        cp "$deb" "$staging/cbm365-watchd.deb"
        write_inputs "$staging" "$port"
        (umask 077 && printf '%s\n' "$secret" >"$staging/client-secret")
        install -m 0755 "$here/in-container-checks.sh" "$root/usr/local/lib/cbm365-system-test/checks.sh"
        write_units "$root/etc/systemd/system"

        say "booting the container (at most $boot_timeout_sec s)"
        status=0
        timeout --kill-after=15 "$boot_timeout_sec" systemd-nspawn --register=no --keep-unit --quiet \
                --directory="$root" --bind="$work/results:/var/tmp/cbm365-results" \
                --boot -- systemd.unit=cbm365-system-test.target systemd.firstboot=off \
                >"$work/console.log" 2>&1 </dev/null || status=$?
        say "container ended with status $status after $((SECONDS - started)) s"

        if ! grep -qx DONE "$work/results/results" 2>/dev/null; then
                tail -n 60 "$work/console.log" >&2
                die "the checks did not finish (console: $work/console.log)"
        fi
        cat "$work/results/results" >&2
        grep -q '^FAIL' "$work/results/results" && failed=1
        check_journal >&2 || failed=1
        if [ "${failed:-0}" -ne 0 ]; then
                say "console output: $work/console.log"
                exit 1
        fi
        say "all $(grep -c '^PASS' "$work/results/results") checks passed in $((SECONDS - started)) s"
}

trap cleanup EXIT
main
