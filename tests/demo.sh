#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Shows cbm365-watchd at work. Installs and builds like tests/run-tests.sh,
# then runs the daemon in the foreground with its events on the terminal.
#
# Without real credentials it watches two made-up tenants served by the mock
# API on 127.0.0.1, polling every 10 s (the shortest interval allowed). Every
# few seconds a background loop changes a user: a mailbox loses its
# protection, a new hire appears, someone is renamed, a user leaves, the
# protection comes back. Everything lives in a temporary directory that is
# removed at the end.
#
# When /etc/cbm365-watchd/cbm365-watchd.conf exists and its client secret
# file is not empty, the daemon runs against that configuration instead.
#
# Ctrl-C stops everything. DEMO_DURATION=N stops after N seconds.
# CBM365_BUILD_DIR=DIR builds into DIR instead of build/.

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
daemon="${CBM365_BUILD_DIR:-$top/build}/cbm365-watchd"
python=/usr/bin/python3
real_conf=/etc/cbm365-watchd/cbm365-watchd.conf
interval_sec=10
change_every_sec=5

say() {
        printf 'demo: %s\n' "$*" >&2
}

if [ -n "${DEMO_DURATION:-}" ] && ! [[ "$DEMO_DURATION" =~ ^[1-9][0-9]*$ ]]; then
        say "DEMO_DURATION must be a whole number of seconds, got '$DEMO_DURATION'"
        exit 1
fi

# Runs the daemon in the foreground, for DEMO_DURATION seconds when set;
# SIGINT is what Ctrl-C sends, and the daemon exits cleanly on it.
run_daemon() {
        local status=0
        if [ -n "${DEMO_DURATION:-}" ]; then
                timeout --foreground --preserve-status -s INT "$DEMO_DURATION" \
                        "$daemon" "$@" --log-target=console || status=$?
        else
                "$daemon" "$@" --log-target=console || status=$?
        fi
        return "$status"
}

