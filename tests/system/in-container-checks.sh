#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The checks of the system test, run inside the booted Debian root by
# cbm365-system-test.service. run-system-test.sh on the host stages the
# inputs in /var/tmp/cbm365-system-test. It reads the results from the bind
# mount /var/tmp/cbm365-results: the file "results" gets one "PASS name" or
# "FAIL name: detail" line per check and "DONE" as the last line when every
# step ran, and journal.json gets the service's journal for the field checks.
#
# Every wait is bounded; a failed step does not stop the later ones unless
# they cannot run without it.

set -u

in=/var/tmp/cbm365-system-test
out=/var/tmp/cbm365-results
unit=cbm365-watchd.service
conf=/etc/cbm365-watchd/cbm365-watchd.conf
secret_file=/etc/cbm365-watchd/client-secret

# PORT, CUSTOMER_A, TENANT_A, CUSTOMER_B, TENANT_B
# shellcheck source=/dev/null
. "$in/env"
secret=$(cat "$in/client-secret")
mock="http://127.0.0.1:$PORT"

pass() {
        echo "PASS $*" | tee -a "$out/results"
}

fail() {
        echo "FAIL $*" | tee -a "$out/results"
}

# check NAME COMMAND...: records whether COMMAND succeeds.
check() {
        local name=$1

        shift
        if "$@"; then
                pass "$name"
        else
                fail "$name: '$*' failed"
        fi
}

# wait_for SECONDS COMMAND...: runs COMMAND every half second until it succeeds.
wait_for() {
        local deadline=$((SECONDS + $1))

        shift
        until "$@"; do
                [ "$SECONDS" -lt "$deadline" ] || return 1
                sleep 0.5
        done
}

# Prints how many entries of the service match every FIELD=VALUE given.
# NOTE: the checks count entries instead of using --after-cursor, because
# journalctl 252 found no entry here after a cursor when two field matches
# were given, although the entries were there.
journal_count() {
        journalctl -q --no-pager _SYSTEMD_UNIT="$unit" -o json "$@" | wc -l
}

# journal_grows COUNT FIELD=VALUE...: succeeds when more than COUNT entries match.
journal_grows() {
        local before=$1

        shift
        [ "$(journal_count "$@")" -gt "$before" ]
}

# Prints how many messages of the service contain text.
message_count() {
        journalctl -q --no-pager -u "$unit" -o cat | grep -cF -- "$1"
}

message_grows() {
        [ "$(message_count "$2")" -gt "$1" ]
}

unit_property() {
        systemctl show -p "$1" --value "$unit"
}

equals() {
        [ "$1" = "$2" ] || { echo "  expected '$2', got '$1'"; return 1; }
}

contains() {
        case "$1" in
        *"$2"*) return 0 ;;
        esac
        echo "  expected '$2' in: $1"
        return 1
}

# Prints the options of the mount that contains path, as process pid sees it:
# the entry of its mountinfo whose mount point is the longest prefix of path.
mount_options_of() {
        awk -v path="$2" '
                {
                        mp = $5
                        if ((path == mp || index(path, mp == "/" ? "/" : mp "/") == 1) && length(mp) >= best) {
                                best = length(mp)
                                options = $6
                        }
                }
                END { print options }' "/proc/$1/mountinfo"
}

mount_is() {
        local options

        options=$(mount_options_of "$1" "$2")
        case ",$options," in
        *",$3,"*) return 0 ;;
        esac
        echo "  $2 is mounted with '$options' in the service's mount namespace, expected $3"
        return 1
}

uids_nonzero_dynamic() {
        local uids

        uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$1/status")
        echo "  Uid: $uids"
        # DynamicUser= picks ids from 61184..65519.
        for uid in $uids; do
                [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ] || return 1
        done
}

put_users() {
        curl -fsS --max-time 10 -X PUT -H 'Content-Type: application/json' \
                --data-binary "@$in/$3" "$mock/_mock/tenants/$1/$2/users" >/dev/null
}

step_install() {
        if ! dpkg -i "$in/cbm365-watchd.deb" >"$out/dpkg-install.log" 2>&1; then
                # Library dependencies that the cached root lacks come from the archive.
                DEBIAN_FRONTEND=noninteractive timeout 300 apt-get -f install -y >>"$out/dpkg-install.log" 2>&1
        fi
        check package-installed equals "$(dpkg-query -W -f='${Status}' cbm365-watchd 2>/dev/null)" "install ok installed"
        check install-not-enabled equals "$(systemctl is-enabled "$unit")" disabled
        check install-not-started equals "$(systemctl is-active "$unit")" inactive
        check conffile bash -c "dpkg-query -W -f='\${Conffiles}' cbm365-watchd | grep -q ' $conf '"
        check man-pages test -f /usr/share/man/man8/cbm365-watchd.8.gz -a -f /usr/share/man/man5/cbm365-watchd.conf.5.gz
        # The systemd package's dpkg trigger on /usr/lib/systemd/catalog rebuilt the catalog database.
        check catalog-updated bash -c "journalctl --list-catalog 2>/dev/null | grep -q '^5b07d3ac68fc402fbcc2525c0f15c478 '"
}

