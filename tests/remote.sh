#!/usr/bin/env bash
# The remote side end to end against VMware's vSphere simulator (govmomi's,
# built from Debian's sources by tests/vcsim): disks uploaded into its
# datastore are read through vdk and vdkfs byte for byte as qemu-img reads
# the local originals; TLS pins; snapshots, changed areas, prepare/end-access;
# backup and restore; SOAP faults, dropped and stalled connections give clear
# errors in bounded time.  The simulator lacks QueryChangedDiskAreas and
# Disable/EnableMethods: tests/vcsim answers them as vCenter does.
set -euo pipefail
vdk=$1
vdkfs=$2
src=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
mounts=()
cleanup() {
    for m in "${mounts[@]}"; do fusermount3 -u -z "$m" 2>/dev/null || true; done
    pkill -f "vdkfs .*$dir" 2>/dev/null || true
    [ -z "${hpid:-}" ] || kill "$hpid" 2>/dev/null || true
    vcsim_stop
    rm -rf "$dir"
}
# shellcheck source=vcsim/lib.sh
. "$src/tests/vcsim/lib.sh"
trap cleanup EXIT
cd "$dir"
fail() {
    [ -f vcsim.log ] && tail -5 vcsim.log | sed 's/^/vcsim.log: /' >&2
    echo "FAIL: $*" >&2
    exit 1
}
# Every remote command gets a deadline: a hang is a failure, not a stuck CI.
t() { timeout 120 "$@"; }
expect_fail() { # PATTERN CMD...: CMD fails within 60 s and says PATTERN
    local pat=$1 out rc=0
    shift
    out=$(timeout 60 "$@" 2>&1) || rc=$?
    [ $rc -ne 0 ] || fail "expected failure: $*"
    [ $rc -ne 124 ] || fail "hung (killed after 60 s): $*"
    grep -q -- "$pat" <<<"$out" || fail "'$*' said: $out (expected /$pat/)"
}

vcsim_bin=${VCSIM_BUILD:-$dir}
bash "$src/tests/vcsim/build.sh" "$vcsim_bin" >/dev/null || fail "tests/vcsim does not build"
export VCSIM_BIN=$vcsim_bin/vdk-vcsim

# --- local originals -------------------------------------------------------
python3 - <<'PY'
import os, random
random.seed(11)
with open("in.raw", "wb") as f:
    f.truncate(48 << 20)
    for off, n in [(0, 70000), (3 << 20, 6 << 20), ((20 << 20) + 17, 3000), ((48 << 20) - 4096, 4096)]:
        f.seek(off)
        f.write(os.urandom(n))
PY
mkdir -p up/sparse up/twogb up/chain
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse in.raw up/sparse/s.vmdk
qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse in.raw up/twogb/t.vmdk
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse in.raw up/chain/base.vmdk
qemu-img create -q -f vmdk -b base.vmdk -F vmdk up/chain/base-000001.vmdk
qemu-io -c 'write -P 0x61 1M 2M' -c 'write -P 0x62 30M 64k' up/chain/base-000001.vmdk >/dev/null
qemu-img create -q -f vmdk -b base-000001.vmdk -F vmdk up/chain/base-000002.vmdk
qemu-io -c 'write -P 0x63 2M 1M' -c 'write -z 40M 1M' up/chain/base-000002.vmdk >/dev/null
for f in up/sparse/s up/twogb/t up/chain/base up/chain/base-000002; do
    qemu-img convert -O raw "$f.vmdk" "$f.ref"
done

# --- plain HTTP ------------------------------------------------------------
vcsim_start "$dir" || fail "simulator did not start"
R=(--server "$VCSIM_URL" --user vdk --password-file "$dir/password")
ds='[LocalDS_0]'
t "$vdk" transports | grep -qx https || fail "transports lacks https"
expect_fail "none of the transports 'nbd:nbdssl'" "$vdk" info --transports nbd:nbdssl "${R[@]}" "$ds x.vmdk"


t "$vdk" upload -q "${R[@]}" up/sparse/s.vmdk "$ds vdk/sparse" || fail "upload sparse"
t "$vdk" upload -q "${R[@]}" up/twogb/t.vmdk "$ds vdk/twogb" || fail "upload twoGb"
for l in base base-000001 base-000002; do
    t "$vdk" upload -q "${R[@]}" "up/chain/$l.vmdk" "$ds vdk/chain" || fail "upload $l"
