"""Batches through the real pages: a co-op records a batch (stock comes in with it), receives
more, ships from it (each line names its batch), closes it; the parcel's label sheet and the
public trace page show what the batch is, and nothing of who bought it."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from market import clock
from market.audit.models import AuditEvent
from market.batches.models import Batch, BatchStatus, InspectionResult
from market.extensions import db
from market.orders.models import Order
from tests.factories import image_bytes
from tests.orders.conftest import buy, sku_of, stock_of

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _day(app, days_ago: int = 3) -> str:
    with app.app_context():
        return (clock.today() - timedelta(days=days_ago)).isoformat()


def record(client, app, sku_id: int, **overrides):
    data = {
        "sku_id": str(sku_id),
        "harvested_on": _day(app),
        "plot": "三号坡地",
        "quantity": "30",
        "inspection_result": "passed",
        "notes": "内部备注：张三采收",
    }
    data.update(overrides)
    return client.post("/coop/batches", data=data, content_type="multipart/form-data")


def batches_of(app, sku_id: int) -> list[Batch]:
    with app.app_context():
        found = db.session.scalars(select(Batch).where(Batch.sku_id == sku_id).order_by(Batch.id))
        return [db.session.merge(b, load=False) for b in found.all()]


def batch_row(app, batch_id: int) -> dict:
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        return {
            "code": batch.code,
            "remaining": batch.quantity_remaining,
            "received": batch.quantity_received,
            "status": batch.status,
            "report": batch.inspection_path,
            "result": batch.inspection_result,
        }


def only_batch_id(app, sku_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(Batch.id).where(Batch.sku_id == sku_id))


def _pay(app, client_as, buyer, number: str) -> None:
    buyer.post(f"/orders/{number}/pay/offline")
    response = client_as("finance").post(
        f"/orders/{number}/transfer-received",
        data={"reference": "ABC-1", "transfer_date": _day(app, 0)},
    )
    assert response.status_code == 303


def _shipment_and_lines(app, number: str) -> tuple[int, list[int]]:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        shipment = order.shipments[0]
        return shipment.id, [line.id for line in shipment.lines]


def _line_batches(app, number: str) -> list[int | None]:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        return [line.batch_id for line in sorted(order.lines, key=lambda line: line.id)]


def paid_order(app, client_as, sku_id: int, quantity: int) -> tuple[str, int, list[int]]:
    buyer = client_as("buyer")
    number = buy(buyer, sku_id, quantity)
    _pay(app, client_as, buyer, number)
    shipment_id, line_ids = _shipment_and_lines(app, number)
    return number, shipment_id, line_ids


# -- recording ---------------------------------------------------------------------------------
def test_a_recorded_batch_brings_its_stock_and_its_report(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    assert coop.get("/coop/batches").status_code == 200
    response = record(coop, app, sku, report=(io.BytesIO(PDF), "检测报告.pdf"))
    assert response.status_code == 303
    assert stock_of(app, sku) == 50 + 30
    batch = batch_row(app, only_batch_id(app, sku))
    assert (batch["received"], batch["remaining"], batch["status"]) == (30, 30, BatchStatus.OPEN)
    assert batch["result"] == InspectionResult.PASSED
    assert re.fullmatch(r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{9}", batch["code"])
    assert batch["report"].startswith("inspections/")
    page = coop.get("/coop/batches").get_data(as_text=True)
    assert batch["code"] in page and "入库 30 · 待发 30" in page
    # The report is the co-op's to open, and the public's only through the batch's code.
    report = coop.get(f"/coop/batches/{only_batch_id(app, sku)}/report")
    assert report.status_code == 200 and report.data == PDF
    assert "no-store" in report.headers["Cache-Control"]
    assert (
        client_as("other_coop_manager")
        .get(f"/coop/batches/{only_batch_id(app, sku)}/report")
        .status_code
        == 404
    )
    assert app.test_client().get(f"/media/{batch['report']}").status_code == 404
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "batch.recorded")
            )
            == 1
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quantity": "-1"}, ""),
        ({"quantity": "abc"}, ""),
        ({"harvested_on": "2999-01-01"}, "采收日期不能晚于今天"),
        ({"harvested_on": "not-a-day"}, ""),
        ({"inspection_result": "excellent"}, ""),
        ({"plot": "地" * 81}, ""),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(app, client_as, world, overrides, message):
    sku = sku_of(app, world.honey_product)
    response = record(client_as("coop_manager"), app, sku, **overrides)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert stock_of(app, sku) == 50 and batches_of(app, sku) == []


def test_a_report_that_is_not_a_document_is_refused_by_its_content(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    fake = (io.BytesIO(b"MZ\x90\x00 not a pdf at all"), "report.pdf")
    response = record(client_as("coop_manager"), app, sku, report=fake)
    assert response.status_code == 400
    assert "检测报告只接受 PDF、OFD 或 JPEG/PNG/WebP 图片" in response.get_data(as_text=True)
    assert stock_of(app, sku) == 50 and batches_of(app, sku) == []
    # A picture is a report too (a photo of the paper certificate).
    photo = (io.BytesIO(image_bytes("PNG")), "report.png")
    assert record(client_as("coop_manager"), app, sku, report=photo).status_code == 303


def test_another_coops_sku_is_not_found(app, client_as, world):
    lychee = sku_of(app, world.lychee)
    response = record(client_as("coop_manager"), app, lychee)
    assert response.status_code in (400, 404)  # not among the form's choices, or a 404
    assert batches_of(app, lychee) == [] and stock_of(app, lychee) == 50
    # Straight at the service, past the form: a 404 all the same.
    from market.accounts.models import User
    from market.batches import services
    from market.errors import NotFound

    with app.test_request_context(), pytest.raises(NotFound):
        services.record_batch(
            db.session.get(User, world.coop_manager),
            lychee,
            harvested_on=clock.today(),
            plot="",
            quantity=5,
        )
    assert batches_of(app, lychee) == [] and stock_of(app, lychee) == 50


def test_receiving_into_a_batch_adds_to_both_and_a_closed_one_takes_nothing(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, sku, quantity="10")
    batch_id = only_batch_id(app, sku)
    assert coop.post(f"/coop/batches/{batch_id}/receive", data={"quantity": "5"}).status_code == 303
    assert stock_of(app, sku) == 65
    assert (batch_row(app, batch_id)["received"], batch_row(app, batch_id)["remaining"]) == (15, 15)
    # Bad quantities change nothing.
    for bad in ("0", "-3", "x"):
        coop.post(f"/coop/batches/{batch_id}/receive", data={"quantity": bad})
    assert stock_of(app, sku) == 65 and batch_row(app, batch_id)["received"] == 15
    # Someone else's batch is a 404.
    other = client_as("other_coop_manager")
    assert (
        other.post(f"/coop/batches/{batch_id}/receive", data={"quantity": "5"}).status_code == 404
    )
    assert other.post(f"/coop/batches/{batch_id}/close").status_code == 404
    # Closed: no more stock into it.
    assert coop.post(f"/coop/batches/{batch_id}/close").status_code == 303
    assert batch_row(app, batch_id)["status"] == BatchStatus.CLOSED
    page = coop.post(
        f"/coop/batches/{batch_id}/receive", data={"quantity": "5"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "批次已结束，不能再入库" in page
    assert stock_of(app, sku) == 65 and batch_row(app, batch_id)["received"] == 15


def test_the_inspection_result_and_report_can_come_later(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, sku, inspection_result="not_tested")
    batch_id = only_batch_id(app, sku)
    code = batch_row(app, batch_id)["code"]
    assert "未检" in app.test_client().get(f"/t/{code}").get_data(as_text=True)
    coop.post(
        f"/coop/batches/{batch_id}/inspection",
        data={"inspection_result": "passed", "report": (io.BytesIO(PDF), "r.pdf")},
        content_type="multipart/form-data",
    )
    assert batch_row(app, batch_id)["result"] == InspectionResult.PASSED
    trace = app.test_client().get(f"/t/{code}").get_data(as_text=True)
    assert "检测结果：合格" in trace and f"/t/{code}/report" in trace
    assert app.test_client().get(f"/t/{code}/report").data == PDF


# -- shipping from batches ---------------------------------------------------------------------
def test_shipping_takes_the_oldest_open_batch_by_default(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, sku, quantity="5", harvested_on=_day(app, 2), plot="新")
    record(coop, app, sku, quantity="5", harvested_on=_day(app, 9), plot="旧")
    newer, older = (b.id for b in batches_of(app, sku))
    number, shipment_id, _lines = paid_order(app, client_as, sku, 3)
    inbox = coop.get("/coop/orders").get_data(as_text=True)
    assert f'name="batch-{_lines[0]}"' in inbox and batch_row(app, older)["code"] in inbox
    response = coop.post(f"/coop/shipments/{shipment_id}/ship", data={"carrier": "中国邮政"})
    assert response.status_code == 303
    assert _line_batches(app, number) == [older]
    assert batch_row(app, older)["remaining"] == 2 and batch_row(app, newer)["remaining"] == 5


def test_the_co_op_picks_a_batch_and_the_last_unit_closes_it(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, sku, quantity="4", harvested_on=_day(app, 9))
    record(coop, app, sku, quantity="3", harvested_on=_day(app, 2))
    older, newer = (b.id for b in batches_of(app, sku))
    number, shipment_id, lines = paid_order(app, client_as, sku, 3)
    coop.post(
        f"/coop/shipments/{shipment_id}/ship",
        data={"carrier": "顺丰", f"batch-{lines[0]}": str(newer)},
    )
    assert _line_batches(app, number) == [newer]
    assert batch_row(app, newer)["remaining"] == 0
    assert batch_row(app, newer)["status"] == BatchStatus.CLOSED
    assert batch_row(app, older)["remaining"] == 4


@pytest.mark.parametrize("which", ["other_sku", "closed", "short", "garbage"])
def test_a_wrong_pick_is_refused_and_nothing_ships(app, client_as, world, which):
    sku = sku_of(app, world.honey_product)
    herb = sku_of(app, world.herb_product)
    coop = client_as("coop_manager")
    record(coop, app, sku, quantity="2")
    record(coop, app, herb, quantity="9")
    mine, of_herb = only_batch_id(app, sku), only_batch_id(app, herb)
    number, shipment_id, lines = paid_order(app, client_as, sku, 3 if which == "short" else 1)
    if which == "closed":
        coop.post(f"/coop/batches/{mine}/close")
    pick = {"other_sku": of_herb, "closed": mine, "short": mine, "garbage": "12abc"}[which]
    page = coop.post(
        f"/coop/shipments/{shipment_id}/ship",
        data={"carrier": "顺丰", f"batch-{lines[0]}": str(pick)},
        follow_redirects=True,
    ).get_data(as_text=True)
    expected = {
        "other_sku": "所选批次不是该商品规格的批次",
        "closed": "已结束，不能再发货",
        "short": "只剩 2，不够发 3",
        "garbage": "请选择有效的批次",
    }[which]
    assert expected in page
    assert _line_batches(app, number) == [None]
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.shipments[0].status.value == "to_ship"
    assert batch_row(app, of_herb)["remaining"] == 9
    assert batch_row(app, mine)["remaining"] == 2


def test_stock_from_before_batches_ships_without_one(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    number, shipment_id, lines = paid_order(app, client_as, sku, 2)
    coop = client_as("coop_manager")
    assert (
        coop.post(f"/coop/shipments/{shipment_id}/ship", data={"carrier": "顺丰"}).status_code
        == 303
    )
    assert _line_batches(app, number) == [None]
    packing = coop.get(f"/coop/shipments/{shipment_id}/packing-list").get_data(as_text=True)
    assert "批次：____" in packing
    # A co-op may say so even when a batch is open.
    record(coop, app, sku, quantity="5")
    number, shipment_id, lines = paid_order(app, client_as, sku, 1)
    coop.post(
        f"/coop/shipments/{shipment_id}/ship", data={"carrier": "顺丰", f"batch-{lines[0]}": "none"}
    )
    assert _line_batches(app, number) == [None]
    assert batch_row(app, only_batch_id(app, sku))["remaining"] == 5


# -- the journey: recorded -> shipped -> traced ------------------------------------------------
def test_a_batch_recorded_shipped_and_traced(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, sku, quantity="20", plot="后山二号蜂场", report=(io.BytesIO(PDF), "r.pdf"))
    batch_id = only_batch_id(app, sku)
    code = batch_row(app, batch_id)["code"]
    buyer = client_as("buyer")
    number = buy(buyer, sku, 2)
    _pay(app, client_as, buyer, number)
    shipment_id, _lines = _shipment_and_lines(app, number)
    # Before shipping, the packing list leaves the batch to be written in.
    assert "批次：____" in coop.get(f"/coop/shipments/{shipment_id}/packing-list").get_data(
        as_text=True
    )
    coop.post(f"/coop/shipments/{shipment_id}/ship", data={"carrier": "中国邮政"})
    assert _line_batches(app, number) == [batch_id]
    assert batch_row(app, batch_id)["remaining"] == 18
    packing = coop.get(f"/coop/shipments/{shipment_id}/packing-list").get_data(as_text=True)
    assert f'<td class="cell-batch text-nowrap">{code}</td>' in packing
    shipped = coop.get("/coop/orders?tab=shipped").get_data(as_text=True)
    assert f"/t/{code}" in shipped
    # The buyer's order page links the line to its trace page.
    order_page = buyer.get(f"/orders/{number}").get_data(as_text=True)
    assert f'href="/t/{code}"' in order_page
    # The trace page, for anyone, without signing in.
    anonymous = app.test_client()
    response = anonymous.get(f"/t/{code}")
    assert response.status_code == 200
    trace = response.get_data(as_text=True)
    with app.app_context():
        harvested = db.session.get(Batch, batch_id).harvested_on.isoformat()
    for shown in (
        "原生态蜂蜜",
        "500g",
        "古丁镇古丁村",
        "南药之乡",  # the village's story
        "古丁南药合作社",
        harvested,
        "后山二号蜂场",
        "检测结果：合格",
        "高州市市场监管局",  # the pairing unit
        f"/t/{code}/report",
    ):
        assert shown in trace, shown
    # Nothing of who bought it, nor the co-op's own notes and quantities.
    for hidden in ("周买家", "13900000009", "潘州街道", number, "内部备注", "待发"):
        assert hidden not in trace, hidden
    # A phone may type the code in lower case.
    assert anonymous.get(f"/t/{code.lower()}").status_code == 200


@pytest.mark.parametrize("code", ["NOSUCHONE", "x", "A" * 40, "abc-def", "%20"])
def test_an_unknown_code_is_a_404(app, world, code):
    response = app.test_client().get(f"/t/{code}")
    assert response.status_code == 404
    assert app.test_client().get(f"/t/{code}/report").status_code == 404


def test_a_batch_without_a_report_has_no_report_to_give(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    record(client_as("coop_manager"), app, sku)
    code = batch_row(app, only_batch_id(app, sku))["code"]
    assert app.test_client().get(f"/t/{code}/report").status_code == 404
    assert "查看检测报告" not in app.test_client().get(f"/t/{code}").get_data(as_text=True)


# -- the label sheet -----------------------------------------------------------------------------
def test_the_label_sheet_has_24_qr_codes_of_the_trace_url(app, client_as, world):
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, sku)
    batch_id = only_batch_id(app, sku)
    code = batch_row(app, batch_id)["code"]
    response = coop.get(f"/coop/batches/{batch_id}/labels")
    assert response.status_code == 200
    sheet = response.get_data(as_text=True)
    assert "@page { size: A4; margin: 0; }" in sheet
    assert sheet.count('<svg viewBox="0 0') == 24 and sheet.count('class="label-qr"') == 24
    assert sheet.count(f'<span class="code">{code}</span>') == 24
    assert sheet.count("原生态蜂蜜") == 24 and sheet.count("古丁镇古丁村") == 24
    # The QR really encodes the trace URL (decoded from the drawn modules).
    from tests.batches.qr import decode_svg

    svg = re.search(r'<svg viewBox="0 0 .*?</svg>', sheet, re.S).group(0)
    assert decode_svg(svg) == f"http://localhost/t/{code}"
    # Several batches: a sheet each. Someone else's batch is a 404; none asked is a 404.
    record(coop, app, sku)
    ids = [b.id for b in batches_of(app, sku)]
    both = coop.get(f"/coop/batches/labels?batch={ids[0]}&batch={ids[1]}").get_data(as_text=True)
    assert both.count('class="sheet"') == 2 and both.count('class="label-qr"') == 48
    other = client_as("other_coop_manager")
    assert other.get(f"/coop/batches/{batch_id}/labels").status_code == 404
    assert other.get(f"/coop/batches/labels?batch={batch_id}").status_code == 404
    assert coop.get("/coop/batches/99999/labels").status_code == 404
    # None chosen: back to the batches, asked to choose.
    none = coop.get("/coop/batches/labels?batch=99999999999999", follow_redirects=True)
    assert "请先勾选要打印标签的批次" in none.get_data(as_text=True)


def test_batch_pages_are_the_co_ops(app, client_as, world):
    assert app.test_client().get("/coop/batches").status_code in (302, 303, 401, 403)
    assert client_as("buyer").get("/coop/batches").status_code == 403
    assert (
        client_as("buyer").post("/coop/batches", data={"sku_id": "1", "quantity": "5"}).status_code
        == 403
    )
