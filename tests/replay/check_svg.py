#!/usr/bin/python3
"""Renders an SVG with a real renderer (rsvg-convert, Debian's librsvg2-bin) and checks it:
the expected number of series elements, and every legend colour visible in the rendered
pixels (so the picture really draws what the legend promises).

Usage: check_svg.py FILE.svg EXPECTED_SERIES
Exit 0 with "ok: ...", or 1 with one line naming the problem.
"""
import re
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

NS = "{http://www.w3.org/2000/svg}"


def decode_png(data):
    """RGB(A) 8-bit non-interlaced PNG -> (width, height, channels, rows of bytes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, f"unsupported PNG {header}"
    ch = 4 if colour_type == 6 else 3
    raw, stride, rows, prev = zlib.decompress(idat), width * ch, [], bytearray(width * ch)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, ch, rows


def colour_counts(width, ch, rows):
    counts = {}
    for row in rows:
        for x in range(width):
            px = row[x * ch:x * ch + 3]
            counts[px] = counts.get(px, 0) + 1
    return counts


def main():
    path, expected = sys.argv[1], int(sys.argv[2])
    try:
        tree = ET.parse(path)
        series = [e for e in tree.iter() if e.get("class") == "series"]
        swatches = [e for e in tree.iter() if e.get("class") == "swatch"]
        assert len(series) == expected, f"{len(series)} series, expected {expected}"
        with tempfile.NamedTemporaryFile(suffix=".png") as png:
            subprocess.run(["rsvg-convert", "-o", png.name, path], check=True, capture_output=True)
            width, height, ch, rows = decode_png(open(png.name, "rb").read())
        counts = colour_counts(width, ch, rows)
        for s in swatches:
            rgb = bytes(int(s.get("fill")[i:i + 2], 16) for i in (1, 3, 5))
            assert counts.get(rgb, 0) >= 20, f"legend colour {s.get('fill')} ({s.get('data-name')}) is not rendered"
        names = {e.get("data-name") for e in series}
        print(f"ok: {path}: {len(series)} series ({len(names)} names), {len(swatches)} legend colours "
              f"rendered in {width}x{height}")
        return 0
    except (AssertionError, OSError, ET.ParseError, subprocess.CalledProcessError) as err:
        print(f"check_svg: {path}: {err}".replace("\n", " "))
        return 1


if __name__ == "__main__":
    sys.exit(main())
