#!/usr/bin/env bash
# vdk info --json against qemu-img info --output=json and vmdkinfo: capacity,
# createType, CID and parentCID, extents (count, files, types, sizes) and the
# parent of children made with 'qemu-img create -b'.
#
# Usage: info.sh PATH/TO/vdk
set -euo pipefail
source "$(dirname "$0")/lib.sh"
peers_init "$@"

MiB=$((1 << 20))
GiB=$((1 << 30))

# compare_info VMDK CREATETYPE [PARENT]: the three tools agree about VMDK;
# its create type is CREATETYPE and its parent (if any) PARENT.
compare_info() {
    local v=$1
    vdk_ok info --json "$v"
    cp out "$v.vdk.json"
    qemu-img info -f vmdk --output=json "$v" >"$v.qemu.json" || fail "qemu-img info $v failed"
    vmdkinfo "$v" >"$v.vmdkinfo" 2>&1 || {
        cat "$v.vmdkinfo" >&2
        fail "vmdkinfo $v failed"
    }
    python3 - "$v" "$2" "${3:-}" "$PEERS_NAME" <<'PY' || fail "vdk info $v disagrees with its peers (see above)"
import json, re, sys
v, want_type, want_parent, name = sys.argv[1:5]
vdk = json.load(open(v + ".vdk.json"))
qemu = json.load(open(v + ".qemu.json"))
qd = qemu["format-specific"]["data"]
text = open(v + ".vmdkinfo").read()
head, _, ext_text = text.partition("\nExtent: 1\n")

def field(label, s=head):
    m = re.search(r"^\s*" + re.escape(label) + r":\s*(.*)$", s, re.M)
    return m.group(1).strip() if m else None

def nbytes(s):
    m = re.search(r"\((\d+) bytes\)", s or "")
    return int(m.group(1)) if m else None

errors = []
def same(what, got, *peers):
    for peer, want in peers:
        if got != want:
            errors.append("%s: vdk says %r, %s says %r" % (what, got, peer, want))

same("createType", vdk["createType"], ("the test", want_type), ("qemu-img", qd["create-type"]))
vmdkinfo_types = {"monolithicSparse": "Monolithic sparse", "monolithicFlat": "Monolithic flat",
                  "twoGbMaxExtentSparse": "2GB extent sparse",
                  "twoGbMaxExtentFlat": "2GB extent flat", "streamOptimized": "Stream optimized"}
same("createType (vmdkinfo's name)", vmdkinfo_types.get(vdk["createType"]),
     ("vmdkinfo", field("Disk type")))
same("capacity", vdk["capacity"], ("qemu-img", qemu["virtual-size"]),
     ("vmdkinfo", nbytes(field("Media size"))))
same("CID", int(vdk["cid"], 16), ("qemu-img", qd["cid"]),
     ("vmdkinfo", int(field("Content identifier"), 16)))
same("parentCID", int(vdk["parentCid"], 16), ("qemu-img", qd["parent-cid"]),
     ("vmdkinfo", int(field("Parent content identifier"), 16)))
same("parent", vdk["parent"], ("the test", want_parent or None),
     ("qemu-img", qemu.get("backing-filename")), ("vmdkinfo", field("Parent filename")))
same("chainDepth", vdk["chainDepth"], ("the test", len(vdk["chain"])))

# extents: qemu-img lists a monolithic sparse disk's own file as its extent,
# vmdkinfo and vdk name the extent files of the descriptor
vx = vdk["extents"]
same("number of extents", len(vx), ("qemu-img", len(qd["extents"])),
     ("vmdkinfo", int(field("Number of extents"))))
vmdkinfo_x = re.split(r"\nExtent: \d+\n", "\n" + "Extent: 1\n" + ext_text)[1:]
for i, x in enumerate(vx):
    what = "extent %d" % (i + 1)
    same(what + " bytes", x["sectors"] * 512,
         ("qemu-img", qd["extents"][i]["virtual-size"] if i < len(qd["extents"]) else None),
         ("vmdkinfo", nbytes(field("Size", vmdkinfo_x[i])) if i < len(vmdkinfo_x) else None))
    same(what + " file", x["file"],
         ("qemu-img", qd["extents"][i]["filename"].rsplit("/", 1)[-1] if i < len(qd["extents"]) else None),
         ("vmdkinfo", field("Filename", vmdkinfo_x[i]) if i < len(vmdkinfo_x) else None))
    same(what + " type", x["type"].lower(),
         ("vmdkinfo", (field("Type", vmdkinfo_x[i]) or "").lower() if i < len(vmdkinfo_x) else None))
same("sum of extent sizes", sum(x["sectors"] for x in vx) * 512, ("capacity", vdk["capacity"]))

if errors:
    for e in errors:
        print("  " + e, file=sys.stderr)
    sys.exit(1)
print("[%s]   ok: %s: %s, %d bytes, CID %s, %d extent(s)%s" % (
    name, v, vdk["createType"], vdk["capacity"], vdk["cid"], len(vx),
    ", parent " + vdk["parent"] if vdk["parent"] else ""))
PY
    # the text output works too and shows the same capacity
    vdk_ok info "$v"
    grep -q "^capacity: *$(json_get "$v.vdk.json" 'j["capacity"]') bytes" out ||
        fail "vdk info $v (text): no 'capacity: N bytes' line matching --json: $(cat out)"
}

