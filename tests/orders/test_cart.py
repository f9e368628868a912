"""The cart: guests and signed-in buyers, several co-ops, quantities checked against stock."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from market.extensions import db
from market.orders.models import CartItem
from tests.orders.conftest import sku_of


def _items(app) -> list[tuple[int, int]]:
    with app.app_context():
        rows = db.session.execute(select(CartItem.sku_id, CartItem.quantity))
        return sorted((sku_id, quantity) for sku_id, quantity in rows)


def test_a_guest_fills_one_cart_with_two_coops_goods(app, client, world):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    client.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    client.post("/cart/add", data={"sku_id": lychee, "quantity": 1})
    client.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    page = client.get("/cart").get_data(as_text=True)
    assert page.count('class="card mb-3 cart-group"') == 2
    assert "古丁南药合作社" in page and "柏桥荔枝合作社" in page
    assert "¥353.00" in page  # 3 × 88 + 89
    assert _items(app) == sorted([(honey, 3), (lychee, 1)])


@pytest.mark.parametrize("quantity", ["0", "-1", "1000000000", "abc", ""])
def test_bad_quantities_are_refused_and_change_nothing(app, client, world, quantity):
    honey = sku_of(app, world.honey_product)
    response = client.post(
        "/cart/add", data={"sku_id": honey, "quantity": quantity}, follow_redirects=True
    )
    assert response.status_code == 200
    assert "alert-danger" in response.get_data(as_text=True)
    assert _items(app) == []


def test_an_unknown_or_unlisted_sku_is_refused(app, client, world):
    for sku_id in (99999, sku_of(app, world.draft)):
        response = client.post(
            "/cart/add", data={"sku_id": sku_id, "quantity": 1}, follow_redirects=True
        )
        assert "该商品已下架或不存在" in response.get_data(as_text=True)
    assert _items(app) == []


def test_more_than_the_stock_is_refused_with_what_is_left(app, client, world):
    honey = sku_of(app, world.honey_product)
    response = client.post(
        "/cart/add", data={"sku_id": honey, "quantity": 51}, follow_redirects=True
    )
    assert "库存只有 50 件" in response.get_data(as_text=True)
    assert _items(app) == []


def test_change_and_remove_a_cart_line(app, client, world):
    honey = sku_of(app, world.honey_product)
    client.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    with app.app_context():
        item_id = db.session.scalar(select(CartItem.id))
    client.post(f"/cart/items/{item_id}", data={"quantity": 4})
    assert _items(app) == [(honey, 4)]
    response = client.post(f"/cart/items/{item_id}", data={"quantity": 99}, follow_redirects=True)
    assert "库存只有 50 件" in response.get_data(as_text=True)
    assert _items(app) == [(honey, 4)]
    client.post(f"/cart/items/{item_id}", data={"quantity": 0})
    assert _items(app) == []


def test_someone_elses_cart_line_cannot_be_touched(app, client, client_as, world):
    client.post("/cart/add", data={"sku_id": sku_of(app, world.honey_product), "quantity": 1})
    with app.app_context():
        item_id = db.session.scalar(select(CartItem.id))
    response = client_as("buyer").post(
        f"/cart/items/{item_id}", data={"quantity": 0}, follow_redirects=True
    )
    assert "购物车里没有这件商品" in response.get_data(as_text=True)
    assert len(_items(app)) == 1


def test_the_guest_cart_joins_the_users_cart_at_login(app, client, client_as, world):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    client_as("buyer").post("/cart/add", data={"sku_id": honey, "quantity": 1})
    client.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    client.post("/cart/add", data={"sku_id": lychee, "quantity": 1})
    client.post("/login", data={"email": "buyer@example.com", "password": "correct-horse-9"})
    page = client.get("/cart").get_data(as_text=True)
    assert "¥353.00" in page  # honey 3 × 88 + lychee 89
    with app.app_context():
        from market.orders.models import Cart

        assert db.session.scalar(select(func.count()).select_from(Cart)) == 1
