#!/usr/bin/env bash
# Redo-log chains of depth 1 to 8 made with qemu-img create -b and written with
# qemu-io: vdk clone -t raw against qemu-img convert -O raw, vdk map --json
# against qemu-img map --output=json, and CID checking along the chain.
#
# Usage: chains.sh PATH/TO/vdk
set -euo pipefail
source "$(dirname "$0")/lib.sh"
peers_init "$@"

MiB=$((1 << 20))
G=65536 # qemu's grain: 128 sectors
SIZE=$((32 * MiB))
DEPTH=8

# check_top VMDK DEPTH: vdk and qemu-img agree on VMDK's contents and map.
check_top() {
    local v=$1 base=${1%.vmdk}
    vdk_ok info --json "$v"
    local d
    d=$(json_get out 'j["chainDepth"]')
    [ "$d" = "$2" ] || fail "vdk info $v: chainDepth $d, expected $2"
    qemu-img convert -f vmdk -O raw "$v" "$base.ref.raw" || fail "qemu-img convert $v failed"
    vdk_ok clone -q -t raw "$v" "$base.vdk.raw"
    same_file "$base.vdk.raw" "$base.ref.raw" "depth $2: vdk clone vs qemu-img convert of $v"
    rm -f "$base.vdk.raw" "$base.ref.raw"
    qemu-img map -f vmdk --output=json "$v" >"$base.qmap" || fail "qemu-img map $v failed"
    vdk_ok map --json "$v"
    cp out "$base.vmap"
    same_alloc "$base.vmap" "$base.qmap" "depth $2: allocated bytes of $v"
    same_map "$base.vmap" "$base.qmap" "depth $2: map of $v"
}

# qio VMDK CMD...: run qemu-io commands on VMDK.
qio() {
    local v=$1 a=()
    shift
    for c in "$@"; do a+=(-c "$c"); done
    qemu-io -f vmdk "${a[@]}" "$v" >/dev/null || fail "qemu-io $* on $v failed"
}

note "base: monolithicSparse from a patterned 32 MiB raw with a hole at 8..12 MiB"
pattern base.raw $SIZE 5
python3 - base.raw $((8 * MiB)) $((4 * MiB)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); f.write(bytes(int(sys.argv[3])))
PY
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse base.raw chain-1.vmdk ||
    fail "qemu-img convert base.raw failed"
check_top chain-1.vmdk 1

for L in $(seq 2 $DEPTH); do
    P=$(printf '0x%02x' $((0x10 + L)))
    opts=()
    [ "$L" = 5 ] && opts=(-o zeroed_grain=on)
    note "link $L (pattern $P${opts:+, zeroed_grain=on}) over chain-$((L - 1)).vmdk"
    qemu-img create -q -f vmdk "${opts[@]}" -b "chain-$((L - 1)).vmdk" -F vmdk "chain-$L.vmdk"
    cmds=(
        # unaligned, inside one grain
        "write -P $P $((L * MiB + 513 * L + 7)) $((1000 + 37 * L))"
        # across a grain boundary
        "write -P $P $((G * (20 + L) - 300 - L)) $((700 + L))"
        # over the parent's first write (the parent's data)
        "write -P $P $(((L - 1) * MiB + 513 * (L - 1) + 7 + 100)) 5000"
        # in the base's hole
        "write -P $P $((8 * MiB + L * 300000 + L)) 4097"
        # several grains, from the hole into the base's data
        "write -P $P $((12 * MiB - 100000 + L * 1111)) 200000"
    )
    if [ $((L % 2)) = 0 ]; then
        # zeros over the base's data (real zero grains: no zeroed_grain here)
        cmds+=("write -z $((16 * MiB + L * G * 3)) $((2 * G))")
    fi
    if [ "$L" = 5 ]; then
        # zeroed grains hiding the parents' data: over link 4's first write
        # and over a grain of link 2's
        cmds+=("write -z $((4 * MiB)) $((2 * G))" "write -z $((G * 22)) $G")
    fi
    if [ "$L" = 7 ]; then
        # zeroed grain of link 5 overwritten again with data, partly
        cmds+=("write -P $P $((4 * MiB + G - 10)) 20")
    fi
    if [ "$L" = "$DEPTH" ]; then
        cmds+=("write -P $P 0 33" "write -P $P $((SIZE - 777)) 777")
    fi
    qio "chain-$L.vmdk" "${cmds[@]}"
    check_top "chain-$L.vmdk" "$L"
