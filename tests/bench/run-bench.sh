#!/bin/sh
# SPDX-License-Identifier: MIT
# Benchmark of cbm365-watchd against the mock Elements API on 127.0.0.1.
# Not part of ctest. Options go to bench.py; run with --help to list them.
#   tests/bench/run-bench.sh --quick     about 30 s: 100 tenants x 1,000 users
#   tests/bench/run-bench.sh             1,000 tenants x 1,000 users, about 5 minutes
# The daemon binary is $CBM365_WATCHD, else build-bench/cbm365-watchd, which
# this script builds (Release) when it is missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ -z "${CBM365_WATCHD:-}" ]; then
        CBM365_WATCHD="$root/build-bench/cbm365-watchd"
        if [ ! -x "$CBM365_WATCHD" ]; then
                cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DCBM365_TESTS=OFF
                cmake --build "$root/build-bench" -j2
        fi
fi
export CBM365_WATCHD

exec /usr/bin/python3 "$here/bench.py" "$@"