done
cmp -s up/twogb/t-s001.vmdk "$VCSIM_DS/vdk/twogb/t-s001.vmdk" || fail "uploaded extent differs"
t "$vdk" ls "${R[@]}" "$ds vdk/twogb" | grep -q ' t-s001.vmdk$' || fail "ls lacks t-s001.vmdk"
expect_fail "No such file" "$vdk" ls "${R[@]}" "$ds vdk/nosuchfolder"

t "$vdk" info --json --transports nbdssl:https "${R[@]}" "$ds vdk/chain/base-000002.vmdk" >info.json
python3 -c 'import json,sys; j=json.load(open("info.json")); assert j["chainDepth"]==3, j' ||
    fail "remote chain depth"
t "$vdk" clone -q -t raw "${R[@]}" "$ds vdk/twogb/t.vmdk" t.raw || fail "remote clone"
cmp -s t.raw up/twogb/t.ref || fail "remote clone of twoGb differs"

# vdkfs: the three disks read as qemu-img reads the originals
mkdir -p m1 m2 m3
t "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password" "$ds vdk/sparse/s.vmdk" m1 ||
    fail "vdkfs sparse"
mounts+=(m1)
cmp m1/s/flat up/sparse/s.ref || fail "vdkfs sparse flat differs"
grep -q "^transport: *https" m1/s/info || fail "info does not show the https transport"
VDK_PASSWORD=vdk-secret t "$vdkfs" -o "server=$VCSIM_URL,user=vdk" "$ds vdk/twogb/t.vmdk" m2 ||
    fail "vdkfs twoGb (password from VDK_PASSWORD)"
mounts+=(m2)
cmp m2/t/flat up/twogb/t.ref || fail "vdkfs twoGb flat differs"
t "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password" "$ds vdk/chain/" m3 ||
    fail "vdkfs chain folder"
mounts+=(m3)
cmp m3/base/children/base-000001/children/base-000002/flat up/chain/base-000002.ref ||
    fail "vdkfs chain leaf differs"
cmp m3/base/flat up/chain/base.ref ||
    fail "vdkfs chain base differs"
if printf x | dd of=m3/base/children/base-000001/children/base-000002/flat conv=notrunc 2>/dev/null; then
    fail "remote leaf writable without redo="
fi
for m in m1 m2 m3; do fusermount3 -u $m; done
mounts=()

# writes through a local redo log; the datastore is untouched
mkdir -p redo m4
before=$(sha1sum "$VCSIM_DS/vdk/sparse/s.vmdk")
t "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password,redo=$dir/redo" \
    "$ds vdk/sparse/s.vmdk" m4 2>/dev/null || fail "vdkfs redo"
mounts+=(m4)
leaf=m4/s/children/s-vdkredo/flat
[ -f $leaf ] || fail "no redo link at $leaf"
printf 'written-through-redo' | dd of=$leaf bs=1 seek=5000000 conv=notrunc,fsync 2>/dev/null
fusermount3 -u m4
mounts=()
[ "$before" = "$(sha1sum "$VCSIM_DS/vdk/sparse/s.vmdk")" ] || fail "redo mount wrote to the datastore"
qemu-img info redo/s-vdkredo.vmdk >/dev/null || fail "qemu-img cannot read the redo log"
cp up/sparse/s.ref expect.raw
printf 'written-through-redo' | dd of=expect.raw bs=1 seek=5000000 conv=notrunc 2>/dev/null
mkdir m5
t "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password,redo=$dir/redo,ro" \
    "$ds vdk/sparse/s.vmdk" m5 2>/dev/null || fail "vdkfs redo remount"
mounts+=(m5)
cmp m5/s/children/s-vdkredo/flat expect.raw || fail "redo log content after remount"
fusermount3 -u m5
mounts=()

# --- errors: names, credentials, config ------------------------------------
expect_fail "leaves the datastore" "$vdk" upload -q "${R[@]}" up/sparse/s.vmdk "$ds ../escape"
expect_fail "inside the datastore" "$vdk" info "${R[@]}" "$ds ../etc/x.vmdk"
expect_fail "Login failure" "$vdk" info --server "$VCSIM_URL" --user vdk \
    --password-file /dev/stdin "$ds vdk/sparse/s.vmdk" <<<"wrong"
expect_fail "no password" env -u VDK_PASSWORD "$vdk" info --server "$VCSIM_URL" --user vdk \
    "$ds vdk/sparse/s.vmdk"
expect_fail "connection refused" "$vdk" info --server http://127.0.0.1:1 --user vdk \
    --password-file "$dir/password" "$ds vdk/sparse/s.vmdk"
