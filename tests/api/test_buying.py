"""Cart, checkout (one order per Idempotency-Key, prices only as shown), my orders, cancel,
confirm receipt, and bank-transfer details — through the API, with the pages' rules."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from market.catalog.models import Sku
from market.extensions import db
from market.orders.models import Order
from tests.api.conftest import assert_error


def sku_of(app, product_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(Sku.id).where(Sku.product_id == product_id))


def order_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Order))


DELIVERY = {
    "delivery_method": "delivery",
    "recipient": "刘职工",
    "phone": "13800000003",
    "region": "广东省茂名市高州市",
    "detail": "人民路 1 号",
}


def fill_cart(app, client, product_id: int, quantity: int = 2) -> dict:
    response = client.post("/cart/items", {"sku_id": sku_of(app, product_id), "quantity": quantity})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def checkout(client, key: str | None = None, **overrides):
    shown = client.get("/checkout").get_json()["shown_prices"]
    body = {**DELIVERY, "shown_prices": shown, **overrides}
    return client.post("/checkout", body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


def place(app, client, product_id: int, quantity: int = 2) -> str:
    fill_cart(app, client, product_id, quantity)
    response = checkout(client)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["number"]


def test_the_cart_groups_by_coop_and_changes_quantities(app, api, world):
    client = api("employee")
    cart = fill_cart(app, client, world.honey_product)
    fill_cart(app, client, world.lychee, 1)
    cart = client.get("/cart").get_json()
    assert len(cart["groups"]) == 2
    assert cart["total"] == {"fen": 2 * 8800 + 8900, "formatted": "¥265.00"}
    item = cart["groups"][0]["items"][0]
    changed = client.post(f"/cart/items/{item['item_id']}", {"quantity": 0}).get_json()
    assert changed["item_count"] == 1


def test_cart_refusals(app, api, world):
    client = api("employee")
    assert_error(client.post("/cart/items", {"sku_id": "x"}), 422, "validation_error")
    assert_error(client.post("/cart/items", {"sku_id": sku_of(app, world.draft)}), 404)
    over = client.post("/cart/items", {"sku_id": sku_of(app, world.honey_product), "quantity": 51})
    assert over.status_code in (400, 409)
    assert_error(api().get("/cart"), 401, "unauthorized")
    assert_error(api().post("/cart/items", {"sku_id": 1}), 401)
    # Someone else's cart line is not mine to change.
    fill_cart(app, client, world.honey_product)
    item_id = client.get("/cart").get_json()["groups"][0]["items"][0]["item_id"]
    assert_error(api("buyer").post(f"/cart/items/{item_id}", {"quantity": 1}), 404)


def test_checkout_places_one_order_per_key(app, api, world):
    client = api("employee")
    fill_cart(app, client, world.honey_product)
    key = uuid.uuid4().hex
    first = checkout(client, key)
    assert first.status_code == 201
    order = first.get_json()
    assert order["status"] == "pending_payment"
    assert order["total"]["fen"] == 17600 and order["created_at"].endswith("+08:00")
    again = checkout(client, key)
    assert again.status_code == 200
    assert again.get_json()["number"] == order["number"]
    assert order_count(app) == 1
    assert client.get("/cart").get_json()["item_count"] == 0


def test_checkout_refusals(app, api, world):
    client = api("employee")
    assert_error(checkout(client), 409, "cart_empty")
    fill_cart(app, client, world.honey_product)
    no_key = client.post("/checkout", {**DELIVERY, "shown_prices": []})
    assert_error(no_key, 422, "validation_error")
    assert "Idempotency-Key" in no_key.get_json()["fields"]
    assert_error(
        client.post("/checkout", {"shown_prices": []}, headers={"Idempotency-Key": "k"}), 422
    )
    missing = checkout(client, detail="")
    assert assert_error(missing, 400)["fields"] == {"detail": ["请填写完整的收货地址"]}
    stale = [{"sku_id": sku_of(app, world.honey_product), "unit_price_fen": 1}]
    changed = checkout(client, shown_prices=stale)
    assert_error(changed, 409, "prices_changed")
    assert order_count(app) == 0
    assert_error(api("buyer").post("/checkout", {}), 422)  # no key, no body
    assert_error(api().post("/checkout", {}, headers={"Idempotency-Key": "k"}), 401)
    pickup = checkout(api("buyer"), delivery_method="pickup")
    assert pickup.status_code in (400, 409)


def test_pickup_at_my_unit(app, api, world):
    client = api("employee")
    fill_cart(app, client, world.honey_product)
    order = checkout(client, delivery_method="pickup").get_json()
    assert order["delivery_method"] == "pickup"
    assert order["address"].startswith("高州市市场监管局")


def test_my_orders_detail_and_someone_elses(app, api, world):
    client = api("employee")
    number = place(app, client, world.honey_product)
    listing = client.get("/orders")
    assert [o["number"] for o in listing.get_json()["items"]] == [number]
    assert "Link" in listing.headers
    detail = client.get(f"/orders/{number}").get_json()
    assert detail["lines"][0]["product_name"] == "原生态蜂蜜"
    assert detail["shipments"][0]["status"] == "awaiting_payment"
    assert_error(api("buyer").get(f"/orders/{number}"), 404, "not_found")
    assert_error(api().get(f"/orders/{number}"), 401)
    assert_error(client.get("/orders/nope"), 404)
    assert_error(client.get("/orders?per_page=0"), 422)


def test_cancel_gives_the_stock_back_and_repeats_change_nothing(app, api, world):
    client = api("employee")
    sku_id = sku_of(app, world.honey_product)
    number = place(app, client, world.honey_product)
    assert_error(api("buyer").post(f"/orders/{number}/cancel"), 404)
    cancelled = client.post(f"/orders/{number}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert client.post(f"/orders/{number}/cancel").get_json()["status"] == "cancelled"
    with app.app_context():
        assert db.session.get(Sku, sku_id).stock == 50


def test_bank_transfer_details(app, api, world):
    client = api("employee")
    number = place(app, client, world.honey_product)
    started = client.post(f"/orders/{number}/payments", {"provider": "offline"})
    assert started.status_code == 201
    body = started.get_json()
    assert body["provider"] == "offline" and body["client_secret"] is None
    assert body["bank_account"]["reference"] == number
    details = client.get(f"/orders/{number}/payments/bank-transfer").get_json()
    assert details["account_number"]
    assert_error(client.post(f"/orders/{number}/payments", {"provider": "paypal"}), 422)
    assert_error(client.post(f"/orders/{number}/payments", {"provider": "stripe"}), 400)
    assert_error(api("buyer").post(f"/orders/{number}/payments", {"provider": "offline"}), 404)
    assert_error(api("buyer").get(f"/orders/{number}/payments/bank-transfer"), 404)
    assert_error(client.post(f"/orders/{number}/payments/refresh"), 409, "no_card_payment")


def test_confirm_receipt_after_shipping(app, api, world):
    from market.orders.models import Order
    from market.payments import transfers

    client = api("employee")
    number = place(app, client, world.honey_product)
    client.post(f"/orders/{number}/payments", {"provider": "offline"})
    with app.test_request_context():
        from market.accounts.models import User

        finance = db.session.get(User, world.finance)
        from datetime import date

        transfers.confirm_transfer(finance, number, "REF-1", date.today())
    with app.app_context():
        shipment_id = db.session.scalar(select(Order).where(Order.number == number)).shipments[0].id
    coop = api("coop")
    assert_error(api("other_coop").post(f"/coop/parcels/{shipment_id}/ship", {"carrier": "x"}), 404)
    shipped = coop.post(
        f"/coop/parcels/{shipment_id}/ship", {"carrier": "顺丰", "tracking_number": "SF9"}
    )
    assert shipped.status_code == 200 and shipped.get_json()["status"] == "shipped"
    assert_error(api("buyer").post(f"/orders/{number}/shipments/{shipment_id}/received"), 404)
    done = client.post(f"/orders/{number}/shipments/{shipment_id}/received")
    assert done.status_code == 200
    assert done.get_json()["status"] == "completed"
    assert_error(client.post(f"/orders/{number}/shipments/{shipment_id}/received"), 409)


def test_card_payment_refusals(app, api, world):
    client = api("employee")
    number = place(app, client, world.honey_product)
    assert_error(client.post(f"/orders/{number}/payments/card", {}), 422, "validation_error")
    # No card payment started (the shop has no Stripe keys here): refused, nothing taken.
    assert_error(client.post(f"/orders/{number}/payments/card", {"card_token": "tok_x"}), 400)
    assert_error(api("buyer").post(f"/orders/{number}/payments/card", {"card_token": "t"}), 404)
    assert_error(api("buyer").post(f"/orders/{number}/payments/refresh"), 404)
    assert_error(api().post(f"/orders/{number}/payments/card", {"card_token": "t"}), 401)
    assert_error(client.post("/orders/nope/payments", {"provider": "offline"}), 404)
