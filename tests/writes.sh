#!/usr/bin/env bash
# Everything vdk writes must read back identically in qemu-img, pass
# 'qemu-img check' and open in libvmdk's vmdkinfo: created disks, clones of
# every type, random writes through libvdk, children made by vdk and by
# qemu-img, metadata changes.
set -euo pipefail
vdk=$1
vdkwrite=$2
dir=$(mktemp -d)
mnt=$dir/mnt
cleanup() {
    fusermount3 -u "$mnt" 2>/dev/null || true
    [ -n "${vm_pid:-}" ] && kill "$vm_pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
mkdir "$mnt"

fail() { echo "FAIL: $*" >&2; exit 1; }
same() { # disk model
    qemu-img compare -q -f vmdk -F raw "$1" "$2" || fail "$1: qemu-img sees other bytes than expected"
    "$vdk" clone -q -t raw "$1" vdk.out
    cmp -s vdk.out "$2" || fail "$1: vdk reads other bytes than expected"
    rm -f vdk.out
}
clean() { # disk
    qemu-img check "$1" >check.out 2>&1 || { cat check.out; fail "$1: qemu-img check"; }
    grep -q "No errors" check.out || { cat check.out; fail "$1: qemu-img check"; }
}
libvmdk_opens() {
    vmdkinfo "$1" >/dev/null 2>&1 || fail "$1: vmdkinfo cannot open it"
}
# libvmdk reads the bytes too (through its FUSE tool; it knows sparse types)
libvmdk_same() { # disk model
    vmdkmount "$1" "$mnt" >/dev/null 2>&1 &
    vm_pid=$!
    for _ in $(seq 50); do [ -e "$mnt/vmdk1" ] && break; sleep 0.1; done
    [ -e "$mnt/vmdk1" ] || fail "$1: vmdkmount did not mount it"
    cmp -s "$mnt/vmdk1" "$2" || fail "$1: libvmdk reads other bytes than expected"
    fusermount3 -u "$mnt"
    wait "$vm_pid" || true
    vm_pid=
}

python3 - <<'PY'
import os, random
random.seed(3)
with open("in.raw", "wb") as f:
    f.truncate(48 << 20)
    for off, n in [(0, 70000), (1 << 20, 5 << 20), ((9 << 20) + 17, 3000), (20 << 20, 1 << 20),
                   ((48 << 20) - 4096, 4096)]:
        f.seek(off)
        f.write(os.urandom(n))
    f.seek(8 << 20)
    f.write(b"vdk text " * 40000)
PY

# 1. clone a raw image into every type; qemu-img and libvmdk read it back
for t in monolithicSparse twoGbMaxExtentSparse monolithicFlat twoGbMaxExtentFlat \
    streamOptimized vmfs vmfsThin; do
    "$vdk" clone -q -r -t "$t" in.raw "c-$t.vmdk"
    info=$("$vdk" info --json "c-$t.vmdk")
    grep -q "\"createType\": \"$t\"" <<<"$info" || fail "c-$t: createType"
    "$vdk" clone -q -f -t raw "c-$t.vmdk" back.raw
    cmp -s back.raw in.raw || fail "c-$t: vdk reads back other bytes"
    libvmdk_opens "c-$t.vmdk"
    if [ "$t" != vmfsThin ]; then # qemu-img does not open vmfsThin descriptors
        same "c-$t.vmdk" in.raw
        clean "c-$t.vmdk"
    fi
    case $t in *Sparse | streamOptimized) libvmdk_same "c-$t.vmdk" in.raw ;; esac
    echo "ok: clone to $t"
done
# the stream file has VMware's layout: footer at EOF-1024, end-of-stream last
python3 - c-streamOptimized.vmdk <<'PY' || fail "stream layout"
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[:4] == b"KDMV" and struct.unpack_from("<I", d, 4)[0] == 3
assert struct.unpack_from("<Q", d, 56)[0] == 0xffffffffffffffff, "header gdOffset"
assert d[-1024:-1020] == b"KDMV", "footer"
assert struct.unpack_from("<I", d, len(d) - 1536 + 12)[0] == 3, "footer marker"
assert d[-512:] == bytes(512), "end of stream"
PY
echo "ok: stream layout"

