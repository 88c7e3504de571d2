#!/usr/bin/env bash
# vdkfs benchmark: ratios against peers measured in the same run.
#   tests/bench/fuse-bench.sh [BUILD_DIR]
# Page cache: the VMDK files on the host are read once first (warm) for both
# sides; reads through FUSE use O_DIRECT so neither side is served from the
# kernel's cache of the FUSE file.  Machines are noisy: run it a few times.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
vdk=$build/bin/vdk
vdkfs=$build/bin/vdkfs
dir=$(mktemp -d)
cleanup() {
    for m in "$dir"/mv "$dir"/mk "$dir"/mw "$dir"/mb; do fusermount3 -u "$m" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
mkdir mv mk mw mb

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "preparing a fully allocated 1 GiB monolithicSparse disk of random data..."
head -c 1G /dev/urandom >r.raw
qemu-img convert -f raw -O vmdk r.raw d.vmdk
cat d.vmdk >/dev/null

"$vdkfs" -o ro d.vmdk mv
vmdkmount d.vmdk mk >/dev/null
for _ in $(seq 50); do [ -e mk/vmdk1 ] && break; sleep 0.1; done

# B1: sequential read, 1 MiB requests, O_DIRECT
t0=$(now); dd if=mv/d/flat of=/dev/null bs=1M iflag=direct status=none; t1=$(now)
dd if=mk/vmdk1 of=/dev/null bs=1M iflag=direct status=none; t2=$(now)
cat r.raw >/dev/null; t3=$(now); cat r.raw >/dev/null; t4=$(now)
v=$(secs "$t0" "$t1"); k=$(secs "$t1" "$t2"); c=$(secs "$t3" "$t4")
printf "B1 sequential read 1 GiB: vdkfs %.2fs, vmdkmount %.2fs, cat raw %.2fs -> %sx vmdkmount\n" \
    "$v" "$k" "$c" "$(ratio "$k" "$v")"

# B2: random 4 KiB reads, fio, 4 jobs, O_DIRECT
fio_iops() {
    fio --name=r --filename="$1" --rw=randread --bs=4k --direct=1 --numjobs=4 --size=1G \
        --runtime=10 --time_based --ioengine=psync --group_reporting --output-format=terse \
        --terse-version=3 2>/dev/null | awk -F';' '{print $8}'
}
vi=$(fio_iops mv/d/flat)
ki=$(fio_iops mk/vmdk1)
printf "B2 random 4 KiB reads: vdkfs %s IOPS, vmdkmount %s IOPS -> %sx\n" "$vi" "$ki" "$(ratio "$vi" "$ki")"
fusermount3 -u mv
fusermount3 -u mk

# B3: sequential 1 MiB writes into a new sparse disk (both flushed at the end)
"$vdk" create w.vmdk 1G
"$vdkfs" w.vmdk mw
t0=$(now); dd if=r.raw of=mw/w/flat bs=1M oflag=direct conv=notrunc,fsync status=none; t1=$(now)
fusermount3 -u mw
qemu-img create -q -f vmdk q.vmdk 1G
cmds=()
for i in $(seq 0 1023); do cmds+=(-c "write -P $((i % 251)) ${i}M 1M"); done
t2=$(now); qemu-io "${cmds[@]}" -c flush q.vmdk >/dev/null; t3=$(now)
v=$(secs "$t0" "$t1"); q=$(secs "$t2" "$t3")
printf "B3 sequential write 1 GiB: vdkfs %.2fs, qemu-io %.2fs -> %sx qemu-io\n" "$v" "$q" "$(ratio "$q" "$v")"

# B7: mounting a 2 TiB sparse disk; a folder of 1000 disks
"$vdk" create -t twoGbMaxExtentSparse big.vmdk 2T >/dev/null
t0=$(now); "$vdkfs" -o ro big.vmdk mb; ls mb/big >/dev/null; t1=$(now)
dd if=mb/big/flat of=/dev/null bs=1M count=64 skip=1000000 status=none
pid=$(pgrep -f "vdkfs -o ro big.vmdk" | head -1)
rss=$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status)
printf "B7 2 TiB sparse disk: mounted in %.3fs, RSS %s KiB\n" "$(secs "$t0" "$t1")" "$rss"
fusermount3 -u mb
mkdir many
for i in $(seq 1000); do "$vdk" create "many/d$i.vmdk" 1M; done
t0=$(now); "$vdkfs" -o ro many mb; ls mb | wc -l >/dev/null; t1=$(now)
printf "B7 folder of 1000 disks: mounted and listed in %.2fs\n" "$(secs "$t0" "$t1")"
fusermount3 -u mb
