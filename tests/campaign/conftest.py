"""Campaign fixtures: a campaign running today, and sales made through the real pages (buy,
pay by bank transfer confirmed by finance, refund by the co-op)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from market import clock
from market.campaign.models import Campaign, UnitTarget
from market.directory.models import Unit
from market.extensions import db
from market.orders.models import Order
from tests.orders.conftest import buy, sku_of

# The campaign runs from 9 days ago to 90 days ahead: 100 days, of which today is the 10th.
DAYS_BEFORE, DAYS_AFTER = 9, 90


def pay(client, finance, number: str) -> None:
    client.post(f"/orders/{number}/pay/offline")
    today = clock.today().isoformat()
    response = finance.post(
        f"/orders/{number}/transfer-received", data={"reference": "R-1", "transfer_date": today}
    )
    assert response.status_code == 303


def buy_and_pay(app, client, finance, product_id: int, quantity: int = 1) -> str:
    number = buy(client, sku_of(app, product_id), quantity)
    pay(client, finance, number)
    return number


def referral_code(app, unit_id: int) -> str:
    with app.app_context():
        return db.session.get(Unit, unit_id).referral_code


def first_line(app, number: str) -> tuple[int, int]:
    """(order line id, co-op id) of an order's first line."""
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        return order.lines[0].id, order.lines[0].coop_id


@pytest.fixture
def campaign(app, world) -> SimpleNamespace:
    """A campaign running today (made through the model: the pages are tested on their own)."""
    today = clock.today()
    with app.app_context():
        made = Campaign(
            name="2026年我为果农办实事",
            year=today.year,
            starts_on=today - timedelta(days=DAYS_BEFORE),
            ends_on=today + timedelta(days=DAYS_AFTER),
            paired_only=False,
            laggard_threshold_pct=60,
        )
        db.session.add(made)
        db.session.commit()
        return SimpleNamespace(id=made.id, starts_on=made.starts_on, ends_on=made.ends_on)


def set_targets(app, campaign_id: int, targets: dict[int, int]) -> None:
    with app.app_context():
        for unit_id, amount_fen in targets.items():
            db.session.add(
                UnitTarget(campaign_id=campaign_id, unit_id=unit_id, amount_fen=amount_fen)
            )
        db.session.commit()


@pytest.fixture
def sales(app, client_as, world, campaign) -> SimpleNamespace:
    """Three paid orders:
    - the employee (member of unit A, paired with 古丁村) buys 2 honey (¥176, paired) and
      1 lychee from 柏桥村 (¥89, not paired): ¥265 for unit A, two orders, one buyer;
    - a buyer who followed unit B's link buys 1 lychee (¥89, paired with B's 柏桥村).
    """
    finance = client_as("finance")
    employee = client_as("employee")
    honey = buy_and_pay(app, employee, finance, world.honey_product, 2)
    lychee = buy_and_pay(app, employee, finance, world.lychee, 1)
    buyer = client_as("buyer")
    buyer.get(f"/r/{referral_code(app, world.other_unit)}")
    referred = buy_and_pay(app, buyer, finance, world.lychee, 1)
    return SimpleNamespace(honey=honey, lychee=lychee, referred=referred)
