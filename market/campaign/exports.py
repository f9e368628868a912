"""The assessment tables: an XLSX workbook (units, villages, towns, categories, the laggard list
and the ledger detail) and CSV files (UTF-8 with a BOM, so that Excel opens them in Chinese).

Every cell goes through market.spreadsheets: names come from co-ops, units and the directory, and
text a spreadsheet would run as a formula is written as text (numbers stay numbers).

Both stream: the workbook is written row by row (xlsxwriter's constant-memory mode) into a file,
CSV by a generator while the ledger is read in batches; neither has a row cap (the ledger goes on
over further sheets past a sheet's 1,048,576 rows). Small ones are sent from the request, large
ones written by a background job (market.exports). Figures are the dashboard's own
(market.campaign.read), to the fen.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import IO, Any

from flask_babel import gettext as _

from market.campaign.models import BASIS_LABELS, Campaign
from market.campaign.read.dashboard import Totals, dashboard_of, unit_rows
from market.campaign.read.filters import Filters, towns
from market.campaign.read.laggards import laggards_on
from market.campaign.read.ledger_lines import ledger_lines
from market.clock import SHANGHAI, now
from market.money import fen_to_yuan_text
from market.orders.models import ORDER_MODE_LABELS, OrderMode
from market.spreadsheets import ILLEGAL_CHARACTERS, as_text, put, xlsx_value

YUAN_FORMAT = "#,##0.00"
PCT_FORMAT = "0.0%"
TIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_BATCH_ROWS = 500


def yuan(fen: int | None) -> Decimal | None:
    """Fen as an exact decimal number of yuan for a spreadsheet cell."""
    return None if fen is None else Decimal(fen) / 100


def _fraction(pct: float | None) -> float | None:
    return None if pct is None else pct / 100


def mode_label(mode: str) -> str:
    try:
        return str(ORDER_MODE_LABELS[OrderMode(mode)])
    except ValueError:
        return mode


# -- the tables, as (header, format, value) columns ----------------------------------------------
Column = tuple[str, str | None, Callable]


def unit_columns(campaign: Campaign) -> list[Column]:
    columns: list[Column] = [
        (_("排名"), None, lambda u: u.rank),
        (_("单位"), None, lambda u: u.name),
        (_("目标（元）"), YUAN_FORMAT, lambda u: yuan(u.target_fen)),
        (_("净销售额（元）"), YUAN_FORMAT, lambda u: yuan(u.net_fen)),
        (_("其中结对村（元）"), YUAN_FORMAT, lambda u: yuan(u.paired_fen)),
    ]
    if campaign.paired_only:
        columns.append((_("计入目标（元）"), YUAN_FORMAT, lambda u: yuan(u.counted_fen)))
    columns += [
        (_("完成率"), PCT_FORMAT, lambda u: _fraction(u.pct)),
        (_("订单数"), None, lambda u: u.orders),
        (_("购买人数"), None, lambda u: u.buyers),
        (_("结对村占比"), PCT_FORMAT, lambda u: _fraction(u.paired_share)),
    ]
    return columns


def village_columns() -> list[Column]:
    return [
        (_("镇（街道）"), None, lambda v: v.town),
        (_("村"), None, lambda v: v.name),
        (_("销售额（元）"), YUAN_FORMAT, lambda v: yuan(v.net_fen)),
        (_("其中归属单位（元）"), YUAN_FORMAT, lambda v: yuan(v.attributed_fen)),
        (_("其中结对单位（元）"), YUAN_FORMAT, lambda v: yuan(v.paired_fen)),
        (_("未归属（元）"), YUAN_FORMAT, lambda v: yuan(v.net_fen - v.attributed_fen)),
        (_("件数"), None, lambda v: v.quantity),
    ]


def town_columns() -> list[Column]:
    return [
        (_("镇（街道）"), None, lambda t: t.name),
        (_("销售额（元）"), YUAN_FORMAT, lambda t: yuan(t.net_fen)),
        (_("其中结对单位（元）"), YUAN_FORMAT, lambda t: yuan(t.paired_fen)),
        (_("有销售的村"), None, lambda t: t.villages),
        (_("件数"), None, lambda t: t.quantity),
    ]


def category_columns(total_fen: int) -> list[Column]:
    return [
        (_("分类"), None, lambda c: c.name),
        (_("销售额（元）"), YUAN_FORMAT, lambda c: yuan(c.net_fen)),
        (_("件数"), None, lambda c: c.quantity),
        (_("占比"), PCT_FORMAT, lambda c: c.net_fen / total_fen if total_fen > 0 else None),
    ]


def laggard_columns() -> list[Column]:
    return [
        (_("单位"), None, lambda g: g.name),
        (_("全年目标（元）"), YUAN_FORMAT, lambda g: yuan(g.target_fen)),
        (_("按日折算目标（元）"), YUAN_FORMAT, lambda g: yuan(g.expected_fen)),
        (_("提醒线（元）"), YUAN_FORMAT, lambda g: yuan(g.threshold_fen)),
        (_("已完成（元）"), YUAN_FORMAT, lambda g: yuan(g.counted_fen)),
        (_("折算目标完成率（%）"), PCT_FORMAT, lambda g: g.pct_of_expected / 100),
        (_("距提醒线差额（元）"), YUAN_FORMAT, lambda g: yuan(g.shortfall_fen)),
    ]


def ledger_columns() -> list[Column]:
    # Labels are translated once here, not once per row: gettext per cell would cost more than
    # reading the ledger.
    kinds = {True: _("销售"), False: _("退款")}
    bases = {basis: str(label) for basis, label in BASIS_LABELS.items()}
    modes = {mode.value: str(label) for mode, label in ORDER_MODE_LABELS.items()}
    yes_no = {True: _("是"), False: _("否")}
    nobody = _("未归属")
    return [
        (_("编号"), None, lambda e: e.entry_id),
        (_("时间"), TIME_FORMAT, lambda e: e.at),
        (_("订单号"), None, lambda e: e.order_number),
        (_("类型"), None, lambda e: kinds[e.amount_fen >= 0]),
        (_("单位"), None, lambda e: e.unit or nobody),
        (_("归属依据"), None, lambda e: bases[e.basis]),
        (_("结对村"), None, lambda e: yes_no[e.paired]),
        (_("镇（街道）"), None, lambda e: e.town),
        (_("村"), None, lambda e: e.village),
        (_("合作社"), None, lambda e: e.coop),
        (_("商品"), None, lambda e: e.product),
        (_("分类"), None, lambda e: e.category),
        (_("方式"), None, lambda e: modes.get(e.mode, e.mode)),
        (_("数量"), None, lambda e: e.quantity),
        (_("金额（元）"), YUAN_FORMAT, lambda e: yuan(e.amount_fen)),
    ]


# -- XLSX ----------------------------------------------------------------------------------------
# A sheet holds 1,048,576 rows: the ledger detail goes on over "台账明细 2", "台账明细 3" ...
LEDGER_SHEET_ROWS = 1_048_576 - 1
# xlsxwriter's constant-memory mode writes some 8,000 ledger rows a second, openpyxl's write-only
# mode some 5,000 (bench/export.py); both keep only the current row in memory.
XLSX_ENGINES = ("xlsxwriter", "openpyxl")


class _OpenpyxlBook:
    """openpyxl's write-only workbook (kept for bench/export.py's comparison)."""

    def __init__(self, title: str):
        from openpyxl import Workbook

        self.book = Workbook(write_only=True)
        self.book.properties.title = title
        self.book.properties.creator = "market"

    def sheet(self, title: str, columns: list[Column], rows: Iterable, total=None) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment, Font, PatternFill
        from openpyxl.utils import get_column_letter

        sheet = self.book.create_sheet(title)
        for index, (header, _fmt, _value) in enumerate(columns, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = max(10, len(header) * 2 + 2)
        sheet.freeze_panes = "A2"
        bold = Font(bold=True)
        fill = PatternFill("solid", fgColor="DDEBDD")
        heading = []
        for header, _fmt, _value in columns:
            cell = put(WriteOnlyCell(sheet), header)
            cell.font, cell.fill = bold, fill
            cell.alignment = Alignment(horizontal="center")
            heading.append(cell)
        sheet.append(heading)

        def row_of(item, font=None):
            # Plain values where no format or font is needed: a styled cell costs several times
            # more.
            cells = []
            for _header, fmt, value in columns:
                if fmt is None and font is None:
                    cells.append(xlsx_value(sheet, value(item)))
                    continue
                cell = put(WriteOnlyCell(sheet), value(item))
                if fmt:
                    cell.number_format = fmt
                if font is not None:
                    cell.font = font
                cells.append(cell)
            return cells

        for item in rows:
            sheet.append(row_of(item))
        if total is not None:
            sheet.append(row_of(total, bold))

    def about(self, title: str, rows: list[tuple]) -> None:
        sheet = self.book.create_sheet(title)
        sheet.column_dimensions["A"].width = 24
        sheet.column_dimensions["B"].width = 60
        for row in rows:
            sheet.append([xlsx_value(sheet, value) for value in row])

    def save(self, target) -> None:
        self.book.save(target)


class _XlsxWriterBook:
    """xlsxwriter in constant-memory mode: each row is written out once the next one starts.
    Text is always written as a string (never a formula, a URL or a number), neutralised like
    every export's (market.spreadsheets) and without the characters XML cannot hold."""

    def __init__(self, title: str, target):
        import xlsxwriter

        options: dict[str, Any] = {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        }
        if isinstance(target, str):
            # Each sheet's XML waits in a temporary file until the zip is written: beside the
            # export (the private folder's disk), not in /tmp, which may be memory (tmpfs).
            options["tmpdir"] = os.path.dirname(os.path.abspath(target))
        self.book = xlsxwriter.Workbook(target, options)
        self.book.set_properties({"title": title, "author": "market"})
        self.heading = self.book.add_format(
            {"bold": True, "bg_color": "#DDEBDD", "align": "center"}
        )
        self._formats: dict[tuple[str | None, bool], Any] = {}

    def _format(self, fmt: str | None, bold: bool = False):
        key = (fmt, bold)
        if key not in self._formats:
            spec: dict[str, Any] = {"num_format": fmt} if fmt else {}
            if bold:
                spec["bold"] = True
            self._formats[key] = self.book.add_format(spec) if spec else None
        return self._formats[key]

    def _write(self, sheet, row: int, col: int, value, cell_format) -> None:
        if value is None:
            if cell_format is not None:
                sheet.write_blank(row, col, None, cell_format)
        elif isinstance(value, str):
            sheet.write_string(row, col, as_text(ILLEGAL_CHARACTERS.sub("", value)), cell_format)
        elif isinstance(value, datetime | date):
            sheet.write_datetime(row, col, value, cell_format or self._format(TIME_FORMAT))
        elif isinstance(value, bool):
            sheet.write_boolean(row, col, value, cell_format)
        else:  # int, float, Decimal (yuan to the fen: exact in a double)
            sheet.write_number(row, col, value, cell_format)

    def sheet(self, title: str, columns: list[Column], rows: Iterable, total=None) -> None:
        sheet = self.book.add_worksheet(title)
        for index, (header, _fmt, _value) in enumerate(columns):
            sheet.set_column(index, index, max(10, len(header) * 2 + 2))
        sheet.freeze_panes(1, 0)
        for index, (header, _fmt, _value) in enumerate(columns):
            sheet.write_string(0, index, as_text(header), self.heading)
        write = self._write
        plan = [(index, self._format(fmt), value) for index, (_h, fmt, value) in enumerate(columns)]
        number = 0
        for number, item in enumerate(rows, start=1):
            for index, cell_format, value in plan:
                write(sheet, number, index, value(item), cell_format)
        if total is not None:
            number += 1
            for index, (_h, fmt, value) in enumerate(columns):
                write(sheet, number, index, value(total), self._format(fmt, bold=True))

    def about(self, title: str, rows: list[tuple]) -> None:
        sheet = self.book.add_worksheet(title)
        sheet.set_column(0, 0, 24)
        sheet.set_column(1, 1, 60)
        for number, row in enumerate(rows):
            for index, value in enumerate(row):
                self._write(sheet, number, index, value, None)

    def save(self, _target) -> None:
        self.book.close()


