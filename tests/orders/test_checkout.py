"""Checkout: one order, one shipment per co-op, server prices, stock taken once, idempotent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from market.catalog.models import Sku
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order, OrderStatus, ShipmentStatus
from market.payments.background import expire_unpaid_orders
from tests.orders.conftest import (
    ADDRESS,
    buy,
    checkout_key,
    checkout_key_of,
    place,
    shown_prices,
    sku_of,
    stock_of,
)


def _orders(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Order))


def test_checkout_makes_one_order_with_a_shipment_per_coop(app, client_as, world):
    buyer = client_as("buyer")
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    buyer.post("/cart/add", data={"sku_id": lychee, "quantity": 1})
    # A tampered price in the form is ignored: prices are the server's.
    response = place(buyer, price="0.01", total_fen="1", unit_price_fen="1")
    assert response.status_code == 303
    number = response.headers["Location"].split("/")[2]
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.total_fen == 2 * 8800 + 8900
        assert order.status == OrderStatus.PENDING_PAYMENT
        assert len(order.shipments) == 2
        assert {s.status for s in order.shipments} == {ShipmentStatus.AWAITING_PAYMENT}
        assert sorted(
            (line.product_name, line.unit_price_fen, line.quantity) for line in order.lines
        ) == [
            ("原生态蜂蜜", 8800, 2),
            ("白糖罂荔枝", 8900, 1),
        ]
        assert order.address == "广东省茂名市高州市潘州街道某路 1 号"
        assert len(number) == 14 and number.isdigit()
    assert stock_of(app, honey) == 48 and stock_of(app, lychee) == 49
    assert "购物车是空的" in buyer.get("/cart").get_data(as_text=True)


def test_a_double_submit_makes_one_order(app, client_as, world):
    buyer = client_as("buyer")
    honey = sku_of(app, world.honey_product)
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    key = checkout_key(buyer)
    first = place(buyer, key)
    second = place(buyer, key)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _orders(app) == 1
    assert stock_of(app, honey) == 48


@pytest.mark.parametrize("added", ["same honey", "other lychee"])
def test_an_old_form_sent_again_finds_its_order_whatever_the_cart_holds_now(
    app, client_as, world, added
):
    """The first submit is not preceded by a lookup of its key (the unique index catches a key
    used before): sent again after the buyer filled the cart anew, with what the old form showed
    now matching (same SKU and price) or not (another product), it still answers with the first
    order, takes no stock and leaves the new cart as it is."""
    buyer = client_as("buyer")
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    page = buyer.get("/checkout").get_data(as_text=True)
    form = {"idempotency_key": checkout_key_of(page), "shown_prices": shown_prices(page), **ADDRESS}
    first = buyer.post("/checkout", data=form)
    assert first.status_code == 303
    again = honey if added == "same honey" else lychee
    buyer.post("/cart/add", data={"sku_id": again, "quantity": 1})

    second = buyer.post("/checkout", data=form)
    assert second.status_code == 303
    assert second.headers["Location"] == first.headers["Location"]
    assert _orders(app) == 1
    assert stock_of(app, honey) == 48 and stock_of(app, lychee) == 50
    cart = buyer.get("/cart").get_data(as_text=True)
    assert ("原生态蜂蜜" if added == "same honey" else "白糖罂荔枝") in cart


def test_a_sold_out_item_stops_checkout_and_takes_nothing(app, client_as, world):
    buyer = client_as("buyer")
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    buyer.post("/cart/add", data={"sku_id": lychee, "quantity": 5})
    with app.app_context():
        db.session.get(Sku, lychee).stock = 3  # someone else bought in the meantime
        db.session.commit()
    response = place(buyer)
    assert response.status_code == 400
    assert "白糖罂荔枝（5斤装）库存只有 3 件" in response.get_data(as_text=True)
    assert _orders(app) == 0
    assert stock_of(app, honey) == 50 and stock_of(app, lychee) == 3
    assert "白糖罂荔枝" in buyer.get("/cart").get_data(as_text=True)  # the cart is kept


def test_checkout_needs_an_address_and_a_sign_in(app, client, client_as, world):
    assert client.get("/checkout").status_code == 302
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": sku_of(app, world.honey_product), "quantity": 1})
    response = place(buyer, detail="")
    assert response.status_code == 400
    assert "请填写完整的收货地址" in response.get_data(as_text=True)
    response = place(buyer, phone="12345")
    assert "手机号应为 11 位数字" in response.get_data(as_text=True)
    assert _orders(app) == 0


def test_a_saved_address_is_offered_next_time(app, client_as, world):
    buyer = client_as("buyer")
    buy(buyer, sku_of(app, world.honey_product))
    buyer.post("/cart/add", data={"sku_id": sku_of(app, world.lychee), "quantity": 1})
    page = buyer.get("/checkout").get_data(as_text=True)
    assert "潘州街道某路 1 号" in page


def test_pickup_at_the_unit_is_for_its_members(app, client_as, world):
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": sku_of(app, world.honey_product), "quantity": 1})
    response = place(buyer, delivery_method="pickup")
    assert response.status_code == 400
    assert "加入单位后才能到单位自提" in response.get_data(as_text=True)
    employee = client_as("employee")
    employee.post("/cart/add", data={"sku_id": sku_of(app, world.honey_product), "quantity": 1})
    response = place(employee, delivery_method="pickup", recipient="刘职工", phone="13800000003")
    assert response.status_code == 303
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.buyer_id == world.employee))
        assert order.address.startswith("高州市市场监管局")


def test_unpaid_orders_expire_and_give_their_stock_back(app, client_as, world):
    buyer = client_as("buyer")
    honey = sku_of(app, world.honey_product)
    number = buy(buyer, honey, 5)
    assert stock_of(app, honey) == 45
    with app.app_context():
        assert expire_unpaid_orders(utcnow()) == 0  # not due yet
        later = utcnow() + timedelta(minutes=app.config["UNPAID_ORDER_MINUTES"], seconds=1)
        assert expire_unpaid_orders(later) == 1
        assert expire_unpaid_orders(later) == 0  # twice changes nothing
    assert stock_of(app, honey) == 50
    page = buyer.get(f"/orders/{number}").get_data(as_text=True)
    assert "已超时关闭" in page
    response = buyer.post(f"/orders/{number}/pay/offline", follow_redirects=True)
    assert "该订单当前不需要付款" in response.get_data(as_text=True)


def test_an_order_past_its_deadline_cannot_be_paid(app, client_as, world):
    buyer = client_as("buyer")
    honey = sku_of(app, world.honey_product)
    number = buy(buyer, honey, 2)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = buyer.post(f"/orders/{number}/pay/offline", follow_redirects=True)
    assert "订单已超时关闭" in response.get_data(as_text=True)
    assert stock_of(app, honey) == 50


def test_the_expire_command_for_cron(app, client_as, world):
    buyer = client_as("buyer")
    buy(buyer, sku_of(app, world.honey_product))
    with app.app_context():
        db.session.execute(
            Order.__table__.update().values(expires_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["orders", "expire"])
    assert "expired 1 unpaid orders" in result.output


def test_someone_elses_order_is_not_found(app, client_as, world):
    number = buy(client_as("buyer"), sku_of(app, world.honey_product))
    other = client_as("employee")
    assert other.get(f"/orders/{number}").status_code == 404
    assert other.get(f"/orders/{number}/pay").status_code == 404
    assert other.post(f"/orders/{number}/cancel").status_code == 404
    assert other.post(f"/orders/{number}/pay/offline").status_code == 404
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.status == OrderStatus.PENDING_PAYMENT


def test_my_orders_lists_mine_only(app, client_as, world):
    number = buy(client_as("buyer"), sku_of(app, world.honey_product))
    assert number in client_as("buyer").get("/orders").get_data(as_text=True)
    assert number not in client_as("employee").get("/orders").get_data(as_text=True)


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(app, client_as, world):
    response = client_as("buyer").post("/checkout", data={"idempotency_key": "k", **ADDRESS})
    assert response.status_code == 302
    assert _orders(app) == 0
