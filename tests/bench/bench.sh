#!/usr/bin/env bash
# vdk's benchmarks, each beside its peer in the same run, as one table.
#
#   tests/bench/bench.sh [--no-build] [--build DIR] [--only B1,B4,...] [--runs N]
#
# Builds a release tree (build-rel, tests off) unless --no-build, runs the
# rows below and prints a table of ratios against the peers (ratio > 1: vdk
# is faster, except B6 where it is depth 64 over depth 1).  Timed runs that
# take seconds are repeated --runs times (default 3) and the best is kept on
# both sides; long ones run once.  The machine is shared: read the table as
# a snapshot, and run it again before believing a small difference.
#
# Cache state, the same for both sides of every row:
#   - image files on the host are read once before each row (warm page cache);
#   - reads through FUSE (vdkfs, vmdkmount, passthrough_ll) use O_DIRECT, so
#     the kernel's cache of the FUSE file never answers;
#   - written output is made durable on both sides (vdk flushes itself; qemu's
#     output is fsync'd with 'sync FILE' inside its timing);
#   - every timed write starts from the same free memory: 'prime' writes and
#     deletes 1.5 GiB just before it.  On a VM whose balloon reports free
#     pages to the host, the first touch of a page the host took back costs
#     more than the copy into it (writing 1 GiB here: 2.0 s on such pages,
#     0.8 s on pages just freed), so whichever side ran after another freed
#     memory used to win by up to a second.
#
# Rows: B1 sequential read, B2 random 4 KiB reads, B3 sequential writes,
# B4 streamOptimized clone, B5 raw clone, B6 64-link chain, B7 mount memory
# and time, B8 shrink/defragment, B9 remote read (vSphere simulator).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$src/build-rel
do_build=1
only=
runs=3
while [ $# -gt 0 ]; do
    case "$1" in
    --no-build) do_build=0 ;;
    --build)
        build=$2
        shift
        ;;
    --only)
        only=$2
        shift
        ;;
    --runs)
        runs=$2
        shift
        ;;
    -h | --help)
        sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench.sh: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

for t in qemu-img qemu-io vmdkmount fio fusermount3 cc pkg-config; do
    command -v "$t" >/dev/null || {
        echo "bench.sh: '$t' is missing (contrib/setup.sh test installs every peer)" >&2
        exit 1
    }
done
if [ "$do_build" = 1 ]; then
    echo "building a release tree in $build..."
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVDK_TESTS=OFF >/dev/null
    cmake --build "$build" -j "$(nproc)" >/dev/null
fi
build=$(cd "$build" && pwd)
vdk=$build/bin/vdk
vdkfs=$build/bin/vdkfs

dir=$(mktemp -d "${BENCH_TMP:-/var/tmp}/vdk-bench.XXXXXX")
mounts=()
# B1 and B2 measure vdkfs over both transports: /dev/fuse (the default) and
# io_uring (-o uring=on, Linux 6.14+ with fuse.enable_uring; as root the
# bench switches that on for the run and puts it back after).  The knob
# changes nothing for the peers: libfuse 3.14 (vmdkmount, passthrough_ll)
# does not ask for io_uring.  B1 is scored with the default transport, B2
# with io_uring where the kernel allows it.
knob=/sys/module/fuse/parameters/enable_uring
knob_was=
if [ -w "$knob" ]; then
    knob_was=$(cat "$knob")
    echo Y >"$knob"
