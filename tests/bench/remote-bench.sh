#!/usr/bin/env bash
# B9: remote sequential read through vdkfs against curl downloading the
# same file from the vSphere simulator (tests/vcsim), in the same run.
#   tests/bench/remote-bench.sh [BUILD_DIR]
# The file is 1 GiB of random data behind a monolithicFlat descriptor in the
# simulator's datastore (its folder is read once first, so both sides are
# served from the host's page cache); vdkfs is read with O_DIRECT, so the
# kernel's cache of the FUSE file plays no part.  Best of three runs each.
# Both sides share the machine's cores with the simulator itself.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-build}" && pwd)
vdk=$build/bin/vdk
vdkfs=$build/bin/vdkfs
dir=$(mktemp -d)
. "$src/tests/vcsim/lib.sh"
cleanup() {
    fusermount3 -u -z "$dir/m" 2>/dev/null || true
    vcsim_stop
    rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
best() { printf '%s\n' "$@" | sort -n | head -1; }

bash "$src/tests/vcsim/build.sh" "$build/vcsim" >/dev/null
VCSIM_BIN=$build/vcsim/vdk-vcsim vcsim_start "$dir" >/dev/null
echo "preparing 1 GiB of random data in the simulator's datastore..."
head -c 1G /dev/urandom >r.raw
"$vdk" clone -q -r -t monolithicFlat r.raw b.vmdk
mkdir -p "$VCSIM_DS/bench" m
mv b.vmdk b-flat.vmdk "$VCSIM_DS/bench/"
cat "$VCSIM_DS/bench/b-flat.vmdk" >/dev/null
url="$VCSIM_URL/folder/bench/b-flat.vmdk?dcPath=$VCSIM_DC&dsName=LocalDS_0"
c=() v=()
for _ in 1 2 3; do
    t0=$(now)
    curl -fsS -u "vdk:$(cat password)" -o /dev/null "$url"
    t1=$(now)
    "$vdkfs" -o "server=$VCSIM_URL,user=vdk,password_file=$dir/password" "[LocalDS_0] bench/b.vmdk" m 2>/dev/null
    t2=$(now)
    dd if=m/b/flat of=/dev/null bs=1M iflag=direct status=none
    t3=$(now)
    fusermount3 -u m
    c+=("$(secs "$t0" "$t1")") v+=("$(secs "$t2" "$t3")")
done
bc=$(best "${c[@]}") bv=$(best "${v[@]}")
printf "B9 remote sequential read 1 GiB: vdkfs %.2fs, curl %.2fs -> %.2fx curl (target >= 0.8x)\n" \
    "$bv" "$bc" "$(awk -v a="$bc" -v b="$bv" 'BEGIN { print a / b }')"