def _chunks(rows: Iterable, size: int) -> Iterator[Iterator]:
    """`rows` in consecutive runs of at most `size` (each consumed before the next is asked for);
    at least one, empty if there are no rows."""
    iterator = iter(rows)
    for first in iterator:
        yield itertools.chain([first], itertools.islice(iterator, size - 1))
        break
    else:
        yield iter(())
        return
    for first in iterator:
        yield itertools.chain([first], itertools.islice(iterator, size - 1))


def write_workbook(
    target,
    campaign: Campaign,
    filters: Filters,
    on: date,
    today: date,
    *,
    engine: str = "xlsxwriter",
    upto_id: int | None = None,
    on_batch: Callable[[int], object] | None = None,
    batch: int = 2000,
) -> str:
    """Write the assessment workbook for a campaign and filters, with the laggard list as of
    `on` and every ledger entry (up to `upto_id`), into `target` (a path or a binary file).
    `on_batch` hears the number of ledger lines written so far. Returns the file's name."""
    board = dashboard_of(campaign, filters, today, with_weeks=False)
    lagging = laggards_on(campaign, on)
    if engine == "openpyxl":
        book: _OpenpyxlBook | _XlsxWriterBook = _OpenpyxlBook(campaign.name)
    else:
        book = _XlsxWriterBook(campaign.name, target)

    book.sheet(_("单位"), unit_columns(campaign), board.units, _unit_total(board.totals))
    village_total = SimpleNamespace(
        town=_("合计"),
        name="",
        net_fen=board.totals.net_fen,
        attributed_fen=board.totals.attributed_fen,
        paired_fen=sum(v.paired_fen for v in board.villages),
        quantity=sum(v.quantity for v in board.villages),
    )
    book.sheet(_("村"), village_columns(), board.villages, village_total)
    book.sheet(_("镇"), town_columns(), board.towns)
    book.sheet(_("分类"), category_columns(board.totals.net_fen), board.categories)
    book.sheet(_("提醒约谈名单"), laggard_columns(), lagging.laggards)
    lines = ledger_lines(filters, batch, upto_id=upto_id, on_batch=on_batch)
    columns = ledger_columns()
    for number, chunk in enumerate(_chunks(lines, LEDGER_SHEET_ROWS), start=1):
        title = _("台账明细") if number == 1 else f"{_('台账明细')} {number}"
        book.sheet(title, columns, chunk)
    book.about(_("说明"), _about_rows(campaign, filters, lagging))
    book.save(target)
    return f"{campaign.name}-{today.isoformat()}.xlsx"


