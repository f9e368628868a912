"""What every CSV or XLSX export shares: text that a spreadsheet would run as a formula (CSV/XLSX
injection: a cell starting with = + - @, a tab or a carriage return) is written as text.

Every writer passes each cell through `cell_value` (CSV) or `put`/`xlsx_value` (XLSX, which add
the string type on top), so the rule lives here only. Numbers, dates and empty cells are left as
they are: a refund's -12.50 is a number, not text that looks like a formula.
"""

from __future__ import annotations

import re
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# openpyxl's own (openpyxl.cell.cell), kept here so that the per-cell check imports nothing: text
# equal to an error code would be written as that error, and XML cannot hold these characters.
ERROR_CODES = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"))
ILLEGAL_CHARACTERS = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")


def as_text(value: str | None) -> str:
    """The cell's text, with a leading apostrophe where a spreadsheet would see a formula
    (OWASP's CSV-injection rule; leading spaces do not hide the formula from Excel)."""
    text = value or ""
    return "'" + text if text.lstrip(" ").startswith(FORMULA_STARTS) else text


def cell_value(value: Any) -> Any:
    """One cell of an export, CSV or XLSX: text neutralised by `as_text`, anything else (numbers,
    dates, None) untouched."""
    return as_text(value) if isinstance(value, str) else value


def put(cell, value: Any):
    """Set an openpyxl cell (ordinary or write-only) to `cell_value(value)`. Text first loses the
    control characters XML cannot hold (openpyxl would refuse the whole workbook), then is
    neutralised, and is always of the string type: never a formula, nor an error value (openpyxl
    would take the text "#N/A" for one)."""
    if isinstance(value, str):
        cell.value = as_text(ILLEGAL_CHARACTERS.sub("", value))
        cell.data_type = "s"
    else:
        cell.value = value
    return cell


def xlsx_value(sheet, value: Any) -> Any:
    """A value for `sheet.append` in write-only mode: the plain neutralised value where openpyxl
    types it as a string by itself (the common, cheaper case), else a string-typed cell."""
    if not isinstance(value, str):
        return value
    if value in ERROR_CODES or ILLEGAL_CHARACTERS.search(value):
        from openpyxl.cell import WriteOnlyCell

        return put(WriteOnlyCell(sheet), value)
    return as_text(value)
