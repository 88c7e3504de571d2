#!/usr/bin/env bash
# vdk clone -t raw against qemu-img convert -O raw, for every subformat qemu-img
# writes, zeroed grains, and twoGbMaxExtent disks over 2 GiB with several extents.
#
# Usage: formats.sh PATH/TO/vdk
set -euo pipefail
source "$(dirname "$0")/lib.sh"
peers_init "$@"

MiB=$((1 << 20))
GiB=$((1 << 30))

# compare_clone VMDK [WANT_RAW]: vdk's flattening of VMDK equals qemu-img's;
# with WANT_RAW, qemu-img's must also equal it (the peer itself is sane).
compare_clone() {
    local v=$1 base=${1%.vmdk}
    qemu-img convert -f vmdk -O raw "$v" "$base.ref.raw" || fail "qemu-img convert $v failed"
    if [ $# -ge 2 ]; then
        files_equal "$base.ref.raw" "$2" >/dev/null ||
            fail "qemu-img's own round trip of $2 through $v differs (the test or the peer is wrong)"
    fi
    vdk_ok clone -q -t raw "$v" "$base.vdk.raw"
    same_file "$base.vdk.raw" "$base.ref.raw" "vdk clone vs qemu-img convert of $v"
    rm -f "$base.ref.raw" "$base.vdk.raw"
    # and the same bytes are allocated (flat extents: all of them)
    qemu-img map -f vmdk --output=json "$v" >"$base.qmap" || fail "qemu-img map $v failed"
    vdk_ok map --json "$v"
    cp out "$base.vmap"
    same_map "$base.vmap" "$base.qmap" "vdk map vs qemu-img map of $v"
}

# --- every subformat from one patterned 64 MiB raw -------------------------
note "making a patterned 64 MiB raw disk"
pattern src.raw $((64 * MiB)) 1

for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
    streamOptimized; do
    note "subformat=$sub"
    qemu-img convert -f raw -O vmdk -o subformat=$sub src.raw "$sub.vmdk"
    vdk_ok info --json "$sub.vmdk"
    got=$(json_get out 'j["createType"]')
    [ "$got" = "$sub" ] || fail "vdk info of $sub.vmdk says createType $got"
    compare_clone "$sub.vmdk" src.raw
done

# --- zeroed grains ---------------------------------------------------------
# monolithicSparse with zeroed_grain=on: qemu-io 'write -z' of whole grains
# stores grain table entries of 1 (zeroed grain) instead of writing zeros.
note "monolithicSparse with zeroed_grain=on and 'write -z'"
# its source: the patterned raw with known data at 1..2 MiB and 10..12 MiB and a
# known hole (grains the sparse file leaves unallocated) at 40..42 MiB
cp src.raw zg.want
put_random zg.want $((1 * MiB)) $MiB 31
put_random zg.want $((10 * MiB)) $((2 * MiB)) 32
python3 - zg.want $((40 * MiB)) $((2 * MiB)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); f.write(bytes(int(sys.argv[3])))
PY
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse,zeroed_grain=on zg.want zg.vmdk
# zero ranges: whole grains over data, a larger run over data, one unaligned
# (qemu writes real zeros for the partial grains), one over the hole (zeroed
# grains where no grain was) and one in the last grains of the disk
while read -r off len; do
    qemu-io -f vmdk -c "write -z $off $len" zg.vmdk </dev/null >/dev/null ||
        fail "qemu-io write -z $off $len on zg.vmdk failed"
    python3 - zg.want "$off" "$len" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); f.write(bytes(int(sys.argv[3])))
PY
done <<EOF
$((1 * MiB)) $((256 * 1024))
$((10 * MiB)) $((2 * MiB))
$((20 * MiB + 65536 * 3)) $((65536 * 5))
$((30 * MiB + 1000)) $((200 * 1024 + 24))
$((40 * MiB + 65536)) $((4 * 65536))
$((64 * MiB - 128 * 1024)) $((64 * 1024))
EOF
# data written again over part of a zeroed grain run (the grain becomes data)
qemu-io -f vmdk -c "write -P 0x5a $((10 * MiB + 4096 + 7)) 70000" zg.vmdk >/dev/null
python3 - zg.want $((10 * MiB + 4096 + 7)) 70000 <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); f.write(b"\x5a" * int(sys.argv[3]))
PY
qemu-img check -f vmdk zg.vmdk >/dev/null || fail "qemu-img check of zg.vmdk failed"
compare_clone zg.vmdk zg.want
# compare_clone compared the maps; the zeroed grains must be among the ranges
python3 - zg.vmap zg.qmap <<'PY' || fail "zeroed-grain ranges of zg.vmdk differ between vdk map and qemu-img map"
import json, sys
def zset(path):
    out = []
    for r in json.load(open(path)):
        if r["present"] and r["zero"] and not r["data"]:
            s, e = r["start"], r["start"] + r["length"]
            if out and out[-1][1] == s: out[-1][1] = e
            else: out.append([s, e])
    return out
