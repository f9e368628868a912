"""The API alone, as a mini-program would use it: sign in → browse → cart → checkout → pay by
card through localstripe → the order is paid → the unit's campaign figure grew; and join a
group-buy, paying by card."""

from __future__ import annotations

import uuid

from market.groupbuy.models import PaymentMode
from tests.api.conftest import ApiClient, sign_in
from tests.groupbuy.conftest import Kit
from tests.payments.conftest import GOOD_CARD


def test_token_browse_cart_checkout_pay_and_the_campaign_grows(
    stripe_app,
    card_token,
    campaign,
    world,
):
    client = stripe_app.test_client()
    coordinator = ApiClient(client, sign_in(client, "coordinator@example.com")["access_token"])
    before = coordinator.get("/unit/campaign").get_json()
    assert before["campaign_id"] == campaign.id
    assert before["net"]["fen"] == 0

    tokens = sign_in(client, "13800000003")  # the employee, by mobile number
    me = ApiClient(client, tokens["access_token"])
    found = me.get("/products?q=蜂蜜").get_json()["items"]
    sku = found[0]["skus"][0]
    assert sku["price"]["formatted"] == "¥88.00"
    assert me.post("/cart/items", {"sku_id": sku["id"], "quantity": 2}).status_code == 200
    summary = me.get("/checkout").get_json()
    assert summary["total"]["fen"] == 17600
    key = uuid.uuid4().hex
    body = {
        "delivery_method": "pickup",
        "recipient": "刘职工",
        "phone": "13800000003",
        "shown_prices": summary["shown_prices"],
    }
    order = me.post("/checkout", body, headers={"Idempotency-Key": key}).get_json()
    number = order["number"]
    # A retry of the same submit (a lost answer) places nothing more.
    assert (
        me.post("/checkout", body, headers={"Idempotency-Key": key}).get_json()["number"] == number
    )

    started = me.post(f"/orders/{number}/payments", {"provider": "stripe"})
    assert started.status_code == 201
    intent = started.get_json()
    assert intent["client_secret"].startswith("pi_") and intent["amount"]["fen"] == 17600
    again = me.post(f"/orders/{number}/payments", {"provider": "stripe"}).get_json()
    assert again["id"] == intent["id"]  # the same PaymentIntent, never a second one

    paid = me.post(f"/orders/{number}/payments/card", {"card_token": card_token(GOOD_CARD)})
    assert paid.status_code == 200, paid.get_json()
    me.post(f"/orders/{number}/payments/refresh")
    assert me.get(f"/orders/{number}").get_json()["status"] == "paid"

    after = coordinator.get("/unit/campaign").get_json()
    assert after["net"]["fen"] == before["net"]["fen"] + 17600
    assert after["orders"] == 1

    # The refresh token keeps the mini-program signed in; the old access token is retired.
    renewed = client.post("/api/v1/tokens/refresh", json={"refresh_token": tokens["refresh_token"]})
    me = ApiClient(client, renewed.get_json()["access_token"])
    assert me.get("/orders").get_json()["items"][0]["status"] == "paid"


def test_join_a_card_group_buy_through_the_api(stripe_app, card_token, world):
    kit = Kit(stripe_app, world)
    group_buy_id = kit.open(payment_mode=PaymentMode.CARD)
    item_id = kit.item_ids(group_buy_id)[0]
    client = stripe_app.test_client()
    me = ApiClient(client, sign_in(client, "employee@example.com")["access_token"])
    assert [g["id"] for g in me.get("/group-buys").get_json()["items"]] == [group_buy_id]
    joined = me.post(
        f"/group-buys/{group_buy_id}/join", {"items": [{"item_id": item_id, "quantity": 3}]}
    )
    assert joined.status_code == 201
    assert joined.get_json()["mine"]["needs_payment"] is True
    intent = me.post(f"/group-buys/{group_buy_id}/pay")
    assert intent.status_code == 201, intent.get_json()
    number = joined.get_json()["mine"]["order_number"]
    paid = me.post(f"/orders/{number}/payments/card", {"card_token": card_token(GOOD_CARD)})
    assert paid.status_code == 200, paid.get_json()
    detail = me.get(f"/group-buys/{group_buy_id}").get_json()
    assert detail["mine"]["needs_payment"] is False
    assert detail["progress"]["total_quantity"] == 3
