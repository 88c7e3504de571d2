#!/usr/bin/env bash
# Make the fuzz targets' seed corpora from small real images, at test time
# (no image is committed):
#
#   seeds.sh VDK MKIMAGE VDKWRITE OUTDIR
#
# OUTDIR/<target>/ gets files below 256 KiB (the campaigns' -max_len):
#   sparse, repair  qemu-img monolithicSparse (also with zeroed grains and
#                   as a child of the fuzz store's base.vmdk), the extents of
#                   twoGbMaxExtentSparse, vdk create and vdk clone output
#   stream          qemu-img and vdk streamOptimized, mkimage's VMware
#                   layout (markers, footer, end-of-stream)
#   cowd, sesparse  vdk child extents, empty and after a few writes by
#                   vdkwrite (zeros over the parent's data among them);
#                   mkimage's COWD extents (mkimage's seSparse puts its grains
#                   20 MB in, too far for a seed)
#   descriptor      the descriptors of all of these, plus a few naming the
#                   base disk the fuzz store holds
# and the malformed images of tests/corpus, by kind.
set -euo pipefail
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
vdk=$(abs "$1") mkimage=$(abs "$2") vdkwrite=$(abs "$3") out=$(abs "$4")
corpus=$(cd "$(dirname "$0")/../corpus" 2>/dev/null && pwd) || corpus=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out"/{descriptor,sparse,stream,repair,cowd,sesparse}
cd "$tmp"

