#!/usr/bin/env bash
# Disk operations through the CLI, checked by qemu-img: check/repair,
# changed areas, commit, attach, rm.
set -euo pipefail
vdk=$1
vdkwrite=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
fail() { echo "FAIL: $*" >&2; exit 1; }

truncate -s 32M m0.raw
"$vdk" create base.vmdk 32M
"$vdkwrite" base.vmdk m0.raw 1 200
"$vdk" child base.vmdk >/dev/null # base-000001.vmdk
cp m0.raw m1.raw
"$vdkwrite" base-000001.vmdk m1.raw 2 100
"$vdk" child base-000001.vmdk >/dev/null # base-000002.vmdk
cp m1.raw m2.raw
"$vdkwrite" base-000002.vmdk m2.raw 3 100

# changed areas: outside them the top equals the earlier link
"$vdk" changed --json --since base base-000002.vmdk >changed.json
python3 - <<'PY' || fail "changed areas"
import json
ranges = json.load(open("changed.json"))
a = open("m0.raw", "rb").read()
b = open("m2.raw", "rb").read()
mask = bytearray(len(a))
for r in ranges:
    mask[r["start"]:r["start"] + r["length"]] = b"\1" * r["length"]
for i in range(0, len(a), 4096):
    if not any(mask[i:i + 4096]) and a[i:i + 4096] != b[i:i + 4096]:
        raise SystemExit("change at %d not reported" % i)
assert sum(r["length"] for r in ranges) < len(a), "everything reported"
PY
echo "ok: changed --since"

# commit the middle link, then everything
"$vdk" commit base-000001.vmdk
[ ! -e base-000001.vmdk ] || fail "committed link still there"
qemu-img compare -q base.vmdk m1.raw || fail "base after commit"
qemu-img compare -q base-000002.vmdk m2.raw || fail "top after commit"
qemu-img check base.vmdk | grep -q "No errors" || fail "check after commit"
"$vdk" commit --all base-000002.vmdk
qemu-img compare -q base.vmdk m2.raw || fail "base after commit --all"
[ "$(ls *.vmdk)" = base.vmdk ] || fail "leftover links: $(ls *.vmdk)"
echo "ok: commit"

# attach and rm
"$vdk" child base.vmdk kid.vmdk >/dev/null
"$vdk" create other.vmdk 32M
if "$vdk" attach kid.vmdk other.vmdk 2>err.txt; then fail "attach ignored the CID"; fi
grep -q -- "--force" err.txt || fail "attach refusal: $(cat err.txt)"
"$vdk" attach --force kid.vmdk other.vmdk
[ "$("$vdk" info --json kid.vmdk | python3 -c 'import json,sys; print(json.load(sys.stdin)["parent"])')" = other.vmdk ] || fail "attach"
if "$vdk" rm other.vmdk 2>/dev/null; then fail "rm of a parent"; fi
"$vdk" rm kid.vmdk
"$vdk" rm other.vmdk
[ ! -e other.vmdk ] && [ ! -e kid.vmdk ] || fail "rm"
"$vdk" create -t twoGbMaxExtentFlat split.vmdk 5G
"$vdk" rm split.vmdk
[ -z "$(ls split* 2>/dev/null)" ] || fail "rm left extents: $(ls split*)"
echo "ok: attach, rm"

# check and repair a damaged disk
cp base.vmdk bad.vmdk
python3 - <<'PY'
import struct
f = open("bad.vmdk", "r+b")
h = f.read(512)
gd = struct.unpack_from("<Q", h, 56)[0]
f.seek(gd * 512)
gt = struct.unpack("<I", f.read(4))[0]
f.seek(gt * 512 + 8)
f.write(struct.pack("<I", 0x7ffffff0))
f.seek(72)
f.write(b"\1")
PY
if "$vdk" check bad.vmdk >check.txt 2>&1; then fail "check missed the damage"; fi
grep -q "past the end of the file" check.txt || fail "check output: $(cat check.txt)"
"$vdk" check --repair bad.vmdk >repair.txt 2>&1 || { cat repair.txt; fail "repair"; }
grep -q "no problems found" repair.txt || fail "repair output"
"$vdk" check bad.vmdk >/dev/null 2>&1 || fail "check after repair"
qemu-img check bad.vmdk | grep -q "No errors" || fail "qemu-img check after repair"
echo "ok: check --repair"
# grow every growable type; old bytes stay, new ones read as zeros
for t in monolithicSparse twoGbMaxExtentSparse monolithicFlat twoGbMaxExtentFlat vmfs; do
    "$vdk" create -t $t "g-$t.vmdk" 10M
    truncate -s 10M "g-$t.raw"
    "$vdkwrite" "g-$t.vmdk" "g-$t.raw" 9 50
    "$vdk" grow "g-$t.vmdk" 5G
    truncate -s 5G "g-$t.raw"
    [ "$(qemu-img info --output=json "g-$t.vmdk" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = $((5 << 30)) ] || fail "grow $t: size"
    "$vdkwrite" "g-$t.vmdk" "g-$t.raw" 10 100 # writes land beyond the old end too
    qemu-img compare -q "g-$t.vmdk" "g-$t.raw" || fail "grow $t: content"
    case $t in *Flat | vmfs) ;; *) qemu-img check "g-$t.vmdk" | grep -q "No errors" || fail "grow $t: check" ;; esac
    "$vdk" check "g-$t.vmdk" >/dev/null || fail "grow $t: vdk check"
    rm -f "g-$t.raw"