expect_fail "no datastore 'nosuch'" "$vdk" info "${R[@]}" "[nosuch] x.vmdk"
printf 'vdk.server = %s\nvdk.user = vdk\nvdk.passwordFile = %s\nvixDiskLib.nfc.Frobnicate = 1\n' \
    "$VCSIM_URL" "$dir/password" >good.cfg
out=$(t "$vdk" info --config good.cfg "$ds vdk/sparse/s.vmdk" 2>&1) || fail "config file: $out"
grep -q "Frobnicate.*ignored" <<<"$out" || fail "unknown config key not warned about"
printf 'vixDiskLib.nfc.ReadTimeoutMs = soon\n' >bad.cfg
expect_fail "ReadTimeoutMs wants a whole number" "$vdk" info --config bad.cfg "${R[@]}" \
    "$ds vdk/sparse/s.vmdk"

# --- an expired session: the mount logs in again ---------------------------
printf 'vixDiskLib.disklib.EnableCache = 0\n' >nocache.cfg
mkdir -p m8
t "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password,config=$dir/nocache.cfg" \
    "$ds vdk/sparse/s.vmdk" m8 2>/dev/null || fail "vdkfs for the expiry test"
mounts+=(m8)
logins=$(vcsim_ctl /vdktest/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["logins"])')
vcsim_ctl /vdktest/expire >/dev/null
cmp m8/s/flat up/sparse/s.ref || fail "reads after the session expired"
after=$(vcsim_ctl /vdktest/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["logins"])')
[ "$after" -eq $((logins + 1)) ] || fail "expected one new login after expiry, saw $((after - logins))"
fusermount3 -u m8
mounts=()

# --- dropped and stalled connections ---------------------------------------
# one drop: the read resumes and the data is right
vcsim_ctl "/vdktest/drop?after=100000&count=1" >/dev/null
t "$vdk" clone -q -t raw "${R[@]}" "$ds vdk/twogb/t.vmdk" t2.raw || fail "clone after one drop"
cmp -s t2.raw up/twogb/t.ref || fail "data after a resumed drop differs"
# drops on every try: a clear error, not a hang or crash
vcsim_ctl "/vdktest/drop?after=1000&count=1000" >/dev/null
expect_fail "dropped\|Input/output" "$vdk" clone -q -t raw "${R[@]}" "$ds vdk/chain/base.vmdk" t3.raw
vcsim_ctl /vdktest/reset >/dev/null
[ ! -e t3.raw ] || fail "failed clone left its output"
printf 'vixDiskLib.nfc.ReadTimeoutMs = 1500\nvdk.remote.Retries = 1\n' >quick.cfg
vcsim_ctl "/vdktest/stall?count=100&seconds=30" >/dev/null
start=$(date +%s)
expect_fail "timed out\|timeout\|stall" "$vdk" info --config quick.cfg "${R[@]}" "$ds vdk/sparse/s.vmdk"
[ $(($(date +%s) - start)) -lt 20 ] || fail "a stalled server held a read for 20 s"
vcsim_ctl /vdktest/reset >/dev/null
# a stalled server under vdkfs: the read fails with EIO, the daemon lives
mkdir -p m6
t "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password,config=$dir/quick.cfg" \
    "$ds vdk/sparse/s.vmdk" m6 || fail "vdkfs for the stall test"
mounts+=(m6)
vcsim_ctl "/vdktest/stall?count=100&seconds=30" >/dev/null
rc=0
timeout 60 dd if=m6/s/flat of=/dev/null bs=1M skip=40 count=4 iflag=direct 2>stall.err || rc=$?
[ $rc -ne 0 ] || fail "read from a stalled server succeeded"
[ $rc -ne 124 ] || fail "read from a stalled server hung"
vcsim_ctl /vdktest/reset >/dev/null
cmp m6/s/flat up/sparse/s.ref || fail "vdkfs did not recover after the stall"
fusermount3 -u m6
mounts=()

# --- snapshots, changed areas, prepare/end-access --------------------------
vm=$(_vcsim_json "$VCSIM_STATE" 's["vms"][0]["name"]')
vmref=$(_vcsim_json "$VCSIM_STATE" 's["vms"][0]["moref"]')
vmdir=$(_vcsim_json "$VCSIM_STATE" 's["vms"][0]["disks"][0]["file"]' | sed 's/^\[[^]]*\] //; s,/[^/]*$,,')
t "$vdk" vms "${R[@]}" "$vm" | grep -q "disk 2000" || fail "vms lacks disk 2000"
snap=$(t "$vdk" snapshot create "${R[@]}" --quiesce --description "vdk test" "$vm" backup1) ||
    fail "snapshot create"
