"""A statement as an XLSX workbook (结算单), for the co-op's books and finance's files: the
header, one row per line, the totals. Amounts are exact yuan in a currency format; any text a
spreadsheet could take for a formula is neutralised (market.spreadsheets.put, on every text
cell)."""

from __future__ import annotations

import io
from decimal import Decimal

from flask_babel import gettext as _

from market.settlements.models import Statement, StatementLine
from market.spreadsheets import put

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
YUAN_FORMAT = "¥#,##0.00"


def yuan(fen: int) -> Decimal:
    return Decimal(fen) / 100


def statement_workbook(statement: Statement, lines: list[StatementLine]) -> tuple[io.BytesIO, str]:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = _("结算单")
    bold = Font(bold=True)

    def text_cell(row: int, column: int, value: str):
        return put(sheet.cell(row=row, column=column), value)

    def money_cell(row: int, column: int, fen: int) -> None:
        cell = sheet.cell(row=row, column=column, value=yuan(fen))
        cell.number_format = YUAN_FORMAT

    period = (
        f"{statement.period_start:%Y-%m-%d} ~ {statement.period_end:%Y-%m-%d}"
        if statement.period_start
        else _("截至 %(day)s", day=f"{statement.period_end:%Y-%m-%d}")
    )
    header = [
        (_("结算单号"), statement.number),
        (_("合作社"), statement.coop.name),
        (_("结算期间"), period),
        (_("状态"), statement.status_label),
    ]
    for row, (label, value) in enumerate(header, start=1):
        text_cell(row, 1, label).font = bold
        text_cell(row, 2, value)

    top = len(header) + 2
    headings = [
        _("订单号"),
        _("商品"),
        _("规格"),
        _("收款（元）"),
        _("退款（元）"),
        _("服务费（元）"),
        _("应付（元）"),
    ]
    for column, heading in enumerate(headings, start=1):
        text_cell(top, column, heading).font = bold
    row = top
    for line in lines:
        row += 1
        text_cell(row, 1, line.order.number)
        text_cell(row, 2, line.order_line.product_name)
        text_cell(row, 3, line.order_line.spec)
        for column, fen in enumerate(
            (line.received_fen, line.refunded_fen, line.fee_fen, line.payable_fen), start=4
        ):
            money_cell(row, column, fen)
    row += 1
    text_cell(row, 1, _("合计")).font = bold
    for column, fen in enumerate(
        (statement.received_fen, statement.refunded_fen, statement.fee_fen, statement.net_fen),
        start=4,
    ):
        money_cell(row, column, fen)
        sheet.cell(row=row, column=column).font = bold

    row += 2
    for label, fen in (
        (_("期初余额"), statement.opening_balance_fen),
        (_("本期净额"), statement.net_fen),
        (_("本期应付"), statement.payable_fen),
        (_("结转下期"), statement.closing_balance_fen),
    ):
        text_cell(row, 1, label).font = bold
        money_cell(row, 2, fen)
        row += 1
    if statement.payout is not None:
        payout = statement.payout
        text_cell(row, 1, _("付款流水号")).font = bold
        text_cell(row, 2, payout.reference)
        row += 1
        text_cell(row, 1, _("付款日期")).font = bold
        text_cell(row, 2, f"{payout.paid_on:%Y-%m-%d}")

    for letter, width in zip("ABCDEFG", (22, 24, 12, 14, 14, 14, 14), strict=True):
        sheet.column_dimensions[letter].width = width
    handle = io.BytesIO()
    book.save(handle)
    handle.seek(0)
    return handle, f"{statement.number}.xlsx"