# Prints the client secret file a configuration names (or the default one).
secret_file_of() {
        local file
        file=$(sed -n 's/^[[:space:]]*client_secret_file[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$1" | head -n 1)
        printf '%s\n' "${file:-/etc/cbm365-watchd/client-secret}"
}

say "installing what is missing and building (tests/run-tests.sh --build-only)"
"$top/tests/run-tests.sh" --build-only >/dev/null

if [ -r "$real_conf" ] && [ -s "$(secret_file_of "$real_conf")" ]; then
        say "using the real configuration $real_conf: the daemon polls the API it names"
        if ! grep -q '^[[:space:]]*state_directory' "$real_conf"; then
                install -d -m 0700 /var/lib/cbm365-watchd
        fi
        run_daemon -c "$real_conf"
        exit $?
fi

dir=$(mktemp -d /tmp/cbm365-demo.XXXXXX)
mock_pid=
loop_pid=

cleanup() {
        # The loop first, then its sleep: a loop that outlives its sleep
        # reports the killed child as "Terminated" on the terminal.
        if [ -n "$loop_pid" ]; then
                local children=()
                mapfile -t children < <(pgrep -P "$loop_pid" || true)
                kill "$loop_pid" 2>/dev/null || true
                wait "$loop_pid" 2>/dev/null || true
                [ ${#children[@]} -eq 0 ] || kill "${children[@]}" 2>/dev/null || true
        fi
        if [ -n "$mock_pid" ]; then
                kill "$mock_pid" 2>/dev/null || true
                wait "$mock_pid" 2>/dev/null || true
        fi
        rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The scenario, and the users of the Contoso tenant after each change.
"$python" - "$dir" <<'PYTHON'
import json
import os
import sys

d = sys.argv[1]
customer, contoso, fabrikam = ("3f2a9c1e-5b7d-4e8f-9a10-2b3c4d5e6f70",
                               "8d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
                               "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d")

def user(n, email, name, mailbox=True, onedrive=True):
    return {"id": f"00000000-0000-4000-8000-{n:012d}", "email": email, "displayName": name,
            "moduleStatus": [{"module": 0, "isProtected": mailbox}, {"module": 2, "isProtected": onedrive}]}

adele = user(1, "adele.vance@contoso.example", "Adele Vance")
alex = user(2, "alex.wilber@contoso.example", "Alex Wilber")
megan = user(3, "megan.bowen@contoso.example", "Megan Bowen")
lynne = user(4, "lynne.robbins@contoso.example", "Lynne Robbins")
diego = user(5, "diego.siciliani@contoso.example", "Diego Siciliani", onedrive=False)
megan_lost = dict(megan, moduleStatus=[{"module": 0, "isProtected": False}, {"module": 2, "isProtected": True}])
nestor = user(6, "nestor.wilke@contoso.example", "Nestor Wilke", mailbox=False, onedrive=False)
alex_renamed = dict(alex, email="alex.wilber-smith@contoso.example", displayName="Alex Wilber-Smith")

initial = [adele, alex, megan, lynne, diego]
steps = [
    ("Megan Bowen's mailbox is no longer protected", [adele, alex, megan_lost, lynne, diego]),
    ("new hire Nestor Wilke appears, nothing of his is protected", [adele, alex, megan_lost, lynne, diego, nestor]),
    ("Alex Wilber is renamed Alex Wilber-Smith", [adele, alex_renamed, megan_lost, lynne, diego, nestor]),
    ("Lynne Robbins leaves the company", [adele, alex_renamed, megan_lost, diego, nestor]),
    ("Megan Bowen's mailbox is protected again", [adele, alex_renamed, megan, diego, nestor]),
    ("back to the start: Nestor leaves, Lynne returns, Alex's old name", initial),
]

scenario = {
    "clients": {"demo-client": {"secret": "demo-secret", "scopes": ["elements.cbprotected.read.all"]}},
    "tenants": [
        {"customer_id": customer, "tenant_id": contoso, "users": initial},
        {"customer_id": customer, "tenant_id": fabrikam, "field_case": "pascal",
         "users": [user(11, "ceo@fabrikam.example", "Fabrikam CEO"),
                   user(12, "cfo@fabrikam.example", "Fabrikam CFO", mailbox=False)]},
    ],
}
with open(os.path.join(d, "scenario.json"), "w", encoding="utf-8") as f:
    json.dump(scenario, f, indent=1)
with open(os.path.join(d, "steps.txt"), "w", encoding="utf-8") as f:
    for n, (what, users) in enumerate(steps, 1):
        f.write(what + "\n")
        with open(os.path.join(d, f"step-{n}.json"), "w", encoding="utf-8") as s:
            json.dump(users, s)
with open(os.path.join(d, "ids"), "w", encoding="utf-8") as f:
    f.write(f"{customer} {contoso} {fabrikam}\n")
PYTHON
read -r customer contoso fabrikam <"$dir/ids"
n_steps=$(wc -l <"$dir/steps.txt")

"$python" "$top/tests/mock/elements_mock.py" --scenario "$dir/scenario.json" --host 127.0.0.1 \
        --port 0 --port-file "$dir/port" --quiet >"$dir/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do
        [ -s "$dir/port" ] && break
        sleep 0.1
done
if ! [ -s "$dir/port" ]; then
        say "the mock API did not start:"
        cat "$dir/mock.log" >&2
        exit 1
fi
url="http://127.0.0.1:$(tr -d '[:space:]' <"$dir/port")"

install -m 0600 /dev/null "$dir/client-secret"
printf 'demo-secret\n' >"$dir/client-secret"
mkdir -m 0700 "$dir/state"
cat >"$dir/cbm365-watchd.conf" <<EOF
api = {
  base_url = "$url";
  token_url = "$url/connect/token";
  client_id = "demo-client";
  client_secret_file = "$dir/client-secret";
};
poll = { interval = $interval_sec; };
state_directory = "$dir/state";
targets = (
  { name = "contoso"; customer_id = "$customer"; tenant_id = "$contoso"; },
  { name = "fabrikam"; customer_id = "$customer"; tenant_id = "$fabrikam"; }
);
EOF

change_users() {
        local i
        while :; do
                for i in $(seq "$n_steps"); do
                        sleep "$change_every_sec"
                        curl -fsS --noproxy '*' -o /dev/null -X PUT -H 'Content-Type: application/json' \
                                --data-binary @"$dir/step-$i.json" \
                                "$url/_mock/tenants/$customer/$contoso/users" || return 0
                        say "mock: $(sed -n "${i}p" "$dir/steps.txt")"
                done
        done
}

say "mock Elements API on $url; configuration and snapshots in $dir"
say "the daemon polls every $interval_sec s; a user of 'contoso' changes every $change_every_sec s"
say "the first poll of each tenant records a baseline; Ctrl-C stops${DEMO_DURATION:+ (or after $DEMO_DURATION s)}"
change_users &
loop_pid=$!

run_daemon -c "$dir/cbm365-watchd.conf"
