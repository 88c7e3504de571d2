# Shared helpers of the peer tests (sourced, not run).
#
# A script does:
#     source "$(dirname "$0")/lib.sh"
#     peers_init "$@"        # checks $1 (the vdk binary) and the peers, makes $WORK
# and then uses the helpers below.  Every helper fails the test (exit 1, with a
# message naming what was checked) on a mismatch.

PEERS_NAME=$(basename "$0" .sh)
PEERS_T0=$SECONDS

fail() {
    echo "FAIL [$PEERS_NAME]: $*" >&2
    exit 1
}

note() {
    echo "[$PEERS_NAME] $*"
}

ok() {
    echo "[$PEERS_NAME]   ok: $*"
}

# peers_init VDK: checks the arguments and tools, creates the scratch folder
# $WORK (removed on exit, also on failure) and cds into it.
peers_init() {
    [ $# -ge 1 ] || fail "usage: $0 PATH/TO/vdk"
    VDK=$(readlink -f "$1")
    [ -x "$VDK" ] || fail "vdk binary '$1' is not executable"
    local t
    for t in qemu-img qemu-io vmdkinfo python3 cmp; do
        # a missing peer is a failure, not a skip: a skipped test would hide a
        # missing install step (contrib/setup.sh installs them all)
        command -v "$t" >/dev/null 2>&1 ||
            fail "'$t' is not installed (qemu-utils, libvmdk-utils, python3: see contrib/setup.sh)"
    done
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/vdk-peers-$PEERS_NAME.XXXXXX")
    # shellcheck disable=SC2154  # peers_rc is set inside the trap
    trap 'peers_rc=$?; rm -rf "$WORK"; exit $peers_rc' EXIT
    trap 'exit 130' INT TERM
    cd "$WORK" || fail "cannot enter $WORK"
    note "vdk: $VDK"
    note "work: $WORK"
}

# peers_done: the closing line with the run time.
peers_done() {
    note "PASS ($((SECONDS - PEERS_T0)) s)"
}

# vdk_run ARGS...: runs vdk with stdout to $WORK/out, stderr to $WORK/err;
# sets VRC to the exit status.  A status >= 128 (a signal: a crash, an abort,
# a sanitizer trap) fails the test at once.
vdk_run() {
    VRC=0
    "$VDK" "$@" >"$WORK/out" 2>"$WORK/err" || VRC=$?
    if [ "$VRC" -ge 128 ]; then
        cat "$WORK/err" >&2
        fail "vdk $* crashed (exit status $VRC)"
    fi
    # a sanitizer build (VDK_SANITIZE=ON) reports with status 1: a crash too
    if grep -qE 'ERROR: [A-Za-z]+Sanitizer|runtime error: ' "$WORK/err"; then
        cat "$WORK/err" >&2
        fail "vdk $* hit a sanitizer error (exit status $VRC)"
    fi
    return 0
}

# vdk_ok ARGS...: vdk must succeed.
vdk_ok() {
    vdk_run "$@"
    if [ "$VRC" -ne 0 ]; then
        cat "$WORK/err" >&2
        fail "vdk $* failed with exit status $VRC"
    fi
}

# vdk_fails ARGS...: vdk must fail cleanly (1..127) and say why on stderr.
vdk_fails() {
    vdk_run "$@"
    [ "$VRC" -ne 0 ] || fail "vdk $* succeeded; it should have failed"
    [ -s "$WORK/err" ] || fail "vdk $* failed (status $VRC) with nothing on stderr"
}

# err_has TEXT: the last vdk run's stderr contains TEXT (case-insensitive).
err_has() {
    grep -qiF -- "$1" "$WORK/err" ||
        fail "stderr of the last vdk run lacks '$1'; it was: $(cat "$WORK/err")"
}

# files_equal A B: status 0 if the files are byte-identical, else 1 with the
# first difference on stdout.  Small files go through cmp; files of 1 GiB or
# more (sparse outputs of multi-GiB disks) through sparse_cmp, which reads the
# same bytes as cmp except ranges that are holes in both files.
files_equal() {
    local sa sb
    sa=$(stat -c %s "$1")
    sb=$(stat -c %s "$2")
    if [ "$sa" != "$sb" ]; then
        echo "$1 has $sa bytes, $2 has $sb"
        return 1
    fi
    if [ "$sa" -lt $((1 << 30)) ]; then
        cmp -- "$1" "$2" 2>&1
    else
        sparse_cmp "$1" "$2" 2>&1
    fi
}

# same_file A B WHAT: byte-identical files, or the test fails.
same_file() {
    local where
    where=$(files_equal "$1" "$2") || fail "$3: $where"
    ok "$3: identical ($(stat -c %s "$1") bytes)"
}

# sparse_cmp A B: like cmp for two files of the same size, but ranges that are
# holes in both files are known to be equal (zeros) and are not read.
sparse_cmp() {
    python3 - "$1" "$2" <<'PY'
import errno, os, sys
def data_segments(fd, size):
    segs, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        segs.append((start, end))
        pos = end
    return segs
fa, fb = (os.open(p, os.O_RDONLY) for p in sys.argv[1:3])
size = os.fstat(fa).st_size
segs = sorted(data_segments(fa, size) + data_segments(fb, size))
union = []
for s, e in segs:
    if union and union[-1][1] >= s:
        union[-1][1] = max(union[-1][1], e)
    else:
        union.append([s, e])
for s, e in union:
    pos = s
    while pos < e:
        n = min(e - pos, 1 << 20)
        a, b = os.pread(fa, n, pos), os.pread(fb, n, pos)
        if a != b:
            i = next(k for k in range(min(len(a), len(b))) if a[k] != b[k]) if len(a) == len(b) else 0
            print("%s %s differ: byte %d" % (sys.argv[1], sys.argv[2], pos + i + 1))
            sys.exit(1)
        pos += n
PY
}

# pattern RAW SIZE SEED: a raw file of SIZE bytes (a multiple of 1 MiB) made of
# pieces of random data, explicit zeros, holes, repeated bytes and text, with
# piece boundaries at odd offsets (not sector or grain aligned).  The same SEED
# gives the same file.
pattern() {
    python3 - "$@" <<'PY'
import os, random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
text = (b"The quick brown fox jumps over the lazy dog. vdk peer test %d\n" % seed) * 37
with open(path, "wb") as f:
    f.truncate(size)
    pos = 0
    kinds = ["random", "zeros", "hole", "byte", "text", "random", "hole"]
    while pos < size:
        # piece lengths from a few bytes to ~1.5 MiB, rarely aligned
        n = rng.choice([rng.randint(1, 700), rng.randint(512, 70000),
                        rng.randint(60000, 1600000)])
        n = min(n, size - pos)
        kind = rng.choice(kinds)
        f.seek(pos)
        if kind == "random":
            f.write(rng.randbytes(n))
        elif kind == "zeros":
            f.write(bytes(n))
        elif kind == "byte":
            f.write(bytes([rng.randint(1, 255)]) * n)
        elif kind == "text":
            f.write((text * (n // len(text) + 1))[:n])
        pos += n
    # a text marker at the very start and the very end
    f.seek(0); f.write(b"VDK-PEERS-START")
    f.seek(size - 13); f.write(b"VDK-PEERS-END")
PY
}

# put_random FILE OFFSET LENGTH SEED: overwrite LENGTH bytes at OFFSET with
# random data (the file keeps its size unless the write goes past its end).
put_random() {
    python3 - "$@" <<'PY'
import random, sys
path, off, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
with open(path, "r+b") as f:
    f.seek(off)
    while n > 0:
        k = min(n, 1 << 20)
        f.write(rng.randbytes(k))
        n -= k
PY
}

# json_get FILE EXPR: prints the Python expression EXPR evaluated with j = the
# JSON in FILE (strings bare, others as JSON).
json_get() {
    python3 - "$@" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    j = json.load(f)
v = eval(sys.argv[2], {"j": j})
print(v if isinstance(v, str) else json.dumps(v))
PY
}

# vmdkinfo_field FILE LABEL: the value after "LABEL:" in vmdkinfo's output
# (the first occurrence, i.e. the disk's, not an extent's).
vmdkinfo_field() {
    vmdkinfo "$1" >"$WORK/vmdkinfo.out" 2>&1 || {
        cat "$WORK/vmdkinfo.out" >&2
        fail "vmdkinfo $1 failed"
    }
    sed -n "s/^[[:space:]]*$2:[[:space:]]*//p" "$WORK/vmdkinfo.out" | head -n1
}

# same_alloc VDK_MAP_JSON QEMU_MAP_JSON WHAT: the bytes that 'vdk map --json'
# reports as data equal those that 'qemu-img map --output=json' reports with
# "data": true (as sets of bytes; the split into ranges may differ).
same_alloc() {
    python3 - "$1" "$2" "$3" "$PEERS_NAME" <<'PY' || fail "$3: allocated ranges differ"
import json, sys
def ranges(path):
    with open(path) as f:
        j = json.load(f)
    out = []
    for r in j:
        if r.get("data"):
            s, n = r["start"], r["length"]
            if out and out[-1][1] == s:
                out[-1][1] = s + n
            else:
                out.append([s, s + n])
    out.sort()
    merged = []
    for s, e in out:
        if merged and merged[-1][1] >= s:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return merged
a, b = ranges(sys.argv[1]), ranges(sys.argv[2])
if a != b:
    print("vdk map data ranges:      ", a[:20], file=sys.stderr)
    print("qemu-img map data ranges: ", b[:20], file=sys.stderr)
    sys.exit(1)
print("[%s]   ok: %s: %d data ranges, %d bytes" % (sys.argv[4], sys.argv[3], len(a),
                                                  sum(e - s for s, e in a)))
PY
}

# same_map VDK_MAP_JSON QEMU_MAP_JSON WHAT: stricter than same_alloc: every byte
# has the same kind (data, zero = present but reads as zeros, hole = present
# nowhere) and, for data and zero, the same depth (the link that answers it).
same_map() {
    python3 - "$1" "$2" "$3" "$PEERS_NAME" <<'PY' || fail "$3: maps differ"
import json, sys
def norm(path):
    out = []
    for r in json.load(open(path)):
        if r["data"]:
            key = ("data", r["depth"])
        elif r["present"]:
            key = ("zero", r["depth"])
        else:
            key = ("hole",)
        s, e = r["start"], r["start"] + r["length"]
        if out and out[-1][1] == s and out[-1][2] == key:
            out[-1][1] = e
        else:
            out.append([s, e, key])
    return out
a, b = norm(sys.argv[1]), norm(sys.argv[2])
if a != b:
    for i, (x, y) in enumerate(zip(a + [None] * len(b), b + [None] * len(a))):
        if x != y:
            print("first difference, range %d: vdk %s, qemu-img %s" % (i, x, y), file=sys.stderr)
            break
    sys.exit(1)
print("[%s]   ok: %s: %d ranges agree in kind and depth" % (sys.argv[4], sys.argv[3], len(a)))
PY
}
