"""Presales through the real pages: the lychee co-op (柏桥荔枝合作社, 根子镇) opens a presale of
its 白糖罂荔枝, buyers reserve on the presale page and pay on the ordinary pay page (cards
through localstripe), the co-op announces the harvest."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import select

from market.catalog.models import Sku
from market.clock import today
from market.extensions import db
from market.orders.models import Order
from market.presales.models import Presale, PresaleReservation
from tests.payments.conftest import (  # noqa: F401  (card payments through localstripe)
    GOOD_CARD,
    authenticate,
    card_token,
    localstripe_url,
    stripe_app,
    stripe_client,
)

PRICE_FEN = 12800  # the presale price of one 5斤装 box (the SKU's retail price is 8900)
ADDRESS = {
    "delivery_method": "delivery",
    "address_id": "0",
    "recipient": "周买家",
    "phone": "13900000009",
    "region": "广东省茂名市高州市",
    "detail": "人民路 1 号",
}


def delivery(recipient: str = "周买家", phone: str = "13900000009", detail: str = "人民路 1 号"):
    """What the reservation form's delivery fields give the service (CheckoutForm.delivery_fields):
    a parcel to a new address."""
    return {
        "method": "delivery",
        "address_id": None,
        "recipient": recipient,
        "phone": phone,
        "region": "广东省茂名市高州市",
        "detail": detail,
        "note": "",
    }


def lychee_sku(app: Flask, world: SimpleNamespace) -> int:
    with app.app_context():
        return db.session.scalar(select(Sku.id).where(Sku.product_id == world.lychee))


def presale_form(sku_id: int, **changes) -> dict:
    start = today() + timedelta(days=30)
    form = {
        "sku_id": str(sku_id),
        "harvest_from": start.isoformat(),
        "harvest_to": (start + timedelta(days=20)).isoformat(),
        "price": "128",
        "limit_quantity": "10",
        "note": "妃子笑之后上市",
    }
    form.update({key: str(value) for key, value in changes.items()})
    return form


class Shop:
    """The steps a test takes, each through the page a person would use."""

    def __init__(self, app: Flask, world: SimpleNamespace, client_as, make_token) -> None:
        self.app = app
        self.world = world
        self.client_as = client_as
        self.card_token = make_token
        self.clients: dict[int, object] = {}
        self.sku_id = lychee_sku(app, world)

    def client(self, user_id: int):
        if user_id not in self.clients:
            self.clients[user_id] = self.client_as(user_id)
        return self.clients[user_id]

    @property
    def coop(self):
        return self.client(self.world.other_coop_manager)

    def open(self, **changes) -> int:
        response = self.coop.post("/coop/presales/new", data=presale_form(self.sku_id, **changes))
        assert response.status_code == 303, response.get_data(as_text=True)
        return int(response.headers["Location"].rstrip("/").split("/")[-1])

    def reserve_response(self, user_id: int, presale_id: int, quantity: int, **extra):
        data = {
            **ADDRESS,
            "idempotency_key": uuid.uuid4().hex,
            "quantity": str(quantity),
            "shortfall": "refund",
        }
        data.update({key: str(value) for key, value in extra.items()})
        return self.client(user_id).post(f"/presales/{presale_id}/reserve", data=data)

    def reserve(self, user_id: int, presale_id: int, quantity: int, **extra) -> str:
        """The number of the order placed for the reservation."""
        response = self.reserve_response(user_id, presale_id, quantity, **extra)
        assert response.status_code == 303, response.get_data(as_text=True)
        location = response.headers["Location"]
        assert location.endswith("/pay"), location
        return location.split("/")[-2]

    def pay_by_card(self, user_id: int, number: str) -> None:
        client = self.client(user_id)
        assert client.post(f"/orders/{number}/pay/stripe").status_code == 303
        answer = client.post(
            f"/orders/{number}/pay/stripe/confirm", json={"token": self.card_token(GOOD_CARD)}
        )
        assert answer.status_code == 200 and answer.json["status"] == "succeeded", answer.json

    def announce(self, presale_id: int, quantity: int):
        return self.coop.post(
            f"/coop/presales/{presale_id}/harvest", data={"quantity": str(quantity)}
        )

    def presale(self, presale_id: int) -> Presale:
        with self.app.app_context():
            presale = db.session.get(Presale, presale_id)
            db.session.expunge(presale)
            return presale

    def reservation(self, number: str) -> PresaleReservation:
        """The order's latest reservation (a rolled-over order has one per season)."""
        with self.app.app_context():
            reservation = db.session.scalars(
                select(PresaleReservation)
                .join(Order, Order.id == PresaleReservation.order_id)
                .where(Order.number == number)
                .order_by(PresaleReservation.id.desc())
            ).first()
            db.session.expunge(reservation)
            return reservation

    def order(self, number: str) -> SimpleNamespace:
        with self.app.app_context():
            order = db.session.scalar(select(Order).where(Order.number == number))
            return SimpleNamespace(
                id=order.id,
                status=order.status.value,
                total_fen=order.total_fen,
                paid_fen=order.paid_fen,
                refunded_fen=order.refunded_fen,
                unit_id=order.unit_id,
                shipments=[(s.id, s.status.value) for s in order.shipments],
                holds_stock=[line.holds_stock for line in order.lines],
                batch_ids=[line.batch_id for line in order.lines],
            )

    def stock(self) -> int:
        with self.app.app_context():
            return db.session.get(Sku, self.sku_id).stock


@pytest.fixture
def shop(request, world: SimpleNamespace, client_as) -> Shop:
    """The app with card payments through localstripe, and the steps of a test."""
    app = request.getfixturevalue("stripe_app")
    return Shop(app, world, client_as, request.getfixturevalue("card_token"))