def workbook(campaign: Campaign, filters: Filters, on: date, today: date) -> tuple[IO[bytes], str]:
    """The assessment workbook as an open temporary file (deleted when closed) and a file name,
    for a download in the request (a small ledger; market.exports writes large ones)."""
    # Closed (and so deleted) by the response that sends it.
    handle = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115
    try:
        name = write_workbook(handle, campaign, filters, on, today)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return handle, name


def _unit_total(totals: Totals) -> SimpleNamespace:
    """The 合计 row of the units sheet: what the units were credited with, together."""
    return SimpleNamespace(
        rank=None,
        name=_("合计"),
        target_fen=totals.target_fen,
        net_fen=totals.attributed_fen,
        paired_fen=totals.paired_fen,
        counted_fen=totals.counted_fen,
        pct=totals.pct,
        orders=None,  # an order or a buyer may count for several units: no sum
        buyers=None,
        paired_share=(
            totals.paired_fen * 100 / totals.attributed_fen if totals.attributed_fen > 0 else None
        ),
    )


def _about_rows(campaign: Campaign, filters: Filters, lagging) -> list[tuple]:
    town = dict(towns()).get(filters.town_id, "") if filters.town_id else _("全部")
    return [
        (_("活动"), campaign.name),
        (_("年度"), campaign.year),
        (_("活动日期"), f"{campaign.starts_on.isoformat()} ~ {campaign.ends_on.isoformat()}"),
        (
            _("统计日期"),
            f"{(filters.start or campaign.starts_on).isoformat()} ~ "
            f"{(filters.end or campaign.ends_on).isoformat()}",
        ),
        (_("方式"), mode_label(filters.mode) if filters.mode else _("全部")),
        (_("镇（街道）"), town),
        (
            _("计入目标"),
            _("只计结对村的产品") if campaign.paired_only else _("全部归属本单位的购买"),
        ),
        (_("提醒线"), f"{campaign.laggard_threshold_pct}%"),
        (_("提醒约谈名单截至"), lagging.on.isoformat()),
        (
            _("导出时间"),
            now().astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        ),
        (_("金额单位"), _("元（销售额已扣除退款）")),
    ]


