#!/usr/bin/env python3
"""fuzz-seeds.py: writes the seed corpora of the libFuzzer harnesses (tests/fuzz/), made
here rather than committed as blobs.

usage: fuzz-seeds.py OUT_DIR TOOLS_DIR
  OUT_DIR/model/     small valid models from TOOLS_DIR/tool_make_model (every head, several
                     activations, extras and metadata), plus truncated copies
  OUT_DIR/idx/       IDX image+label pairs, plain and gzip, as the harness reads them: two
                     bytes giving the split, then the image file, then the label file
  OUT_DIR/image/     PNGs (gray, gray+alpha, RGB, RGBA, palette, 16-bit, interlaced), BMP,
                     TGA, PGM, GIF header
  OUT_DIR/png_info/  the same images
  OUT_DIR/onnx/      the committed ONNX fixtures (tests/fixtures/onnx/*.onnx and hostile/),
                     whole and cut at three points
  OUT_DIR/json/      the committed sidecar JSON files and a few small JSON texts
"""
import glob
import gzip
import os
import struct
import subprocess
import sys
import zlib


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def models(out, tools):
    d = os.path.join(out, "model")
    os.makedirs(d, exist_ok=True)
    variants = [
        ["--layers", "16,4,3", "--act", "relu", "--loss", "ce"],
        ["--layers", "12,5,5,2", "--act", "tanh", "--loss", "bce", "--channels", "3"],
        ["--layers", "9,3", "--loss", "mse"],
        ["--layers", "16,6,4", "--act", "gelu", "--extra", "class.mean=64", "--meta", "k=v"],
        ["--layers", "4,2,2", "--act", "leaky_relu", "--class-prefix", "shoe "],
    ]
    for i, v in enumerate(variants):
        path = os.path.join(d, "m%d.mlp" % i)
        subprocess.run([os.path.join(tools, "tool_make_model"), path] + v, check=True,
                       stdout=subprocess.DEVNULL)
        data = open(path, "rb").read()
        for cut in (8, len(data) // 3, len(data) - 5):
            write(os.path.join(d, "m%d-cut%d.mlp" % (i, cut)), data[:cut])


def idx_pair(count, rows, cols, classes):
    images = struct.pack(">IIII", 0x00000803, count, rows, cols)
    images += bytes((i * 37 + 11) % 256 for i in range(count * rows * cols))
    labels = struct.pack(">II", 0x00000801, count) + bytes(i % classes for i in range(count))
    return images, labels


def idx(out):
    d = os.path.join(out, "idx")
    os.makedirs(d, exist_ok=True)
    cases = {"plain": idx_pair(4, 3, 3, 3), "one": idx_pair(1, 2, 2, 1),
             "wide": idx_pair(2, 1, 16, 2)}
    for name, (images, labels) in cases.items():
        for gz in (False, True):
            im = gzip.compress(images, mtime=0) if gz else images
            lb = gzip.compress(labels, mtime=0) if gz else labels
            split = struct.pack("<H", len(im))
            write(os.path.join(d, "%s%s.bin" % (name, "-gz" if gz else "")), split + im + lb)


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width, height, color_type, depth, rows, palette=None, interlace=0):
    """rows: raw scanlines without filter bytes (or, interlaced, the whole filtered stream)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, interlace)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette:
        out += chunk(b"PLTE", palette)
    raw = rows if interlace else b"".join(b"\x00" + r for r in rows)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def adam7(width, height, bpp, pixel):
    """Filtered (filter 0) scanlines of the 7 Adam7 passes; pixel(x, y) gives bpp bytes."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    out = b""
    for x0, y0, dx, dy in passes:
        xs = list(range(x0, width, dx))
        for y in range(y0, height, dy):
            if xs:
                out += b"\x00" + b"".join(pixel(x, y) for x in xs)
    return out


