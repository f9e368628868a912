"""Several closers at the same deadline (cron on two machines, a retry, a worker): the
conditional UPDATE that claims the group-buy lets exactly one of them through, so every
participant is settled once. Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from market.extensions import db
from market.groupbuy import closing
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.models import utcnow
from market.notifications.models import Notification
from market.orders.models import Order, OrderStatus
from market.payments.models import Payment, PaymentStatus, Refund
from tests.groupbuy.conftest import TIERS, WORLD_STOCK, Kit
from tests.payments.conftest import GOOD_CARD

CLOSERS = 6
JOIN_TIMEOUT = 120  # seconds: a hung closer fails the test instead of hanging the run


def close_all_at_once(kit: Kit, group_buy_id: int, how: str) -> list[object]:
    """Start CLOSERS threads together; each closes in a context (and session) of its own.
    Returns what each returned, or the exception it raised."""
    due = kit.closes_at(group_buy_id) + timedelta(seconds=1)
    start = threading.Barrier(CLOSERS)
    results: list[object] = []
    lock = threading.Lock()

    def closer() -> None:
        with kit.app.test_request_context():
            start.wait()
            try:
                if how == "close_group_buy":
                    result: object = closing.close_group_buy(group_buy_id, due)
                else:
                    result = closing.close_due_group_buys(due) == 1
            except Exception as error:  # reported below, not lost in the thread
                db.session.rollback()
                result = error
        with lock:
            results.append(result)

    threads = [threading.Thread(target=closer) for _ in range(CLOSERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a closer hung"
    return results


def assert_one_winner(results: list[object]) -> None:
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert sorted(results, key=bool) == [False] * (CLOSERS - 1) + [True]


def notified_once(kind: str, user_ids: list[int]) -> None:
    told = Counter(
        db.session.scalars(select(Notification.user_id).where(Notification.kind == kind))
    )
    assert told == Counter(user_ids)


@pytest.mark.parametrize("how", ["close_group_buy", "close_due_group_buys"])
def test_pay_at_pickup_closers_at_once_close_it_once(kit, how):
    honey_sku = kit.sku_of(kit.world.honey_product)
    group_buy_id = kit.open()  # honey without a cap: each order took its stock
    members = kit.members(8)
    participations = [kit.join(m, group_buy_id, 1 + n % 2) for n, m in enumerate(members)]  # 12
    assert kit.stock(honey_sku) == WORLD_STOCK - 12

    results = close_all_at_once(kit, group_buy_id, how)

    assert_one_winner(results)
    tier = TIERS[1].price_fen
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.reached_quantity) == (GroupBuyStatus.SUCCEEDED, 12)
        for n, pid in enumerate(participations):
            assert db.session.get(Participation, pid).status == ParticipationStatus.READY
            order = kit.order_of(pid)
            assert (order.status, order.total_fen) == (
                OrderStatus.PENDING_PAYMENT,
                tier * (1 + n % 2),
            )
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
        notified_once("groupbuy.succeeded", members)
    assert kit.stock(honey_sku) == WORLD_STOCK - 12  # sold, and nothing given back twice
    assert kit.shipment_value(group_buy_id) == 12 * tier


@pytest.mark.parametrize(
    "closes_in", [timedelta(hours=2), timedelta(days=8)], ids=["authorised", "charged"]
)
def test_card_closers_at_once_charge_each_participant_once(
    kit, stripe_app, card_token, movements, closes_in
):
    group_buy_id = kit.open(payment_mode=PaymentMode.CARD, closes_at=utcnow() + closes_in)
    members = kit.members(4)
    participations = [kit.join(m, group_buy_id, 3) for m in members]  # 12: the 10-unit tier
    for member in members:
        kit.pay_by_card(member, group_buy_id, card_token(GOOD_CARD))
    joined = len(movements)  # charged at joining: one movement each; authorised: none

    results = close_all_at_once(kit, group_buy_id, "close_group_buy")

    assert_one_winner(results)
    tier = TIERS[1].price_fen
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.reached_quantity) == (GroupBuyStatus.SUCCEEDED, 12)
        order_ids = []
        for pid in participations:
            assert db.session.get(Participation, pid).status == ParticipationStatus.READY
            order = kit.order_of(pid)
            order_ids.append(order.id)
            assert order.status == OrderStatus.PAID
            assert order.net_paid_fen == 3 * tier
            (payment,) = db.session.scalars(select(Payment).where(Payment.order_id == order.id))
            assert payment.status == PaymentStatus.SUCCEEDED
            assert payment.received_fen - payment.refunded_fen == 3 * tier
        refunds = db.session.scalar(select(func.count()).select_from(Refund))
        notified_once("groupbuy.succeeded", members)
        assert db.session.scalar(select(func.count()).select_from(Order)) == len(members)

    settled = movements[joined:]
    # Each order moved money once at close: a capture, or a refund of the difference.
    assert sorted(Counter(m.order_id for m in settled).values()) == [1] * len(members)
    assert {m.order_id for m in settled} == set(order_ids)
    net: Counter[int] = Counter()
    for movement in movements:
        net[movement.order_id] += movement.amount_fen
    assert net == Counter({order_id: 3 * tier for order_id in order_ids})
    assert refunds == (0 if closes_in.days < 6 else len(members))
