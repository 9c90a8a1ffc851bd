#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds the Debian package of cbm365-watchd and checks it with lintian.
#
# dpkg-buildpackage expects debian/ at the top of the source tree, but this
# tree keeps it in packaging/debian. So the script copies the source files
# into a temporary folder and puts packaging/debian there as debian/. The
# files are those git tracks plus untracked ones that .gitignore does not
# exclude, or the whole tree without build directories when there is no git.
# It then builds the binary package and runs lintian on it. Any lintian error
# or warning fails the run.
#
# Usage: packaging/build-deb.sh OUTPUT_DIR
# On success OUTPUT_DIR holds the .deb, the .buildinfo, the .changes and
# lintian.log, and the last line of standard output is the path of the .deb.
# As root, missing build tools and build dependencies are installed with apt-get.

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() {
        printf 'build-deb: %s\n' "$*" >&2
}

die() {
        say "$*"
        exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUTPUT_DIR"
mkdir -p "$1"
out=$(cd "$1" && pwd)

# The tools the build needs beyond the Build-Depends of debian/control.
tools=(dpkg-dev debhelper fakeroot lintian cmake pkg-config)
build_depends=(libcurl4-openssl-dev libjson-c-dev libconfig-dev libsystemd-dev)

# shellcheck source=packaging/common.sh
. "$top/packaging/common.sh"

install_missing "${tools[@]}" "${build_depends[@]}"

work=$(mktemp -d /tmp/cbm365-watchd-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src="$work/cbm365-watchd"
mkdir "$src"

# Files git still lists but that were deleted in the working tree are skipped.
list_sources | (cd "$top" && while IFS= read -r -d '' f; do
        [ -f "$f" ] && printf '%s\0' "$f"
done) | tar -C "$top" --null --files-from=- -cf - | tar -C "$src" -xf -
rm -rf "$src/debian"
cp -a "$src/packaging/debian" "$src/debian"

say "building in $src"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        die "dpkg-buildpackage failed"
fi

deb=$(find "$work" -maxdepth 1 -name 'cbm365-watchd_*.deb' ! -name '*dbgsym*' -print -quit)
[ -n "$deb" ] || die "dpkg-buildpackage made no .deb"
changes=$(find "$work" -maxdepth 1 -name 'cbm365-watchd_*.changes' -print -quit)

# --fail-on warning makes lintian exit non-zero on any warning or error;
# informational tags are reported but do not fail the build.
status=0
lintian --fail-on error,warning --info --display-info "$changes" >"$work/lintian.log" 2>&1 || status=$?
cp "$work/lintian.log" "$out/"
find "$work" -maxdepth 1 -type f \( -name '*.deb' -o -name '*.ddeb' -o -name '*.buildinfo' -o -name '*.changes' \) \
        -exec cp {} "$out/" \;
if [ -s "$work/lintian.log" ]; then
        say "lintian:"
        cat "$work/lintian.log" >&2
fi
[ "$status" -eq 0 ] || die "lintian reported errors or warnings (exit status $status)"

printf '%s\n' "$out/$(basename "$deb")"
