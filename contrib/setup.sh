#!/usr/bin/env bash
# Set up a fresh Debian machine for vdk and run the demo or the test suite.
#
#   contrib/setup.sh demo   install what is missing, build, show a demo disk
#   contrib/setup.sh test   install what is missing, build, run every test
#                           (once normally, once under ASan+UBSan, then
#                           short libFuzzer campaigns in a clang build)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
demo | test) ;;
*)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac

build_pkgs=(build-essential cmake pkg-config zlib1g-dev libfuse3-dev fuse3 libssl-dev
    libcurl4-openssl-dev libxml2-dev qemu-utils)
test_pkgs=(libcriterion-dev libvmdk-utils fio e2fsprogs fuse2fs python3 clang-format attr
    clang libclang-rt-14-dev valgrind curl golang-go golang-github-vmware-govmomi-dev pigz)

sudo=
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi

install_missing() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

jobs=$(nproc 2>/dev/null || echo 2)

build() { # dir, extra cmake args...
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

if [ "$mode" = demo ]; then
    install_missing "${build_pkgs[@]}"
    build build -DVDK_TESTS=OFF
    demo=build/demo
    rm -rf "$demo"
    mkdir -p "$demo"
    # A small disk with a recognisable layout: text, zeros, random bytes.
    {
        printf 'vdk demo disk\n%.0s' {1..4096}
        head -c $((4 << 20)) /dev/zero
        head -c $((2 << 20)) /dev/urandom
    } >"$demo/demo.raw"
    qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$demo/demo.raw" "$demo/demo.vmdk"
    qemu-img create -q -f vmdk -b demo.vmdk -F vmdk "$demo/demo-000001.vmdk"
    qemu-io -c 'write -P 0x5a 1M 64k' "$demo/demo-000001.vmdk" >/dev/null
    echo "== vdk info $demo/demo-000001.vmdk"
    build/bin/vdk info "$demo/demo-000001.vmdk"
    mnt=$demo/mnt
    mkdir -p "$mnt"
    if build/bin/vdkfs "$demo/demo-000001.vmdk" "$mnt"; then
        trap 'fusermount3 -u "$mnt" 2>/dev/null || true' EXIT
        echo
        echo "== vdkfs mounted the chain at $mnt:"
        (cd "$mnt" && find . -maxdepth 5 | sort | sed 's/^\.\///' | grep -v '^\.$')
        echo
        echo "== cat $mnt/demo/metadata/adapterType"
        cat "$mnt/demo/metadata/adapterType"
        echo "== the snapshot link's flat, first line:"
        head -c 14 "$mnt/demo/children/demo-000001/flat"
        echo
        echo "== SEEK_DATA/SEEK_HOLE: cp --sparse=always copies only the data"
        cp --sparse=always "$mnt/demo/children/demo-000001/flat" "$demo/demo-flat.raw"
        ls -ls "$demo/demo-flat.raw"
        fusermount3 -u "$mnt"
        trap - EXIT
        echo "== unmounted; try it yourself: build/bin/vdkfs $demo/demo-000001.vmdk $mnt"
    else
        echo "(vdkfs could not mount: is /dev/fuse available?)"
        build/bin/vdk clone -q -t raw "$demo/demo-000001.vmdk" "$demo/demo-flat.raw"
    fi
    exit 0
fi

install_missing "${build_pkgs[@]}" "${test_pkgs[@]}"
build build -DVDK_TESTS=ON
(cd build && ctest --no-tests=error --output-on-failure -j "$jobs")
build build-asan -DVDK_TESTS=ON -DVDK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --no-tests=error --output-on-failure -j "$jobs")
# libFuzzer campaigns on the format parsers (20 s per target, two at a time).
build build-fuzz -DVDK_TESTS=OFF -DVDK_FUZZ=ON -DCMAKE_C_COMPILER=clang
(cd build-fuzz && ctest -L fuzz --no-tests=error --output-on-failure -j "$jobs")
echo "setup: all tests passed (plain, ASan+UBSan and fuzz builds)"
