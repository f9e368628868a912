"""The parcel label sheet: A4, 3 columns × 8 rows, each label with a QR code of the batch's
trace URL, drawn server-side as inline SVG (no script, prints sharp at any size)."""

from __future__ import annotations

import segno

COLUMNS = 3
ROWS = 8
PER_SHEET = COLUMNS * ROWS


def qr_svg(url: str) -> str:
    """An inline <svg> of the QR code of `url` (error correction M: a scuffed parcel still
    scans), sized by its viewBox only, so the label's CSS gives it its millimetres."""
    code = segno.make(url, error="m", micro=False)
    return code.svg_inline(scale=1, border=2, omitsize=True, svgclass="label-qr", dark="#000")
