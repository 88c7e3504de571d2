#!/usr/bin/env bash
# vdkfs end to end, with real mounts: every image kind reads like qemu-img,
# fio verifies random writes, ext4 inside a partition, snapshot trees,
# metadata files and xattrs, ctl, SEEK_DATA, bad disks in a folder, clean
# shutdown.  Every mount and daemon is cleaned up, pass or fail.
#
# VDKFS_URING=on runs it all over io_uring (tests/uring.sh).
set -euo pipefail
vdk=$1
vdkfs=$2
vdkwrite=$3
dir=$(mktemp -d)
mounts=()
. "$(dirname "$0")/uring.sh"
cleanup() {
    uring_restore
    for m in "${mounts[@]}"; do
        umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || true
    done
    pkill -f "vdkfs .*$dir" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"

fail() { echo "FAIL: $*" >&2; exit 1; }
mnt() { # SOURCE MOUNTPOINT [options...]
    mkdir -p "$2"
    "$vdkfs" -o uring="$uring" "${@:3}" "$1" "$2" || fail "vdkfs $1 did not mount"
    mounts+=("$2")
}
umnt() {
    fusermount3 -u "$1" || fail "unmount $1"
    sleep 0.2
}

python3 - <<'PY'
import os, random
random.seed(5)
with open("in.raw", "wb") as f:
    f.truncate(40 << 20)
    for off, n in [(0, 70000), (1 << 20, 5 << 20), ((9 << 20) + 17, 3000), ((40 << 20) - 4096, 4096)]:
        f.seek(off)
        f.write(os.urandom(n))
PY

# 1. every image kind: flat equals qemu-img's reading
mkdir kinds
for t in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    qemu-img convert -f raw -O vmdk -o subformat=$t in.raw kinds/q-$t.vmdk
done
for t in vmfs vmfsThin; do "$vdk" clone -q -r -t $t in.raw kinds/v-$t.vmdk; done
"$vdk" clone -q -r in.raw kinds/base.vmdk
"$vdk" child -t vmfsSparse kinds/base.vmdk kinds/cowd.vmdk >/dev/null
"$vdk" child -t seSparse kinds/base.vmdk kinds/se.vmdk >/dev/null
cp in.raw cowd.model
"$vdkwrite" kinds/cowd.vmdk cowd.model 3 200
cp in.raw se.model
"$vdkwrite" kinds/se.vmdk se.model 4 200
mnt "$dir/kinds" m1 -o ro
# which transport serves the mount: the queues' io_uring descriptors show
# once the first request completed FUSE_INIT
ls m1 >/dev/null
uring_check "$(pgrep -f "vdkfs .*$dir/kinds m1\$" | head -1)"
for d in m1/*; do
    n=$(basename "$d")
    [ -f "$d/flat" ] || fail "$n has no flat"
    cmp -s "$d/flat" in.raw || fail "$n: flat differs from the source"
    echo "ok: flat of $n"
done
cmp -s m1/base/children/cowd/flat cowd.model || fail "COWD child flat"
cmp -s m1/base/children/se/flat se.model || fail "seSparse child flat"
qemu-img convert -O raw kinds/se.vmdk se.q
cmp -s m1/base/children/se/flat se.q || fail "seSparse child vs qemu-img"
echo "ok: children flats"
if (echo x >m1/base/children/cowd/flat) 2>err.txt; then fail "ro mount accepted a write"; fi
umnt m1

# 1b. cold caches: the image files evicted before every mount, the flat read
# through the kernel's readahead (concurrent requests mixing holes and data,
# some spliced from files that are not cached yet).  A reply assembled from
# pieces once came out shifted only here.
for round in 1 2 3 4 5 6 7 8; do
    for f in kinds/*.vmdk; do dd if="$f" iflag=nocache count=0 status=none; done
    mnt kinds m1 -o ro
    for d in m1/*; do
        cmp -s "$d/flat" in.raw || fail "cold round $round: $(basename "$d"): flat differs from the source"
    done
    cmp -s m1/base/children/cowd/flat cowd.model || fail "cold round $round: COWD child flat"
    umnt m1
done
echo "ok: 8 cold-cache rounds of every kind"

# 2. fio random writes with verification on a sparse disk, then peers check it
"$vdk" create -t monolithicSparse fio.vmdk 256M
mnt fio.vmdk m2
fio --name=v --filename=m2/fio/flat --rw=randwrite --bs=4k --bsrange=512-64k --size=256M \
    --io_size=48M --numjobs=4 --offset_increment=64M --size=64M --verify=crc32c \
    --verify_fatal=1 --direct=1 --ioengine=psync --group_reporting >fio.out 2>&1 ||
    { cat fio.out; fail "fio verify"; }
cp --sparse=always m2/fio/flat fio.raw
sync m2/fio/flat
umnt m2
qemu-img check fio.vmdk | grep -q "No errors" || fail "qemu-img check after fio"
qemu-img compare -q -f vmdk -F raw fio.vmdk fio.raw || fail "qemu-img sees other bytes than fio wrote"
echo "ok: fio crc32c verify, qemu-img check and compare"

# 3. SEEK_DATA / SEEK_HOLE: a sparse copy stays sparse
"$vdk" create sp.vmdk 64M
mnt sp.vmdk m3
printf 'hello' | dd of=m3/sp/flat bs=1 seek=$((20 << 20)) conv=notrunc status=none
cp --sparse=always m3/sp/flat sp.raw
[ "$(du -k sp.raw | cut -f1)" -lt 1024 ] || fail "cp --sparse copied holes ($(du -k sp.raw))"
python3 - m3/sp/flat <<'PY' || fail "SEEK_DATA/SEEK_HOLE"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
d = os.lseek(fd, 0, os.SEEK_DATA)
h = os.lseek(fd, d, os.SEEK_HOLE)
assert d == (20 << 20) // 65536 * 65536, d
assert h == d + 65536, h
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
PY
alloc() { "$vdk" info --json sp.vmdk | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated"])'; }
[ "$(alloc)" = 65536 ] || fail "allocated before punch: $(alloc)"
fallocate --punch-hole -o $((20 << 20)) -l 65536 m3/sp/flat
[ "$(alloc)" = 0 ] || fail "punch-hole did not free the grain: $(alloc)"
[ "$(head -c $(((20 << 20) + 5)) m3/sp/flat | tail -c 5 | tr -d '\0')" = "" ] || fail "punch-hole"
# metadata and xattrs
[ "$(cat m3/sp/metadata/adapterType)" = ide ] || fail "cat metadata"
echo lsilogic >m3/sp/metadata/adapterType
[ "$(cat m3/sp/metadata/adapterType)" = lsilogic ] || fail "echo metadata"
echo "hello world" >m3/sp/metadata/myNewKey
[ "$(cat m3/sp/metadata/myNewKey)" = "hello world" ] || fail "new key"
if rm m3/sp/metadata/myNewKey 2>err.txt; then fail "rm of a key"; fi
grep -qi "not permitted" err.txt || fail "rm of a key: $(cat err.txt)"
getfattr -d -m - m3/sp/flat 2>/dev/null | grep -q 'user.vdk.adapterType="lsilogic"' ||
    fail "getfattr"
setfattr -n user.vdk.toolsVersion -v 777 m3/sp/flat
[ "$(cat m3/sp/metadata/toolsVersion)" = 777 ] || fail "setfattr"
# ctl and ioctls: grow, shrink, defragment run the library's operations
echo "grow 96M" >m3/sp/ctl
grep -q "grow: done" m3/sp/ctl || fail "ctl grow: $(cat m3/sp/ctl)"
[ "$(stat -c %s m3/sp/flat)" = $((96 << 20)) ] || fail "size after ctl grow: $(stat -c %s m3/sp/flat)"
truncate -s 128M m3/sp/flat
[ "$(stat -c %s m3/sp/flat)" = $((128 << 20)) ] || fail "size after truncate"
if truncate -s 64M m3/sp/flat 2>/dev/null; then fail "truncate shrank the capacity"; fi
echo shrink >m3/sp/ctl
grep -q "shrink: done" m3/sp/ctl || fail "ctl shrink: $(cat m3/sp/ctl)"
[ "$(head -c $(((20 << 20) + 5)) m3/sp/flat | tail -c 5 | tr -d '\0')" = "" ] || fail "content after shrink"
if (echo "frobnicate" >m3/sp/ctl) 2>err.txt; then fail "unknown ctl command accepted"; fi
grep -q "Invalid argument" err.txt || fail "unknown command: $(cat err.txt)"
grep -q "unknown command" m3/sp/ctl || fail "ctl status: $(cat m3/sp/ctl)"
python3 - m3/sp/flat <<'PY' || fail "ioctl"
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
GROW = (1 << 30) | (8 << 16) | (ord("V") << 8) | 1  # _IOW('V', 1, uint64_t)
DEFRAG = (ord("V") << 8) | 3                         # _IO('V', 3)
fcntl.ioctl(fd, GROW, struct.pack("<Q", 160 << 20))
os.close(fd)
assert os.stat(sys.argv[1]).st_size == 160 << 20, os.stat(sys.argv[1]).st_size
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.ioctl(fd, DEFRAG)
PY
echo "child sp-snap" >m3/sp/ctl
grep -q "done" m3/sp/ctl || fail "ctl child: $(cat m3/sp/ctl)"
[ -d m3/sp/children/sp-snap ] || fail "child not shown"
if (echo x | dd of=m3/sp/flat conv=notrunc status=none) 2>err.txt; then fail "parent still writable"; fi
echo data | dd of=m3/sp/children/sp-snap/flat conv=notrunc status=none
umnt m3
"$vdk" info sp.vmdk | grep -q unclean && fail "unclean after unmount"
qemu-img check sp.vmdk | grep -q "No errors" || fail "check after ctl operations"
[ "$(qemu-img info --output=json sp.vmdk | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = $((160 << 20)) ] || fail "size after unmount"
[ "$("$vdk" meta sp.vmdk myNewKey)" = "hello world" ] || fail "key after unmount"
qemu-img check sp-snap.vmdk | grep -q "No errors" || fail "child check"
echo "ok: seek, punch-hole, metadata, xattrs, ctl grow/shrink/child, truncate, ioctls"

# 4. a snapshot chain of three links: each point in time, and -o snapshot=
"$vdk" clone -q -r in.raw s.vmdk
cp in.raw t0.raw
"$vdk" child s.vmdk s1.vmdk >/dev/null
cp t0.raw t1.raw
"$vdkwrite" s1.vmdk t1.raw 21 100
"$vdk" child s1.vmdk s2.vmdk >/dev/null
cp t1.raw t2.raw
"$vdkwrite" s2.vmdk t2.raw 22 100
mnt s2.vmdk m4
cmp -s m4/s/flat t0.raw || fail "link 0"
cmp -s m4/s/children/s1/flat t1.raw || fail "link 1"
cmp -s m4/s/children/s1/children/s2/flat t2.raw || fail "link 2"
if echo x | dd of=m4/s/children/s1/flat conv=notrunc status=none 2>/dev/null; then
    fail "a link with children took a write"
fi
# a child made by another tool shows up on the next lookup, and its parent
# stops taking writes
"$vdk" child s2.vmdk s3.vmdk >/dev/null
[ -d m4/s/children/s1/children/s2/children/s3 ] || fail "child made outside the mount not shown"
if (echo x | dd of=m4/s/children/s1/children/s2/flat conv=notrunc status=none) 2>/dev/null; then
    fail "s2 took a write after getting a child"
fi
cmp -s m4/s/children/s1/children/s2/children/s3/flat t2.raw || fail "link 3"
umnt m4
mnt s.vmdk m5 -o snapshot=s1
[ "$(ls m5)" = s ] && [ "$(ls m5/s/children)" = s1 ] || fail "snapshot view: $(ls -R m5 | head)"
cmp -s m5/s/children/s1/flat t1.raw || fail "snapshot flat"
diff <(grep -v "^transport:" m5/s/children/s1/info) <("$vdk" info s1.vmdk) || fail "info differs from vdk info"
grep -qx "transport: *file" m5/s/children/s1/info || fail "info does not show the file transport"
[ -z "$(ls m5/s/children/s1/children)" ] || fail "snapshot view shows later links"
if echo x | dd of=m5/s/children/s1/flat conv=notrunc status=none 2>err.txt; then
    fail "snapshot mount took a write"
fi
grep -qi "read-only" err.txt || fail "snapshot write error: $(cat err.txt)"
umnt m5
echo "ok: snapshot chain"

# 4b. ctl commit: the parent's flat and partitions show the committed
# bytes at once, through handles held open across the commit and opened
# after it (a read-only parent's cached pages are kept across opens)
python3 - <<'PY'
import os, struct
with open("in.raw", "rb") as f:
    d = bytearray(f.read())
d[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 8192)
d[462:510] = bytes(48)
d[510:512] = b"\x55\xaa"
open("cb.raw", "wb").write(d)
open("patch.bin", "wb").write(os.urandom(1 << 20))
PY
"$vdk" clone -q -r cb.raw cb.vmdk
"$vdk" child cb.vmdk cb1.vmdk >/dev/null
mnt cb1.vmdk m6
python3 - m6/cb <<'PY' || fail "stale bytes after ctl commit"
import os, sys
top = sys.argv[1]
old = open("cb.raw", "rb").read()
patch = open("patch.bin", "rb").read()
flat = os.open(top + "/flat", os.O_RDONLY)
part = os.open(top + "/partitions/p1", os.O_RDONLY)
assert os.pread(flat, 1 << 20, 1 << 20) == old[1 << 20:2 << 20], "parent before"
assert os.pread(part, 1 << 20, 0) == old[1 << 20:2 << 20], "partition before"
# an operation on the parent itself drops its partition list (whether or
# not it may run): the commit must still reach the p1 pages cached above
try:
    with open(top + "/ctl", "w") as c:
        c.write("defragment\n")
except OSError:
    pass
w = os.open(top + "/children/cb1/flat", os.O_WRONLY)
os.pwrite(w, patch, 1 << 20)
os.fsync(w)
os.close(w)
with open(top + "/children/cb1/ctl", "w") as c:
    c.write("commit\n")
assert not os.path.exists(top + "/children/cb1"), "committed child still shown"
assert os.pread(flat, 1 << 20, 1 << 20) == patch, "held flat shows the old bytes"
assert os.pread(part, 1 << 20, 0) == patch, "held partition shows the old bytes"
with open(top + "/flat", "rb") as f:
    f.seek(1 << 20)
    assert f.read(1 << 20) == patch, "a new open shows the old bytes"
PY
umnt m6
cp cb.raw cb.want
dd if=patch.bin of=cb.want bs=1M seek=1 conv=notrunc status=none
qemu-img compare -q cb.vmdk cb.want || fail "parent after ctl commit"
[ ! -e cb1.vmdk ] || fail "committed child left on disk"
echo "ok: ctl commit drops stale cached bytes"

# 5. ext4 inside the disk, through partitions/p1 (MBR and GPT)
mkdir -p src/sub
head -c 300000 /dev/urandom >src/a.bin
echo "restore me" >src/sub/note.txt
mkfs.ext4 -q -F -d src part.img 24M
for table in mbr gpt; do
    python3 - "$table" <<'PY'
import struct, sys, uuid, zlib
table = sys.argv[1]
part = open("part.img", "rb").read()
size = 32 << 20
start = 2048
disk = bytearray(size)
disk[start * 512:start * 512 + len(part)] = part
n = len(part) // 512
if table == "mbr":
    e = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", start, n)
    disk[446:462] = e
else:
    disk[446:462] = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0xEE, b"\0\0\0", 1, size // 512 - 1)
    ent = bytearray(128 * 128)
    ent[0:128] = (uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4").bytes_le + uuid.uuid4().bytes_le
                  + struct.pack("<QQQ", start, start + n - 1, 0) + bytes(72))
    last = size // 512 - 34
    hdr = bytearray(struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, 1,
                                size // 512 - 1, 34, last, uuid.uuid4().bytes_le, 2, 128, 128,
                                zlib.crc32(bytes(ent))))
    struct.pack_into("<I", hdr, 16, zlib.crc32(bytes(hdr)))
    disk[512:512 + 92] = hdr
    disk[1024:1024 + len(ent)] = ent
disk[510:512] = b"\x55\xaa"
open("disk.raw", "wb").write(disk)
PY
    rm -f "fs-$table.vmdk"
    qemu-img convert -f raw -O vmdk disk.raw "fs-$table.vmdk"
    mnt "fs-$table.vmdk" "m6-$table" -o ro
    [ -f "m6-$table/fs-$table/partitions/p1" ] || fail "$table: no p1"
    cmp -s "m6-$table/fs-$table/partitions/p1" part.img || fail "$table: p1 differs from the filesystem"
    mkdir -p "x-$table"
    if mount -o loop,ro "m6-$table/fs-$table/partitions/p1" "x-$table" 2>/dev/null; then
        mounts+=("$dir/x-$table")
        how=loop
    else
        fuse2fs -o ro "m6-$table/fs-$table/partitions/p1" "x-$table" >/dev/null 2>&1 ||
            fail "$table: neither a loop mount nor fuse2fs"
        mounts+=("$dir/x-$table")
        how=fuse2fs
    fi
    mkdir "out-$table"
    cp -a "x-$table/a.bin" "x-$table/sub" "out-$table/"
    diff -r src "out-$table" >/dev/null || fail "$table: files copied out differ"
    umount "x-$table" 2>/dev/null || fusermount3 -u "x-$table"
    umnt "m6-$table"
    echo "ok: ext4 in $table partition p1 ($how)"
done

# 6. a folder with a broken disk still mounts; the broken one explains itself
mkdir ds
"$vdk" create ds/good.vmdk 1M
printf 'createType="monolithicFlat"\nRW 100 FLAT "missing.raw" 0\n' >ds/broken.vmdk
head -c 1024 /dev/urandom >ds/junk.vmdk
mnt ds m7
[ -f m7/good/flat ] || fail "good disk missing"
grep -q "missing.raw" m7/broken/info || fail "broken disk's info: $(cat m7/broken/info)"
ls m7/good/metadata >/dev/null
umnt m7
echo "ok: datastore folder with broken disks"

# 7. SIGTERM unmounts cleanly and clears uncleanShutdown
"$vdk" create term.vmdk 8M
mkdir m8
"$vdkfs" -f term.vmdk m8 &
pid=$!
mounts+=("$dir/m8")
for _ in $(seq 50); do [ -f m8/term/flat ] && break; sleep 0.1; done
echo abc | dd of=m8/term/flat conv=notrunc status=none
"$vdk" info --json term.vmdk | grep -q '"unclean": true' || fail "no unclean mark while mounted"
kill -TERM "$pid"
wait "$pid" || fail "vdkfs exit status after SIGTERM"
"$vdk" info --json term.vmdk | grep -q '"unclean": false' || fail "unclean after SIGTERM"
"$vdk" clone -q -t raw term.vmdk term.raw
[ "$(head -c 3 term.raw)" = abc ] || fail "data after SIGTERM"
echo "ok: SIGTERM"
echo "all vdkfs checks passed"
