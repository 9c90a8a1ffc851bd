#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Checks the systemd unit of cbm365-watchd.
#
#   check-unit.sh exposure UNIT MAX
#       Fails when "systemd-analyze security --offline=true" rates the unit's
#       overall exposure above MAX (0.0 is best, 10.0 worst).
#
#   check-unit.sh verify BUILD_DIR
#       Installs the build into a temporary DESTDIR and runs
#       "systemd-analyze verify" on the installed unit. verify checks that
#       the ExecStart= binary exists and that "man" finds each page of
#       Documentation=; both are installed under DESTDIR, not on this
#       machine, so the check runs on a copy of the installed unit whose
#       ExecStart= points into DESTDIR, with MANPATH set to DESTDIR's man
#       folder. Nothing else of the unit is changed and no message is filtered.

set -euo pipefail

die() {
        printf 'FAIL: %s\n' "$*" >&2
        exit 1
}

check_exposure() {
        local unit=$1 max=$2 output score

        output=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) ||
                die "systemd-analyze security failed:"$'\n'"$output"
        score=$(printf '%s\n' "$output" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\.[0-9]\).*/\1/p')
        [ -n "$score" ] || die "no overall exposure level in the output:"$'\n'"$output"
        # awk compares the decimals; the shell only compares integers.
        if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
                printf '%s\n' "$output" | grep -v '^✓' >&2
                die "exposure of $unit is $score, above the limit $max"
        fi
        echo "exposure of $(basename "$unit"): $score (limit $max)"
}

check_verify() {
        local build=$1 root unit exec_path output

        root=$(mktemp -d /tmp/cbm365-watchd-verify.XXXXXX)
        trap 'rm -rf "$root"' RETURN
        DESTDIR="$root" cmake --install "$build" >/dev/null || die "cmake --install failed"

        unit=$(find "$root" -name cbm365-watchd.service -print -quit)
        [ -n "$unit" ] || die "the install made no cbm365-watchd.service"
        exec_path=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
        [ -x "$root$exec_path" ] || die "ExecStart=$exec_path is not installed as $root$exec_path"

        mkdir "$root/verify"
        sed "s|^ExecStart=$exec_path|ExecStart=$root$exec_path|" "$unit" >"$root/verify/cbm365-watchd.service"
        output=$(MANPATH="$root$(manpath_of "$root")" systemd-analyze verify "$root/verify/cbm365-watchd.service" 2>&1) ||
                die "systemd-analyze verify failed:"$'\n'"$output"
        [ -z "$output" ] || die "systemd-analyze verify printed:"$'\n'"$output"
        echo "systemd-analyze verify: installed unit, binary and man pages OK"
}

# Prints the man folder of an install under root (e.g. /usr/share/man), found by the page cbm365-watchd.8.
manpath_of() {
        local page

        page=$(find "$1" -path '*/man8/cbm365-watchd.8' -print -quit)
        [ -n "$page" ] || die "the install made no man8/cbm365-watchd.8"
        page=${page#"$1"}
        printf '%s\n' "${page%/man8/cbm365-watchd.8}"
}

case "${1:-}" in
exposure)
        [ $# -eq 3 ] || die "usage: $0 exposure UNIT MAX"
        check_exposure "$2" "$3"
        ;;
verify)
        [ $# -eq 2 ] || die "usage: $0 verify BUILD_DIR"
        check_verify "$2"
        ;;
*)
        die "usage: $0 exposure UNIT MAX | verify BUILD_DIR"
        ;;
esac
