#!/usr/bin/env bash
# The command line's contract on bad usage and bad disks: exit statuses, one
# clear line on stderr, extents and parents confined to the disk's folder tree,
# parent loops, and no crash (exit status >= 128) on damaged input.
#
# Usage: errors.sh PATH/TO/vdk
set -euo pipefail
source "$(dirname "$0")/lib.sh"
peers_init "$@"

MiB=$((1 << 20))

# descriptor FILE CREATETYPE EXTENT_LINE [CID PARENTCID PARENT_HINT]
descriptor() {
    {
        echo "# Disk DescriptorFile"
        echo "version=1"
        echo "CID=${4:-fffffffe}"
        echo "parentCID=${5:-ffffffff}"
        echo "createType=\"$2\""
        [ -z "${6:-}" ] || echo "parentFileNameHint=\"$6\""
        echo
        echo "# Extent description"
        echo "$3"
        echo
        echo "# The Disk Data Base"
        echo "#DDB"
        echo
        echo 'ddb.virtualHWVersion = "4"'
        echo 'ddb.geometry.cylinders = "2"'
        echo 'ddb.geometry.heads = "16"'
        echo 'ddb.geometry.sectors = "63"'
        echo 'ddb.adapterType = "ide"'
    } >"$1"
}

# --- usage -----------------------------------------------------------------
note "usage errors"
vdk_run frobnicate
[ "$VRC" = 2 ] || fail "vdk frobnicate: exit status $VRC, expected 2"
ok "unknown command: exit 2 ($(cat err))"
vdk_run
[ "$VRC" = 2 ] || fail "vdk without a command: exit status $VRC, expected 2"
ok "no command: exit 2"

vdk_fails info
[ "$(wc -l <err)" = 1 ] || fail "vdk info without DISK: expected one line on stderr, got: $(cat err)"
ok "vdk info without DISK: status $VRC, one line: $(cat err)"
vdk_fails info a.vmdk b.vmdk
[ "$(wc -l <err)" = 1 ] || fail "vdk info with two disks: expected one line on stderr, got: $(cat err)"
ok "vdk info with two disks: status $VRC"

vdk_fails info no-such-disk.vmdk
err_has no-such-disk.vmdk
[ "$(wc -l <err)" = 1 ] || fail "vdk info of a missing file: expected one line on stderr, got: $(cat err)"
ok "missing file: status $VRC: $(cat err)"
for cmd in map meta; do
    vdk_fails $cmd no-such-disk.vmdk
    err_has no-such-disk.vmdk
done
vdk_fails clone -q -t raw no-such-disk.vmdk out.raw
err_has no-such-disk.vmdk
[ ! -e out.raw ] || fail "vdk clone of a missing disk created out.raw"
ok "map, meta and clone name the missing file too"

for cmd in info map meta clone convert; do
    vdk_run $cmd --help
    [ "$VRC" = 0 ] || fail "vdk $cmd --help: exit status $VRC"
    grep -q '^Usage' out || fail "vdk $cmd --help prints no Usage line"
done
ok "every command's --help exits 0 with a Usage line"
vdk_run --help
[ "$VRC" = 0 ] || fail "vdk --help: exit status $VRC"
grep -q '^Usage' out || fail "vdk --help prints no Usage line"
vdk_run info --no-such-option x.vmdk
[ "$VRC" = 2 ] || fail "vdk info --no-such-option: exit status $VRC, expected 2"
ok "unknown option: exit 2"

qemu-img create -q -f vmdk small.vmdk 1M
vdk_fails clone -q -t qcow2 small.vmdk out.qcow2
err_has qcow2
[ ! -e out.qcow2 ] || fail "vdk clone -t qcow2 failed but created out.qcow2"
ok "clone to an unknown type: status $VRC ($(cat err))"
vdk_run clone -q -t raw small.vmdk
[ "$VRC" = 2 ] || fail "vdk clone without OUTPUT: exit status $VRC, expected 2"
ok "clone without OUTPUT: exit 2"
vdk_fails meta small.vmdk no.such.key
ok "meta of a missing key: status $VRC"

