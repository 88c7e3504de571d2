#!/usr/bin/env bash
# Regenerates the malformed-image corpus in this folder: every case file, and
# MANIFEST (what each case breaks and which commands must fail on it).
#
# Usage: tests/corpus/make-corpus.sh            (needs python3 and qemu-img)
#
# Good base images come from qemu-img (monolithicSparse, QEMU's
# streamOptimized, child links) or from the small writers below, which follow
# the published layouts (VMware's stream layout with footer, COWD, seSparse);
# each case is a copy of a base damaged at an offset taken from the base's
# own header and tables, so a different qemu-img version still damages the
# intended structure.  The output is deterministic (CIDs are fixed).
#
# Conventions the runner (tests/corpus.sh) relies on:
#   - a single-file case is <case>.vmdk; a case of several files (descriptor
#     and extents, chains) is a folder <case>/ and MANIFEST names the disk;
#   - a file ending in .gz inside a case folder is stored compressed (the
#     100000-extent descriptor is 1 MB) and is gunzipped by the runner;
#   - MANIFEST lines: CASE DISK MUST-FAIL WHAT..., MUST-FAIL being "all",
#     "none" or a comma list of info,json,map,clone,check,mount.  Commands not
#     listed must succeed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v qemu-img >/dev/null || { echo "make-corpus: qemu-img is needed" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/vdk-corpus-gen.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 - "$here" "$work" <<'PY'
import gzip, os, re, shutil, struct, subprocess, sys, zlib

OUT, WORK = sys.argv[1], sys.argv[2]
SEC = 512
GD_AT_END = (1 << 64) - 1


def le32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def le64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def text(n, tag):
    """n bytes of numbered text lines: compressible, and every grain differs."""
    out, i = bytearray(), 0
    while len(out) < n:
        out += b"%06d vdk corpus %s: the quick brown fox jumps over the lazy dog\n" % (
            i, tag.encode())
        i += 1
    return bytes(out[:n])


def qemu(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, cwd=WORK,
                   stdout=subprocess.DEVNULL)


def fix_cid(b, cid, parent_cid=None):
    """Fixed CIDs in a qemu-made file (qemu picks random ones)."""
    b = bytearray(b)
    m = re.search(rb"\nCID=[0-9a-f]{8}", b)
    b[m.start() + 5:m.end()] = b"%08x" % cid
    if parent_cid is not None:
        m = re.search(rb"\nparentCID=[0-9a-f]{8}", b)
        b[m.start() + 11:m.end()] = b"%08x" % parent_cid
    return b


# ---- base images -----------------------------------------------------------
GRAIN = 65536
raw = bytearray(1 << 20)
raw[0:GRAIN] = text(GRAIN, "grain 0")
raw[5 * GRAIN:6 * GRAIN] = text(GRAIN, "grain 5")
with open(os.path.join(WORK, "d.raw"), "wb") as f:
    f.write(raw)
qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", "d.raw", "s.vmdk")
qemu("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", "d.raw", "qs.vmdk")
SPARSE = fix_cid(open(os.path.join(WORK, "s.vmdk"), "rb").read(), 0xc0ffee01)
QSTREAM = fix_cid(open(os.path.join(WORK, "qs.vmdk"), "rb").read(), 0xc0ffee02)


def kdmv_layout(b, gd_sector=None):
    gd = le64(b, 56) if gd_sector is None else gd_sector
    L = {"gd": gd * SEC, "rgd": le64(b, 48) * SEC, "over": le64(b, 64) * SEC}
    L["gt"] = le32(b, L["gd"]) * SEC
    if L["rgd"]:
        L["rgt"] = le32(b, L["rgd"]) * SEC
    L["g0"] = le32(b, L["gt"]) * SEC
    L["g5"] = le32(b, L["gt"] + 20) * SEC
    return L


SL = kdmv_layout(SPARSE)
QL = kdmv_layout(QSTREAM)
assert SL["g0"] and SL["g5"] and SL["rgd"], SL


def kdmv_header(gd, capacity=2048, version=3, flags=0x30001, algo=1, desc_sectors=1):
    h = bytearray(SEC)
    struct.pack_into("<IIIQQQQIQQQ", h, 0, 0x564D444B, version, flags, capacity, 128, 1,
                     desc_sectors, 512, 0, gd, 128)
    h[73:77] = b"\n \r\n"
    struct.pack_into("<H", h, 77, algo)
    return h


def marker(val, typ):
    return struct.pack("<QII", val, 0, typ).ljust(SEC, b"\0")


def pad(b):
    b += bytes(-len(b) % SEC)
    return b