note "making a patterned 64 MiB raw disk and a 5 GiB sparse one"
pattern src.raw $((64 * MiB)) 2
truncate -s $((5 * GiB)) big.raw
put_random big.raw $((2 * GiB - 4096)) $((1 * MiB)) 21
# an odd capacity: not a multiple of a grain (qemu rounds up to a sector)
pattern odd.raw $((3 * MiB)) 3
truncate -s $((3 * MiB + 7 * 512)) odd.raw

for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
    streamOptimized; do
    note "subformat=$sub"
    qemu-img convert -f raw -O vmdk -o subformat=$sub src.raw "$sub.vmdk"
    compare_info "$sub.vmdk" "$sub"
    qemu-img convert -f raw -O vmdk -o subformat=$sub odd.raw "odd-$sub.vmdk"
    compare_info "odd-$sub.vmdk" "$sub"
done

note "monolithicSparse with zeroed grains"
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse,zeroed_grain=on src.raw zg.vmdk
qemu-io -f vmdk -c "write -z $((4 * MiB)) $((1 * MiB))" zg.vmdk >/dev/null
compare_info zg.vmdk monolithicSparse

for sub in twoGbMaxExtentSparse twoGbMaxExtentFlat; do
    note "5 GiB $sub (several extents)"
    qemu-img convert -f raw -O vmdk -o subformat=$sub big.raw "big-$sub.vmdk"
    compare_info "big-$sub.vmdk" "$sub"
done

note "children made with qemu-img create -b"
qemu-img create -q -f vmdk -b monolithicSparse.vmdk -F vmdk child1.vmdk
compare_info child1.vmdk monolithicSparse monolithicSparse.vmdk
qemu-io -f vmdk -c "write -P 0x42 12345 100000" child1.vmdk >/dev/null
qemu-img create -q -f vmdk -b child1.vmdk -F vmdk child2.vmdk
compare_info child2.vmdk monolithicSparse child1.vmdk
[ "$(json_get child2.vmdk.vdk.json 'j["chainDepth"]')" = 3 ] ||
    fail "vdk info child2.vmdk: chainDepth is not 3"
ok "child2.vmdk: chainDepth 3"
qemu-img create -q -f vmdk -b twoGbMaxExtentFlat.vmdk -F vmdk child-of-flat.vmdk
compare_info child-of-flat.vmdk monolithicSparse twoGbMaxExtentFlat.vmdk
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse -b big-twoGbMaxExtentFlat.vmdk \
    -F vmdk big-child.vmdk
compare_info big-child.vmdk twoGbMaxExtentSparse big-twoGbMaxExtentFlat.vmdk
# a child in a subfolder whose parent is reached through "../" is outside the
# child's folder, which vdk refuses by design; a parent in the same folder
# tree (a subfolder) is fine
mkdir -p sub
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse odd.raw sub/base.vmdk
qemu-img create -q -f vmdk -b sub/base.vmdk -F vmdk child-sub.vmdk
compare_info child-sub.vmdk monolithicSparse sub/base.vmdk

peers_done
