#!/usr/bin/env bash
# COWD, seSparse and VMware-layout stream images, written from the published
# layouts by the test-only mkimage, must read back as the expected bytes in
# vdk, and in qemu-img wherever qemu reads the format.
set -euo pipefail
vdk=$1
mkimage=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

fail() { echo "FAIL: $*" >&2; exit 1; }

# 24 MiB: random grains, zero stretches, text, unaligned edges
python3 - <<'PY'
import os, random
random.seed(7)
size = 24 << 20
with open("in.raw", "wb") as f:
    f.truncate(size)
    for off, n in [(0, 70000), (1 << 20, 5 << 20), (9 << 20, 3000), (12 << 20, 1 << 20),
                   (16 << 20, 4 << 20), (size - 4096, 4096)]:
        f.seek(off)
        f.write(os.urandom(n))
    f.seek(8 << 20)
    f.write(b"vdk layout text " * 4096)
PY
sectors=$(( $(stat -c %s in.raw) / 512 ))

check() { # name descriptor expected [qemu]
    local name=$1 desc=$2 expected=$3 qemu=${4:-}
    "$vdk" clone -q -t raw "$desc" "$name.vdk.raw"
    cmp "$name.vdk.raw" "$expected" || fail "$name: vdk read differs from the written layout"
    if [ -n "$qemu" ]; then
        qemu-img convert -O raw "$desc" "$name.qemu.raw"
        cmp "$name.qemu.raw" "$expected" || fail "$name: qemu-img reads it differently"
    fi
    echo "ok: $name"
}

# COWD (vmfsSparse), grain 1 sector as ESXi writes, and a larger grain
for g in 1 16; do
    "$mkimage" cowd in.raw "cowd$g-delta.vmdk" "cowd$g.expected" "$g"
    cat >"cowd$g.vmdk" <<EOD
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="vmfsSparse"
RW $sectors VMFSSPARSE "cowd$g-delta.vmdk"
ddb.adapterType = "lsilogic"
EOD
    check "cowd-grain$g" "cowd$g.vmdk" "cowd$g.expected" qemu
done

# seSparse, with zero and unmapped grain entries
"$mkimage" sesparse in.raw se-sesparse.vmdk se.expected
cat >se.vmdk <<EOD
# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="seSparse"
RW $sectors SESPARSE "se-sesparse.vmdk"
EOD
check sesparse se.vmdk se.expected qemu

# VMware's stream layout: GD_AT_END, tables after their grains, footer, EOS
"$mkimage" stream in.raw stream.vmdk stream.expected
check stream-vmware stream.vmdk stream.expected qemu
info=$("$vdk" info --json stream.vmdk)
grep -q '"createType": "streamOptimized"' <<<"$info" || fail "stream: createType"
grep -q '"format": "stream-optimized"' <<<"$info" || fail "stream: format"

# seSparse child of a qemu-made sparse base: holes fall through to the parent
qemu-img convert -f raw -O vmdk in.raw base.vmdk
python3 - <<'PY'
import os, random
random.seed(8)
size = os.path.getsize("in.raw")
with open("child.raw", "wb") as f:
    f.truncate(size)
    for off in range(0, size, 3 << 20):
        f.seek(off + 12345 // 4096 * 4096)
        f.write(os.urandom(200000))
PY
"$mkimage" sesparse child.raw kid-sesparse.vmdk kid.expected
cid=$("$vdk" info --json base.vmdk | python3 -c 'import json,sys; print(json.load(sys.stdin)["cid"])')
cat >kid.vmdk <<EOD
# Disk DescriptorFile
version=1
CID=0badcafe
parentCID=$cid
createType="seSparse"
parentFileNameHint="base.vmdk"
RW $sectors SESPARSE "kid-sesparse.vmdk"
EOD
# expected: the child's grains (zeros where zero/unmapped), the base elsewhere
python3 - <<'PY'
import os
size = os.path.getsize("in.raw")
child = open("child.raw", "rb").read()
exp = open("kid.expected", "rb").read()
base = open("in.raw", "rb").read()
out = bytearray(base)
g = 4096
nonzero = 0
for i in range(0, size, g):
    c = child[i:i + g]
    if any(c):
        out[i:i + g] = exp[i:i + g]
open("kid.full", "wb").write(out)
PY
check sesparse-child kid.vmdk kid.full qemu
# A parent in a sibling folder: refused by default, reachable with --root
mkdir -p vm1 vm2
qemu-img create -q -f vmdk vm2/base.vmdk 4M
qemu-io -c 'write -P 0x42 0 64k' vm2/base.vmdk >/dev/null
qemu-img create -q -f vmdk -b ../vm2/base.vmdk -F vmdk vm1/kid.vmdk
if "$vdk" info vm1/kid.vmdk 2>err.txt; then fail "sibling parent opened without --root"; fi
grep -q "outside" err.txt || fail "sibling parent: unclear error: $(cat err.txt)"
"$vdk" clone -q --root . -t raw vm1/kid.vmdk kid-root.raw
qemu-img convert -O raw vm1/kid.vmdk kid-root.ref
cmp kid-root.raw kid-root.ref || fail "--root chain read differs"
if "$vdk" info --root vm2 vm1/kid.vmdk 2>/dev/null; then fail "--root accepted a disk outside it"; fi
echo "ok: --root"
echo "all layout checks passed"
