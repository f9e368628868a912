"""Helpers for buying through the real HTTP pages."""

from __future__ import annotations

import re

from sqlalchemy import select

from market.catalog.models import Sku
from market.extensions import db


def sku_of(app, product_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(Sku.id).where(Sku.product_id == product_id))


def stock_of(app, sku_id: int) -> int:
    with app.app_context():
        return db.session.get(Sku, sku_id).stock


def checkout_key(client) -> str:
    return checkout_key_of(client.get("/checkout").get_data(as_text=True))


def checkout_key_of(page: str) -> str:
    match = re.search(r'name="idempotency_key" type="hidden" value="([0-9a-f]+)"', page)
    assert match, "the checkout page carries an idempotency key"
    return match.group(1)


def shown_prices(page: str) -> str:
    """The prices a checkout page showed, as its form sends them back ("" if none)."""
    match = re.search(r'name="shown_prices" type="hidden" value="([0-9:,]*)"', page)
    return match.group(1) if match else ""


ADDRESS = {
    "delivery_method": "delivery",
    "address_id": "0",
    "recipient": "周买家",
    "phone": "13900000009",
    "region": "广东省茂名市高州市",
    "detail": "潘州街道某路 1 号",
}


def place(client, key: str | None = None, **overrides):
    """Submit the checkout page as a buyer who saw it just now (its key, unless given, and the
    prices it shows)."""
    page = client.get("/checkout").get_data(as_text=True)
    match = re.search(r'name="idempotency_key" type="hidden" value="([0-9a-f]+)"', page)
    data = {
        "idempotency_key": key or (match.group(1) if match else ""),
        "shown_prices": shown_prices(page),
        **ADDRESS,
        **overrides,
    }
    return client.post("/checkout", data=data)


def buy(client, sku_id: int, quantity: int = 1) -> str:
    """Add to cart and check out; return the new order's number."""
    client.post("/cart/add", data={"sku_id": sku_id, "quantity": quantity})
    response = place(client)
    assert response.status_code == 303, response.get_data(as_text=True)[-2000:]
    return response.headers["Location"].split("/")[2]
