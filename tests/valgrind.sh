#!/usr/bin/env bash
# The vdk command line under valgrind memcheck: every subcommand on small
# disks (create of each type, info, meta, map, clone, child, writes, changed,
# commit, grow, shrink, defragment, check and --repair, rename, space, rm)
# and the error paths of a dozen corpus cases.  Any invalid access, use of
# uninitialised memory, or definite/indirect leak fails the test with the
# report.  (Sanitizer builds run valgrind poorly: registered without them.)
#
# Usage: valgrind.sh PATH/TO/vdk PATH/TO/vdkwrite
set -euo pipefail
[ $# -eq 2 ] || {
    echo "usage: $0 PATH/TO/vdk PATH/TO/vdkwrite" >&2
    exit 2
}
VDK=$(readlink -f "$1")
VDKWRITE=$(readlink -f "$2")
CORPUS=$(cd "$(dirname "$0")/corpus" && pwd)
T0=$SECONDS
command -v valgrind >/dev/null || {
    echo "FAIL [valgrind]: valgrind is not installed (contrib/setup.sh installs it)" >&2
    exit 1
}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vdk-valgrind.XXXXXX")
trap 'rc=$?; rm -rf "$WORK"; exit $rc' EXIT
trap 'exit 130' INT TERM
cd "$WORK"

fail() {
    echo "FAIL [valgrind]: $*" >&2
    exit 1
}

N=0
# vg ok|fail|any PROGRAM ARGS...: run under memcheck; the report goes to its
# own file so the program's stderr stays apart.
vg() {
    local want=$1 rc=0
    shift
    rm -f vg.log
    valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 --track-origins=no -q --log-file=vg.log "$@" >out 2>err || rc=$?
    N=$((N + 1))
    # reports are "==PID==" lines; "--PID--" lines are valgrind's own notes
    # (valgrind 3.19 does not know openat2: libvdk's store falls back then)
    if [ "$rc" = 99 ] || grep -qE '^==[0-9]+==' vg.log; then
        cat vg.log >&2
        fail "$(basename "$1") ${*:2}: memcheck errors (status $rc)"
    fi
    [ "$rc" -lt 128 ] || {
        cat err >&2
        fail "$(basename "$1") ${*:2}: crashed (status $rc)"
    }
    case $want in
    ok) [ "$rc" = 0 ] || {
        cat err >&2
        fail "$(basename "$1") ${*:2}: status $rc, expected success"
    } ;;
    fail) [ "$rc" != 0 ] || fail "$(basename "$1") ${*:2}: succeeded, expected a failure" ;;
    esac
}
v() { vg ok "$VDK" "$@"; }

# --- create, one of each type ----------------------------------------------
for t in monolithicSparse twoGbMaxExtentSparse monolithicFlat twoGbMaxExtentFlat \
    streamOptimized vmfs vmfsThin; do
    v create -t "$t" -a lsilogic "new-$t.vmdk" 4M
done
v info new-twoGbMaxExtentSparse.vmdk
v info --json new-streamOptimized.vmdk
v create -a pvscsi --hw 14 base.vmdk 16M
truncate -s 16M m0.raw
vg ok "$VDKWRITE" base.vmdk m0.raw 1 40

# --- reading commands ------------------------------------------------------
v info --json base.vmdk
v meta --json base.vmdk
v meta base.vmdk adapterType
v meta base.vmdk comment "written under valgrind"
v meta base.vmdk comment
vg fail "$VDK" meta base.vmdk no.such.key
v map --json base.vmdk
v space base.vmdk
v space -t streamOptimized --json base.vmdk

# --- clones ----------------------------------------------------------------
v clone -q -t raw base.vmdk c.raw
cmp -s c.raw m0.raw || fail "clone -t raw differs from the written model"
v clone -q base.vmdk c-sparse.vmdk
v clone -q -t streamOptimized base.vmdk c-stream.vmdk
v clone -q -t raw c-stream.vmdk c2.raw
cmp -s c2.raw m0.raw || fail "stream clone reads back differently"
v clone -q -t twoGbMaxExtentFlat c-sparse.vmdk c-flat.vmdk
v clone -q -r -t vmfsThin m0.raw c-thin.vmdk

# --- chains: children of each type, writes, changed, commit ----------------
v child base.vmdk >/dev/null # base-000001.vmdk
cp m0.raw m1.raw
vg ok "$VDKWRITE" base-000001.vmdk m1.raw 2 30
v child -t vmfsSparse base-000001.vmdk kid-cowd.vmdk
cp m1.raw m2.raw
vg ok "$VDKWRITE" kid-cowd.vmdk m2.raw 3 30
v map --this-link kid-cowd.vmdk
v changed --since base kid-cowd.vmdk
v changed --json --since base-000001 kid-cowd.vmdk
v child -t seSparse c-sparse.vmdk kid-se.vmdk
cp m0.raw m3.raw
vg ok "$VDKWRITE" kid-se.vmdk m3.raw 4 30
v clone -q -t raw kid-se.vmdk se.raw
cmp -s se.raw m3.raw || fail "seSparse child reads back differently"
v check kid-se.vmdk
v commit kid-cowd.vmdk
v commit --all base-000001.vmdk
v clone -q -t raw base.vmdk after.raw
cmp -s after.raw m2.raw || fail "base after commit --all differs"
v child -t twoGbMaxExtentSparse base.vmdk kid-split.vmdk
v attach --force kid-split.vmdk c-sparse.vmdk
v rm kid-split.vmdk

# --- rewrites --------------------------------------------------------------
v grow base.vmdk 24M
v shrink base.vmdk
v defragment base.vmdk
v check base.vmdk
v rename base.vmdk renamed.vmdk
v rm renamed.vmdk
v rm -f new-twoGbMaxExtentFlat.vmdk

# --- check and --repair of damaged copies ----------------------------------
cp "$CORPUS/sparse-rgt-differs.vmdk" rgt.vmdk
vg fail "$VDK" check rgt.vmdk
v check --repair rgt.vmdk
v check rgt.vmdk
cp "$CORPUS/sparse-gte-past-eof.vmdk" gte.vmdk
v check --repair gte.vmdk
cp "$CORPUS/sparse-unclean.vmdk" unclean.vmdk
v check --repair unclean.vmdk

# --- error paths: corpus cases ---------------------------------------------
for c in sparse-trunc-midgrain sparse-grain-npot sparse-gte-overlap stream-trunc-footer \
    stream-bad-zlib cowd-numgd-lying cowd-gte-into-gt sesparse-gte-index desc-100000-extents \
    desc-extent-symlink chain-loop3 chain-cid-mismatch; do
    rm -rf case
    mkdir case
    disk=$(awk -v c="$c" '$1 == c { print $2 }' "$CORPUS/MANIFEST")
    [ -n "$disk" ] || fail "corpus case $c is not in MANIFEST"
    if [ "${disk%%/*}" = "$c" ]; then
        cp -a "$CORPUS/$c/." case/
        disk=case/${disk#*/}
    else
        cp -a "$CORPUS/$disk" case/
        disk=case/$disk
    fi
    find case -name '*.gz' -type f -exec gunzip {} +
    for cmd in "info --json" "check"; do
        # shellcheck disable=SC2086  # a command and its option
        vg any "$VDK" $cmd "$disk"
    done
    rm -f bad.raw
    vg any "$VDK" clone -q -t raw "$disk" bad.raw
done

echo "[valgrind] $N runs under memcheck, no errors ($((SECONDS - T0)) s)"
