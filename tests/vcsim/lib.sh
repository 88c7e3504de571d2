# Sourced by test scripts: start, control and stop the vSphere simulator
# test peer (tests/vcsim). Build it first with tests/vcsim/build.sh OUTDIR.
#
#   . tests/vcsim/lib.sh
#   vcsim_start "$dir" -tls -cert-out "$dir/cert.pem"   # or [flags...]
#   trap vcsim_stop EXIT
#   vcsim_ctl "/vdktest/drop?after=4096&count=1"
#
# vcsim_start OUTDIR [flags...] runs OUTDIR/vdk-vcsim (or $VCSIM_BIN) with
# -state OUTDIR/state.json, waits up to 30 s for the state file and
# exports:
#   VCSIM_PID     the process id
#   VCSIM_URL     https://127.0.0.1:PORT (or http://), no path
#   VCSIM_SDK     $VCSIM_URL/sdk
#   VCSIM_SHA1    the certificate's SHA-1 thumbprint AA:BB:... (empty without -tls)
#   VCSIM_SHA256  its SHA-256 thumbprint, same format
#   VCSIM_DS      the local folder behind datastore LocalDS_0
#   VCSIM_DC      the datacenter name (DC0; ha-datacenter with -esx)
#   VCSIM_USER    the user name (-user, default vdk)
#   VCSIM_STATE   the state file (all of it, JSON; see main.go)
# and writes the password to OUTDIR/password (mode 600, no newline). The log is
# OUTDIR/vcsim.log.

_vcsim_json() { # FILE EXPR: print a field of the state file
	python3 -c 'import json,sys
s=json.load(open(sys.argv[1]))
v=eval(sys.argv[2], {"s": s})
print("" if v is None else v)' "$1" "$2"
}

vcsim_start() {
	local dir=$1 bin user=vdk pass=vdk-secret i arg prev=
	shift
	bin=${VCSIM_BIN:-$dir/vdk-vcsim}
	for arg in "$@"; do
		case $prev in
		-user) user=$arg ;;
		-password) pass=$arg ;;
		esac
		case $arg in
		-user=*) user=${arg#-user=} ;;
		-password=*) pass=${arg#-password=} ;;
		esac
		prev=$arg
	done
	if [ ! -x "$bin" ]; then
		echo "vcsim_start: $bin missing (run tests/vcsim/build.sh $dir)" >&2
		return 1
	fi
	VCSIM_STATE=$dir/state.json
	rm -f "$VCSIM_STATE"
	"$bin" -state "$VCSIM_STATE" "$@" >"$dir/vcsim.out" 2>"$dir/vcsim.log" &
	VCSIM_PID=$!
	export VCSIM_PID VCSIM_STATE
	for i in $(seq 300); do
		[ -s "$VCSIM_STATE" ] && break
		if ! kill -0 "$VCSIM_PID" 2>/dev/null; then
			echo "vcsim_start: vdk-vcsim exited:" >&2
			cat "$dir/vcsim.log" >&2
			unset VCSIM_PID
			return 1
		fi
		sleep 0.1
	done
	if [ ! -s "$VCSIM_STATE" ]; then
		echo "vcsim_start: no state file after 30 s" >&2
		vcsim_stop
		return 1
	fi
	VCSIM_URL=$(_vcsim_json "$VCSIM_STATE" 's["url"]')
	VCSIM_SDK=$(_vcsim_json "$VCSIM_STATE" 's["sdk"]')
	VCSIM_SHA1=$(_vcsim_json "$VCSIM_STATE" 's["sha1"]')
	VCSIM_SHA256=$(_vcsim_json "$VCSIM_STATE" 's["sha256"]')
	VCSIM_DS=$(_vcsim_json "$VCSIM_STATE" 's["datastores"].get("LocalDS_0")')
	VCSIM_DC=$(_vcsim_json "$VCSIM_STATE" 's["datacenter"]')
	VCSIM_USER=$user
	export VCSIM_URL VCSIM_SDK VCSIM_SHA1 VCSIM_SHA256 VCSIM_DS VCSIM_DC VCSIM_USER
	(umask 077 && printf '%s' "$pass" >"$dir/password")
	chmod 600 "$dir/password"
}

vcsim_stop() {
	if [ -n "${VCSIM_PID:-}" ]; then
		kill "$VCSIM_PID" 2>/dev/null || true
		wait "$VCSIM_PID" 2>/dev/null || true
		unset VCSIM_PID
	fi
}

# vcsim_ctl PATH: GET a control endpoint (/vdktest/...), print the answer;
# fails on an HTTP error.
vcsim_ctl() {
	curl -fsS -k --max-time 30 "$VCSIM_URL$1"
}