fi
transport() { grep -q Y "$knob" 2>/dev/null && echo io_uring || echo /dev/fuse; }
cleanup() {
    for m in "${mounts[@]}"; do fusermount3 -u -z "$m" 2>/dev/null || true; done
    if [ -n "$knob_was" ]; then echo "$knob_was" >"$knob" || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# the smaller of a time so far (empty: none yet) and a new one
lesser() { awk -v a="$1" -v t="$2" 'BEGIN { print (a == "" || t < a) ? t : a }'; }
# best SECONDS of $runs runs of a command (each after prime if BEST_PRIME is set)
best() {
    local b= t0
    for _ in $(seq "$runs"); do
        [ -z "${BEST_PRIME:-}" ] || prime
        t0=$(now)
        "$@" >/dev/null
        b=$(lesser "$b" "$(elapsed "$t0")")
    done
    echo "$b"
}
once() {
    local t0
    t0=$(now)
    "$@" >/dev/null
    elapsed "$t0"
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
# verdict VALUE OP TARGET
verdict() { awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { ok = op == ">=" ? v >= t : v <= t; print ok ? "met" : "NOT MET" }'; }
mount_wait() { # mountpoint file
    for _ in $(seq 100); do
        [ -e "$1/$2" ] && return 0
        sleep 0.05
    done
    echo "bench.sh: $1 did not mount" >&2
    return 1
}
dd_direct() { dd if="$1" of=/dev/null bs=1M iflag=direct status=none; }
warm() { cat "$@" >/dev/null && sync; } # cached, and nothing else still being written back
# Leave 1.5 GiB of just-freed page cache (never written back: deleted while
# dirty) for the next timed write; see the cache-state notes above.
prime() {
    rm -f o.raw
    dd if=/dev/zero of=.prime bs=1M count=1536 status=none
    rm -f .prime
}
wonce() { # once, for a timed operation that writes
    prime
    once "$@"
}

rows=()
row() { # id, workload, vdk, peer, ratio, target, verdict
    rows+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$@")")
    printf '%s  %-44s vdk %-16s peer %-28s %s (%s): %s\n' "$@"
}

echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r); scratch $dir"

need_data() {
    [ -e r.raw ] && return 0
    echo "preparing 1 GiB of random data as a fully allocated monolithicSparse disk (qemu-img)..."
    head -c 1G /dev/urandom >r.raw
    qemu-img convert -f raw -O vmdk r.raw d.vmdk
}

# ---- B1, B2: reads through FUSE ---------------------------------------------
if want B1 || want B2; then
    need_data
    mkdir -p mv mc mk mp rawdir
    ln -f r.raw rawdir/r.raw
    "$vdkfs" -o ro d.vmdk mv
    mounts+=("$dir/mv")
    "$vdkfs" -o ro,uring=on d.vmdk mc 2>/dev/null
    mounts+=("$dir/mc")
    vmdkmount d.vmdk mk >/dev/null
    mounts+=("$dir/mk")
    mount_wait mk vmdk1
    warm d.vmdk r.raw
fi
if want B1; then
    pll=
    ex=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
    if [ -e "$ex" ] && cc -O2 -w $(pkg-config --cflags fuse3) -I"$(dirname "$ex")" "$ex" \
        -o pll $(pkg-config --libs fuse3) 2>/dev/null; then
        ./pll -o source="$dir/rawdir" mp
        mounts+=("$dir/mp")
        mount_wait mp r.raw
        pll=$(best dd_direct mp/r.raw)
    fi
    v=$(best dd_direct mv/d/flat)
    u=$(best dd_direct mc/d/flat)
    k=$(best dd_direct mk/vmdk1)
    c=$(best cat r.raw)
    r=$(div "$k" "$v")
    row B1 "sequential read 1 GiB, O_DIRECT, 1 MiB (/dev/fuse)" "${v}s" \
        "vmdkmount ${k}s${pll:+, passthrough_ll (O_DIRECT to its file) ${pll}s}, cat raw ${c}s; vdkfs over $(transport) ${u}s ($(div "$k" "$u")x)" "${r}x" ">= 2x" \
        "$(verdict "$r" ">=" 2)"
fi
if want B2; then
    fio_iops() {
        fio --name=r --filename="$1" --rw=randread --bs=4k --direct=1 --numjobs=4 --size=1G \
            --runtime="${BENCH_FIO_SECONDS:-10}" --time_based --ioengine=psync --group_reporting \
            --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $8}'
    }
    ci=$(fio_iops mv/d/flat)
    ki=$(fio_iops mk/vmdk1)
    vi=$(fio_iops mc/d/flat)
    r=$(div "$vi" "$ki")
    row B2 "random 4 KiB reads, fio 4 jobs, O_DIRECT ($(transport))" "$vi IOPS" \
        "vmdkmount $ki IOPS; vdkfs over /dev/fuse $ci IOPS ($(div "$ci" "$ki")x)" "${r}x" \
        ">= 2x" "$(verdict "$r" ">=" 2)"
