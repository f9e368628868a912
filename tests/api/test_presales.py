"""预售 through the API: anyone lists the open presales and reads one; a signed-in buyer (or a
unit's coordinator, for the unit) reserves with an Idempotency-Key and gets the order to pay;
more than is left is a 409, bad input a 400/422, and neither writes anything."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from market.extensions import db
from market.orders.models import Address, Order
from market.presales.models import Presale, PresaleReservation
from tests.api.conftest import assert_error
from tests.api.test_buying import DELIVERY
from tests.presales.conftest import lychee_sku, presale_form


@pytest.fixture
def open_presale(app, world, client_as):
    """open_presale(**form changes) -> the id of a presale of 白糖罂荔枝 (¥128, 10 units)
    opened by its co-op on the page."""

    def make(**changes) -> int:
        coop = client_as("other_coop_manager")
        form = presale_form(lychee_sku(app, world), **changes)
        response = coop.post("/coop/presales/new", data=form)
        assert response.status_code == 303, response.get_data(as_text=True)
        return int(response.headers["Location"].rstrip("/").split("/")[-1])

    return make


def reserve(client, presale_id: int, key: str | None = None, **body):
    data = {**DELIVERY, "quantity": 1, **body}
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"/presales/{presale_id}/reservations", data, headers=headers)


def written(app, presale_id: int) -> tuple[int, int, int, int]:
    """(orders, reservations, saved addresses, units reserved of the presale)."""
    with app.app_context():
        return (
            db.session.scalar(select(func.count()).select_from(Order)),
            db.session.scalar(select(func.count()).select_from(PresaleReservation)),
            db.session.scalar(select(func.count()).select_from(Address)),
            db.session.get(Presale, presale_id).reserved_quantity,
        )


def test_anyone_lists_the_open_presales_and_reads_one(app, api, world, client_as, open_presale):
    presale_id = open_presale()
    form = presale_form(0)
    client = api()
    listed = client.get("/presales").get_json()["items"]
    assert [p["id"] for p in listed] == [presale_id]
    presale = listed[0]
    assert presale["product"] == {"id": world.lychee, "name": "白糖罂荔枝"}
    assert presale["sku"] == {"id": lychee_sku(app, world), "spec": "5斤装"}
    assert presale["coop"] == {"id": world.other_coop, "name": "柏桥荔枝合作社"}
    assert presale["price"] == {"fen": 12800, "formatted": "¥128.00"}
    assert (presale["payment_kind"], presale["deposit"], presale["balance"]) == ("full", None, None)
    assert (presale["harvest_from"], presale["harvest_to"]) == (
        form["harvest_from"],
        form["harvest_to"],
    )
    assert (presale["limit_quantity"], presale["available"], presale["status"]) == (10, 10, "open")
    assert presale["url"] == f"http://localhost/presales/{presale_id}"
    assert client.get(f"/presales/{presale_id}").get_json() == presale
    assert client.get(f"/presales?product_id={world.lychee}").get_json()["items"] == [presale]
    assert client.get(f"/presales?product_id={world.honey_product}").get_json()["items"] == []
    assert_error(client.get("/presales/999999"), 404, "not_found")
    assert_error(client.get("/presales?product_id=0"), 422)
    # Closed by its co-op: no longer listed, still readable, and takes no reservation.
    closed = client_as("other_coop_manager").post(f"/coop/presales/{presale_id}/close")
    assert closed.status_code == 303
    assert client.get("/presales").get_json()["items"] == []
    assert client.get(f"/presales/{presale_id}").get_json()["status"] == "closed"
    assert_error(reserve(api("buyer"), presale_id), 400)
    assert written(app, presale_id) == (0, 0, 0, 0)


def test_a_reservation_places_the_order_to_pay_once_per_key(app, api, open_presale):
    presale_id = open_presale()
    buyer = api("buyer")
    key = uuid.uuid4().hex
    made = reserve(buyer, presale_id, key, quantity=3, rollover_wanted=True)
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    number = body["order_number"]
    assert body["presale_id"] == presale_id and body["quantity"] == 3
    assert body["status"] == "awaiting_payment" and body["rollover_wanted"] is True
    assert body["amount_due"] == {"fen": 3 * 12800, "formatted": "¥384.00"}
    assert body["pay_url"] == f"http://localhost/orders/{number}/pay"
    assert body["order_url"] == f"http://localhost/api/v1/orders/{number}"
    assert body["unit_id"] is None and body["order_status"] == "pending_payment"
    assert api().get(f"/presales/{presale_id}").get_json()["available"] == 7
    order = buyer.get(f"/orders/{number}").get_json()
    assert order["total"]["fen"] == 3 * 12800
    assert order["shipments"][0]["status"] == "awaiting_harvest"
    # The same key again: the same reservation, nothing more taken.
    again = reserve(buyer, presale_id, key, quantity=3, rollover_wanted=True)
    assert again.status_code == 200 and again.get_json() == body
    assert written(app, presale_id) == (1, 1, 1, 3)
    # It is paid like any order of the API.
    paying = buyer.post(f"/orders/{number}/payments", {"provider": "offline"})
    assert paying.status_code == 201 and paying.get_json()["amount"]["fen"] == 3 * 12800


def test_a_deposit_presale_asks_the_deposit_now(app, api, open_presale):
    presale_id = open_presale(payment_kind="deposit", deposit="20")
    shown = api().get(f"/presales/{presale_id}").get_json()
    assert shown["payment_kind"] == "deposit"
    assert (shown["deposit"]["fen"], shown["balance"]["fen"]) == (2000, 10800)
    made = reserve(api("buyer"), presale_id, quantity=2)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["amount_due"]["fen"] == 2 * 2000


def test_more_than_is_left_is_409_and_writes_nothing(app, api, open_presale):
    presale_id = open_presale(limit_quantity=5)
    buyer = api("buyer")
    over = assert_error(reserve(buyer, presale_id, quantity=6), 409, "over_limit")
    assert over["fields"] == {"quantity": ["预售只剩 5 件，请减少数量"]}
    assert written(app, presale_id) == (0, 0, 0, 0)  # not even the new address
    assert reserve(buyer, presale_id, quantity=5).status_code == 201
    full = assert_error(reserve(api("employee"), presale_id, quantity=1), 409, "over_limit")
    assert full["fields"] == {"quantity": ["预售已约满"]}
    assert written(app, presale_id) == (1, 1, 1, 5)


def test_bad_input_is_refused_and_writes_nothing(app, api, open_presale):
    presale_id = open_presale()
    buyer = api("buyer")
    url = f"/presales/{presale_id}/reservations"
    no_key = assert_error(buyer.post(url, {**DELIVERY, "quantity": 1}), 422, "validation_error")
    assert "Idempotency-Key" in no_key["fields"]
    assert "quantity" in assert_error(reserve(buyer, presale_id, quantity=0), 422)["fields"]
    assert_error(reserve(buyer, presale_id, quantity="两箱"), 422)
    assert_error(reserve(buyer, presale_id, delivery_method="drone"), 422)
    assert_error(reserve(buyer, presale_id, surprise=True), 422)
    missing = assert_error(reserve(buyer, presale_id, detail=""), 400)
    assert missing["fields"] == {"detail": ["请填写完整的收货地址"]}
    not_mine = assert_error(reserve(buyer, presale_id, address_id=999_999), 400)
    assert list(not_mine["fields"]) == ["address_id"]
    pickup = assert_error(reserve(buyer, presale_id, delivery_method="pickup"), 400)
    assert list(pickup["fields"]) == ["delivery_method"]  # a buyer of no unit
    for_unit = assert_error(reserve(buyer, presale_id, for_unit=True), 400)
    assert list(for_unit["fields"]) == ["for_unit"]  # only a unit's coordinator
    assert_error(reserve(buyer, 999_999), 404)
    assert_error(reserve(api(), presale_id), 401)
    assert written(app, presale_id) == (0, 0, 0, 0)


def test_a_coordinator_reserves_for_the_unit(app, api, world, open_presale):
    presale_id = open_presale()
    made = reserve(api("coordinator"), presale_id, quantity=4, for_unit=True)
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["unit_id"] == world.unit
    assert written(app, presale_id)[3] == 4


def test_a_key_that_placed_another_order_is_not_a_reservation(app, api, world, open_presale):
    presale_id = open_presale()
    buyer = api("buyer")
    buyer.post("/cart/items", {"sku_id": lychee_sku(app, world), "quantity": 1})
    shown = buyer.get("/checkout").get_json()["shown_prices"]
    key = uuid.uuid4().hex
    placed = buyer.post(
        "/checkout", {**DELIVERY, "shown_prices": shown}, headers={"Idempotency-Key": key}
    )
    assert placed.status_code == 201
    assert_error(reserve(buyer, presale_id, key), 409, "idempotency_key_reused")
    assert written(app, presale_id)[1:] == (0, 1, 0)
    # A key is a buyer's own: the same key of someone else is a new reservation.
    assert reserve(api("employee"), presale_id, key).status_code == 201


def test_the_rules_are_the_pages_own(app):
    pages = {
        "api_presales.presales": "presales.index",
        "api_presales.presale": "presales.detail",
        "api_presales.reserve": "presales.reserve",
        "api_coop.ship": "orders.ship",
    }
    views = app.view_functions
    for api_endpoint, page in pages.items():
        assert views[api_endpoint].access == views[page].access, api_endpoint
