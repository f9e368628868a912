"""What the faster checkout reads (issue 13, point 3): each page loads what it shows in a few
queries that do not grow with the cart, and nothing it keeps loaded after a commit is stale."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import delete, event, select

from market.accounts.models import CoopMembership, CoopRole, User
from market.catalog.models import Sku
from market.extensions import db
from market.orders import carts, services
from market.orders.models import Cart, CartItem, Order
from tests.orders.conftest import place, sku_of

BUDGET = 15  # SQL statements per GET page (issue 13, point 6)


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def on_execute(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def _statements(app: Flask, browser, path: str) -> int:
    with counting(app) as statements:
        response = browser.get(path)
    assert response.status_code == 200, response.status_code
    return len(statements)


def test_the_checkout_and_pay_pages_read_the_same_few_times_whatever_the_cart_holds(
    app, client_as, world
):
    buyer = client_as("buyer")
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    herb = sku_of(app, world.herb_product)
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    one_line = _statements(app, buyer, "/checkout")
    buyer.post("/cart/add", data={"sku_id": lychee, "quantity": 2})
    buyer.post("/cart/add", data={"sku_id": herb, "quantity": 3})
    page = buyer.get("/checkout").get_data(as_text=True)
    assert "古丁南药合作社" in page and "柏桥荔枝合作社" in page  # two parcels shown
    three_lines = _statements(app, buyer, "/checkout")
    assert one_line == three_lines <= BUDGET

    response = place(buyer)
    assert response.status_code == 303
    pay_page = response.headers["Location"]
    with counting(app) as statements:
        page = buyer.get(pay_page).get_data(as_text=True)
    assert "¥%.2f" % ((8800 + 2 * 8900 + 3 * 2500) / 100) in page
    assert len(statements) <= BUDGET


def test_placing_an_order_leaves_nothing_stale_in_the_same_session(app, world):
    """place_order commits without expiring what it wrote through the ORM; what it changed in
    SQL (the stock, the emptied cart) must read as the database has it, in that same session."""
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    with app.app_context():
        buyer = db.session.get(User, world.buyer)
        carts.add_to_cart(buyer, None, honey, 2)
        carts.add_to_cart(buyer, None, lychee, 1)
        cart = carts.cart_for(buyer, None, lines=True)
        stocks = {item.sku_id: item.sku.stock for item in cart.items}  # loaded before
        order = services.place_order(
            buyer,
            services.Delivery(services.DeliveryMethod.DELIVERY, "周买家", "13900000009", "某路"),
            "a" * 32,
            shown_prices={honey: 8800, lychee: 8900},
        )
        # Same session, nothing reloaded by hand:
        assert db.session.get(Sku, honey).stock == stocks[honey] - 2
        assert db.session.get(Sku, lychee).stock == stocks[lychee] - 1
        assert cart.items == []
        assert carts.cart_groups(carts.cart_for(buyer, None)) == []
        assert order.total_fen == 2 * 8800 + 8900
        assert sorted(line.quantity for line in order.lines) == [1, 2]
        number = order.number
    with app.app_context():  # and a fresh session sees the same
        assert db.session.get(Sku, honey).stock == stocks[honey] - 2
        assert db.session.scalar(select(Order.total_fen).where(Order.number == number)) == (
            2 * 8800 + 8900
        )
        cart_id = db.session.scalar(select(Cart.id).where(Cart.user_id == world.buyer))
        assert db.session.scalars(select(CartItem).where(CartItem.cart_id == cart_id)).all() == []


def test_adding_to_the_cart_twice_adds_up_in_the_same_session(app, world):
    honey = sku_of(app, world.honey_product)
    with app.app_context():
        buyer = db.session.get(User, world.buyer)
        carts.add_to_cart(buyer, None, honey, 2)
        cart = carts.add_to_cart(buyer, None, honey, 3)
        assert [(item.sku_id, item.quantity) for item in cart.items] == [(honey, 5)]
    with app.app_context():
        cart = carts.cart_for(db.session.get(User, world.buyer), None)
        assert [(item.sku_id, item.quantity) for item in cart.items] == [(honey, 5)]


def test_a_role_given_or_taken_after_sign_in_counts_from_the_next_request(app, client_as, world):
    """The signed-in person's memberships are loaded with the session on every request, never
    kept from an earlier one."""
    buyer = client_as("buyer")
    assert buyer.get("/coop/orders").status_code == 403
    with app.app_context():
        db.session.add(
            CoopMembership(user_id=world.buyer, coop_id=world.coop, role=CoopRole.MANAGER)
        )
        db.session.commit()
    page = buyer.get("/coop/orders")
    assert page.status_code == 200
    assert re.search(r'id="nav-coop-orders"', page.get_data(as_text=True))
    with app.app_context():
        db.session.execute(delete(CoopMembership).where(CoopMembership.user_id == world.buyer))
        db.session.commit()
    assert buyer.get("/coop/orders").status_code == 403
    assert 'id="nav-coop-orders"' not in buyer.get("/cart").get_data(as_text=True)


def test_a_deactivated_person_is_signed_out_at_the_next_request(app, client_as, world):
    buyer = client_as("buyer")
    assert buyer.get("/checkout").status_code in (200, 302)
    assert buyer.get("/orders").status_code == 200
    with app.app_context():
        db.session.get(User, world.buyer).active = False
        db.session.commit()
    response = buyer.get("/orders")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
