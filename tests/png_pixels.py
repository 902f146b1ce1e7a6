#!/usr/bin/python3
"""png_pixels.py: reads 8-bit gray or RGB PNGs with the standard library alone (zlib and the
five PNG row filters), so that the CLI suites can measure images without PIL.

As a program: png_pixels.py diversity DIR CLASS... prints, per class, the mean pairwise L2
distance between its seeds' images DIR/<class>-<seed>.png (pixels in [0, 1])."""
import struct
import sys
import zlib


def read(path):
    """(width, height, channels, list of pixel values in [0, 1], row-major, interleaved)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"{path}: only 8-bit gray or RGB, not interlaced")
    raw, stride, out, prev = zlib.decompress(idat), width * channels, [], [0] * width * channels
    for y in range(height):
        kind, row = raw[y * (stride + 1)], list(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + left) & 255
            elif kind == 2:
                row[i] = (row[i] + up) & 255
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                row[i] = (row[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        out.extend(row)
        prev = row
    return width, height, channels, [v / 255 for v in out]


def diversity(folder, classes):
    import glob
    import itertools
    for c in classes:
        images = [read(p)[3] for p in sorted(glob.glob(f"{folder}/{c}-*.png"))]
        pairs = list(itertools.combinations(images, 2))
        mean = sum(sum((a - b) ** 2 for a, b in zip(x, y)) ** 0.5 for x, y in pairs) / max(len(pairs), 1)
        print(f"{c} {len(images)} {mean:.4f}")


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "diversity":
        sys.exit("usage: png_pixels.py diversity DIR CLASS...")
    diversity(sys.argv[2], sys.argv[3:])