[[ $snap == snapshot-* ]] || fail "snapshot create printed '$snap'"
t "$vdk" snapshot list --json "${R[@]}" "$vm" >snaps.json
python3 -c 'import json; s=json.load(open("snaps.json")); assert s[0]["name"]=="backup1" and s[0]["quiesced"], s' ||
    fail "snapshot list"
t "$vdk" snapshot list "${R[@]}" "/$VCSIM_DC/vm/$vm" | grep -q backup1 || fail "VM by inventory path"
t "$vdk" snapshot list "${R[@]}" "$vmref" | grep -q backup1 || fail "VM by moref"
vcsim_ctl "/vdktest/fault?method=CreateSnapshot_Task&count=1" >/dev/null
expect_fail "injected fault: CreateSnapshot_Task" "$vdk" snapshot create "${R[@]}" "$vm" x
expect_fail "no virtual machine named 'nosuch'" "$vdk" snapshot list "${R[@]}" nosuch
expect_fail "XML cannot carry" "$vdk" snapshot create "${R[@]}" "$vm" $'bad\x01name'

t "$vdk" prepare "${R[@]}" "$vm" || fail "prepare"
vcsim_ctl "/vdktest/disabled?vm=$vmref" | grep -q RelocateVM_Task || fail "prepare did not disable RelocateVM_Task"
t "$vdk" end-access "${R[@]}" "$vm" || fail "end-access"
[ "$(vcsim_ctl "/vdktest/disabled?vm=$vmref")" = "[]" ] || fail "end-access left methods disabled"

# backup: the VM's disk replaced by a known disk (the simulator's are empty)
t "$vdk" upload -q "${R[@]}" up/chain/base.vmdk "$ds $vmdir" || fail "upload base into VM folder"
cp up/chain/base.vmdk "$VCSIM_DS/$vmdir/disk1.vmdk" # the VM's backing file name
t "$vdk" backup -q "${R[@]}" --snapshot backup1 "$vm" 0 full.vmdk || fail "full backup"
qemu-img compare -q full.vmdk up/chain/base.vmdk || fail "full backup differs"
qemu-img check -q full.vmdk || fail "full backup not clean for qemu-img"
# changed areas, as the sidecar says, and an incremental backup from them
qemu-img convert -O vmdk -o subformat=monolithicSparse up/chain/base-000002.vmdk "$VCSIM_DS/$vmdir/disk1.vmdk"
cat >"$VCSIM_DS/$vmdir/disk1.vmdk.cbt.json" <<'EOF'
{"changes": {"*": [[0, 50331648]], "52 00 11 22/1": [[1048576, 3145728], [31457280, 65536], [41943040, 1048576]]}}
EOF
t "$vdk" changed --change-id '52 00 11 22/1' "${R[@]}" --snapshot backup1 "$vm" 2000 >changed.txt
[ "$(cat changed.txt)" = "$(printf '1048576 3145728\n31457280 65536\n41943040 1048576')" ] ||
    fail "changed areas: $(cat changed.txt)"
t "$vdk" changed --json --change-id '*' "${R[@]}" "$vm" 0 | grep -q '"length": 50331648' ||
    fail "changed '*'"
expect_fail "InvalidArgument\|changeId" "$vdk" changed --change-id 'nope' "${R[@]}" "$vm" 0
t "$vdk" meta full.vmdk vdk.source >/dev/null || fail "full backup lacks vdk.source"
t "$vdk" backup -q "${R[@]}" --snapshot backup1 --incremental full.vmdk --change-id '52 00 11 22/1' \
    "$vm" 0 incr.vmdk || fail "incremental backup"
qemu-img compare -q incr.vmdk up/chain/base-000002.vmdk || fail "full+incremental differs from the disk"
qemu-img check -q incr.vmdk || fail "incremental backup not clean for qemu-img"
t "$vdk" snapshot remove "${R[@]}" "$vm" backup1 || fail "snapshot remove"
t "$vdk" snapshot list --json "${R[@]}" "$vm" | python3 -c 'import json,sys; assert json.load(sys.stdin)==[]' ||
    fail "snapshot still listed after remove"

# restore the backup chain as a new vmfs disk and read it back remotely
t "$vdk" restore -q "${R[@]}" incr.vmdk "$ds restored/r.vmdk" || fail "restore"
[ -f "$VCSIM_DS/restored/r-flat.vmdk" ] || fail "restore made no r-flat.vmdk"
expect_fail "exists on the datastore" "$vdk" restore -q "${R[@]}" incr.vmdk "$ds restored/r.vmdk"
t "$vdk" restore -q -f "${R[@]}" incr.vmdk "$ds restored/r.vmdk" || fail "restore --force"
qemu-img compare -q "$VCSIM_DS/restored/r.vmdk" up/chain/base-000002.vmdk || fail "restored disk differs"
t "$vdk" clone -q -t raw "${R[@]}" "$ds restored/r.vmdk" r.raw || fail "read the restored disk"
cmp -s r.raw up/chain/base-000002.ref || fail "restored disk read remotely differs"
ls -a | grep -q '^\.vdk-restore' && fail "restore left its temporary folder"
vcsim_stop