def images(out):
    d = os.path.join(out, "image")
    os.makedirs(d, exist_ok=True)
    w, h = 5, 4
    gray = [bytes((x * 50 + y * 20) % 256 for x in range(w)) for y in range(h)]
    write(os.path.join(d, "gray.png"), png(w, h, 0, 8, gray))
    write(os.path.join(d, "gray-alpha.png"),
          png(w, h, 4, 8, [bytes(v for x in range(w) for v in (r[x], 200)) for r in gray]))
    write(os.path.join(d, "rgb.png"),
          png(w, h, 2, 8, [bytes(v for x in range(w) for v in (r[x], 255 - r[x], 9)) for r in gray]))
    write(os.path.join(d, "rgba.png"),
          png(w, h, 6, 8, [bytes(v for x in range(w) for v in (r[x], 3, 90, 128)) for r in gray]))
    write(os.path.join(d, "palette.png"),
          png(w, h, 3, 8, [bytes(v % 3 for v in r) for r in gray],
              palette=bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])))
    write(os.path.join(d, "gray16.png"),
          png(w, h, 0, 16, [b"".join(struct.pack(">H", v * 257) for v in r) for r in gray]))
    write(os.path.join(d, "interlaced.png"),
          png(9, 9, 0, 8, adam7(9, 9, 1, lambda x, y: bytes([(x * 29 + y * 7) % 256])),
              interlace=1))
    # BMP, 24-bit, 2 x 2
    pixels = b"".join(bytes([10, 20, 30, 40, 50, 60]) + b"\x00\x00" for _ in range(2))
    bmp = b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
    bmp += struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    write(os.path.join(d, "tiny.bmp"), bmp + pixels)
    # TGA, uncompressed gray 3 x 2
    tga = struct.pack("<BBBHHBHHHHBB", 0, 0, 3, 0, 0, 0, 0, 0, 3, 2, 8, 0) + bytes(range(6))
    write(os.path.join(d, "tiny.tga"), tga)
    write(os.path.join(d, "tiny.pgm"), b"P5\n3 2\n255\n" + bytes([0, 60, 120, 180, 240, 255]))
    write(os.path.join(d, "header.gif"), b"GIF89a\x02\x00\x02\x00\x00\x00\x00;")
    info = os.path.join(out, "png_info")
    os.makedirs(info, exist_ok=True)
    for name in os.listdir(d):
        write(os.path.join(info, name), open(os.path.join(d, name), "rb").read())


def onnx(out):
    d = os.path.join(out, "onnx")
    os.makedirs(d, exist_ok=True)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                        "onnx")
    for path in sorted(glob.glob(os.path.join(here, "*.onnx")) +
                       glob.glob(os.path.join(here, "hostile", "*.onnx"))):
        data = open(path, "rb").read()
        name = os.path.basename(path)[:-5]
        write(os.path.join(d, name + ".onnx"), data)
        for cut in (len(data) // 4, len(data) // 2, len(data) - 3):
            write(os.path.join(d, "%s-cut%d.onnx" % (name, cut)), data[:cut])


def json(out):
    d = os.path.join(out, "json")
    os.makedirs(d, exist_ok=True)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                        "onnx")
    for path in sorted(glob.glob(os.path.join(here, "*.json")) +
                       glob.glob(os.path.join(here, "hostile", "*.json"))):
        write(os.path.join(d, os.path.basename(path)), open(path, "rb").read())
    texts = ['{"a": [1, -2.5e-3, true, false, null], "b": {"c": "\\u00e9\\ud83d\\ude00"}}',
             '["x", "y\\n\\t\\"\\/\\\\", 0, 1E+2, -0.0]', '"caf\xc3\xa9"', '[[[[[]]]]]', '{}', '0']
    for i, t in enumerate(texts):
        write(os.path.join(d, "t%d.json" % i), t.encode("latin-1"))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, tools = sys.argv[1], sys.argv[2]
    models(out, tools)
    idx(out)
    images(out)
    onnx(out)
    json(out)


if __name__ == "__main__":
    main()
