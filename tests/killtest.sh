#!/usr/bin/env bash
# Kill test: vdkfs SIGKILLed at random moments loses nothing that was fsync'd.
#
# For each disk kind: mount with vdkfs, run killwriter (journaled writes and
# fsyncs, tests/helpers/killwriter.c) and fio on two regions of the same
# flat, SIGKILL the daemon after a random 0.2..1.5 s, then vdk check, vdk
# check --repair, vdk check (must be clean) and qemu-img check; remount and
# verify every block of the writer's region through the mount, and again on
# a raw clone.  The rounds of one kind share a journal, so each writes on top
# of the earlier crashes; every third round skips the repair and verify, so
# the next round writes on an unrepaired crash (vdkfs repairs it at open).  KILLTEST_ROUNDS (default 6) sets rounds per kind,
# KILLTEST_SEED the random seed, KILLTEST_KINDS a subset of the kinds,
# KILLTEST_KEEP=1 keeps the folder on failure; VDKFS_URING=on runs vdkfs
# over io_uring (tests/uring.sh).
# Every daemon, writer, fio and mount is cleaned up, pass or fail.
set -euo pipefail
vdk=$(readlink -f "$1")
vdkfs=$(readlink -f "$2")
kw=$(readlink -f "$3")
rounds=${KILLTEST_ROUNDS:-6}
seed=${KILLTEST_SEED:-$((($(date +%s) * 7919 + $$) % 1000000))}
RANDOM=$seed
for t in fio qemu-img fusermount3; do
    command -v $t >/dev/null || { echo "FAIL: $t is not installed" >&2; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/vdk-killtest.XXXXXX")
pids=()
mounts=()
. "$(dirname "$0")/uring.sh"
cleanup() {
    local rc=$?
    uring_restore
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for m in "${mounts[@]}"; do fusermount3 -uz "$m" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ] && [ -n "${KILLTEST_KEEP:-}" ]; then
        echo "kept $dir"
    else
        rm -rf "$dir"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap "exit 143" TERM INT HUP # so that the cleanup runs then too
kind=- round=-
cd "$dir"
echo "killtest: seed $seed, $rounds rounds per kind (KILLTEST_SEED=$seed to repeat)"

fail() {
    echo "FAIL [$kind round $round]: $*" >&2
    exit 1
}
forget() { # PID: no longer for the trap to kill
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}
# mount DISK MNT FLAT: vdkfs in the foreground, in the background; sets $fspid
mount_disk() {
    mkdir -p "$2"
    "$vdkfs" -f -o uring="$uring" "$1" "$2" 2>>vdkfs.log &
    fspid=$!
    pids+=("$fspid")
    mounts+=("$PWD/$2")
    for _ in $(seq 1200); do # a writable open after a crash repairs first: slow under ASan
        [ -e "$3" ] && { uring_check "$fspid" >/dev/null; return 0; }
        kill -0 "$fspid" 2>/dev/null || fail "vdkfs $1 exited: $(tail -3 vdkfs.log)"
        sleep 0.05
    done
    fail "vdkfs $1: $3 did not appear"
}
# the counts of one killwriter verify line
verified() { sed -n 's/^verify: \([0-9]*\) blocks.*/\1/p' "$1"; }

# the verifier itself: a file holding older versions than were fsync'd fails
truncate -s 4M self.raw
"$kw" init self.j 0 $((4 << 20)) zero
"$kw" run self.raw self.j -c 60 -n 10 -s "$seed" 2>/dev/null
cp self.raw self-old.raw
"$kw" run self.raw self.j -c 30 -n 10 -s $((seed + 1)) 2>/dev/null
"$kw" verify self.raw self.j >/dev/null || fail "verifier rejects a good file"
if "$kw" verify self-old.raw self.j >/dev/null 2>&1; then fail "verifier accepts lost writes"; fi
rm -f self*

kills=0
blocks=0
repairs=0
unclean=0
leftovers=0
declare -A kills_of secs_of
# kind: how the disk is made, where the writer and fio write
kinds=${KILLTEST_KINDS:-monolithicSparse twoGbMaxExtentSparse vmfsSparse seSparse monolithicFlat}
for kind in $kinds; do
    round=0
    t0=$SECONDS
    mkdir "$kind"
    cd "$kind"
    size=64M region_off=$((4 << 20)) region_len=$((32 << 20)) fio_off=40M fio_size=16M
    init=zero
    case $kind in
    monolithicSparse)
        qemu-img create -q -f vmdk -o subformat=monolithicSparse d.vmdk $size
        disk=d.vmdk flat=m/d/flat
        ;;
    twoGbMaxExtentSparse)
        # the writer's region straddles the first extent's end (2047 MiB)
        size=2200M region_off=$((2031 << 20)) fio_off=1024M
        "$vdk" create -t twoGbMaxExtentSparse d.vmdk $size
        disk=d.vmdk flat=m/d/flat
        ;;
    vmfsSparse | seSparse)
        # a base holding the version-0 pattern on runs of blocks: new grains
        # of the child copy it around what the writer writes
        init=pattern
        truncate -s $size base.raw
        ;;
    monolithicFlat)
        "$vdk" create -t monolithicFlat d.vmdk $size
        disk=d.vmdk flat=m/d/flat
        ;;
    esac
    "$kw" init journal $region_off $region_len $init
    if [ $init = pattern ]; then
        "$kw" pattern base.raw journal
        "$vdk" clone -q -r base.raw base.vmdk
        rm base.raw
        "$vdk" child -t "$kind" base.vmdk c.vmdk >/dev/null
        disk=c.vmdk flat=m/base/children/c/flat
    fi
    kills_of[$kind]=0
    for round in $(seq "$rounds"); do
        mount_disk $disk m $flat
        every=$(((RANDOM % 4 == 0) ? 1 : 4 << (RANDOM % 3)))
        "$kw" run "$flat" journal -s $((seed * 1000 + round)) -n $every 2>writer.log &
        wpid=$!
        pids+=("$wpid")
        fio --name=load --filename="$flat" --offset=$fio_off --size=$fio_size --rw=randwrite \
            --bsrange=4k-128k --fsync=4 --ioengine=psync --direct=1 --time_based --runtime=120 \
            --randseed=$((seed + round)) >fio.log 2>&1 &
        fpid=$!
        pids+=("$fpid")
        ms=$((200 + RANDOM % 1301))
        sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
        kill -0 "$wpid" 2>/dev/null || { cat writer.log >&2; fail "killwriter ended before the kill"; }
        kill -0 "$fpid" 2>/dev/null || { cat fio.log >&2; fail "fio ended before the kill"; }
        kill -KILL "$fspid"
        wait "$fspid" 2>/dev/null || true
        forget "$fspid"
        wrc=0
        wait "$wpid" || wrc=$?
        forget "$wpid"
        [ $wrc = 3 ] || {
            cat writer.log >&2
            tail -5 vdkfs.log >&2 # why vdkfs refused, if it did
            fail "killwriter exit status $wrc, not 3 (mount gone)"
        }
        wait "$fpid" 2>/dev/null || true
        forget "$fpid"
        fusermount3 -uz m
        kills=$((kills + 1))
        kills_of[$kind]=$((kills_of[$kind] + 1))

        # the image after the crash: check, repair, check clean, qemu-img agrees
        "$vdk" check $disk >check1.txt 2>&1 || true
        grep -q "uncleanShutdown" check1.txt && unclean=$((unclean + 1))
        n=$(grep -vc -e "uncleanShutdown" -e "problems\? found" -e "^no problems" \
            -e "not referenced" -e "opens with a warning" -e "not closed cleanly" check1.txt || true)
        leftovers=$((leftovers + n))
        if [ $((round % 3)) = 0 ] && [ "$round" != "$rounds" ]; then
            # straight on: the next round writes on top of the unrepaired crash
            # (the writable open repairs it first); its verify covers both
            echo "[$kind round $round] killed after ${ms} ms (fsync every $every), not repaired:" \
                "$(sed -n 's/^killwriter: //p' writer.log)"
            continue
        fi
        "$vdk" check --repair $disk >repair.txt 2>&1 || { cat check1.txt repair.txt >&2; fail "vdk check --repair"; }
        r=$(sed -n -e 's/^\([0-9]*\) changes\? made$/\1/p' -e 's/.*checked it, \([0-9]*\) repairs\? made.*/\1/p' repair.txt |
            awk '{ s += $1 } END { print s + 0 }')
        repairs=$((repairs + r))
        "$vdk" check $disk >check2.txt 2>&1 || { cat check1.txt repair.txt check2.txt >&2; fail "not clean after the repair"; }
        qemu-img check $disk >qcheck.txt 2>&1 || { cat qcheck.txt >&2; fail "qemu-img check after the repair"; }
        grep -q "No errors" qcheck.txt || { cat qcheck.txt >&2; fail "qemu-img check: $(head -1 qcheck.txt)"; }

        # everything fsync'd is there, read through a new mount...
        mount_disk $disk m $flat
        "$kw" verify "$flat" journal --record >verify.txt ||
            { cat writer.log verify.txt check1.txt repair.txt >&2; fail "data lost (through vdkfs)"; }
        blocks=$((blocks + $(verified verify.txt)))
        fusermount3 -u m
        wait "$fspid" || fail "vdkfs exit status after a clean unmount"
        forget "$fspid"
        "$vdk" info --json $disk | grep -q '"unclean": false' || fail "unclean after a clean unmount"
        "$vdk" check $disk >check3.txt 2>&1 || { cat check3.txt >&2; fail "not clean after a clean unmount"; }
        # ...and in a raw clone (the first verify recorded what it saw)
        "$vdk" clone -q -t raw $disk raw.img
        "$kw" verify raw.img journal >verify-raw.txt ||
            { cat verify.txt verify-raw.txt >&2; fail "data lost (vdk clone -t raw)"; }
        blocks=$((blocks + $(verified verify-raw.txt)))
        rm -f raw.img
        # repairs vdkfs made at open after a straight-on round
        r2=$(sed -n 's/.*checked it, \([0-9]*\) repairs\? made.*/\1/p' vdkfs.log | awk '{ s += $1 } END { print s + 0 }')
        : >vdkfs.log
        repairs=$((repairs + r2))
        r=$((r + r2))
        echo "[$kind round $round] killed after ${ms} ms (fsync every $every): $(sed -n 's/^killwriter: //p' writer.log)"
        echo "    repairs $r; $(sed 's/^verify: //' verify.txt)"
    done
    secs_of[$kind]=$((SECONDS - t0))
    cd "$dir"
done
round=-
summary=""
for k in $kinds; do summary+=" $k=${kills_of[$k]} (${secs_of[$k]} s)"; done
echo "killtest: $kills kills survived ($summary ), $blocks blocks verified, $repairs repairs made" \
    "($unclean unclean marks, $leftovers other crash findings before the repair)"