def vmware_stream(desc):
    """VMware's stream layout: grains, GT marker + GT, GD marker + GD, footer
    marker + footer (a header copy with the real gdOffset), end-of-stream."""
    out = bytearray(128 * SEC)
    out[0:SEC] = kdmv_header(GD_AT_END)
    out[SEC:SEC + len(desc)] = desc
    L, gt = {}, [0] * 512
    for gi in (0, 5):
        z = zlib.compress(bytes(raw[gi * GRAIN:(gi + 1) * GRAIN]), 6)
        L["g%d" % gi] = len(out)
        gt[gi] = len(out) // SEC
        out += struct.pack("<QI", gi * 128, len(z)) + z
        pad(out)
    out += marker(4, 1)
    L["gt"] = len(out)
    out += struct.pack("<512I", *gt)
    out += marker(1, 2)
    L["gd"] = len(out)
    out += pad(bytearray(struct.pack("<I", L["gt"] // SEC)))
    out += marker(1, 3)
    L["footer"] = len(out)
    out += kdmv_header(L["gd"] // SEC)
    L["eos"] = len(out)
    out += marker(0, 0)
    return out, L


def descriptor(create, extents, cid=0xc0ffee03, parent_cid=0xffffffff, hint=None, extra=""):
    s = "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=%08x\nparentCID=%08x\n" % (
        cid, parent_cid)
    s += "createType=\"%s\"\n" % create
    if hint is not None:
        s += "parentFileNameHint=\"%s\"\n" % hint
    s += "\n# Extent description\n" + "".join(e + "\n" for e in extents)
    s += ("\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n"
          "ddb.geometry.cylinders = \"2\"\nddb.geometry.heads = \"16\"\n"
          "ddb.geometry.sectors = \"63\"\nddb.adapterType = \"lsilogic\"\n")
    return (s + extra).encode()


STREAM_DESC = descriptor("streamOptimized", ['RW 2048 SPARSE "generated-stream.vmdk"'], 0xc0ffee04)
assert len(STREAM_DESC) <= SEC
STREAM, VL = vmware_stream(STREAM_DESC)


def cowd():
    """COWD (vmfsSparse) extent of 2048 sectors, grain 1 sector: header
    (4 sectors), GD at sector 4, its one GT at 5..36, then grains."""
    gt = [0] * 4096
    data = bytearray()
    sec = 5 + 32
    L = {"gd": 4 * SEC, "gt": 5 * SEC}
    for lba in list(range(0, 64)) + list(range(1000, 1008)):
        gt[lba] = sec + len(data) // SEC
        data += raw[lba * SEC:(lba + 1) * SEC] if lba < 64 else text(SEC, "cowd %d" % lba)
    L["g0"] = gt[0] * SEC
    L["g1000"] = gt[1000] * SEC
    free = sec + len(data) // SEC
    h = bytearray(2048)
    struct.pack_into("<4sIIIIIII", h, 0, b"COWD", 1, 3, 2048, 1, 4, 1, free)
    out = h + pad(bytearray(struct.pack("<I", 5))) + struct.pack("<4096I", *gt) + data
    return out, L


COWD, CL = cowd()
COWD_DESC = descriptor("vmfsSparse", ['RW 2048 VMFSSPARSE "c-delta.vmdk"'], 0xc0ffee05)


def sesparse():
    """seSparse of 2048 sectors as ESXi lays it out: header, volatile
    header, journal header + journal, GD, GT, bitmap, backmap, grains."""
    gd_at, gt_at, bm_at, back_at, gr_at = 5, 6, 70, 71, 72
    gt = [0] * 4096
    grains = []
    for gi in (0, 1, 2, 3, 100):
        idx = len(grains)
        gt[gi] = 0x3000000000000000 | (idx & 0xfff) << 48 | idx >> 12
        grains.append(text(4096, "sesparse grain %d" % gi))
    gt[50] = 0x2000000000000000  # zeroed
    gt[51] = 0x1000000000000000  # unmapped
    h = bytearray(SEC)
    struct.pack_into("<QQQQQQ", h, 0, 0xcafebabe, 0x0000000200000001, 2048, 8, 64, 0)
    regions = [(1, 1), (2, 1), (3, 2), (gd_at, 1), (gt_at, 64), (bm_at, 1), (back_at, 1),
               (gr_at, len(grains) * 8)]
    for i, (o, n) in enumerate(regions):
        struct.pack_into("<QQ", h, 80 + 16 * i, o, n)
    v = bytearray(SEC)
    struct.pack_into("<Q", v, 0, 0xcafecafe)
    struct.pack_into("<Q", v, 8, 1)  # free_gt_number: one table in use
    out = bytearray(gr_at * SEC)
    out[0:SEC] = h
    out[SEC:2 * SEC] = v
    struct.pack_into("<Q", out, gd_at * SEC, 0x1000000000000000)
    struct.pack_into("<4096Q", out, gt_at * SEC, *gt)
    for g in grains:
        out += g
    return out, {"gd": gd_at * SEC, "gt": gt_at * SEC, "grains": gr_at * SEC, "vol": SEC}


SESP, EL = sesparse()
SESP_DESC = descriptor("seSparse", ['RW 2048 SESPARSE "s-sesparse.vmdk"'], 0xc0ffee06)
FLAT = text(64 * 1024, "flat")


def flat_desc(extents, **kw):
    return descriptor("monolithicFlat", extents, **kw)


GOOD_FLAT = 'RW 128 FLAT "f-flat.vmdk" 0'

# ---- damage ----------------------------------------------------------------


def damaged(base, edits=(), cut=None):
    b = bytearray(base)
    for off, fmt, v in edits:
        if fmt == "raw":
            b[off:off + len(v)] = v
        else:
            struct.pack_into("<" + fmt, b, off, v)
    if cut is not None:
        del b[cut:]
    return bytes(b)


cases = []  # (name, files {name: bytes | ("symlink", target)}, disk, must_fail, what)
ALL = "all"
READS = "clone,check,mount"          # damage met only when the data is read
LOOKUP = "info,json,map,clone,check,mount"  # met by any allocation lookup


def case(name, files, disk, fail, what):
    cases.append((name, files, disk, fail, what))


def one(name, data, fail, what):
    case(name, {name + ".vmdk": data}, name + ".vmdk", fail, what)


# monolithicSparse (qemu-img): header 0, descriptor 1..20, rGD, rGT, GD, GT,
# grains from overHead (sector 128)
one("sparse-empty", b"", ALL, "monolithicSparse truncated to 0 bytes")
one("sparse-trunc-header", damaged(SPARSE, cut=300), ALL,
    "monolithicSparse cut at byte 300, inside the 512-byte header")
one("sparse-trunc-descriptor", damaged(SPARSE, cut=SEC + 200), ALL,
    "monolithicSparse cut inside the embedded descriptor")
one("sparse-trunc-rgd", damaged(SPARSE, cut=SL["rgd"] + 2), ALL,
    "monolithicSparse cut inside the redundant grain directory")
one("sparse-trunc-gd", damaged(SPARSE, cut=SL["gd"] + 2), ALL,
    "monolithicSparse cut inside the grain directory")
one("sparse-trunc-gt", damaged(SPARSE, cut=SL["gt"] + 700), ALL,
    "monolithicSparse cut inside the grain table")
one("sparse-trunc-overhead", damaged(SPARSE, cut=SL["over"] - SEC), ALL,
    "monolithicSparse cut after the tables, before overHead")
one("sparse-trunc-midgrain", damaged(SPARSE, cut=SL["g0"] + 30000), LOOKUP,
    "monolithicSparse cut in the middle of the first grain")
one("sparse-trunc-lastgrain", damaged(SPARSE, cut=SL["g5"] + 100), LOOKUP,
    "monolithicSparse cut 100 bytes into its last grain")
one("sparse-bad-magic", damaged(SPARSE, [(0, "I", 0x12345678)]), ALL,
    "monolithicSparse with a bad magic number")
one("sparse-bad-version", damaged(SPARSE, [(4, "I", 99)]), ALL,
    "monolithicSparse with header version 99")
one("sparse-capacity-huge", damaged(SPARSE, [(12, "Q", 1 << 62)]), ALL,
    "capacity of 2^62 sectors")
one("sparse-capacity-small", damaged(SPARSE, [(12, "Q", 16)]), ALL,
    "header capacity (16 sectors) below the descriptor's extent size")
one("sparse-grain-zero", damaged(SPARSE, [(20, "Q", 0)]), ALL, "grain size 0")
one("sparse-grain-npot", damaged(SPARSE, [(20, "Q", 100)]), ALL,
    "grain size 100 sectors, not a power of two")
one("sparse-grain-huge", damaged(SPARSE, [(20, "Q", 1 << 40)]), ALL, "grain size 2^40 sectors")
one("sparse-gtes-zero", damaged(SPARSE, [(44, "I", 0)]), ALL, "numGTEsPerGT 0")
one("sparse-gtes-huge", damaged(SPARSE, [(44, "I", 0xFFFFFFFF)]), ALL, "numGTEsPerGT 2^32-1")
one("sparse-gd-past-eof", damaged(SPARSE, [(56, "Q", 1 << 40)]), ALL, "gdOffset 2^40 sectors")
one("sparse-gd-zero", damaged(SPARSE, [(56, "Q", 0)]), ALL, "gdOffset 0 (the header)")
one("sparse-desc-offset-past-eof", damaged(SPARSE, [(28, "Q", 1 << 40)]), ALL,
    "descriptorOffset 2^40 sectors")
one("sparse-desc-size-huge", damaged(SPARSE, [(36, "Q", 1 << 50)]), ALL,
    "descriptorSize 2^50 sectors")
one("sparse-compress-algo", damaged(SPARSE, [(8, "I", 0x10003), (77, "H", 7)]), ALL,
    "compressed-grains flag with compressAlgorithm 7")
one("sparse-gt-past-eof", damaged(SPARSE, [(SL["gd"], "I", 0xFFFFFF00)]), LOOKUP,
    "grain directory entry points past the end of the file")
one("sparse-gte-past-eof", damaged(SPARSE, [(SL["gt"] + 20, "I", 0x00100000)]), LOOKUP,
    "grain 5 points to sector 2^20, past the end of the file")
one("sparse-gte-into-header", damaged(SPARSE, [(SL["gt"] + 20, "I", 2)]), LOOKUP,
    "grain 5 points to sector 2, inside the descriptor")
one("sparse-gte-into-gt", damaged(SPARSE, [(SL["gt"] + 20, "I", SL["gt"] // SEC)]), LOOKUP,
    "grain 5 points to the grain table itself")
one("sparse-gte-overlap", damaged(SPARSE, [(SL["gt"] + 20, "I", SL["g0"] // SEC)]), "check",
    "grains 0 and 5 point to the same sector (only a full scan can tell)")
one("sparse-rgt-differs", damaged(SPARSE, [(SL["rgt"] + 20, "I", 0)]), "check",
    "the redundant grain table lost grain 5")
one("sparse-rgd-past-eof", damaged(SPARSE, [(48, "Q", 1 << 40)]), "check",
    "rgdOffset 2^40 sectors while the redundant-directory flag is set")
one("sparse-unclean", damaged(SPARSE, [(72, "B", 1)]), "check",
    "uncleanShutdown set: opens with a warning, check reports it")

# streamOptimized, VMware's layout (footer + end-of-stream)
one("stream-trunc-header", damaged(STREAM, cut=200), ALL, "stream cut inside its header")
one("stream-trunc-descriptor", damaged(STREAM, cut=SEC + 100), ALL,
    "stream cut inside its descriptor")
one("stream-trunc-midgrain", damaged(STREAM, cut=VL["g0"] + 3000), ALL,
    "stream cut inside its first compressed grain (footer lost)")
one("stream-trunc-gt", damaged(STREAM, cut=VL["gt"] + 1000), ALL,
    "stream cut inside its grain table")
one("stream-trunc-gd", damaged(STREAM, cut=VL["gd"] + 2), ALL,
    "stream cut inside its grain directory")
one("stream-trunc-footer", damaged(STREAM, cut=VL["footer"] + 100), ALL,
    "stream cut inside its footer")
one("stream-no-eos", damaged(STREAM, cut=VL["eos"]), ALL,
    "stream without its end-of-stream marker: the footer is not where it must be")
one("stream-footer-gd-past-eof", damaged(STREAM, [(VL["footer"] + 56, "Q", 1 << 40)]), ALL,
    "the footer's gdOffset points past the end of the file")
one("stream-footer-gd-at-end", damaged(STREAM, [(VL["footer"] + 56, "Q", GD_AT_END)]), ALL,
    "the footer's gdOffset says 'at the end' again")
one("stream-grain-len-past-eof", damaged(STREAM, [(VL["g5"] + 8, "I", 0x7FFFFFF0)]), READS,
    "compressed grain 5 claims more bytes than the file has")
one("stream-grain-len-too-long", damaged(STREAM, [(VL["g0"] + 8, "I", 200000)]), READS,
    "compressed grain 0 claims 200000 bytes, more than any deflated 64 KiB grain")
one("stream-grain-len-short", damaged(STREAM, [(VL["g0"] + 8, "I", 10)]), READS,
    "compressed grain 0 claims 10 bytes: its zlib stream is cut")
one("stream-grain-len-zero", damaged(STREAM, [(VL["g5"] + 8, "I", 0)]), READS,
    "compressed grain 5 claims 0 bytes")
one("stream-bad-zlib", damaged(STREAM, [(VL["g0"] + 12 + 40, "raw", b"\x55" * 64)]), READS,
    "garbage inside grain 0's deflate data")
one("stream-marker-lba", damaged(STREAM, [(VL["g5"], "Q", 7 * 128)]), READS,
    "grain 5's marker says it holds guest sector 896 (grain 7)")
one("stream-gte-overlap", damaged(STREAM, [(VL["gt"] + 20, "I", VL["g0"] // SEC)]), READS,
    "grain 5's table entry points at grain 0's compressed data")
one("stream-gte-past-eof", damaged(STREAM, [(VL["gt"] + 20, "I", 0x00100000)]), LOOKUP,
    "grain 5 points past the end of the file")
one("stream-gte-into-header", damaged(STREAM, [(VL["gt"] + 20, "I", 2)]), LOOKUP,
    "grain 5 points inside the header area")
one("stream-gte-into-gt", damaged(STREAM, [(VL["gt"] + 20, "I", VL["gt"] // SEC)]), LOOKUP,
    "grain 5 points at the grain table")
# QEMU's stream layout: tables at the front, no footer
one("qstream-trunc-midgrain", damaged(QSTREAM, cut=QL["g0"] + 3000), READS,
    "QEMU-layout stream cut inside its first compressed grain")
one("qstream-trunc-gt", damaged(QSTREAM, cut=QL["gt"] + 10), LOOKUP,
    "QEMU-layout stream cut inside its grain table")

# COWD (vmfsSparse): descriptor + -delta extent
def cowd_case(name, delta, fail, what):
    case(name, {"c.vmdk": COWD_DESC, "c-delta.vmdk": delta}, name + "/c.vmdk", fail, what)


cowd_case("cowd-trunc-header", damaged(COWD, cut=1000), ALL, "COWD cut inside its 2048-byte header")
cowd_case("cowd-trunc-gd", damaged(COWD, cut=CL["gd"] + 2), ALL,
          "COWD cut inside its grain directory")
cowd_case("cowd-trunc-gt", damaged(COWD, cut=CL["gt"] + 1000), LOOKUP,
          "COWD cut inside its grain table")
cowd_case("cowd-trunc-midgrain", damaged(COWD, cut=CL["g0"] + 10 * SEC + 100), LOOKUP,
          "COWD cut in the middle of its grains")
cowd_case("cowd-bad-magic", damaged(COWD, [(0, "raw", b"DWOC")]), ALL, "COWD magic missing")
cowd_case("cowd-bad-version", damaged(COWD, [(4, "I", 2)]), ALL, "COWD version 2")
cowd_case("cowd-grain-npot", damaged(COWD, [(16, "I", 3)]), ALL, "COWD grain size 3 sectors")
cowd_case("cowd-capacity-small", damaged(COWD, [(12, "I", 64)]), ALL,
          "COWD numSectors 64, below the descriptor's 2048")
cowd_case("cowd-numgd-zero", damaged(COWD, [(24, "I", 0)]), ALL,
          "COWD numGDEntries 0 (1 is needed)")
cowd_case("cowd-numgd-huge", damaged(COWD, [(24, "I", 0x7FFFFFFF)]), ALL,
          "COWD numGDEntries 2^31-1")
cowd_case("cowd-numgd-lying", damaged(COWD, [(24, "I", 1000)]), "check",
          "COWD numGDEntries 1000 for a disk that needs 1: the directory overlaps its table")
cowd_case("cowd-gd-past-eof", damaged(COWD, [(20, "I", 0x0FFFFFFF)]), ALL,
          "COWD gdOffset past the end of the file")
cowd_case("cowd-gte-past-eof", damaged(COWD, [(CL["gt"] + 4 * 1000, "I", 0x00FFFFFF)]), LOOKUP,
          "COWD grain for sector 1000 points past the end of the file")
cowd_case("cowd-gte-into-header", damaged(COWD, [(CL["gt"] + 4 * 1000, "I", 1)]), LOOKUP,
          "COWD grain for sector 1000 points into the header")
cowd_case("cowd-gte-into-gd", damaged(COWD, [(CL["gt"] + 4 * 1000, "I", 4)]), LOOKUP,
          "COWD grain for sector 1000 points at the grain directory")
cowd_case("cowd-gte-into-gt", damaged(COWD, [(CL["gt"] + 4 * 1000, "I", 6)]), LOOKUP,
          "COWD grain for sector 1000 points into the grain table")
cowd_case("cowd-gte-overlap", damaged(COWD, [(CL["gt"] + 4 * 1000, "I", CL["g0"] // SEC)]),
          "check", "COWD grains for sectors 0 and 1000 share one sector")

# seSparse: descriptor + -sesparse extent
def se_case(name, ext, fail, what):
    case(name, {"s.vmdk": SESP_DESC, "s-sesparse.vmdk": ext}, name + "/s.vmdk", fail, what)


se_case("sesparse-trunc-header", damaged(SESP, cut=100), ALL, "seSparse cut inside its header")
se_case("sesparse-trunc-volatile", damaged(SESP, cut=SEC + 10), ALL,
        "seSparse cut inside its volatile header")
se_case("sesparse-trunc-gd", damaged(SESP, cut=EL["gd"] + 4), ALL,
        "seSparse cut inside its grain directory")
se_case("sesparse-trunc-gt", damaged(SESP, cut=EL["gt"] + 1000), ALL,
        "seSparse cut inside its grain table")
se_case("sesparse-trunc-midgrain", damaged(SESP, cut=EL["grains"] + 4096 * 4 + 1000), LOOKUP,
        "seSparse cut inside its last grain")
se_case("sesparse-bad-magic", damaged(SESP, [(0, "Q", 0xcafebabf)]), ALL, "seSparse magic wrong")
se_case("sesparse-bad-version", damaged(SESP, [(8, "Q", 3)]), ALL, "seSparse version 3")
se_case("sesparse-journal-dirty", damaged(SESP, [(SEC + 24, "Q", 1)]), ALL,
        "seSparse journal must be replayed")
se_case("sesparse-gd-index", damaged(SESP, [(EL["gd"], "Q", 0x10000000000000FF)]), LOOKUP,
        "seSparse directory entry names table 255 of 1")
se_case("sesparse-gd-type", damaged(SESP, [(EL["gd"], "Q", 0x2000000000000000)]), LOOKUP,
        "seSparse directory entry of an unknown kind")
se_case("sesparse-gte-index", damaged(SESP, [(EL["gt"] + 8 * 100, "Q", 0x3000000000FFFFFF)]),
        LOOKUP, "seSparse grain index 2^36-ish, far outside the grain area")
se_case("sesparse-gte-type", damaged(SESP, [(EL["gt"] + 8, "Q", 0x7000000000000000)]), LOOKUP,
        "seSparse grain table entry of an unknown kind (7)")
se_case("sesparse-regions-overlap", damaged(SESP, [(192, "Q", EL["gt"] // SEC)]), ALL,
        "seSparse grain area starts on the grain table")

# descriptors (monolithicFlat unless said)
def flat_case(name, desc, fail, what, extra_files=None):
    files = {"f.vmdk": desc, "f-flat.vmdk": FLAT}
    files.update(extra_files or {})
    case(name, files, name + "/f.vmdk", fail, what)


flat_case("desc-quote-in-value",
          flat_desc([GOOD_FLAT], extra='ddb.uuid = "60 00 "C2" 9b"\nddb.comment = """"\n'),
          "none", "ddb values holding quotes")
flat_case("desc-newline-in-value",
          flat_desc([GOOD_FLAT], extra='ddb.uuid = "60 00\nRW 128 FLAT "evil-flat.vmdk" 0\n"\n'),
          ALL, "a quoted value broken by a newline: its second line is an extent line naming "
          "a missing file")
ESCAPES = 'ddb.adapterType = "ide\x1b]2;pwned\x07\x1b[2J"\nddb.x = "a\rb"\n'
LATE = "#" + "c" * 700 + "\n"  # pushes what follows past the first 512 bytes
flat_case("desc-control-chars", flat_desc([GOOD_FLAT], extra=ESCAPES), ALL,
          "terminal escape sequences in the first 512 bytes: not a text descriptor")
flat_case("desc-control-chars-late", flat_desc([GOOD_FLAT], extra=LATE + ESCAPES), "none",
          "terminal escape sequences and a CR inside ddb values after byte 512 (info must not "
          "print them raw)")
flat_case("desc-control-chars-name",
          LATE.encode() + flat_desc(['RW 128 FLAT "f-fl\x1b[2Jat\rx.vmdk" 0']), ALL,
          "an escape sequence and a CR in the name of a missing extent (the error must not "
          "print them raw)")
flat_case("desc-second-createtype",
          flat_desc([GOOD_FLAT]).replace(b"\n\n# Extent", b"\ncreateType=\"streamOptimized\"\n\n"
                                          b"# Extent"), "none",
          "two createType lines (the last wins, as in VMware's parser)")
flat_case("desc-nul-early", flat_desc([GOOD_FLAT]).replace(b"# Extent", b"\0# Extent"), ALL,
          "a NUL byte before the extent lines (the text ends there)")
flat_case("desc-nul-in-name",
          flat_desc(['RW 128 FLAT "f-fl\0at.vmdk" 0']), ALL,
          "a NUL byte inside the extent file name")
flat_case("desc-long-value", flat_desc([GOOD_FLAT], extra='ddb.comment = "%s"\n' % ("x" * 150000)),
          "none", "a 150000-byte ddb value")
flat_case("desc-long-name", flat_desc(['RW 128 FLAT "%s.vmdk" 0' % ("n" * 100000)]), ALL,
          "a 100000-byte extent file name")
flat_case("desc-long-garbage-line",
          flat_desc([GOOD_FLAT], extra=LATE + "#" + "\x01" * 100000 + "\n"),
          "none", "a 100000-byte comment line of control characters")
flat_case("desc-no-extents", flat_desc([]), ALL, "a descriptor without extent lines")
flat_case("desc-extent-zero-size", flat_desc(['RW 0 FLAT "f-flat.vmdk" 0']), ALL,
          "an extent of 0 sectors")
flat_case("desc-extent-size-junk", flat_desc(['RW 12x8 FLAT "f-flat.vmdk" 0']), ALL,
          "an extent size that is not a number")
flat_case("desc-extent-huge", flat_desc(['RW 99999999999999999999 FLAT "f-flat.vmdk" 0']), ALL,
          "an extent size of 10^20 sectors")
flat_case("desc-extent-type", flat_desc(['RW 128 QCOW2 "f-flat.vmdk" 0']), ALL,
          "an unknown extent type")
flat_case("desc-unterminated-quote", flat_desc(['RW 128 FLAT "f-flat.vmdk 0']), ALL,
          "an unterminated quote in the extent name")
flat_case("desc-version-9", flat_desc([GOOD_FLAT]).replace(b"version=1", b"version=9"), ALL,
          "descriptor version 9")
flat_case("desc-cid-junk", flat_desc([GOOD_FLAT]).replace(b"CID=c0ffee03", b"CID=zz"), ALL,
          "a CID that is not hex")
ext_lines = "".join("RW 1 ZERO\n" for _ in range(100000)).encode()
case("desc-100000-extents",
     {"z.vmdk.gz": gzip.compress(b'version=1\nCID=c0ffee07\nparentCID=ffffffff\n'
                                 b'createType="monolithicFlat"\n' + ext_lines, 9, mtime=0)},
     "desc-100000-extents/z.vmdk", ALL, "100000 ZERO extent lines (over the 4096-extent limit)")
flat_case("desc-4000-extents",
          flat_desc(["RW 1 FLAT \"f-flat.vmdk\" %d" % (i % 128) for i in range(4000)]), "none",
          "4000 one-sector FLAT extents on one file (under the limit)")
flat_case("desc-extent-dotdot", flat_desc(['RW 128 FLAT "../f-flat.vmdk" 0']), ALL,
          "an extent named \"../f-flat.vmdk\", outside the disk's folder")
flat_case("desc-extent-dotdot-deep", flat_desc(['RW 128 FLAT "sub/../../../etc/passwd" 0']), ALL,
          "an extent name climbing out through a subfolder")
flat_case("desc-extent-absolute", flat_desc(['RW 2 FLAT "/etc/passwd" 0']), ALL,
          "an absolute extent path outside the folder")
flat_case("desc-extent-symlink", flat_desc(['RW 2 FLAT "link-flat.vmdk" 0']), ALL,
          "the extent is a symlink to /etc/passwd",
          {"link-flat.vmdk": ("symlink", "/etc/passwd")})
flat_case("desc-extent-symlink-dir", flat_desc(['RW 2 FLAT "up/etc/passwd" 0']), ALL,
          "the extent lies under a symlink to /",
          {"up": ("symlink", "/")})
flat_case("desc-extent-symlink-parent", flat_desc(['RW 128 FLAT "out/f-flat.vmdk" 0']), ALL,
          "the extent lies under a symlink to the folder above", {"out": ("symlink", "..")})
flat_case("desc-extent-missing", flat_desc(['RW 128 FLAT "gone-flat.vmdk" 0']), ALL,
          "the extent file does not exist")
flat_case("desc-extent-short", flat_desc(['RW 256 FLAT "f-flat.vmdk" 0']), ALL,
          "the descriptor gives 256 sectors, the flat file holds 128")
flat_case("desc-extent-offset", flat_desc(['RW 128 FLAT "f-flat.vmdk" 100']), ALL,
          "the extent's offset puts its end past the end of the file")
flat_case("desc-extent-dir", flat_desc(['RW 128 FLAT "sub" 0']), ALL,
          "the extent names a folder", {"sub/keep": b"x"})
case("desc-sparse-size", {"d.vmdk": descriptor("monolithicSparse", ['RW 4096 SPARSE "e.vmdk"']),
                          "e.vmdk": bytes(SPARSE)}, "desc-sparse-size/d.vmdk", ALL,
     "the descriptor gives 4096 sectors, the sparse extent's header 2048")
case("desc-sparse-is-flat", {"d.vmdk": descriptor("monolithicSparse", ['RW 128 SPARSE "e.vmdk"']),
                             "e.vmdk": FLAT}, "desc-sparse-is-flat/d.vmdk", ALL,
     "a SPARSE extent whose file has no sparse header")

# parent chains (text descriptors over flat extents)
def chain_case(name, links, disk, fail, what, drop=()):
    files = {}
    for n, (cid, pcid, hint) in links.items():
        files[n + ".vmdk"] = flat_desc(['RW 128 FLAT "%s-flat.vmdk" 0' % n], cid=cid,
                                       parent_cid=pcid, hint=hint)
        files[n + "-flat.vmdk"] = FLAT
    for d in drop:
        del files[d]
    case(name, files, name + "/" + disk, fail, what)


NONE = 0xffffffff
chain_case("chain-loop2", {"a": (0xa, 0xb, "b.vmdk"), "b": (0xb, 0xa, "a.vmdk")}, "a.vmdk", ALL,
           "a.vmdk -> b.vmdk -> a.vmdk")
chain_case("chain-loop3", {"a": (0xa, 0xb, "b.vmdk"), "b": (0xb, 0xc, "c.vmdk"),
                           "c": (0xc, 0xa, "./a.vmdk")}, "a.vmdk", ALL,
           "a.vmdk -> b.vmdk -> c.vmdk -> ./a.vmdk")
chain_case("chain-self", {"s": (0x5, 0x5, "s.vmdk")}, "s.vmdk", ALL,
           "s.vmdk names itself as parent")
chain_case("chain-cid-mismatch", {"child": (0xc, 0x1234, "base.vmdk"), "base": (0xb, NONE, None)},
           "child.vmdk", "info,json,map,clone,check,mount",
           "the child's parentCID is not its parent's CID")
chain_case("chain-parent-missing", {"child": (0xc, 0xb, "base.vmdk")}, "child.vmdk", ALL,
           "the parent file does not exist")
chain_case("chain-parent-dotdot", {"child": (0xc, 0xb, "../base.vmdk")}, "child.vmdk", ALL,
           "parentFileNameHint leaves the folder")
chain_case("chain-parent-absolute", {"child": (0xc, 0xb, "/etc/passwd")}, "child.vmdk", ALL,
           "parentFileNameHint is an absolute path outside the folder")
chain_case("chain-parent-damaged", {"child": (0xc, 0xb, "base.vmdk"), "base": (0xb, NONE, None)},
           "child.vmdk", ALL, "the parent's extent is missing", drop=["base-flat.vmdk"])

# ---- write -----------------------------------------------------------------
old = os.path.join(OUT, "MANIFEST")
names = set()
if os.path.exists(old):
    for line in open(old):
        if line.strip() and not line.startswith("#"):
            names.add(line.split()[0])
for n in names | {c[0] for c in cases}:
    for p in (os.path.join(OUT, n), os.path.join(OUT, n + ".vmdk")):
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)
with open(old, "w") as m:
    m.write("# The malformed-image corpus, made by make-corpus.sh (do not edit by hand).\n"
            "# CASE DISK MUST-FAIL WHAT\n"
            "# MUST-FAIL: all, none, or a comma list of info,json,map,clone,check,mount;\n"
            "# commands not listed must succeed.  DISK is relative to this folder.\n")
    for name, files, disk, fail, what in cases:
        single = list(files) == [name + ".vmdk"]
        base = OUT if single else os.path.join(OUT, name)
        for fn, data in files.items():
            p = os.path.join(base, fn)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if isinstance(data, tuple):
                os.symlink(data[1], p)
            else:
                with open(p, "wb") as f:
                    f.write(data)
        m.write("%s %s %s %s\n" % (name, disk, fail, what))
print("make-corpus: %d cases in %s" % (len(cases), OUT))
PY
