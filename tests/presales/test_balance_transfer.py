"""A unit's 尾款 paid by bank transfer keeps its deadline: choosing 对公转账 on the pay page gives a
checkout's order days instead of minutes, but never moves the balance's due date later (which
would leave the served units held past it), and the transfer page shows the real deadline."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from market.accounts.models import User
from market.clock import SHANGHAI, today
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order
from market.payments import transfers
from tests.presales.test_deposits import balance_number, open_deposit_presale


def expiry(shop, number: str):
    with shop.app.app_context():
        return db.session.scalar(select(Order.expires_at).where(Order.number == number))


def set_expiry(shop, number: str, when) -> None:
    with shop.app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = when
        db.session.commit()


def test_choosing_bank_transfer_for_a_balance_keeps_its_deadline(shop):
    world = shop.world
    presale_id = open_deposit_presale(shop)
    deposit = shop.reserve(world.coordinator, presale_id, 4, for_unit="y", delivery_method="pickup")
    coordinator = shop.client(world.coordinator)
    assert coordinator.post(f"/orders/{deposit}/pay/offline").status_code == 303
    with shop.app.test_request_context():
        transfers.confirm_transfer(db.session.get(User, world.finance), deposit, "BANK-1", today())
    shop.announce(presale_id, 4)
    balance = balance_number(shop, deposit)
    # Five of the seven days have gone by when the coordinator chooses to transfer.
    deadline = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    set_expiry(shop, balance, deadline)

    response = coordinator.post(f"/orders/{balance}/pay/offline", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "对公转账" in page
    assert expiry(shop, balance) == deadline
    shown = deadline.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    assert f"请在 {shown} 前完成转账" in page
    # Choosing again (or the card, then the transfer) changes nothing either.
    coordinator.post(f"/orders/{balance}/pay/stripe")
    coordinator.post(f"/orders/{balance}/pay/offline")
    assert expiry(shop, balance) == deadline
    pay_page = coordinator.get(f"/orders/{balance}/pay").get_data(as_text=True)
    assert f"请在 {shown} 前付款" in pay_page