step_configure() {
        install -m 0644 "$in/alpha.conf" "$conf"
        install -m 0600 "$in/client-secret" "$secret_file"
        check check-config cbm365-watchd --check-config
}

step_start() {
        check enable-now timeout 60 systemctl enable --now "$unit"
        check active equals "$(systemctl is-active "$unit")" active
        check enabled equals "$(systemctl is-enabled "$unit")" enabled
        check baseline-alpha wait_for 60 journal_grows 0 CBM365_EVENT=baseline-recorded CBM365_TARGET=alpha
        check query-by-tenant bash -c "journalctl -q --no-pager CBM365_TENANT_ID=$TENANT_A -o json | grep -q baseline-recorded"
        check status-text bash -c "systemctl status --no-pager $unit | grep -E 'Status: \"[0-9]+ targets: '"
        check catalog-shown bash -c "journalctl -q --no-pager -x -u $unit CBM365_EVENT=baseline-recorded | grep -q 'Defined-By: cbm365-watchd'"
}

step_sandbox() {
        local pid

        pid=$(unit_property MainPID)
        check main-pid test "$pid" -gt 0
        check dynamic-user uids_nonzero_dynamic "$pid"
        check dynamic-user-name equals "$(getent passwd "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" | cut -d: -f1)" cbm365-watchd
        check usr-read-only mount_is "$pid" /usr ro
        check etc-read-only mount_is "$pid" /etc ro
        check state-writable mount_is "$pid" /var/lib/private/cbm365-watchd rw
        check credential-passed bash -c "tr '\\0' '\\n' </proc/$pid/environ | grep -q '^CREDENTIALS_DIRECTORY='"
        check secret-not-in-environment bash -c "! grep -qF -- '$secret' /proc/$pid/environ /proc/$pid/cmdline"
}

step_protection_lost() {
        check mock-users-changed put_users "$CUSTOMER_A" "$TENANT_A" alpha-users-changed.json
        check protection-lost wait_for 60 journal_grows 0 CBM365_EVENT=protection-lost CBM365_TARGET=alpha
}

step_reload() {
        local pid failed_reloads
        local reload_failed="Failed to reload the configuration, keeping the running one"

        pid=$(unit_property MainPID)
        failed_reloads=$(message_count "$reload_failed")
        install -m 0644 "$in/bad.conf" "$conf"
        check reload-bad-file timeout 60 systemctl reload "$unit"
        check reload-bad-file-logged wait_for 30 message_grows "$failed_reloads" "$reload_failed"
        check reload-bad-file-still-active equals "$(systemctl is-active "$unit")" active

        install -m 0644 "$in/alpha-beta.conf" "$conf"
        check reload timeout 60 systemctl reload "$unit"
        check baseline-beta wait_for 60 journal_grows 0 CBM365_EVENT=baseline-recorded CBM365_TARGET=beta
        check reload-same-process equals "$(unit_property MainPID)" "$pid"
}

step_config_hygiene() {
        local output status

        chmod 0664 "$conf"
        output=$(cbm365-watchd --check-config 2>&1)
        status=$?
        chmod 0644 "$conf"
        check group-writable-config-exit equals "$status" 1
        check group-writable-config-message contains "$output" "writable by group (mode 0664)"
}

step_restart() {
        local summaries baselines

        summaries=$(journal_count CBM365_EVENT=poll-summary)
        baselines=$(journal_count CBM365_EVENT=baseline-recorded)
        check restart timeout 60 systemctl restart "$unit"
        # The first poll summary comes one to two intervals (10 s) after the start.
        check restart-polled wait_for 45 journal_grows "$summaries" CBM365_EVENT=poll-summary
        if journal_grows "$baselines" CBM365_EVENT=baseline-recorded; then
                fail "restart-no-new-baseline: the snapshots did not survive the restart"
        else
                pass restart-no-new-baseline
        fi
}

step_stop() {
        check stop timeout 60 systemctl stop "$unit"
        check stop-exit-status equals "$(unit_property ExecMainStatus)" 0
        check stop-result equals "$(unit_property Result)" success
        check snapshots-saved equals "$(find /var/lib/private/cbm365-watchd -name '*.snapshot' | wc -l)" 2
        check no-temporary-files equals "$(find /var/lib/private/cbm365-watchd -name '.*tmp*' | wc -l)" 0
        journalctl -q --no-pager -u "$unit" -o json >"$out/journal.json"
}

step_remove_purge() {
        check remove dpkg -r cbm365-watchd
        check remove-keeps-config test -f "$conf"
        check remove-keeps-state test -d /var/lib/private/cbm365-watchd
        check purge dpkg --purge cbm365-watchd
        check purge-deletes-config test ! -e /etc/cbm365-watchd
        check purge-deletes-state test ! -e /var/lib/private/cbm365-watchd -a ! -e /var/lib/cbm365-watchd
        check purge-updates-catalog bash -c "! journalctl --list-catalog 2>/dev/null | grep -q '^5b07d3ac68fc402fbcc2525c0f15c478 '"
}

: >"$out/results"
step_install
step_configure
step_start
step_sandbox
step_protection_lost
step_reload
step_config_hygiene
step_restart
step_stop
step_remove_purge
echo DONE | tee -a "$out/results"
