"""Batches (批次) through the API: a shipped line names its batch and the batch's public trace
page, for the buyer and for the co-op; the co-op's ship call picks a batch per line (or takes
the oldest open one), and a pick the batch cannot serve ships nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from market import clock
from market.extensions import db
from market.orders.models import Order, Shipment, ShipmentStatus
from tests.api.conftest import assert_error, statements_sent
from tests.api.test_buying import place, sku_of
from tests.batches.test_batches import batch_row, batches_of, record


def _day(days_ago: int) -> str:
    return (clock.today() - timedelta(days=days_ago)).isoformat()


def _paid(app, api, client_as, product_id: int, quantity: int) -> tuple[str, int, int]:
    """An employee's order placed and started through the API, its transfer confirmed by
    finance on the page: (number, its parcel's id, its line's id)."""
    buyer = api("employee")
    number = place(app, buyer, product_id, quantity)
    assert buyer.post(f"/orders/{number}/payments", {"provider": "offline"}).status_code == 201
    confirmed = client_as("finance").post(
        f"/orders/{number}/transfer-received",
        data={"reference": "ABC-1", "transfer_date": _day(0)},
    )
    assert confirmed.status_code == 303
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        return number, order.shipments[0].id, order.lines[0].id


def _parcel_state(app, shipment_id: int) -> tuple[ShipmentStatus, list[int | None]]:
    with app.app_context():
        shipment = db.session.get(Shipment, shipment_id)
        return shipment.status, [line.batch_id for line in shipment.lines]


@pytest.fixture
def two_batches(app, client_as, world) -> tuple[int, int]:
    """Two open batches of the honey SKU, 5 units each: (the older harvest, the newer)."""
    sku = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    assert record(coop, app, sku, quantity="5", harvested_on=_day(2)).status_code == 303
    assert record(coop, app, sku, quantity="5", harvested_on=_day(9)).status_code == 303
    newer, older = (b.id for b in batches_of(app, sku))
    return older, newer


def test_a_shipped_line_names_its_batch_and_trace_page_to_buyer_and_coop(
    app, api, client_as, world, two_batches
):
    older, newer = two_batches
    number, shipment_id, line_id = _paid(app, api, client_as, world.honey_product, 3)
    buyer, coop = api("employee"), api("coop")
    # Not shipped yet: no batch. The co-op sees the batches it may pick, oldest harvest first.
    line = buyer.get(f"/orders/{number}").get_json()["lines"][0]
    assert (line["batch_code"], line["trace_url"]) == (None, None)
    parcel = coop.get("/coop/parcels").get_json()["items"][0]
    assert parcel["id"] == shipment_id
    offered = parcel["lines"][0]
    assert offered["id"] == line_id and offered["batch_code"] is None
    assert [b["id"] for b in offered["open_batches"]] == [older, newer]
    assert offered["open_batches"][0]["quantity_remaining"] == 5

    shipped = coop.post(f"/coop/parcels/{shipment_id}/ship", {"carrier": "顺丰"})
    assert shipped.status_code == 200, shipped.get_json()
    code = batch_row(app, older)["code"]
    trace_url = f"http://localhost/t/{code}"
    assert shipped.get_json()["lines"][0]["batch_code"] == code
    assert shipped.get_json()["lines"][0]["trace_url"] == trace_url
    assert shipped.get_json()["lines"][0]["open_batches"] == []  # shipped: nothing to pick
    assert batch_row(app, older)["remaining"] == 2 and batch_row(app, newer)["remaining"] == 5
    line = buyer.get(f"/orders/{number}").get_json()["lines"][0]
    assert (line["batch_code"], line["trace_url"]) == (code, trace_url)
    listed = coop.get("/coop/parcels?tab=shipped").get_json()["items"][0]["lines"][0]
    assert (listed["batch_code"], listed["trace_url"]) == (code, trace_url)
    # The URL is the batch's public trace page.
    trace = app.test_client().get(trace_url.removeprefix("http://localhost"))
    assert trace.status_code == 200 and code in trace.get_data(as_text=True)


def test_the_coop_picks_the_batch_a_line_ships_from(app, api, client_as, world, two_batches):
    older, newer = two_batches
    _number, shipment_id, line_id = _paid(app, api, client_as, world.honey_product, 3)
    shipped = api("coop").post(
        f"/coop/parcels/{shipment_id}/ship",
        {"carrier": "顺丰", "tracking_number": "SF1", "batches": {str(line_id): newer}},
    )
    assert shipped.status_code == 200, shipped.get_json()
    assert shipped.get_json()["lines"][0]["batch_code"] == batch_row(app, newer)["code"]
    assert batch_row(app, newer)["remaining"] == 2 and batch_row(app, older)["remaining"] == 5
    assert _parcel_state(app, shipment_id) == (ShipmentStatus.SHIPPED, [newer])


def test_null_ships_a_line_from_stock_outside_any_batch(app, api, client_as, world, two_batches):
    older, newer = two_batches
    number, shipment_id, line_id = _paid(app, api, client_as, world.honey_product, 2)
    shipped = api("coop").post(
        f"/coop/parcels/{shipment_id}/ship", {"carrier": "顺丰", "batches": {str(line_id): None}}
    )
    assert shipped.status_code == 200, shipped.get_json()
    assert shipped.get_json()["lines"][0]["batch_code"] is None
    assert api("employee").get(f"/orders/{number}").get_json()["lines"][0]["trace_url"] is None
    assert batch_row(app, older)["remaining"] == 5 and batch_row(app, newer)["remaining"] == 5


def test_a_pick_the_batch_cannot_serve_ships_nothing(app, api, client_as, world, two_batches):
    older, newer = two_batches
    coop_page = client_as("coop_manager")
    herb_sku = sku_of(app, world.herb_product)
    assert record(coop_page, app, herb_sku, quantity="9", harvested_on=_day(1)).status_code == 303
    herb_batch = batches_of(app, herb_sku)[0].id
    assert coop_page.post(f"/coop/batches/{newer}/close").status_code == 303
    _number, shipment_id, line_id = _paid(app, api, client_as, world.honey_product, 6)
    coop = api("coop")
    url = f"/coop/parcels/{shipment_id}/ship"
    field = f"batches.{line_id}"

    def refused(batches: dict, field: str = field) -> dict:
        body = assert_error(coop.post(url, {"carrier": "顺丰", "batches": batches}), 400)
        assert list(body["fields"]) == [field], body
        assert _parcel_state(app, shipment_id) == (ShipmentStatus.TO_SHIP, [None])
        return body

    assert "不是该商品规格的批次" in refused({str(line_id): herb_batch})["message"]
    assert "已结束" in refused({str(line_id): newer})["message"]
    assert "只剩 5，不够发 6" in refused({str(line_id): older})["message"]
    assert "不是该商品规格的批次" in refused({str(line_id): 999_999})["message"]
    refused({"999999": older}, "batches.999999")  # not a line of this parcel
    refused({"第一行": older}, "batches.第一行")
    assert_error(coop.post(url, {"carrier": "顺丰", "batches": {str(line_id): "x"}}), 422)
    assert_error(coop.post(url, {"carrier": "顺丰", "batches": {str(line_id): 0}}), 422)
    assert_error(coop.post(url, {"carrier": "顺丰", "batches": [older]}), 422)
    assert _parcel_state(app, shipment_id) == (ShipmentStatus.TO_SHIP, [None])
    rows = [batch_row(app, b) for b in (older, newer, herb_batch)]
    assert [row["remaining"] for row in rows] == [5, 5, 9]
    # Another co-op cannot ship it, pick or not.
    other = api("other_coop").post(url, {"carrier": "顺丰", "batches": {str(line_id): older}})
    assert_error(other, 404)
    # Without a batch with enough left, the line ships outside any batch, as on the page.
    shipped = coop.post(url, {"carrier": "顺丰"})
    assert shipped.status_code == 200 and shipped.get_json()["lines"][0]["batch_code"] is None
    assert [batch_row(app, b)["remaining"] for b in (older, newer, herb_batch)] == [5, 5, 9]


def test_the_coops_parcel_list_asks_the_same_queries_for_more_parcels(
    app, api, client_as, world, two_batches
):
    coop = api("coop")

    def shipped_and_to_ship() -> list[int]:
        counts = []
        for tab in ("shipped", "to_ship"):
            with statements_sent(app) as statements:
                response = coop.get(f"/coop/parcels?tab={tab}")
            assert response.status_code == 200
            lines = [line for p in response.get_json()["items"] for line in p["lines"]]
            assert lines and all(
                line["batch_code"] if tab == "shipped" else line["open_batches"] for line in lines
            )
            counts.append(len(statements))
        return counts

    def paid_parcel() -> int:
        return _paid(app, api, client_as, world.honey_product, 1)[1]

    def ship(shipment_id: int) -> None:
        assert (
            coop.post(f"/coop/parcels/{shipment_id}/ship", {"carrier": "顺丰"}).status_code == 200
        )

    ship(paid_parcel())  # one parcel shipped (from the older batch), one to ship
    paid_parcel()
    before = shipped_and_to_ship()
    for _ in range(3):
        ship(paid_parcel())
        paid_parcel()
    assert shipped_and_to_ship() == before


def test_the_trace_page_facts_are_public_through_the_api(app, api, client_as, world, two_batches):
    """What a parcel's QR shows, for a partner's app: no token, any case of the code; the
    product's valid certificates and the village's paired units come with it."""
    older, _newer = two_batches
    code = batch_row(app, older)["code"]
    anonymous = api()
    body = anonymous.get(f"/batches/{code.lower()}").get_json()
    page = app.test_client().get(f"/t/{code}").get_data(as_text=True)
    assert body["code"] == code and body["trace_url"] == f"http://localhost/t/{code}"
    assert body["product"]["id"] == world.honey_product and body["product"]["name"] in page
    assert body["spec"] in page and body["coop"]["name"] in page
    assert body["village"]["name"] in page and body["village"]["town"]["name"]
    assert body["harvested_on"] == _day(9)
    assert body["inspection"]["label"] in page
    assert {u["name"] for u in body["paired_units"]} and all(
        u["name"] in page for u in body["paired_units"]
    )
    product = anonymous.get(f"/products/{world.honey_product}").get_json()
    assert body["certificates"] == product["certificates"]  # the same rule as the badges
    assert_error(anonymous.get("/batches/NOSUCHCODE"), 404)