# -- CSV -----------------------------------------------------------------------------------------
def _csv_value(value, fmt: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return as_text(value)
    if fmt == YUAN_FORMAT and isinstance(value, Decimal):
        return fen_to_yuan_text(int(value * 100))
    if fmt == PCT_FORMAT:
        return f"{value * 100:.1f}%"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def csv_stream(columns: list[Column], rows: Iterable) -> Iterator[bytes]:
    """UTF-8 with a BOM, header first, a chunk every few hundred rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow([as_text(header) for header, _fmt, _value in columns])
    for count, item in enumerate(rows, start=1):
        writer.writerow([_csv_value(value(item), fmt) for _header, fmt, value in columns])
        if count % CSV_BATCH_ROWS == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def units_csv(campaign: Campaign, filters: Filters) -> tuple[Iterator[bytes], str]:
    rows = unit_rows(campaign, filters)
    return csv_stream(unit_columns(campaign), rows), f"{campaign.name}-{_('单位')}.csv"


def ledger_csv(campaign: Campaign, filters: Filters) -> tuple[Iterator[bytes], str]:
    return (
        csv_stream(ledger_columns(), ledger_lines(filters)),
        f"{campaign.name}-{_('台账明细')}.csv",
    )


def laggards_csv(campaign: Campaign, on: date) -> tuple[Iterator[bytes], str]:
    lagging = laggards_on(campaign, on)
    return (
        csv_stream(laggard_columns(), lagging.laggards),
        f"{campaign.name}-{_('提醒约谈名单')}-{on.isoformat()}.csv",
    )


def write_ledger_csv(
    handle: IO[bytes],
    campaign: Campaign,
    filters: Filters,
    *,
    upto_id: int | None = None,
    on_batch: Callable[[int], object] | None = None,
    batch: int = 2000,
) -> str:
    """The ledger CSV, every entry in the filters (up to `upto_id`), into an open binary file;
    `on_batch` hears the number of lines written so far. Returns the file's name."""
    lines = ledger_lines(filters, batch, upto_id=upto_id, on_batch=on_batch)
    for chunk in csv_stream(ledger_columns(), lines):
        handle.write(chunk)
    return f"{campaign.name}-{_('台账明细')}.csv"
