#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds the RPM package of cbm365-watchd with rpmbuild.
#
# The source tarball contains the files git tracks plus untracked ones that
# .gitignore does not exclude (or the whole tree without build directories
# when there is no git), under cbm365-watchd-VERSION/.
#
# Usage: packaging/build-rpm.sh OUTPUT_DIR
# On success OUTPUT_DIR holds the binary and source RPMs, and the last line of
# standard output is the path of the binary RPM. As root on Debian, missing
# tools are installed with apt-get.
#
# On Debian, rpmbuild runs with --nodeps: the build dependencies are Debian
# packages that dpkg knows, but rpmbuild checks BuildRequires against the RPM
# database, which is empty there. The Debian packages that provide them are
# installed below instead.

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
spec="$top/packaging/rpm/cbm365-watchd.spec"

say() {
        printf 'build-rpm: %s\n' "$*" >&2
}

die() {
        say "$*"
        exit 1
}

[ $# -eq 1 ] || die "usage: $0 OUTPUT_DIR"
mkdir -p "$1"
out=$(cd "$1" && pwd)

# shellcheck source=packaging/common.sh
. "$top/packaging/common.sh"

on_debian=0
if command -v dpkg-query >/dev/null 2>&1; then
        on_debian=1
        install_missing rpm gcc cmake pkg-config \
                libcurl4-openssl-dev libjson-c-dev libconfig-dev libsystemd-dev
fi
command -v rpmbuild >/dev/null || die "rpmbuild not found; install rpm-build"

version=$(sed -n 's/^Version:[[:space:]]*//p' "$spec")
[ -n "$version" ] || die "no Version: in $spec"

work=$(mktemp -d /tmp/cbm365-watchd-rpm.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS} "$work/cbm365-watchd-$version"

# Files git still lists but that were deleted in the working tree are skipped.
list_sources | (cd "$top" && while IFS= read -r -d '' f; do
        [ -f "$f" ] && printf '%s\0' "$f"
done) | tar -C "$top" --null --files-from=- -cf - | tar -C "$work/cbm365-watchd-$version" -xf -
tar -C "$work" -czf "$work/SOURCES/cbm365-watchd-$version.tar.gz" "cbm365-watchd-$version"
cp "$spec" "$work/SPECS/"

args=(--define "_topdir $work")
if [ "$on_debian" -eq 1 ]; then
        args+=(--nodeps)
fi

say "building in $work"
if ! rpmbuild -ba "${args[@]}" "$work/SPECS/cbm365-watchd.spec" >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        die "rpmbuild failed"
fi

rpm_file=$(find "$work/RPMS" -name "cbm365-watchd-$version-*.rpm" -print -quit)
[ -n "$rpm_file" ] || die "rpmbuild made no binary RPM"
find "$work/RPMS" "$work/SRPMS" -name '*.rpm' -exec cp {} "$out/" \;
printf '%s\n' "$out/$(basename "$rpm_file")"