# --- TLS -------------------------------------------------------------------
vcsim_start "$dir" -tls -cert-out "$dir/cert.pem" || fail "TLS simulator did not start"
T=(--user vdk --password-file "$dir/password")
mkdir -p "$VCSIM_DS/vdk"
cp up/sparse/s.vmdk "$VCSIM_DS/vdk/"
t "$vdk" clone -q -t raw --server "$VCSIM_URL" --thumbprint "$VCSIM_SHA1" "${T[@]}" \
    "$ds vdk/s.vmdk" s1.raw || fail "TLS with the SHA-1 thumbprint"
cmp -s s1.raw up/sparse/s.ref || fail "TLS read differs"
t "$vdk" info --server "$VCSIM_URL" --thumbprint "$(tr -d : <<<"$VCSIM_SHA256" | tr A-F a-f)" "${T[@]}" \
    "$ds vdk/s.vmdk" >/dev/null || fail "TLS with the SHA-256 thumbprint"
t "$vdk" info --server "$VCSIM_URL" --cafile "$dir/cert.pem" "${T[@]}" "$ds vdk/s.vmdk" >/dev/null ||
    fail "TLS with --cafile"
wrong=$(sed 's/^../00/' <<<"$VCSIM_SHA1")
[ "$wrong" != "$VCSIM_SHA1" ] || wrong=$(sed 's/^../11/' <<<"$VCSIM_SHA1")
expect_fail "thumbprint mismatch" "$vdk" info --server "$VCSIM_URL" --thumbprint "$wrong" "${T[@]}" \
    "$ds vdk/s.vmdk"
expect_fail "not trusted.*$VCSIM_SHA1" "$vdk" info --server "$VCSIM_URL" "${T[@]}" "$ds vdk/s.vmdk"
mkdir -p m7
expect_fail "thumbprint mismatch" "$vdkfs" -o "server=$VCSIM_URL,thumbprint=$wrong,user=vdk,password_file=$dir/password" \
    "$ds vdk/s.vmdk" m7
t "$vdkfs" -o "server=$VCSIM_URL,thumbprint=$VCSIM_SHA1,user=vdk,password_file=$dir/password" \
    "$ds vdk/s.vmdk" m7 || fail "vdkfs over TLS"
mounts+=(m7)
cmp m7/s/flat up/sparse/s.ref || fail "vdkfs over TLS differs"
fusermount3 -u m7
mounts=()
vcsim_stop

# --- a hostile endpoint: clear errors, bounded time, nothing read locally --
printf 'vixDiskLib.nfc.RequestTimeoutMs = 3000\n' >short.cfg
for m in "notxml:not well-formed XML" "empty:empty reply" "laughs:carries a DTD\\|entity" \
    "xxe:carries a DTD" "huge:too large" "wrong:without a RetrieveServiceContentResponse" \
    "bare-fault:fault without a message" "long-moref:not a vSphere API endpoint" \
    "trickle:RequestTimeoutMs\\|no progress"; do
    rm -f port
    python3 "$src/tests/helpers/hostile_soap.py" "${m%%:*}" port >/dev/null 2>&1 &
    hpid=$!
    for _ in $(seq 100); do [ -s port ] && break; sleep 0.1; done
    [ -s port ] || fail "hostile endpoint ${m%%:*} did not start"
    expect_fail "${m#*:}" "$vdk" vms --config short.cfg --server "http://127.0.0.1:$(cat port)" "${T[@]}" vm
    kill $hpid
    wait $hpid 2>/dev/null || true
    hpid=
done

# --- a plain ESXi host -----------------------------------------------------
vcsim_start "$dir" -esx || fail "ESX simulator did not start"
vm=$(_vcsim_json "$VCSIM_STATE" 's["vms"][0]["name"]')
expect_fail "needs vCenter" "$vdk" prepare --server "$VCSIM_URL" "${T[@]}" "$vm"
t "$vdk" vms --server "$VCSIM_URL" "${T[@]}" "$vm" >/dev/null || fail "vms on ESXi"
vcsim_stop
echo "remote: all passed"
