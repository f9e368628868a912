"""The assessment exports: the XLSX workbook agrees with the dashboard to the fen, CSV opens in
Excel (UTF-8 with a BOM), and both stream."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from market import clock
from market.campaign.models import AttributionEntry, Campaign
from market.campaign.read.dashboard import Dashboard, dashboard_of
from market.campaign.read.filters import Filters
from market.campaign.read.laggards import laggards_on
from market.campaign.read.ledger_lines import ledger_lines
from market.extensions import db
from tests.campaign.conftest import first_line, set_targets

SHEETS = ["单位", "村", "镇", "分类", "提醒约谈名单", "台账明细", "说明"]


def _fen(value) -> int:
    """A yuan cell back to fen, exactly."""
    return int((Decimal(str(value)) * 100).to_integral_value())


def _board(app, campaign_id: int, **filters) -> Dashboard:
    with app.app_context():
        made = db.session.get(Campaign, campaign_id)
        return dashboard_of(made, Filters(campaign_id, **filters), made.starts_on)


def _workbook(client, campaign_id: int, query: str = ""):
    response = client.get(f"/admin/campaigns/{campaign_id}/export.xlsx{query}")
    assert response.status_code == 200
    assert response.mimetype == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert "2026年我为果农办实事" in unquote(disposition)
    return load_workbook(io.BytesIO(response.data))


def _rows(sheet) -> list[dict]:
    values = list(sheet.iter_rows(values_only=True))
    header = values[0]
    return [dict(zip(header, row, strict=True)) for row in values[1:]]


@pytest.fixture
def refunded(app, client_as, world, campaign, sales):
    """The sales, a ¥10 refund on the honey, and targets that make unit A a laggard."""
    line_id, _coop = first_line(app, sales.honey)
    client_as("coop_manager").post(
        f"/coop/lines/{line_id}/refund", data={"amount": "10", "reason": "破损"}
    )
    set_targets(app, campaign.id, {world.unit: 1_000_000, world.other_unit: 5_000})
    return sales


def test_the_workbook_agrees_with_the_dashboard_to_the_fen(
    app, client_as, world, campaign, refunded
):
    book = _workbook(client_as("organizer"), campaign.id)
    assert book.sheetnames == SHEETS
    board = _board(app, campaign.id)

    units = _rows(book["单位"])
    assert list(units[0]) == [
        "排名",
        "单位",
        "目标（元）",
        "净销售额（元）",
        "其中结对村（元）",
        "完成率",
        "订单数",
        "购买人数",
        "结对村占比",
    ]
    *unit_rows, total = units
    assert len(unit_rows) == len(board.units)
    for row, expected in zip(unit_rows, board.units, strict=True):
        assert row["单位"] == expected.name and row["排名"] == expected.rank
        assert _fen(row["目标（元）"]) == expected.target_fen
        assert _fen(row["净销售额（元）"]) == expected.net_fen
        assert _fen(row["其中结对村（元）"]) == expected.paired_fen
        assert (row["订单数"], row["购买人数"]) == (expected.orders, expected.buyers)
        assert row["完成率"] == pytest.approx(expected.pct / 100)
    assert total["单位"] == "合计"
    assert _fen(total["净销售额（元）"]) == board.totals.attributed_fen == 34_400
    assert _fen(total["目标（元）"]) == board.totals.target_fen == 1_005_000

    villages = {r["村"]: r for r in _rows(book["村"]) if r["村"]}
    for village in board.villages:
        assert _fen(villages[village.name]["销售额（元）"]) == village.net_fen
        assert _fen(villages[village.name]["其中结对单位（元）"]) == village.paired_fen
        assert villages[village.name]["件数"] == village.quantity

    categories = {r["分类"]: _fen(r["销售额（元）"]) for r in _rows(book["分类"])}
    assert categories == {c.name: c.net_fen for c in board.categories}
    towns = {r["镇（街道）"]: _fen(r["销售额（元）"]) for r in _rows(book["镇"])}
    assert towns == {t.name: t.net_fen for t in board.towns}

    laggards = _rows(book["提醒约谈名单"])
    with app.app_context():
        expected = laggards_on(db.session.get(Campaign, campaign.id), clock.today()).laggards
    assert [r["单位"] for r in laggards] == [g.name for g in expected] == ["高州市市场监管局"]
    assert _fen(laggards[0]["已完成（元）"]) == expected[0].counted_fen == 25_500
    assert _fen(laggards[0]["提醒线（元）"]) == expected[0].threshold_fen == 60_000

    ledger = _rows(book["台账明细"])
    with app.app_context():
        entries = db.session.scalar(select(func.count(AttributionEntry.id)))
    assert len(ledger) == entries == 4
    assert sum(_fen(r["金额（元）"]) for r in ledger) == board.totals.net_fen == 34_400
    refund = next(r for r in ledger if r["类型"] == "退款")
    assert (_fen(refund["金额（元）"]), refund["单位"], refund["归属依据"]) == (
        -1_000,
        "高州市市场监管局",
        "单位职工",
    )
    assert {r["订单号"] for r in ledger} == {refunded.honey, refunded.lychee, refunded.referred}


def test_the_workbook_is_formatted_for_people(app, client_as, world, campaign, refunded):
    book = _workbook(client_as("organizer"), campaign.id)
    sheet = book["单位"]
    assert sheet["A1"].font.bold and sheet.freeze_panes == "A2"
    assert sheet["D2"].number_format == "#,##0.00" and sheet["F2"].number_format == "0.0%"
    assert book["台账明细"]["B2"].number_format == "yyyy-mm-dd hh:mm:ss"
    about = dict(book["说明"].iter_rows(values_only=True))
    assert about["活动"] == "2026年我为果农办实事" and about["提醒线"] == "60%"


def test_the_workbook_follows_the_filters(app, client_as, world, campaign, refunded):
    book = _workbook(client_as("organizer"), campaign.id, f"?town={world.other_town}")
    board = _board(app, campaign.id, town_id=world.other_town)
    total = _rows(book["单位"])[-1]
    assert _fen(total["净销售额（元）"]) == board.totals.attributed_fen == 17_800
    assert [r["村"] for r in _rows(book["村"]) if r["村"]] == ["柏桥村"]
    assert len(_rows(book["台账明细"])) == 2
    assert dict(book["说明"].iter_rows(values_only=True))["镇（街道）"] == "根子镇"


def test_paired_only_campaigns_export_the_counted_column(app, client_as, world, campaign, refunded):
    with app.app_context():
        db.session.get(Campaign, campaign.id).paired_only = True
        db.session.commit()
    units = _rows(_workbook(client_as("organizer"), campaign.id)["单位"])
    unit = next(r for r in units if r["单位"] == "高州市市场监管局")
    assert _fen(unit["计入目标（元）"]) == 16_600 and _fen(unit["净销售额（元）"]) == 25_500


def test_a_ledger_longer_than_a_sheet_goes_on_over_the_next_sheets(
    app, client_as, world, campaign, refunded, monkeypatch
):
    """No row cap: past a sheet's rows (1,048,575 below the header; 3 here) the ledger detail
    continues on "台账明细 2", "台账明细 3" ..., every entry once, in order."""
    from market.campaign import exports

    monkeypatch.setattr(exports, "LEDGER_SHEET_ROWS", 3)
    book = _workbook(client_as("organizer"), campaign.id)
    assert book.sheetnames == [*SHEETS[:6], "台账明细 2", "说明"]
    first, second = _rows(book["台账明细"]), _rows(book["台账明细 2"])
    assert (len(first), len(second)) == (3, 1)
    ids = [row["编号"] for row in first + second]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert sum(_fen(r["金额（元）"]) for r in first + second) == 34_400
    # The other sheets are whole.
    assert _fen(_rows(book["单位"])[-1]["净销售额（元）"]) == 34_400


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_the_units_csv(app, client_as, world, campaign, refunded):
    rows = _csv(client_as("organizer").get(f"/admin/campaigns/{campaign.id}/units.csv"))
    assert rows[0][:4] == ["排名", "单位", "目标（元）", "净销售额（元）"]
    by_unit = {row[1]: row for row in rows[1:]}
    assert by_unit["高州市市场监管局"][2:5] == ["10000.00", "255.00", "166.00"]
    assert by_unit["高州市委办"][5] == "178.0%"


def test_the_ledger_csv_streams_every_entry(app, client_as, world, campaign, refunded):
    response = client_as("organizer").get(f"/admin/campaigns/{campaign.id}/ledger.csv")
    assert "filename*=UTF-8''" in response.headers["Content-Disposition"]
    rows = _csv(response)
    assert rows[0][0] == "编号" and rows[0][-1] == "金额（元）"
    assert len(rows) == 5
    assert sum(_fen(row[-1]) for row in rows[1:]) == 34_400
    assert [row[3] for row in rows[1:]].count("退款") == 1


def test_the_laggards_csv(app, client_as, world, campaign, refunded):
    rows = _csv(client_as("organizer").get(f"/admin/campaigns/{campaign.id}/laggards.csv"))
    assert [row[0] for row in rows[1:]] == ["高州市市场监管局"]
    assert rows[1][4] == "255.00"


def test_a_large_ledger_streams_in_chunks(app, client_as, world, campaign, refunded):
    """More rows than one CSV chunk: the body arrives in several pieces."""
    from market.campaign.exports import CSV_BATCH_ROWS, csv_stream, ledger_columns

    with app.test_request_context():
        lines = list(ledger_lines(Filters(campaign.id), batch=2)) * (CSV_BATCH_ROWS // 2 + 1)
        chunks = list(csv_stream(ledger_columns(), lines))
    assert len(chunks) >= 2
    text = b"".join(chunks).decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(text)))) == len(lines) + 1