done
[ "$(grep -c SPARSE g-twoGbMaxExtentSparse.vmdk)" -eq 3 ] || fail "split sparse grow: extents"
if "$vdk" grow g-monolithicSparse.vmdk 1G 2>/dev/null; then fail "grow accepted a smaller size"; fi
"$vdk" child g-monolithicSparse.vmdk >/dev/null
if "$vdk" grow g-monolithicSparse.vmdk 6G 2>err.txt; then fail "grow of a disk with a redo log"; fi
grep -q "redo log" err.txt || fail "grow refusal: $(cat err.txt)"
echo "ok: grow"

# rename: every file follows, children too; change tracking kept
"$vdk" create -t twoGbMaxExtentSparse r1.vmdk 5G
truncate -s 5G r1.raw
"$vdkwrite" r1.vmdk r1.raw 12 50
"$vdk" child r1.vmdk r1-kid.vmdk >/dev/null
printf 'ctk' >r1-ctk.vmdk
sed -i 's/^version=1$/version=3/; s/^createType=.*/&\nchangeTrackPath="r1-ctk.vmdk"/' r1.vmdk
"$vdk" info r1.vmdk | grep -q "change tracking: on" || fail "ctk not seen"
"$vdk" rename r1.vmdk r2.vmdk
[ -z "$(ls r1.vmdk r1-s00* r1-ctk.vmdk 2>/dev/null)" ] || fail "old files left: $(ls r1*)"
[ "$(ls r2-s00*.vmdk | wc -l)" -eq 3 ] && [ -e r2-ctk.vmdk ] || fail "new files: $(ls r2*)"
qemu-img compare -q r2.vmdk r1.raw || fail "renamed content"
qemu-img compare -q r1-kid.vmdk r1.raw || fail "child after rename"
grep -q 'parentFileNameHint="r2.vmdk"' r1-kid.vmdk || fail "child hint"
if "$vdk" rename r2.vmdk r1-kid.vmdk 2>/dev/null; then fail "rename overwrote"; fi
# metadata keeps tracking; a write switches it off, cleanly and loudly
"$vdk" meta r2.vmdk toolsVersion 1
"$vdk" info r2.vmdk | grep -q "change tracking: on" || fail "meta dropped tracking"
"$vdk" rm r1-kid.vmdk
"$vdkwrite" r2.vmdk r1.raw 13 5 2>ctk.txt
grep -q "change tracking switched off" ctk.txt || fail "no notice: $(cat ctk.txt)"
"$vdk" info r2.vmdk | grep -q "change tracking: off" || fail "tracking still on"
grep -q '^version=1$' r2.vmdk && ! grep -q changeTrackPath r2.vmdk || fail "descriptor after ctk off"
[ -e r2-ctk.vmdk.vdk-disabled ] || fail "ctk file not set aside"
qemu-img compare -q r2.vmdk r1.raw || fail "content after ctk off"
rm -f r1.raw
echo "ok: rename, change tracking"

# images made by qemu-img: grow, shrink, defragment, commit; qemu agrees
head -c 24M /dev/urandom >q.raw
dd if=/dev/zero of=q.raw bs=1M seek=4 count=8 conv=notrunc status=none
qemu-img convert -f raw -O vmdk q.raw q.vmdk
qemu-io -c 'write -z 0 1M' q.vmdk >/dev/null # allocated, now all zeros
dd if=/dev/zero of=q.raw bs=1M count=1 conv=notrunc status=none
before=$(stat -c %s q.vmdk)
"$vdk" shrink q.vmdk >/dev/null
[ "$(stat -c %s q.vmdk)" -lt "$before" ] || fail "shrink of a qemu-img disk freed nothing"
"$vdk" defragment q.vmdk
qemu-img check q.vmdk | grep -q "No errors" || fail "qemu-img check after shrink/defragment"
qemu-img compare -q q.vmdk q.raw || fail "content after shrink/defragment"
qemu-img create -q -f vmdk -b q.vmdk -F vmdk q1.vmdk
qemu-io -c 'write -P 0x61 3M 2M' q1.vmdk >/dev/null
python3 - <<'PY'
with open("q.raw", "r+b") as f:
    f.seek(3 << 20)
    f.write(b"\x61" * (2 << 20))
PY
"$vdk" commit q1.vmdk
qemu-img compare -q q.vmdk q.raw || fail "commit of a qemu-img child"
"$vdk" grow q.vmdk 100M
truncate -s 100M q.raw
qemu-img check q.vmdk | grep -q "No errors" || fail "qemu-img check after grow"
qemu-img compare -q q.vmdk q.raw || fail "grow of a qemu-img disk"
echo "ok: operations on qemu-img disks"

# space: an upper bound of what a clone takes
for t in monolithicSparse streamOptimized twoGbMaxExtentSparse monolithicFlat; do
    need=$("$vdk" space -t "$t" base.vmdk)
    "$vdk" clone -q -t "$t" base.vmdk "sp-$t.vmdk"
    used=$(cat sp-$t*.vmdk | wc -c)
    [ "$used" -le "$need" ] || fail "space for $t: estimated $need, clone took $used"
    [ "$need" -le $((used * 3 + (1 << 21))) ] || fail "space for $t: $need is far above $used"
done
echo "ok: space"
echo "all operation checks passed"
