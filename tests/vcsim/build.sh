#!/bin/sh
# Build the vSphere simulator test peer offline: tests/vcsim/build.sh OUTDIR
# makes OUTDIR/vdk-vcsim from Debian's golang-go and
# golang-github-vmware-govmomi-dev (GOPATH mode, no network). It rebuilds
# only when a .go file here is newer than the binary.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
bin=$out/vdk-vcsim
gopath=/usr/share/gocode

if ! command -v go >/dev/null 2>&1; then
	echo "$0: go not found (apt-get install golang-go)" >&2
	exit 1
fi
if [ ! -f "$gopath/src/github.com/vmware/govmomi/simulator/simulator.go" ]; then
	echo "$0: govmomi sources missing in $gopath (apt-get install golang-github-vmware-govmomi-dev)" >&2
	exit 1
fi

if [ -x "$bin" ] && [ -z "$(find "$here" -maxdepth 1 -name '*.go' -newer "$bin")" ]; then
	exit 0
fi

cd "$here"
GOPATH=$gopath GO111MODULE=off GOFLAGS= GOCACHE=$out/gocache \
	go build -o "$bin.tmp" . || { rm -f "$bin.tmp"; echo "$0: go build failed" >&2; exit 1; }
mv -f "$bin.tmp" "$bin"
