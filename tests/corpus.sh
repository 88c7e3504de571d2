#!/usr/bin/env bash
# Every case of the malformed-image corpus (tests/corpus, see its MANIFEST and
# make-corpus.sh) through every reading command: vdk info, info --json, map,
# clone -t raw, check, and a read-only vdkfs mount whose flat files are read.
#
# Each command must end by itself within 20 s with a status below 128 and no
# sanitizer report; when it fails it prints one line on stderr naming a file
# of the case; it fails exactly when the MANIFEST says it must (commands the
# MANIFEST does not list must succeed); and no file of the case may change
# (content, size, mtime) or appear.
#
# Usage: corpus.sh PATH/TO/vdk PATH/TO/vdkfs [CASE...]
set -euo pipefail
[ $# -ge 2 ] || {
    echo "usage: $0 PATH/TO/vdk PATH/TO/vdkfs [CASE...]" >&2
    exit 2
}
VDK=$(readlink -f "$1")
VDKFS=$(readlink -f "$2")
shift 2
CORPUS=$(cd "$(dirname "$0")/corpus" && pwd)
T0=$SECONDS
for t in "$VDK" "$VDKFS"; do
    [ -x "$t" ] || {
        echo "FAIL [corpus]: $t is not executable" >&2
        exit 1
    }
done
for t in fusermount3 python3 sha256sum timeout mountpoint gunzip; do
    command -v "$t" >/dev/null || {
        echo "FAIL [corpus]: '$t' is not installed" >&2
        exit 1
    }
