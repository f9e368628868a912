"""What every CSV or XLSX export shares: text that a spreadsheet would run as a formula (CSV/XLSX
injection: a cell starting with = + - @, a tab or a carriage return) is written as text."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str | None) -> str:
    """The cell's text, with a leading apostrophe where a spreadsheet would see a formula."""
    text = value or ""
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text
