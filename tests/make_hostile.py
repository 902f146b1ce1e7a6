#!/usr/bin/env python3
"""make_hostile.py: writes the hostile-input corpus of tests/cli_hostile.sh at run time (no
binary file is committed), with the Python standard library only (zlib, struct, os).

  make_hostile.py images DIR        image files: every PNG colour type and bit depth the
                                    suite loads (Adam7 included), a baseline JPEG, and the
                                    damaged ones; DIR/MANIFEST lists the damaged files as
                                    NAME|KEYWORD (the reason mlpviz must give)
  make_hostile.py panels DIR        checks that the first panel of each `saliency --scale 1`
                                    sheet DIR/CASE.png of an 8x8x3 model is image CASE as the
                                    PNG/JPEG specifications decode it; prints CASE|ok or
                                    CASE|what differs
  make_hostile.py idx DIR           IDX files, good and damaged; DIR/MANIFEST lists the
                                    damaged pairs as IMAGES|LABELS|FILE|KEYWORD (the file
                                    mlpviz must name, and the reason)
  make_hostile.py models MODEL DIR [--committed]
                                    damaged copies of MODEL (truncations, bit flips, forged
                                    fields with the CRC recomputed; --committed: a few only,
                                    for a large model); DIR/MANIFEST lists NAME|KEYWORD, where
                                    KEYWORD LOADS marks a file that must load
  make_hostile.py sections MODEL    prints TAG OFFSET PAYLOAD_LENGTH per section

Every PNG here is written by this file's own encoder (filters 0-4 in turn, several IDAT
chunks), so that the loader is tested on files that no library here produced.
"""
import os
import struct
import sys
import zlib

# ------------------------------------------------------------------ PNG writing

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def pack_row(pixels, depth):
    """A row of pixels (tuples of samples) as PNG bytes, before filtering."""
    samples = [s for p in pixels for s in p]
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, bits = bytearray(), 0, 0
    for s in samples:
        acc = acc << depth | s
        bits += depth
        if bits == 8:
            out.append(acc)
            acc, bits = 0, 0
    if bits:
        out.append(acc << (8 - bits))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_row(kind, row, prior, bpp):
    out = bytearray([kind])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - pred) & 0xFF)
    return bytes(out)


def scanlines(image, depth, bpp, start_filter=0):
    """Filtered scanlines of image (a list of rows), a different filter on each row."""
    data, prior = bytearray(), None
    for y, pixels in enumerate(image):
        row = pack_row(pixels, depth)
        if prior is None:
            prior = bytes(len(row))
        data += filter_row((y + start_filter) % 5, row, prior, bpp)
        prior = row
    return bytes(data)