done

# --- CID checks ------------------------------------------------------------
note "CID mismatch in a separate descriptor file (monolithicFlat base)"
pattern flat.raw $((4 * MiB)) 6
qemu-img convert -f raw -O vmdk -o subformat=monolithicFlat flat.raw flatbase.vmdk ||
    fail "qemu-img convert flat.raw failed"
qemu-img create -q -f vmdk -b flatbase.vmdk -F vmdk flatchild.vmdk
qio flatchild.vmdk "write -P 0x77 100000 70000"
vdk_ok info flatchild.vmdk
# qemu-img refuses to read through a CID mismatch, so its reference is made first
qemu-img convert -f vmdk -O raw flatchild.vmdk cid.ref.raw || fail "qemu-img convert flatchild.vmdk failed"
grep -q '^CID=' flatbase.vmdk || fail "flatbase.vmdk has no CID= line"
sed -i 's/^CID=.*/CID=1234abcd/' flatbase.vmdk
vdk_fails info flatchild.vmdk
err_has parentCID
ok "vdk info refuses the mismatch: $(cat err)"
vdk_fails clone -q -t raw flatchild.vmdk cid.raw
err_has parentCID
[ ! -e cid.raw ] || fail "vdk clone failed but left cid.raw behind"
ok "vdk clone refuses the mismatch"
vdk_ok info --ignore-cid flatchild.vmdk
ok "vdk info --ignore-cid opens it"
vdk_ok clone -q --ignore-cid -t raw flatchild.vmdk cid.raw
same_file cid.raw cid.ref.raw "vdk clone --ignore-cid vs qemu-img convert of flatchild.vmdk (before the edit)"

note "CID mismatch in the middle of the chain (embedded descriptor of link 4)"
qemu-img convert -f vmdk -O raw "chain-$DEPTH.vmdk" top.ref.raw || fail "qemu-img convert chain-$DEPTH.vmdk failed"
python3 - chain-4.vmdk <<'PY'
import re, sys
with open(sys.argv[1], "r+b") as f:
    head = f.read(65536)
    # QEMU writes the CID with %x: 1 to 8 digits; keep the length
    m = re.search(rb"\nCID=([0-9a-fA-F]{1,8})\n", head)
    if not m:
        sys.exit("no CID line in " + sys.argv[1])
    width = len(m.group(1))
    new = b"%0*x" % (width, (int(m.group(1), 16) ^ 0x5a5a5a5a) & ((1 << (4 * width)) - 1))
    f.seek(m.start(1)); f.write(new)
PY
vdk_ok info chain-4.vmdk
vdk_fails info "chain-$DEPTH.vmdk"
err_has parentCID
ok "vdk info chain-$DEPTH.vmdk refuses: $(cat err)"
vdk_ok info --json --ignore-cid "chain-$DEPTH.vmdk"
[ "$(json_get out 'j["chainDepth"]')" = "$DEPTH" ] || fail "--ignore-cid: chainDepth is not $DEPTH"
ok "vdk info --ignore-cid opens all $DEPTH links"
vdk_ok clone -q --ignore-cid -t raw "chain-$DEPTH.vmdk" top.raw
same_file top.raw top.ref.raw "vdk clone --ignore-cid vs qemu-img convert of chain-$DEPTH.vmdk (before the edit)"
# qemu-img agrees that the chain is now inconsistent
if qemu-img convert -f vmdk -O raw "chain-$DEPTH.vmdk" qemu-after.raw 2>/dev/null; then
    note "  (note: qemu-img reads through the CID mismatch)"
else
    ok "qemu-img also refuses to read chain-$DEPTH.vmdk"
fi

peers_done
