#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Checks the manual pages: man(1) must render each without a warning, and
# every option that "cbm365-watchd --help" prints must head an entry of the
# OPTIONS section of cbm365-watchd(8), and the other way round.
#
# Usage: check-man-pages.sh BINARY DOCS_DIR

set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BINARY DOCS_DIR" >&2; exit 2; }
binary=$1
docs=$2
page8="$docs/cbm365-watchd.8"
failed=0

fail() {
        printf 'FAIL: %s\n' "$*" >&2
        failed=1
}

for page in "$page8" "$docs/cbm365-watchd.conf.5"; do
        [ -f "$page" ] || { fail "$page: missing"; continue; }
        warnings=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null) || fail "$page: man failed"
        [ -z "$warnings" ] || fail "$page: man printed warnings:"$'\n'"$warnings"
done

help=$("$binary" --help) || fail "$binary --help failed"

# The options of --help: "-c, --config FILE", "--check-config", "--log-target=...".
mapfile -t help_options < <(printf '%s\n' "$help" | grep -E '^ +-' |
        grep -oE '(^|[ ,])--?[a-z][a-z-]*' | tr -d ' ,' | sort -u)
[ ${#help_options[@]} -ge 6 ] || fail "--help lists ${#help_options[@]} options, expected at least 6"

# The entry heads of OPTIONS: the line after each ".TP", with roff escapes
# and macro names removed, e.g. ".BR \-h \", \" \-\-help" gives "-h" and "--help".
options_section=$(sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$page8")
mapfile -t page_options < <(printf '%s\n' "$options_section" | sed -n '/^\.TP/{n;p}' |
        sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/^\.[A-Z]* //' |
        grep -oE '(^|[ ,"])--?[a-z][a-z-]*' | tr -d ' ,"' | sort -u)

for option in "${help_options[@]}"; do
        printf '%s\n' "${page_options[@]}" | grep -qxF -- "$option" ||
                fail "option $option of --help has no entry in OPTIONS of $page8"
done
for option in "${page_options[@]}"; do
        printf '%s\n' "${help_options[@]}" | grep -qxF -- "$option" ||
                fail "option $option of $page8 is not in --help"
done

[ "$failed" -eq 0 ] || exit 1
echo "man pages: no warnings; options of --help and OPTIONS match: ${help_options[*]}"
