# shellcheck shell=bash
# SPDX-License-Identifier: MIT
#
# Functions shared by build-deb.sh and build-rpm.sh, which source this file
# after they set $top and define say() and die().
# shellcheck disable=SC2154 # top is set by the sourcing script

# Installs the Debian packages given that are missing (as root, with apt-get).
install_missing() {
        local missing=() p

        for p in "$@"; do
                dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; install them or run as root"
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Lists the source files to package, NUL-separated, relative to the top: the
# files git tracks and the untracked ones .gitignore does not exclude, or
# the whole tree without build directories when there is no git.
list_sources() {
        if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
                git -C "$top" ls-files -z --cached --others --exclude-standard
        else
                (cd "$top" && find . -path './build*' -prune -o -path './.git' -prune -o -type f -print0)
        fi
}
