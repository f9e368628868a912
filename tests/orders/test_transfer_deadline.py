"""Choosing bank transfer turns the checkout's minutes to pay into days, once: choosing it again
later never moves the deadline the buyer was given later, so
the stock an unpaid order holds cannot be kept indefinitely."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from market.extensions import db
from market.models import utcnow
from market.orders.models import Order
from tests.orders.conftest import buy, sku_of


def expiry(app, number: str):
    with app.app_context():
        return db.session.scalar(select(Order.expires_at).where(Order.number == number))


def test_choosing_bank_transfer_again_never_moves_the_deadline_later(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product))
    checkout_deadline = expiry(app, number)
    assert checkout_deadline - utcnow() <= timedelta(minutes=app.config["UNPAID_ORDER_MINUTES"])

    buyer.post(f"/orders/{number}/pay/offline")
    days = timedelta(days=app.config["BANK_TRANSFER_DAYS"])
    given = expiry(app, number)
    assert days - timedelta(minutes=1) < given - utcnow() <= days  # days, not minutes

    # Six days later the buyer opens the pay page again and chooses the transfer once more.
    last_day = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = last_day
        db.session.commit()
    buyer.post(f"/orders/{number}/pay/offline")
    assert expiry(app, number) == last_day