fi
for m in mv mc mk mp; do
    if mountpoint -q "$m" 2>/dev/null; then fusermount3 -u "$m"; fi
done

# ---- B3: sequential writes into a new sparse disk ---------------------------
if want B3; then
    need_data
    warm r.raw
    mkdir -p mw
    "$vdk" create w.vmdk 1G >/dev/null
    "$vdkfs" w.vmdk mw
    mounts+=("$dir/mw")
    v=$(wonce dd if=r.raw of=mw/w/flat bs=1M oflag=direct conv=notrunc,fsync status=none)
    fusermount3 -u mw
    qemu-img create -q -f vmdk q.vmdk 1G
    cmds=()
    for i in $(seq 0 1023); do cmds+=(-c "write -P $((i % 251)) ${i}M 1M"); done
    q=$(wonce qemu-io "${cmds[@]}" -c flush q.vmdk)
    r=$(div "$q" "$v")
    row B3 "sequential 1 MiB writes, new sparse disk" "${v}s" "qemu-io ${q}s" "${r}x" ">= 1x" \
        "$(verdict "$r" ">=" 1)"
    rm -f w.vmdk q.vmdk
fi

# ---- B4: streamOptimized clone of mixed data ----------------------------------
if want B4; then
    echo "preparing 1 GiB of mixed data (each MiB: half random, a quarter text, a quarter zeros)..."
    python3 - mixed.raw <<'PY'
import os, random, sys
r = random.Random(1)
words = (b"the quick brown fox jumps over the lazy dog lorem ipsum dolor sit amet "
         b"virtual disk grain table directory sector snapshot redo log parent").split()
text = b" ".join(r.choice(words) for _ in range(400000))
with open(sys.argv[1], "wb") as f:
    for i in range(1024):
        f.write(os.urandom(512 << 10))
        o = (i * 7919) % (len(text) - (256 << 10))
        f.write(text[o:o + (256 << 10)])
        f.write(bytes(256 << 10))
PY
    warm mixed.raw
    v=$(wonce "$vdk" clone -q -r -t streamOptimized mixed.raw v-so.vmdk)
    qso() { qemu-img convert -f raw -O vmdk -o subformat=streamOptimized mixed.raw q-so.vmdk && sync q-so.vmdk; }
    q=$(wonce qso)
    vs=$(stat -c %s v-so.vmdk) qs=$(stat -c %s q-so.vmdk)
    z=
    if command -v pigz >/dev/null; then
        z=$(once sh -c 'pigz -6 -p 2 -c mixed.raw >/dev/null')
    fi
    r=$(div "$q" "$v")
    row B4 "clone -t streamOptimized, 1 GiB mixed" "${v}s, $((vs >> 20)) MiB" \
        "qemu-img ${q}s, $((qs >> 20)) MiB" "${r}x" ">= 10x" "$(verdict "$r" ">=" 10)"
    if [ -n "$z" ]; then
        zr=$(div "$v" "$z")
        row B4z "  same, against two-core zlib (pigz -6 -p 2)" "${v}s" "pigz ${z}s" "${zr}x time" \
            "<= 1.5x" "$(verdict "$zr" "<=" 1.5)"
    fi
    row B4s "  same, output size" "$vs B" "qemu-img $qs B" "$(div "$vs" "$qs")x size" "<= 1x" \
        "$(verdict "$vs" "<=" "$qs")"
    qemu-img compare -q -f raw mixed.raw v-so.vmdk || echo "B4: vdk's output differs from its input!" >&2
    rm -f mixed.raw v-so.vmdk q-so.vmdk
fi

# ---- B5: raw clone --------------------------------------------------------------
if want B5; then
    need_data
    warm d.vmdk
    vraw() { "$vdk" clone -q -t raw d.vmdk o.raw; }
    qraw() { qemu-img convert -f vmdk -O raw d.vmdk o.raw && sync o.raw; }
    # the previous output is deleted by prime's time, outside the timing
    v=$(BEST_PRIME=1 best vraw)
    q=$(BEST_PRIME=1 best qraw)
    rm -f o.raw
    r=$(div "$q" "$v")
    row B5 "clone -t raw, 1 GiB allocated" "${v}s" "qemu-img ${q}s" "${r}x" ">= 1x" \
        "$(verdict "$r" ">=" 1)"
