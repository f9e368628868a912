"""Decoding a label's inline SVG QR for real: its modules drawn into a picture, read by zxing."""

from __future__ import annotations

import re

import zxingcpp
from PIL import Image, ImageDraw

SCALE = 8


def decode_svg(svg: str) -> str:
    """The text of the QR code in a segno SVG (one <path> of horizontal strokes: `M x y`, then
    `h n` strokes and relative `m dx dy` moves, on rows at y + 0.5)."""
    size = int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))
    path = re.search(r' d="([^"]+)"', svg).group(1)
    image = Image.new("L", (size * SCALE, size * SCALE), 255)
    draw = ImageDraw.Draw(image)
    x = y = 0.0
    for command, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path):
        if command == "M":
            x, y = float(a), float(b)
        elif command == "m":
            x, y = x + float(a), y + float(b)
        else:
            row = int(y - 0.5)
            draw.rectangle(
                [x * SCALE, row * SCALE, (x + float(a)) * SCALE - 1, (row + 1) * SCALE - 1], fill=0
            )
            x += float(a)
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code found in the SVG"
    return found[0].text