# --- extents must stay inside the disk's folder ----------------------------
note "extent paths that leave the disk's folder"
mkdir -p disk/sub
truncate -s $MiB outside.raw
truncate -s $MiB disk/inside.raw
truncate -s $MiB disk/sub/deeper.raw
descriptor disk/good.vmdk monolithicFlat 'RW 2048 FLAT "inside.raw" 0'
vdk_ok info disk/good.vmdk
descriptor disk/good-sub.vmdk monolithicFlat 'RW 2048 FLAT "sub/deeper.raw" 0'
vdk_ok info disk/good-sub.vmdk
ok "control: extents in the folder and in a subfolder open"

refused() { # refused VMDK WHAT: info, map and clone all refuse, saying "outside"
    vdk_fails info "$1"
    err_has outside
    vdk_fails map "$1"
    err_has outside
    rm -f escaped.raw
    vdk_fails clone -q -t raw "$1" escaped.raw
    err_has outside
    [ ! -e escaped.raw ] || fail "vdk clone of $1 failed but created its output"
    ok "$2: refused ($(cat err))"
}
descriptor disk/dotdot.vmdk monolithicFlat 'RW 2048 FLAT "../outside.raw" 0'
refused disk/dotdot.vmdk '"../outside.raw"'
descriptor disk/dotdot2.vmdk monolithicFlat 'RW 2048 FLAT "sub/../../outside.raw" 0'
refused disk/dotdot2.vmdk '"sub/../../outside.raw"'
descriptor disk/abs.vmdk monolithicFlat 'RW 2048 FLAT "/etc/passwd" 0'
refused disk/abs.vmdk '"/etc/passwd"'
descriptor disk/abs2.vmdk monolithicFlat "RW 2048 FLAT \"$WORK/outside.raw\" 0"
refused disk/abs2.vmdk "the absolute path of a file outside"

ln -s ../outside.raw disk/link.raw
descriptor disk/symlink.vmdk monolithicFlat 'RW 2048 FLAT "link.raw" 0'
vdk_fails info disk/symlink.vmdk
err_has outside
ok "a symlink in the folder to a file outside: refused ($(cat err))"
ln -s "$WORK" disk/up
descriptor disk/symdir.vmdk monolithicFlat 'RW 2048 FLAT "up/outside.raw" 0'
vdk_fails info disk/symdir.vmdk
err_has outside
ok "a symlinked folder leading outside: refused ($(cat err))"

# a parent outside the child's folder is refused the same way
qemu-img create -q -f vmdk parent.vmdk 1M
qemu-img create -q -f vmdk -b ../parent.vmdk -F vmdk disk/child.vmdk
vdk_fails info disk/child.vmdk
err_has outside
ok "parentFileNameHint=\"../parent.vmdk\": refused ($(cat err))"

# --- parent loops ----------------------------------------------------------
note "parentFileNameHint loops"
mkdir loop
truncate -s $MiB loop/a.raw loop/b.raw loop/c.raw loop/s.raw
descriptor loop/a.vmdk monolithicFlat 'RW 2048 FLAT "a.raw" 0' aaaaaaaa bbbbbbbb b.vmdk
descriptor loop/b.vmdk monolithicFlat 'RW 2048 FLAT "b.raw" 0' bbbbbbbb aaaaaaaa a.vmdk
for cmd in info map; do
    vdk_fails $cmd loop/a.vmdk
    err_has loop
    vdk_fails $cmd --ignore-cid loop/b.vmdk
    err_has loop
done
vdk_fails clone -q -t raw loop/a.vmdk loop.raw
err_has loop
ok "a.vmdk -> b.vmdk -> a.vmdk: refused ($(cat err))"
descriptor loop/s.vmdk monolithicFlat 'RW 2048 FLAT "s.raw" 0' 12345678 12345678 s.vmdk
vdk_fails info loop/s.vmdk
err_has loop
ok "s.vmdk -> s.vmdk: refused ($(cat err))"
descriptor loop/a.vmdk monolithicFlat 'RW 2048 FLAT "a.raw" 0' aaaaaaaa bbbbbbbb b.vmdk
descriptor loop/b.vmdk monolithicFlat 'RW 2048 FLAT "b.raw" 0' bbbbbbbb cccccccc c.vmdk
descriptor loop/c.vmdk monolithicFlat 'RW 2048 FLAT "c.raw" 0' cccccccc aaaaaaaa ./a.vmdk
vdk_fails info loop/a.vmdk
err_has loop
ok "a.vmdk -> b.vmdk -> c.vmdk -> ./a.vmdk: refused ($(cat err))"
# control: the same chain without the loop opens
descriptor loop/c.vmdk monolithicFlat 'RW 2048 FLAT "c.raw" 0' cccccccc ffffffff
vdk_ok info --json loop/a.vmdk
[ "$(json_get out 'j["chainDepth"]')" = 3 ] || fail "control chain a -> b -> c: chainDepth is not 3"
ok "control: a.vmdk -> b.vmdk -> c.vmdk opens with 3 links"