fi

# ---- B6: a 64-link redo chain ----------------------------------------------------
if want B6; then
    need_data
    echo "preparing a 64-link chain over the 1 GiB disk (each redo log holds 1 MiB)..."
    mkdir -p chain m1 m64
    cp d.vmdk chain/c0.vmdk
    for i in $(seq 1 63); do
        qemu-img create -q -f vmdk -b "c$((i - 1)).vmdk" -F vmdk "chain/c$i.vmdk"
        qemu-io -f vmdk -c "write -P $i $((i * 16))M 1M" "chain/c$i.vmdk" >/dev/null
    done
    warm chain/*.vmdk
    "$vdkfs" -o ro chain/c0.vmdk m1 2>/dev/null
    mounts+=("$dir/m1")
    "$vdkfs" -o snapshot=c63 chain/c63.vmdk m64
    mounts+=("$dir/m64")
    leaf=$(find m64 -path '*c63/flat' | head -1)
    # a pass takes ~0.15 s, where this host's jitter is tens of ms: both
    # sides get at least 5 runs
    short=$((runs < 5 ? 5 : runs))
    d1=$(runs=$short best dd_direct m1/c0/flat)
    d64=$(runs=$short best dd_direct "$leaf")
    qcmds=()
    for i in $(seq 0 1023); do qcmds+=(-c "read ${i}M 1M"); done
    q64=$(best qemu-io -r -f vmdk "${qcmds[@]}" chain/c63.vmdk)
    fusermount3 -u m1
    fusermount3 -u m64
    r=$(div "$d64" "$d1")
    row B6 "sequential read, 64-link chain vs 1 link" "${d64}s vs ${d1}s" "qemu-io depth 64 ${q64}s" \
        "${r}x depth 1" "<= 1.2x" "$(verdict "$r" "<=" 1.2)"
    rm -rf chain
fi

# ---- B7: mount time and memory -------------------------------------------------
if want B7; then
    mkdir -p mb
    "$vdk" create -t twoGbMaxExtentSparse big.vmdk 2T >/dev/null
    warm big*.vmdk
    t0=$(now)
    "$vdkfs" -o ro big.vmdk mb
    mounts+=("$dir/mb")
    ls mb/big >/dev/null
    t=$(elapsed "$t0")
    dd if=mb/big/flat of=/dev/null bs=1M count=64 skip=1000000 iflag=direct status=none
    pid=$(pgrep -n -f "vdkfs -o ro big.vmdk" || true)
    rss=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    fusermount3 -u mb
    ok=$(awk -v r="$rss" -v t="$t" 'BEGIN { print (r <= 16384 && t <= 0.05) ? "met" : "NOT MET" }')
    row B7 "mount a 2 TiB twoGbMaxExtentSparse disk" "${t}s, RSS $((rss / 1024)) MiB" "-" "-" \
        "<= 50 ms, <= 16 MiB" "$ok"
    mkdir -p many
    for i in $(seq 1000); do "$vdk" create "many/d$i.vmdk" 1M; done >/dev/null
    warm many/*.vmdk
    t0=$(now)
    "$vdkfs" -o ro many mb
    n=$(ls mb | wc -l)
    t=$(elapsed "$t0")
    pid=$(pgrep -n -f "vdkfs -o ro many" || true)
    rss=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    fusermount3 -u mb
    row B7m "mount a folder of 1000 disks ($n listed)" "${t}s, RSS $((rss / 1024)) MiB" "-" "-" \
        "<= 1 s" "$(verdict "$t" "<=" 1)"
    rm -rf many big*.vmdk
fi

# ---- B8: shrink and defragment ------------------------------------------------------
if want B8; then
    echo "preparing a fragmented, half-empty 1 GiB disk (1 MiB pieces in shuffled order, every other one zeros)..."
    qemu-img create -q -f vmdk frag.vmdk 1G
    cmds=()
    for i in $(shuf -i 0-1023 --random-source=<(yes)); do
        if [ $((i % 2)) = 0 ]; then cmds+=(-c "write -P 0 ${i}M 1M"); else cmds+=(-c "write -P $((i % 250 + 1)) ${i}M 1M"); fi
    done
    qemu-io -f vmdk "${cmds[@]}" frag.vmdk >/dev/null
    # best of $runs, each on a fresh copy made (and synced) outside the timing
    qconv() { qemu-img convert -f vmdk -O vmdk frag.vmdk q8.vmdk && sync q8.vmdk; }
    # What shrink does, done with qemu-img: convert, then replace the original
    # (freeing its blocks, which with -o discard waits for the device).
    qplace() { qemu-img convert -f vmdk -O vmdk f3.vmdk q8.vmdk && sync q8.vmdk && mv q8.vmdk f3.vmdk && sync .; }
    s= dfr= q= qm=
    for _ in $(seq "$runs"); do
        cp frag.vmdk f1.vmdk && cp frag.vmdk f2.vmdk && cp frag.vmdk f3.vmdk && rm -f q8.vmdk
        warm f1.vmdk f2.vmdk f3.vmdk frag.vmdk
        s=$(lesser "$s" "$(wonce "$vdk" shrink f1.vmdk)")
        sync
        dfr=$(lesser "$dfr" "$(wonce "$vdk" defragment f2.vmdk)")
        sync
        q=$(lesser "$q" "$(wonce qconv)")
        qsz=$(stat -c %s q8.vmdk)
        rm -f q8.vmdk
        sync
        qm=$(lesser "$qm" "$(wonce qplace)")
    done
    for f in f1 f2; do qemu-img compare -q frag.vmdk "$f.vmdk" || echo "B8: $f.vmdk differs after the operation!" >&2; done
    r=$(div "$q" "$s")
    row B8 "shrink a 1 GiB half-empty fragmented disk" "${s}s, $(($(stat -c %s f1.vmdk) >> 20)) MiB" \
        "qemu-img convert ${q}s, $((qsz >> 20)) MiB" "${r}x" ">= 1x" "$(verdict "$r" ">=" 1)"
    row B8m "  same, against convert + mv over the original" "${s}s" "qemu-img + mv ${qm}s" \
        "$(div "$qm" "$s")x" ">= 1x" "$(verdict "$(div "$qm" "$s")" ">=" 1)"
    r=$(div "$q" "$dfr")
    row B8d "defragment the same disk" "${dfr}s, $(($(stat -c %s f2.vmdk) >> 20)) MiB" \
        "qemu-img convert ${q}s" "${r}x" ">= 1x" "$(verdict "$r" ">=" 1)"
    rm -f frag.vmdk f1.vmdk f2.vmdk f3.vmdk q8.vmdk
fi

# ---- B9: remote reads --------------------------------------------------------------
if want B9; then
    if command -v go >/dev/null; then
        rm -f r.raw d.vmdk # the remote bench makes its own gigabyte
        line=$(bash "$src/tests/bench/remote-bench.sh" "$build" | grep '^B9' || true)
        v=$(sed -n 's/.*vdkfs \([0-9.]*\)s.*/\1/p' <<<"$line")
        c=$(sed -n 's/.*curl \([0-9.]*\)s.*/\1/p' <<<"$line")
        if [ -n "$v" ] && [ -n "$c" ]; then
            r=$(div "$c" "$v")
            row B9 "remote sequential read 1 GiB (simulator)" "${v}s" "curl ${c}s" "${r}x" ">= 0.8x" \
                "$(verdict "$r" ">=" 0.8)"
        else
            row B9 "remote sequential read 1 GiB (simulator)" "failed" "-" "-" ">= 0.8x" "NOT RUN"
        fi
    else
        row B9 "remote sequential read (simulator)" "-" "-" "-" ">= 0.8x" "skipped: no Go"
    fi
fi

echo
echo "| # | workload | vdk | peer | ratio | target | |"
echo "|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
    IFS=$'\t' read -r a b c d e f g <<<"$r"
    echo "| $a | $b | $c | $d | $e | $f | $g |"
done