done
[ -e /dev/fuse ] || {
    echo "FAIL [corpus]: /dev/fuse is missing (the mount step needs it)" >&2
    exit 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vdk-corpus.XXXXXX")
MNT=$WORK/mnt
FSPID=
cleanup() {
    local rc=$?
    if mountpoint -q "$MNT" 2>/dev/null; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
    fi
    if [ -n "$FSPID" ]; then
        kill "$FSPID" 2>/dev/null || true
        wait "$FSPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CASE=
fail() {
    echo "FAIL [corpus] ${CASE:+$CASE: }$*" >&2
    exit 1
}

# state DIR: every entry (type, size, mtime in ns, link target) and the
# sha256 of every regular file.
state() {
    (cd "$1" && find . -printf '%p %y %s %T@ %l\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# names DIR: file names an error message may name: the case's files and
# names quoted in its (text) descriptors, control characters shown as '?'
# as vdk shows them.
names() {
    {
        (cd "$1" && find . -mindepth 1 -printf '%f\n')
        (cd "$1" && find . -type f -size -200k -print0 |
            xargs -0 -r grep -a -o -h '"[^"]*[./][^"]*"' | tr -d '"' | sed 's|.*/||') || true
    } 2>/dev/null | LC_ALL=C tr -d '\000' | LC_ALL=C tr '\001-\011\013-\037\177' '?' |
        grep -av '^$' | LC_ALL=C sort -u
}

sanitizer_hit() {
    grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error: |LeakSanitizer' "$1"
}

# judge WHAT RC MUSTFAIL ERRFILE: the common contract of one command.
judge() {
    local what=$1 rc=$2 must=$3 errf=$4
    [ "$rc" -ne 124 ] || fail "$what hung (killed after 20 s)"
    if [ "$rc" -ge 128 ]; then
        cat "$errf" >&2
        fail "$what crashed (exit status $rc)"
    fi
    if sanitizer_hit "$errf"; then
        cat "$errf" >&2
        fail "$what: sanitizer report"
    fi
    if [ "$must" = fail ]; then
        [ "$rc" -ne 0 ] || fail "$what succeeded; MANIFEST says it must fail"
        # one line saying what failed (warnings aside), naming a file
        local lines
        lines=$(grep -cv 'warning:' "$errf" || true)
        [ "$lines" -ge 1 ] || fail "$what failed (status $rc) with no message on stderr"
        if [ "$what" != mount ] && [ "$lines" -ne 1 ]; then
            cat "$errf" >&2
            fail "$what failed with $lines lines on stderr, expected one"
        fi
        # (vdkfs reports a disk it cannot open as a warning and mounts the rest)
        { [ "$what" = mount ] && cat "$errf" || grep -v 'warning:' "$errf"; } |
            grep -qF -f "$NAMES" || {
            cat "$errf" >&2
            fail "$what: the error names no file of the case"
        }
    else
        if [ "$rc" -ne 0 ]; then
            cat "$errf" >&2
            fail "$what failed (status $rc); MANIFEST says it must succeed"
        fi
    fi
}

# untouched: no file of the case changed, appeared or vanished.
untouched() {
    state "$DIR" >"$WORK/after"
    cmp -s "$WORK/before" "$WORK/after" || {
        diff "$WORK/before" "$WORK/after" >&2 || true
        fail "$1 changed the files of the case"
    }
}

run_vdk() { # run_vdk WHAT MUST ARGS...: one vdk command under timeout
    local what=$1 must=$2 rc=0
    shift 2
    timeout -k 5 20 "$VDK" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null || rc=$?
    judge "$what" "$rc" "$must" "$WORK/err"
    # names and values from the disk never reach the terminal raw (escape
    # sequences, CR): only tab and newline are allowed
    if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$WORK/out" "$WORK/err"; then
        fail "$what printed control characters from the disk: $(cat -v "$WORK/out" "$WORK/err" | head -c 600)"
    fi
    untouched "$what"
    NCMD=$((NCMD + 1))
    LAST_RC=$rc
}

unmount() {
    local i
    for i in $(seq 50); do
        fusermount3 -u "$MNT" 2>/dev/null && break
        sleep 0.1
    done
    if mountpoint -q "$MNT"; then
        fusermount3 -uz "$MNT" 2>/dev/null || true
        fail "mount: could not unmount $MNT"
    fi
}

run_mount() { # run_mount MUST
    local must=$1 rc=0 i
    mkdir -p "$MNT"
    : >"$WORK/fs.err"
    "$VDKFS" -f -o ro "$DISK" "$MNT" 2>"$WORK/fs.err" </dev/null &
    FSPID=$!
    for i in $(seq 200); do
        mountpoint -q "$MNT" && break
        kill -0 "$FSPID" 2>/dev/null || break
        sleep 0.1
    done
    if mountpoint -q "$MNT"; then
        # every disk the mount shows (MNT/*/flat and the links under children/):
        # its flat file, read whole
        local f found=0
        while read -r f; do
            found=1
            timeout -k 5 20 cat "$f" >/dev/null 2>>"$WORK/fs.err" || rc=$?
            [ "$rc" -ne 124 ] || {
                unmount
                fail "mount: reading $f hung (killed after 20 s)"
            }
            [ "$rc" -eq 0 ] || break
        done < <(find "$MNT" \( -name metadata -o -name partitions \) -prune -o -name flat -print \
            2>/dev/null | LC_ALL=C sort)
        if [ "$found" = 0 ]; then
            echo "corpus: the mount shows no flat file" >>"$WORK/fs.err"
            rc=1
        fi
        unmount
        local frc=0
        wait "$FSPID" || frc=$?
        FSPID=
        [ "$frc" -lt 128 ] || {
            cat "$WORK/fs.err" >&2
            fail "mount: vdkfs crashed at unmount (exit status $frc)"
        }
    else
        # it never mounted: vdkfs must have ended by itself, with a status
        if kill -0 "$FSPID" 2>/dev/null; then
            kill "$FSPID" 2>/dev/null || true
            wait "$FSPID" 2>/dev/null || true
            FSPID=
            fail "mount: vdkfs neither mounted nor ended within 20 s"
        fi
        wait "$FSPID" || rc=$?
        FSPID=
        [ "$rc" -ne 0 ] || rc=1
    fi
    judge mount "$rc" "$must" "$WORK/fs.err"
    if grep -v '^cat: ' "$WORK/fs.err" | LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]'; then
        fail "mount: vdkfs printed control characters from the disk: $(cat -v "$WORK/fs.err" | head -c 600)"
    fi
    untouched mount
    NCMD=$((NCMD + 1))
}

NCASE=0
NCMD=0
want_case() {
    [ ${#SELECT[@]} -eq 0 ] && return 0
    local c
    for c in "${SELECT[@]}"; do
        [ "$c" = "$1" ] && return 0
    done
    return 1
}
SELECT=("$@")
while read -r name disk mustfail what; do
    case "$name" in '' | '#'*) continue ;; esac
    want_case "$name" || continue
    CASE=$name
    # a copy of the case alone in a scratch folder
    rm -rf "$WORK/case" "$WORK/o"
    mkdir -p "$WORK/case" "$WORK/o"
    if [ "${disk%%/*}" = "$name" ]; then
        cp -a "$CORPUS/$name/." "$WORK/case/"
        DISK=$WORK/case/${disk#*/}
    else
        cp -a "$CORPUS/$disk" "$WORK/case/"
        DISK=$WORK/case/$disk
    fi
    find "$WORK/case" -name '*.gz' -type f -exec gunzip {} +
    DIR=$WORK/case
    NAMES=$WORK/names
    names "$DIR" >"$NAMES"
    state "$DIR" >"$WORK/before"
    must() { # must CMD: "fail" or "ok" for this case
        case ",$mustfail," in
        ,all,) echo fail ;;
        ,none,) echo ok ;;
        *",$1,"*) echo fail ;;
        *) echo ok ;;
        esac
    }
    run_vdk info "$(must info)" info "$DISK"
    run_vdk json "$(must json)" info --json "$DISK"
    if [ "$LAST_RC" = 0 ]; then
        python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/out" 2>"$WORK/err" || {
            cat "$WORK/err" >&2
            fail "info --json printed invalid JSON"
        }
    fi
    run_vdk map "$(must map)" map "$DISK"
    run_vdk clone "$(must clone)" clone -q -t raw "$DISK" "$WORK/o/out.raw"
    if [ "$LAST_RC" != 0 ] && [ -e "$WORK/o/out.raw" ]; then
        fail "clone failed but left its output behind"
    fi
    run_vdk check "$(must check)" check "$DISK"
    run_mount "$(must mount)"
    NCASE=$((NCASE + 1))
    echo "[corpus]   ok: $name ($mustfail must fail): $what"
done <"$CORPUS/MANIFEST"
CASE=
[ "$NCASE" -gt 0 ] || fail "no case ran (MANIFEST empty, or no such case: $*)"
[ ${#SELECT[@]} -eq 0 ] || [ "$NCASE" -eq ${#SELECT[@]} ] || fail "some named cases are not in MANIFEST"
echo "[corpus] $NCASE cases, $NCMD commands run, all passed ($((SECONDS - T0)) s)"