def png(image, colour, depth, palette=None, trns=None, interlace=False, width=None,
        height=None, idat_parts=3):
    """A PNG of image ([height][width] tuples of samples). width/height override the header
    (to forge it)."""
    h, w = len(image), len(image[0]) if image else 0
    bpp = max(1, CHANNELS[colour] * depth // 8)
    if not interlace:
        raw = scanlines(image, depth, bpp)
    else:
        raw = b""
        for p, (x0, y0, dx, dy) in enumerate(ADAM7):
            sub = [[image[y][x] for x in range(x0, w, dx)] for y in range(y0, h, dy)]
            if sub and sub[0]:  # an empty pass has no scanlines at all
                raw += scanlines(sub, depth, bpp, p)
    z = zlib.compress(raw, 9)
    cut = [len(z) * k // idat_parts for k in range(idat_parts + 1)]
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", w if width is None else width, h if height is None else height, depth,
        colour, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += chunk(b"PLTE", b"".join(bytes(rgb) for rgb in palette))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    for k in range(idat_parts):
        out += chunk(b"IDAT", z[cut[k]:cut[k + 1]])
    return out + chunk(b"IEND", b"")


def big_png(side):
    """A side x side gray PNG, left half black and right half white, built row by row in
    bytes (the generic writer is too slow for 16 million pixels)."""
    row = b"\x00" + bytes(side // 2) + b"\xff" * (side - side // 2)  # filter 0 (none)
    z = zlib.compress(row * side, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", z) + chunk(b"IEND", b""))


# ------------------------------------------------------------------ JPEG writing

# Annex K.3 luminance DC table; a minimal AC table whose only used symbol is EOB (00).
DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))
AC_BITS = [0, 2] + [0] * 14
AC_VALS = [0x00, 0xF0]


def huffman_codes(bits, vals):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def jpeg(blocks):
    """A baseline grayscale JPEG whose 8x8 blocks are flat: blocks is [rows][cols] of gray
    levels. Only DC coefficients are coded (quantizer 1), so it decodes to exactly those
    levels, up to the decoder's IDCT rounding."""
    h, w = 8 * len(blocks), 8 * len(blocks[0])
    dc, ac = huffman_codes(DC_BITS, DC_VALS), huffman_codes(AC_BITS, AC_VALS)
    bits = []

    def put(code, length):
        bits.extend((code >> (length - 1 - i)) & 1 for i in range(length))

    previous = 0
    for row in blocks:
        for level in row:
            coef = 8 * (level - 128)  # the DC term of a flat block: 8 x its level shift
            diff, previous = coef - previous, coef
            size = abs(diff).bit_length()
            put(*dc[size])
            if size:
                put(diff if diff > 0 else diff + (1 << size) - 1, size)
            put(*ac[0x00])  # end of block: every AC coefficient is 0
    bits.extend([1] * (-len(bits) % 8))
    entropy = bytearray()
    for i in range(0, len(bits), 8):
        byte = int("".join(map(str, bits[i:i + 8])), 2)
        entropy.append(byte)
        if byte == 0xFF:
            entropy.append(0)  # byte stuffing

    def segment(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    return (b"\xff\xd8"
            + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, bytes([0]) + bytes([1] * 64))
            + segment(0xC0, struct.pack(">BHHB", 8, h, w, 1) + bytes([1, 0x11, 0]))
            + segment(0xC4, bytes([0x00] + DC_BITS + DC_VALS))
            + segment(0xC4, bytes([0x10] + AC_BITS + AC_VALS))
            + segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
            + bytes(entropy) + b"\xff\xd9")


# ------------------------------------------------------------------ the image corpus

def level(x, y, k):
    """A distinct 8-bit level per pixel and channel of the 8x8 test pattern."""
    return (37 * x + 91 * y + 71 * k + 11 * x * y) % 256


PALETTE = [((17 * i) % 256, (29 * i + 60) % 256, (251 - 13 * i) % 256) for i in range(16)]


def cases():
    """name -> (file bytes, expected [8][8] RGB as an 8x8x3 model sees it, tolerance)."""
    g = [[(level(x, y, 0),) for x in range(8)] for y in range(8)]
    rgb = [[tuple(level(x, y, k) for k in range(3)) for x in range(8)] for y in range(8)]
    grey = lambda v: (v, v, v)
    out = {}
    out["gray8"] = (png(g, 0, 8), [[grey(p[0]) for p in r] for r in g], 0)
    g16 = [[(p[0] * 257,) for p in r] for r in g]  # k * 257: the 8-bit value is k either way
    out["gray16"] = (png(g16, 0, 16), [[grey(p[0]) for p in r] for r in g], 0)
    g4 = [[((x + 3 * y) % 16,) for x in range(8)] for y in range(8)]
    out["gray4"] = (png(g4, 0, 4), [[grey(p[0] * 17) for p in r] for r in g4], 0)
    ga = [[(p[0], (p[0] * 7) % 256) for p in r] for r in g]
    out["gray-alpha"] = (png(ga, 4, 8), [[grey(p[0]) for p in r] for r in g], 0)
    ga16 = [[(p[0] * 257, 65535 - p[0]) for p in r] for r in g]
    out["gray-alpha16"] = (png(ga16, 4, 16), [[grey(p[0]) for p in r] for r in g], 0)
    out["rgb"] = (png(rgb, 2, 8), rgb, 0)
    rgb16 = [[tuple(s * 257 for s in p) for p in r] for r in rgb]
    out["rgb16"] = (png(rgb16, 2, 16), rgb, 0)
    rgba = [[p + ((p[0] ^ p[1]) & 0xFF,) for p in r] for r in rgb]
    out["rgba"] = (png(rgba, 6, 8), rgb, 0)
    idx = [[((x * 5 + y * 3) % 16,) for x in range(8)] for y in range(8)]
    out["palette"] = (png(idx, 3, 8, palette=PALETTE), [[PALETTE[p[0]] for p in r] for r in idx], 0)
    out["palette4-trns"] = (png(idx, 3, 4, palette=PALETTE, trns=bytes(range(0, 256, 16))),
                            [[PALETTE[p[0]] for p in r] for r in idx], 0)
    out["interlaced-gray"] = (png(g, 0, 8, interlace=True), [[grey(p[0]) for p in r] for r in g], 0)
    out["interlaced-rgba16"] = (png([[tuple(s * 257 for s in p) for p in r] for r in rgba], 6, 16,
                                    interlace=True), rgb, 0)
    out["interlaced-palette2"] = (png([[(p[0] % 4,) for p in r] for r in idx], 3, 2,
                                      palette=PALETTE[:4], interlace=True),
                                  [[PALETTE[p[0] % 4] for p in r] for r in idx], 0)
    # Flat blocks 2x2 of 8x8 pixels: the 8x8 model sees each block averaged into a 4x4 quadrant.
    blocks = [[40, 90], [160, 220]]
    out["jpeg"] = (jpeg(blocks), [[grey(blocks[y // 4][x // 4]) for x in range(8)]
                                  for y in range(8)], 2)
    # 1x1 enlarged to 8x8: every pixel that colour.
    out["one-pixel"] = (png([[(200, 30, 90)]], 2, 8), [[(200, 30, 90)] * 8 for _ in range(8)], 0)
    # 4096x4096 shrunk to 8x8 by area averaging: left half black, right half white exactly.
    out["big-4096"] = (big_png(4096), [[grey(0 if x < 4 else 255) for x in range(8)]
                                       for _ in range(8)], 0)
    return out


def damaged():
    """name -> (file bytes, keyword of the reason). Directory-shaped cases are the shell's."""
    g = [[(level(x, y, 0),) for x in range(8)] for y in range(8)]
    good = png(g, 0, 8, idat_parts=1)
    idat = good.index(b"IDAT")
    length = struct.unpack(">I", good[idat - 4:idat])[0]
    out = {}
    out["empty.png"] = (b"", "empty file")
    out["truncated.png"] = (good[:idat + 4 + length // 2], "cannot decode")
    # Both oversized headers must be refused by the pixel limit, before any decoding. (stb's
    # own header check refuses the first one too, for more than 2^30 bytes.)
    out["huge-100000.png"] = (png(g, 0, 8, width=100000, height=100000), "larger than the limit")
    out["over-limit-10000.png"] = (png(g, 0, 8, width=10000, height=10000), "larger than the limit")
    out["zero-size.png"] = (png(g, 0, 8, width=0, height=0), "zero size")
    out["text.png"] = (b"this is not an image\n" * 4, "not a readable image")
    blocks = jpeg([[40, 90], [160, 220]])
    out["truncated-jpeg.png"] = (blocks[:len(blocks) - 8], "cannot decode")
    broken = bytearray(good)
    broken[idat + 4] ^= 0xFF  # a damaged IDAT: the zlib stream no longer inflates
    out["bad-zlib.png"] = (bytes(broken), "cannot decode")
    return out


def write_images(root):
    os.makedirs(root, exist_ok=True)
    for name, (data, _, _) in cases().items():
        with open(os.path.join(root, name + ".png"), "wb") as f:  # the JPEG too
            f.write(data)
    # The first image of a mixed-size folder: 6 wide, 5 high, gray.
    with open(os.path.join(root, "gray-6x5.png"), "wb") as f:
        f.write(png([[(level(x, y, 0),) for x in range(6)] for y in range(5)], 0, 8))
    with open(os.path.join(root, "MANIFEST"), "w") as manifest:
        for name, (data, keyword) in damaged().items():
            with open(os.path.join(root, "bad-" + name), "wb") as f:
                f.write(data)
            manifest.write("bad-%s|%s\n" % (name, keyword))


# ------------------------------------------------------------------ PNG reading (the sheet)

def read_png_rgb8(path):
    """Decodes an 8-bit RGB, non-interlaced PNG (what mv_png_write writes) to rows of tuples."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, lace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, lace) == (8, 2, 0), (depth, colour, lace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prior = zlib.decompress(idat), 3 * w, [], bytes(3 * w)
    for y in range(h):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b, c = prior[i], prior[i - 3] if i >= 3 else 0
            line[i] = (line[i] + [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]) & 0xFF
        rows.append([tuple(line[3 * x:3 * x + 3]) for x in range(w)])
        prior = bytes(line)
    return rows


def panel_problem(sheet, want, tolerance):
    """None when the first 8x8 panel of sheet is want (within tolerance), else what differs."""
    got = read_png_rgb8(sheet)
    bad = [(x, y, got[y][x], want[y][x]) for y in range(8) for x in range(8)
           if any(abs(a - b) > tolerance for a, b in zip(got[y][x], want[y][x]))]
    if bad:
        return "%d of 64 pixels differ, e.g. (x, y, got, want) %s" % (len(bad), bad[:2])
    return None


def check_panels(sheets):
    """Prints CASE|ok or CASE|what differs for each image CASE, from sheets/CASE.png, and
    a control line: the checker must see that the gray8 sheet is not the rgb image."""
    all_cases = cases()
    for case, (_, want, tolerance) in all_cases.items():
        path = os.path.join(sheets, case + ".png")
        problem = panel_problem(path, want, tolerance) if os.path.exists(path) else "no sheet"
        print("%s|%s" % (case, problem or "ok"))
    path = os.path.join(sheets, "gray8.png")
    if os.path.exists(path):
        print("control|%s" % ("ok" if panel_problem(path, all_cases["rgb"][1], 0)
                              else "the checker cannot tell gray8 from rgb"))
    return 0


# ------------------------------------------------------------------ IDX

def idx_images(n, rows, cols, magic=0x803, pixels=None):
    body = bytes((i * 7) % 256 for i in range(n * rows * cols)) if pixels is None else pixels
    return struct.pack(">IIII", magic, n, rows, cols) + body


def idx_labels(labels, magic=0x801, count=None):
    return struct.pack(">II", magic, len(labels) if count is None else count) + bytes(labels)


def noise(n):
    """n bytes that do not compress: the top bytes of a 64-bit LCG (Knuth's MMIX constants)."""
    x, out = 1, bytearray()
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(x >> 56)
    return bytes(out)


def gzip_bytes(data, isize=None):
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = z.compress(data) + z.flush()
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + raw
            + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF,
                          len(data) if isize is None else isize))


def write_idx(root):
    os.makedirs(root, exist_ok=True)
    good_i, good_l = idx_images(4, 3, 3), idx_labels([0, 1, 1, 0])
    files = {
        "good-images": good_i, "good-labels": good_l,
        "magic-images": idx_images(4, 3, 3, magic=0x801),  # a label file's magic
        "float-images": idx_images(4, 3, 3, magic=0xD03),  # float32 items: not unsigned bytes
        "magic-labels": idx_labels([0, 1, 1, 0], magic=0x803),
        "five-labels": idx_labels([0, 1, 1, 0, 1]),
        "truncated-images": good_i[:-5],
        "trailing-images": good_i + b"\x00",
        "truncated-labels": idx_labels([0, 1, 1, 0], count=6),
        "header-only": good_i[:10],
        "zero-count": idx_images(0, 3, 3),
        "huge-count": idx_images(0x7FFFFFFF, 28, 28, pixels=bytes(100)),
        "huge-side": idx_images(1, 100000, 100000, pixels=bytes(100)),
        "zero-side": idx_images(4, 0, 3, pixels=b""),
        "empty": b"",
        "lying-gzip": gzip_bytes(good_i, isize=0x7FFFFFF0),
        "bad-crc-gzip": gzip_bytes(good_i)[:-8] + b"\x00\x00\x00\x00" + gzip_bytes(good_i)[-4:],
        "gzip-good-images": gzip_bytes(good_i),
        # Two 64x64 images of noise: PNGs of several KiB, for the disk-full case.
        "noisy-images": idx_images(2, 64, 64, pixels=noise(2 * 64 * 64)),
        "noisy-labels": idx_labels([0, 1]),
    }
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    # images|labels|file|keyword: each pair must be refused, naming that file and the reason.
    manifest = [
        ("magic-images", "good-labels", "magic-images", "magic"),
        ("float-images", "good-labels", "float-images", "magic"),
        ("good-images", "magic-labels", "magic-labels", "magic"),
        ("good-images", "five-labels", "five-labels", "labels"),
        ("truncated-images", "good-labels", "truncated-images", "truncated"),
        ("trailing-images", "good-labels", "trailing-images", "trailing"),
        ("good-images", "truncated-labels", "truncated-labels", "truncated"),
        ("header-only", "good-labels", "header-only", "truncated"),
        ("zero-count", "good-labels", "zero-count", "count"),
        ("huge-count", "good-labels", "huge-count", "count"),
        ("huge-side", "good-labels", "huge-side", "dimension"),
        ("zero-side", "good-labels", "zero-side", "dimension"),
        ("empty", "good-labels", "empty", "truncated"),
        ("lying-gzip", "good-labels", "lying-gzip", "gzip"),
        ("bad-crc-gzip", "good-labels", "bad-crc-gzip", "CRC"),
    ]
    with open(os.path.join(root, "MANIFEST"), "w") as f:
        for row in manifest:
            f.write("|".join(row) + "\n")


# ------------------------------------------------------------------ model files

MAGIC = b"\x89MLP\r\n\x1a\n"


def sections(data):
    """[(tag, offset of the section header, payload length)] of a valid model file."""
    out, pos, end = [], 12, len(data) - 4
    while pos < end:
        tag, n = data[pos:pos + 4], struct.unpack("<Q", data[pos + 4:pos + 12])[0]
        out.append((tag.decode("latin1"), pos, n))
        pos += 12 + n
    return out


def with_crc(body):
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def find(data, tag):
    for t, at, n in sections(data):
        if t == tag:
            return at + 12, n
    raise KeyError(tag)


def patch(data, offset, raw):
    """data with raw written at offset and the CRC recomputed."""
    body = bytearray(data[:-4])
    body[offset:offset + len(raw)] = raw
    return with_crc(bytes(body))


def write_models(model_path, root, committed=False):
    """The damaged copies of model_path. committed: a large model, so only a few files (its
    section boundaries and three forged fields) rather than the whole corpus."""
    os.makedirs(root, exist_ok=True)
    data = open(model_path, "rb").read()
    assert data[:8] == MAGIC, "not a model"
    secs = sections(data)
    cases = {}
    ends = [at + 12 + n for _, at, n in secs]
    heads = [at for _, at, _ in secs]

    # Truncation: at every section boundary (header start, payload start, middle, end) and
    # one byte either side, plus every 401st byte; as is (the CRC or the length
    # check fires) and with a CRC recomputed over what is left (the section walk must then
    # catch it, or load the file when only optional sections were cut off).
    if committed:
        points = set(heads) | {heads[-1] + 12 + secs[-1][2] // 2}
        points |= {at + 12 + n // 2 for t, at, n in secs if t == "WGHT"}
    else:
        points = {0, 1, 7, 8, 11, 12, 13, 15, 16, len(data) - 5, len(data) - 4, len(data) - 1}
        for _, at, n in secs:
            for p in (at, at + 4, at + 12, at + 12 + n // 2, at + 12 + n):
                points.update({p - 1, p, p + 1})
        points.update(range(0, len(data), 401))
    for p in sorted(q for q in points if 0 <= q < len(data)):
        cases["cut-%07d" % p] = (data[:p], "too short" if p < 16 else "CRC mismatch")
        if p >= 12 and p != len(data) - 4:  # the envelope stays whole: the sections are cut
            present = {t for t, at, n in secs if at + 12 + n <= p}
            if {"ARCH", "INPT", "CLAS", "WGHT"} <= present and (p in ends or p == 12):
                keyword = "LOADS"  # only optional sections were cut off: a valid file
            elif p in ends or p == 12:
                keyword = "missing required section"
            elif any(h <= p < h + 12 for h in heads):
                keyword = "truncated section header"
            else:
                keyword = "truncated section"
            cases["cutcrc-%07d" % p] = (with_crc(data[:p]), keyword)

    # One flipped bit: every 211th byte and every byte of the envelope, a
    # different bit each time.
    flips = {heads[-1] // 2} if committed else (
        set(range(0, len(data), 211)) | set(range(12)) | set(range(len(data) - 4, len(data))))
    for p in sorted(flips):
        flipped = bytearray(data)
        flipped[p] ^= 1 << (p % 8)
        keyword = ("not an mlpviz model" if p < 8 else "version" if p < 12 else "CRC mismatch")
        cases["flip-%07d" % p] = (bytes(flipped), keyword)

    forged(data, secs, cases)
    if committed:
        keep = ("cut", "flip", "weight-nan", "arch-widths-max", "class-name-unterminated")
        cases = {k: v for k, v in cases.items() if k.startswith(keep)}
    with open(os.path.join(root, "MANIFEST"), "w") as manifest:
        for name, (content, keyword) in cases.items():
            with open(os.path.join(root, name + ".mlp"), "wb") as f:
                f.write(content)
            manifest.write("%s.mlp|%s\n" % (name, keyword))


def forged(data, secs, cases):
    """Fields forged one at a time, the CRC recomputed so that the field's own check fires."""
    arch, arch_len = find(data, "ARCH")
    L = struct.unpack("<I", data[arch:arch + 4])[0]
    cases["magic"] = (b"\x89MLQ" + data[4:], "not an mlpviz model")
    cases["textmode"] = (MAGIC[:4] + b"\n" + data[6:], "line endings")
    cases["png-magic"] = (b"\x89PNG\r\n\x1a\n" + data[8:], "not an mlpviz model")
    cases["version-2"] = (data[:8] + struct.pack("<I", 2) + data[12:], "newer")
    cases["version-2-crc"] = (patch(data, 8, struct.pack("<I", 2)), "newer")
    cases["version-max"] = (patch(data, 8, struct.pack("<I", 0xFFFFFFFF)), "newer")
    cases["version-0"] = (patch(data, 8, struct.pack("<I", 0)), "version 0")

    cases["arch-widths-max"] = (patch(data, arch + 4, struct.pack("<I", 1048576) * (L + 1)),
                                "weight section")
    # 32768 x 32768: 4 GiB of weights, more than the suite's `ulimit -v` lets the process map.
    cases["arch-widths-4GiB"] = (patch(data, arch + 4, struct.pack("<I", 32768) * (L + 1)),
                                 "weight section")
    cases["arch-width-2^32-1"] = (patch(data, arch + 4, struct.pack("<I", 0xFFFFFFFF)),
                                  "bad architecture")
    cases["arch-width-0"] = (patch(data, arch + 8, struct.pack("<I", 0)), "bad architecture")
    cases["arch-layers-huge"] = (patch(data, arch, struct.pack("<I", 0xFFFFFFFF)), "weight layers")
    cases["arch-layers-0"] = (patch(data, arch, struct.pack("<I", 0)), "weight layers")
    cases["arch-act-unknown"] = (patch(data, arch + 4 + 4 * (L + 1), struct.pack("<I", 99)),
                                 "bad architecture")
    cases["arch-head-unknown"] = (patch(data, arch + arch_len - 4, struct.pack("<I", 7)),
                                  "bad architecture")
    # The widths of a forged 16-layer net of 1048576 units, in a payload of the right length.
    body = struct.pack("<I", 16) + struct.pack("<I", 1048576) * 17 + struct.pack("<If", 3, 0) * 15 \
        + struct.pack("<I", 0)
    cases["arch-16-layers-max"] = (rebuild(data, "ARCH", body), "weight section")

    inpt, _ = find(data, "INPT")
    cases["input-shape-huge"] = (patch(data, inpt + 4, struct.pack("<II", 0x10000, 0x10000)),
                                 "input shape")
    cases["input-channels-9"] = (patch(data, inpt, struct.pack("<I", 9)), "channels")
    cases["input-std-0"] = (patch(data, inpt + 12 + 4 * struct.unpack("<I", data[inpt:inpt + 4])[0],
                                  struct.pack("<f", 0.0)), "std")
    cases["input-mean-nan"] = (patch(data, inpt + 12, struct.pack("<f", float("nan"))),
                               "not finite")

    clas, clas_len = find(data, "CLAS")
    cases["class-count-huge"] = (patch(data, clas, struct.pack("<I", 0xFFFFFFFF)), "class names")
    cases["class-name-len-huge"] = (patch(data, clas + 4, struct.pack("<I", 0xFFFFFFFF)),
                                    "absurd length")
    cases["class-name-len-256"] = (patch(data, clas + 4, struct.pack("<I", 256)), "absurd length")
    cases["class-name-len-0"] = (patch(data, clas + 4, struct.pack("<I", 0)), "absurd length")
    # The last name claims more bytes than its section holds: a string with no end.
    last = clas + 4
    for _ in range(struct.unpack("<I", data[clas:clas + 4])[0] - 1):
        last += 4 + struct.unpack("<I", data[last:last + 4])[0]
    cases["class-name-unterminated"] = (patch(data, last, struct.pack("<I", 200)), "run past")
    cases["class-name-nul"] = (patch(data, clas + 8, b"\x00"), "NUL")

    wght, wght_len = find(data, "WGHT")
    cases["weights-count-huge"] = (patch(data, wght, struct.pack("<Q", 1 << 62)), "weight section")
    cases["weight-nan"] = (patch(data, wght + 8 + 4 * 5, struct.pack("<f", float("nan"))),
                           "not finite")
    cases["weight-inf-last"] = (patch(data, wght + wght_len - 4, struct.pack("<f", float("-inf"))),
                                "not finite")
    cases["section-length-huge"] = (patch(data, wght - 8, struct.pack("<Q", 1 << 63)),
                                    "truncated section")
    cases["section-tag-binary"] = (patch(data, wght - 12, b"\x00\xffW\x01"), "bad section tag")
    cases["section-unknown-required"] = (patch(data, wght - 12, b"WGHX"), "unknown required")
    cases["section-duplicate"] = (with_crc(data[:-4] + data[arch - 12:arch + arch_len]),
                                  "duplicate section")
    xtra = struct.pack("<I", 1) + b"x" + struct.pack("<Q", 0)
    many = b"".join(b"xtra" + struct.pack("<Q", len(xtra) + 0) + xtra for _ in range(33))
    cases["extras-33"] = (with_crc(data[:-4] + many), "more than")
    big = struct.pack("<I", 1) + b"y" + struct.pack("<Q", 1 << 61) + b"\0" * 8
    cases["extra-count-huge"] = (with_crc(data[:-4] + b"xtra" + struct.pack("<Q", len(big)) + big),
                                 "does not match")
    nan = struct.pack("<I", 1) + b"z" + struct.pack("<Q", 2) + struct.pack("<ff", 1, float("nan"))
    cases["extra-nan"] = (with_crc(data[:-4] + b"xtra" + struct.pack("<Q", len(nan)) + nan),
                          "not finite")
    cases["meta-no-newline"] = (rebuild(data, "meta", b"k=v"), "metadata")
    cases["meta-empty-key"] = (rebuild(data, "meta", b"=v\n"), "metadata")
    cases["meta-nul"] = (rebuild(data, "meta", b"k=v\x00w\n"), "metadata")


def rebuild(data, tag, payload):
    """data with section tag's payload replaced (and its length), the CRC recomputed."""
    body = bytearray(data[:12])
    for t, at, n in sections(data):
        if t == tag:
            body += tag.encode() + struct.pack("<Q", len(payload)) + payload
        else:
            body += data[at:at + 12 + n]
    return with_crc(bytes(body))


def main(argv):
    if len(argv) >= 3 and argv[1] == "images":
        write_images(argv[2])
    elif len(argv) == 3 and argv[1] == "panels":
        return check_panels(argv[2])
    elif len(argv) == 3 and argv[1] == "idx":
        write_idx(argv[2])
    elif len(argv) in (4, 5) and argv[1] == "models":
        write_models(argv[2], argv[3], argv[4:] == ["--committed"])
    elif len(argv) == 3 and argv[1] == "sections":
        for tag, at, n in sections(open(argv[2], "rb").read()):
            print(tag, at, n)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