# 2. create every type, then random writes through libvdk
for t in monolithicSparse twoGbMaxExtentSparse monolithicFlat twoGbMaxExtentFlat vmfs; do
    "$vdk" create -t "$t" -a lsilogic "w-$t.vmdk" 40M
    truncate -s 40M "m-$t.raw"
    "$vdkwrite" "w-$t.vmdk" "m-$t.raw" 7 1500
    same "w-$t.vmdk" "m-$t.raw"
    clean "w-$t.vmdk"
    libvmdk_opens "w-$t.vmdk"
    case $t in *Sparse) libvmdk_same "w-$t.vmdk" "m-$t.raw" ;; esac
    echo "ok: create + random writes, $t"
done

# 3. a split sparse disk over 4 GiB: writes across extent boundaries
"$vdk" create -t twoGbMaxExtentSparse big.vmdk 4500M
[ "$(grep -c SPARSE big.vmdk)" -eq 3 ] || fail "big: expected 3 extents"
truncate -s 4500M big.raw
"$vdkwrite" big.vmdk big.raw 11 300
python3 - <<'PY'
# force writes straddling both extent boundaries (2047 MiB apart) too
PY
same big.vmdk big.raw
clean big.vmdk
echo "ok: twoGbMaxExtentSparse over 4 GiB"

# 4. children made by vdk, written by vdk, read by qemu-img
"$vdk" clone -q -r in.raw base.vmdk
cp in.raw chain.raw
parent=base.vmdk
for t in monolithicSparse vmfsSparse twoGbMaxExtentSparse seSparse monolithicSparse; do
    child=$("$vdk" child -t "$t" "$parent")
    "$vdkwrite" "$child" chain.raw $((RANDOM + 1)) 300
    same "$child" chain.raw
    case $t in vmfsSparse | seSparse) ;; *) clean "$child" ;; esac
    parent=$child
    echo "ok: vdk child ($t) $child"
done
"$vdk" info "$parent" | grep -q "chain (6 links" || fail "chain depth"

# 5. a child made by qemu-img, written by vdk
qemu-img create -q -f vmdk -b base.vmdk -F vmdk qchild.vmdk
cp in.raw q.raw
"$vdkwrite" qchild.vmdk q.raw 5 500
same qchild.vmdk q.raw
clean qchild.vmdk
echo "ok: qemu-img child written by vdk"
# and a disk vdk made, written by qemu-io, read by vdk
qemu-io -c 'write -P 0x6b 1000k 300k' base.vmdk >/dev/null
python3 - <<'PY'
with open("in.raw", "r+b") as f:
    f.seek(1000 << 10)
    f.write(b"\x6b" * (300 << 10))
PY
same base.vmdk in.raw

# 6. metadata
"$vdk" meta base.vmdk adapterType lsilogic
"$vdk" meta base.vmdk toolsVersion 12345
[ "$("$vdk" meta base.vmdk adapterType)" = lsilogic ] || fail "meta: adapterType"
grep -aq 'ddb.toolsVersion = "12345"' base.vmdk || fail "meta: new key not in descriptor"
"$vdk" meta w-monolithicFlat.vmdk uuid "60 00 C2 11"
grep -q 'ddb.uuid = "60 00 C2 11"' w-monolithicFlat.vmdk || fail "meta: separate descriptor"
qemu-img info w-monolithicFlat.vmdk >/dev/null || fail "meta: qemu-img cannot open"
if "$vdk" meta base.vmdk evil 'a"
RW 1 FLAT "/etc/passwd" 0' 2>err.txt; then fail "meta accepted a line break"; fi
grep -q "line break" err.txt || fail "meta: unclear refusal"
echo "ok: metadata"

# 7. refusals
if "$vdk" create base.vmdk 1M 2>/dev/null; then fail "create overwrote a disk"; fi
if "$vdk" create -t monolithicSparse huge.vmdk 3T 2>err.txt; then fail "3T monolithicSparse"; fi
grep -q "at most" err.txt || fail "size refusal unclear"
"$vdk" create -t twoGbMaxExtentSparse huge.vmdk 3T
"$vdk" create -t vmfs hugeflat.vmdk 3T
[ "$(qemu-img info --output=json hugeflat.vmdk | python3 -c 'import json,sys;print(json.load(sys.stdin)["virtual-size"])')" = $((3 << 40)) ] || fail "3T flat size"
if "$vdk" create -a scsi x.vmdk 1M 2>/dev/null; then fail "bad adapter accepted"; fi
if "$vdk" create x.vmdk 12Q 2>/dev/null; then fail "bad size accepted"; fi
if "$vdk" clone -t raw base.vmdk in.raw 2>/dev/null; then fail "clone overwrote"; fi
echo "ok: refusals"
echo "all write checks passed"