# Patterned data: text (compresses), random bytes (does not), zeros between.
{ yes 'vdk fuzz seed 0123456789 abcdefghij' || true; } | head -c 262144 >text
head -c 16384 /dev/urandom >random
raw() { # FILE KiB [OFFSET_KiB LEN_KiB text|random]...
    local f=$1
    head -c $(($2 << 10)) /dev/zero >"$f"
    shift 2
    while [ $# -ge 3 ]; do
        dd if="$3" of="$f" bs=1024 seek="$1" count="$2" conv=notrunc status=none
        shift 3
    done
}
raw small.raw 1024 0 8 text 600 4 random
raw wide.raw 4096 0 16 text 1030 2 random 2048 64 text 4090 6 text
raw tiny.raw 64 0 4 text 33 1 random
cp text model.raw # vdkwrite's raw model of the disk it writes (the base's size)

# The parent the fuzz store holds (tests/fuzz/fuzz_common.c), so children
# made here open as chains there.
head -c 262144 text >base-flat.vmdk
printf '%s\n' '# Disk DescriptorFile' version=1 CID=12345678 parentCID=ffffffff \
    'createType="monolithicFlat"' '' '# Extent description' \
    'RW 512 FLAT "base-flat.vmdk" 0' '' '# The Disk Data Base' 'ddb.adapterType = "ide"' \
    >base.vmdk

q() { qemu-img "$@" -q; }
q convert -f raw -O vmdk -o subformat=monolithicSparse small.raw ms.vmdk
q convert -f raw -O vmdk -o subformat=monolithicSparse,zeroed_grain=on,adapter_type=lsilogic \
    small.raw mz.vmdk
q convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse,hwversion=6 small.raw two.vmdk
q convert -f raw -O vmdk -o subformat=streamOptimized wide.raw st.vmdk
q convert -f raw -O vmdk -o subformat=streamOptimized tiny.raw st-tiny.vmdk
q create -f vmdk -o subformat=monolithicFlat flat.vmdk 256K
q create -f vmdk -b base.vmdk -F vmdk child.vmdk
qemu-io -c 'write -P 0x5a 4k 8k' child.vmdk >/dev/null
"$vdk" create -t monolithicSparse vdk-ms.vmdk 2M
"$vdk" create -t streamOptimized vdk-st.vmdk 1M
"$vdk" clone -q -r -t monolithicSparse small.raw vdk-clone.vmdk
"$vdk" clone -q -r -t streamOptimized wide.raw vdk-clone-st.vmdk
"$vdk" child -t vmfsSparse base.vmdk vmfs-child.vmdk >/dev/null
"$vdk" child -t seSparse base.vmdk se-child.vmdk >/dev/null
"$vdk" child -t monolithicSparse base.vmdk vdk-child.vmdk >/dev/null
for t in vmfsSparse seSparse monolithicSparse; do
    "$vdk" child -t $t base.vmdk w-$t.vmdk >/dev/null
    "$vdkwrite" w-$t.vmdk model.raw 2 4
done
"$mkimage" stream wide.raw mk-st.vmdk exp
"$mkimage" stream small.raw mk-st8.vmdk exp 8
"$mkimage" cowd small.raw mk-cowd1.vmdk exp
"$mkimage" cowd wide.raw mk-cowd8.vmdk exp 8

extent_of() { # the first extent file a descriptor names
    sed -n 's/^\(RW\|RDONLY\) [0-9]* [A-Z]* "\([^"]*\)".*/\2/p' "$1" | head -1
}
seed() { # TARGET FILE...
    local t=$1 f
    shift
    for f in "$@"; do
        if [ "$(stat -c %s "$f")" -ge 262144 ]; then
            echo "seeds.sh: $f is $(stat -c %s "$f") bytes, over the 256 KiB -max_len" >&2
            exit 1
        fi
        cp "$f" "$out/$t/$(basename "$f")"
    done
}
embedded() { # the descriptor inside a sparse file (sector and count at 28, 36)
    local at n
    at=$(od -An -tu8 -j28 -N8 "$1" | tr -d ' ')
    n=$(od -An -tu8 -j36 -N8 "$1" | tr -d ' ')
    [ "$n" -gt 0 ] || return 0
    dd if="$1" bs=512 skip="$at" count="$n" status=none | tr -d '\000' >"$1.desc"
    seed descriptor "$1.desc"
}

seed sparse ms.vmdk mz.vmdk "$(extent_of two.vmdk)" child.vmdk vdk-ms.vmdk vdk-clone.vmdk \
    "$(extent_of vdk-child.vmdk)" w-monolithicSparse.vmdk
seed repair ms.vmdk mz.vmdk child.vmdk vdk-clone.vmdk "$(extent_of vdk-child.vmdk)" \
    w-monolithicSparse.vmdk
seed stream st.vmdk st-tiny.vmdk vdk-st.vmdk vdk-clone-st.vmdk mk-st.vmdk mk-st8.vmdk
seed cowd "$(extent_of vmfs-child.vmdk)" "$(extent_of w-vmfsSparse.vmdk)" mk-cowd1.vmdk \
    mk-cowd8.vmdk
seed sesparse "$(extent_of se-child.vmdk)" "$(extent_of w-seSparse.vmdk)"
for f in ms.vmdk mz.vmdk child.vmdk vdk-child.vmdk vdk-clone.vmdk st.vmdk mk-st.vmdk; do
    embedded "$f"
done
seed descriptor two.vmdk flat.vmdk vmfs-child.vmdk se-child.vmdk base.vmdk

# Descriptors over files the fuzz store holds, so they open and read.
desc() { # NAME LINE...
    local n=$1
    shift
    printf '%s\n' "$@" >"$out/descriptor/$n"
}
sed 's/"flat-flat.vmdk"/"base-flat.vmdk"/' flat.vmdk >"$out/descriptor/flat-base.vmdk"
desc split.vmdk '# Disk DescriptorFile' version=1 'CID=0000abcd' parentCID=ffffffff \
    'createType="twoGbMaxExtentFlat"' 'RW 256 FLAT "base-flat.vmdk" 0' 'RDONLY 128 ZERO' \
    'RW 256 FLAT "base-flat.vmdk" 256' 'NOACCESS 8 FLAT "missing.vmdk"' \
    'ddb.geometry.cylinders = "1"' 'ddb.geometry.heads = "16"' 'ddb.geometry.sectors = "63"'
desc child-flat.vmdk '# Disk DescriptorFile' version=1 CID=fffffffe parentCID=12345678 \
    'createType="monolithicFlat"' 'parentFileNameHint="base.vmdk"' \
    'RW 1024 FLAT "base-flat.vmdk" 0' 'ddb.adapterType = "lsilogic"'
desc ctk.vmdk '# Disk DescriptorFile' version=3 CID=1 parentCID=ffffffff 'createType="vmfs"' \
    'changeTrackPath="ctk-ctk.vmdk"' 'RW 512 VMFS "base-flat.vmdk"' \
    'ddb.virtualHWVersion = "14"' 'ddb.uuid = "60 00 C2 9a"' 'ddb.longContentID = "x"'
# The hand-built malformed images of tests/corpus, each in its target's
# corpus: they start the fuzzer next to the checks they trip.
small() { [ "$(stat -c %s "$1")" -lt 262144 ]; }
for f in ${corpus:+"$corpus"/*}; do
    n=$(basename "$f")
    case $n in
    sparse-*.vmdk) small "$f" && cp "$f" "$out/sparse/" && cp "$f" "$out/repair/" ;;
    stream-*.vmdk | qstream-*.vmdk) small "$f" && cp "$f" "$out/stream/" ;;
    cowd-* | sesparse-* | desc-* | chain-*)
        [ -d "$f" ] || continue
        for x in "$f"/*; do
            case $n:$x in
            cowd-*:*-delta.vmdk) t=cowd ;;
            sesparse-*:*-sesparse.vmdk) t=sesparse ;;
            *-flat.vmdk) continue ;;
            desc-*:*.vmdk | chain-*:*.vmdk) grep -qI . "$x" 2>/dev/null && t=descriptor || continue ;;
            *) continue ;;
            esac
            small "$x" && cp "$x" "$out/$t/$n-$(basename "$x")"
        done
        ;;
    esac
done
echo "seeds.sh: $(find "$out" -type f | wc -l) seeds in $out"