a, b = zset(sys.argv[1]), zset(sys.argv[2])
if a != b or not a:
    print("vdk zero:", a, "\nqemu zero:", b, file=sys.stderr); sys.exit(1)
print("[formats]   ok: zeroed-grain ranges agree:", a)
PY

# --- twoGbMaxExtent over 2 GiB: several extents -----------------------------
note "5 GiB sparse raw with data at 0, across 2 GiB, at 3 GiB and in the last MiB"
truncate -s $((5 * GiB)) big.raw
put_random big.raw 0 $((3 * MiB + 333)) 11
put_random big.raw $((2 * GiB - 3 * MiB / 2 - 4097)) $((3 * MiB)) 12
put_random big.raw $((3 * GiB)) $((2 * MiB)) 13
put_random big.raw $((5 * GiB - MiB)) $MiB 14
for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat; do
    note "5 GiB $sub"
    t0=$SECONDS
    qemu-img convert -f raw -O vmdk -o subformat=$sub big.raw "big-$sub.vmdk"
    vdk_ok info --json "big-$sub.vmdk"
    n=$(json_get out 'len(j["extents"])')
    cap=$(json_get out 'j["capacity"]')
    [ "$cap" = $((5 * GiB)) ] || fail "vdk info: capacity of big-$sub.vmdk is $cap"
    [ "$n" -ge 3 ] || fail "vdk info: big-$sub.vmdk has $n extents, expected at least 3"
    qn=$(qemu-img info --output=json "big-$sub.vmdk" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["format-specific"]["data"]["extents"]))')
    [ "$n" = "$qn" ] || fail "big-$sub.vmdk: vdk sees $n extents, qemu-img $qn"
    ok "big-$sub.vmdk: $n extents, capacity $cap"
    compare_clone "big-$sub.vmdk" big.raw
    note "  ($((SECONDS - t0)) s)"
    rm -f big-"$sub"*.vmdk
done
rm -f big.raw

# --- an existing output is not overwritten without --force ------------------
note "clone onto an existing output"
printf 'keep me' >exists.raw
vdk_fails clone -q -t raw monolithicSparse.vmdk exists.raw
err_has "exists"
[ "$(cat exists.raw)" = "keep me" ] || fail "vdk clone without --force changed the existing output"
ok "refused without --force (status $VRC): $(cat err)"
vdk_ok clone -q --force -t raw monolithicSparse.vmdk exists.raw
same_file exists.raw src.raw "vdk clone --force over an existing file"
# a bigger existing file is truncated, not left with a stale tail
put_random exists.raw $((64 * MiB)) 4096 99
vdk_ok clone -q -f -t raw monolithicSparse.vmdk exists.raw
same_file exists.raw src.raw "vdk clone -f over a longer existing file"

# --- streamOptimized output of mixed data -----------------------------------
# Random grains are stored without zlib's search (a stored-block stream);
# text, zeros, a repeated random block and a small alphabet are compressed.
# qemu-img must read every grain back (compare, check, convert), and it must be no
# larger than qemu-img's own streamOptimized output of the same bytes.
note "streamOptimized clone of random, text, zeros and repeated data"
python3 - mixed.raw <<'PY'
import random, sys
r = random.Random(7)
G = 65536
out = bytearray()
rep = bytes(r.getrandbits(8) for _ in range(4096))
words = b"grain table directory redo snapshot parent disk sector ".split()
for i in range(96):
    k = i % 6
    if k == 0:
        out += r.randbytes(G)
    elif k == 1:
        out += b" ".join(r.choice(words) for _ in range(G // 5))[:G].ljust(G, b".")
    elif k == 2:
        out += bytes(G)
    elif k == 3:
        out += rep * (G // 4096)
    elif k == 4:
        out += bytes(b & 15 for b in r.randbytes(G))
    else:
        out += r.randbytes(G // 2) + bytes(G // 2)
open(sys.argv[1], "wb").write(out + r.randbytes(1000) + bytes(24))
PY
vdk_ok clone -q -r -t streamOptimized mixed.raw mixed-so.vmdk
qemu-img compare -q -f raw -F vmdk mixed.raw mixed-so.vmdk || fail "qemu-img compare of vdk's streamOptimized clone of mixed data"
qemu-img check mixed-so.vmdk >/dev/null || fail "qemu-img check of mixed-so.vmdk"
compare_clone mixed-so.vmdk mixed.raw
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized mixed.raw mixed-q.vmdk
[ "$(stat -c %s mixed-so.vmdk)" -le "$(stat -c %s mixed-q.vmdk)" ] ||
    fail "vdk's streamOptimized output ($(stat -c %s mixed-so.vmdk) bytes) is larger than qemu-img's ($(stat -c %s mixed-q.vmdk))"
ok "mixed data: qemu-img reads it back; $(stat -c %s mixed-so.vmdk) bytes, qemu-img $(stat -c %s mixed-q.vmdk)"
rm -f mixed.raw mixed-so.vmdk mixed-q.vmdk

peers_done