# --- damaged disks: clean errors, no crash ----------------------------------
note "damaged disks (no crash)"
pattern d.raw $((4 * MiB)) 9
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse d.raw good.vmdk
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized d.raw good-so.vmdk
# damage KIND SRC DST: a copy of SRC with one kind of damage
damage() {
    python3 - "$@" <<'PY'
import shutil, struct, sys
kind, src, dst = sys.argv[1:4]
shutil.copyfile(src, dst)
with open(dst, "r+b") as f:
    def put(off, fmt, v):
        f.seek(off); f.write(struct.pack("<" + fmt, v))
    if kind == "truncated": f.truncate(1000)
    elif kind == "empty": f.truncate(0)
    elif kind == "half": f.truncate(f.seek(0, 2) // 2)
    elif kind == "magic": put(0, "I", 0x12345678)
    elif kind == "grain0": put(20, "Q", 0)
    elif kind == "grain3": put(20, "Q", 3)
    elif kind == "grainhuge": put(20, "Q", 1 << 40)
    elif kind == "capacityhuge": put(12, "Q", 1 << 62)
    elif kind == "gtes0": put(44, "I", 0)
    elif kind == "gteshuge": put(44, "I", 0xFFFFFFFF)
    elif kind == "gdbeyond": put(56, "Q", 1 << 40); put(48, "Q", 1 << 40)
    elif kind == "descbeyond": put(28, "Q", 1 << 40)
    elif kind == "deschuge": put(36, "Q", 1 << 50)
    elif kind == "compress": put(77, "H", 7)
    elif kind == "version": put(4, "I", 99)
    elif kind in ("gtbeyond", "gtebeyond", "gteloop"):
        f.seek(56); gd = struct.unpack("<Q", f.read(8))[0]
        if gd == (1 << 64) - 1:  # streamOptimized: the footer has it
            f.seek(f.seek(0, 2) - 1024 + 56); gd = struct.unpack("<Q", f.read(8))[0]
        f.seek(gd * 512); gt = struct.unpack("<I", f.read(4))[0]
        if kind == "gtbeyond":
            put(gd * 512, "I", 0xFFFFFFF0)
        elif kind == "gtebeyond":
            for i in range(512): put(gt * 512 + 4 * i, "I", 0xFFFFFF00 - i * 128)
        else:  # every grain entry points at the header
            for i in range(512): put(gt * 512 + 4 * i, "I", 1)
    elif kind == "garbage":
        import random
        f.seek(0); f.write(random.Random(7).randbytes(65536))
    else:
        sys.exit("unknown damage " + kind)
PY
}
n=0
nok=0
for kind in truncated empty half magic grain0 grain3 grainhuge capacityhuge gtes0 gteshuge \
    gdbeyond descbeyond deschuge compress version gtbeyond gtebeyond gteloop garbage; do
    for src in good.vmdk good-so.vmdk; do
        dst="bad-$kind-${src%.vmdk}.vmdk"
        damage "$kind" "$src" "$dst" || fail "could not make $dst"
        for cmd in "info --json" "map --json" "meta"; do
            # shellcheck disable=SC2086  # $cmd is a command and its option
            vdk_run $cmd "$dst"
            [ "$VRC" = 0 ] || [ -s err ] || fail "vdk $cmd $dst failed ($VRC) with nothing on stderr"
        done
        rm -f bad.raw
        vdk_run clone -q -t raw "$dst" bad.raw
        if [ "$VRC" = 0 ]; then
            nok=$((nok + 1))
        else
            [ -s err ] || fail "vdk clone $dst failed ($VRC) with nothing on stderr"
            [ ! -e bad.raw ] || fail "vdk clone $dst failed ($VRC) but left bad.raw behind"
        fi
        n=$((n + 1))
    done
done
ok "$n damaged disks: info, map, meta and clone end cleanly (no status >= 128); $nok of them clone"

peers_done
