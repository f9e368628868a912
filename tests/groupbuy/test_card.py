"""Group-buys paid by card, against localstripe: an authorisation at the group price when the
close is within six days (captured in part at the tier reached, or released), a charge when it
is further away (refunded in part or in full). What the order says, what localstripe holds and
what the hook was told must agree to the fen."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from market.errors import DomainError
from market.extensions import db
from market.groupbuy import closing, fulfilment, joining, queries
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.models import utcnow
from market.orders.models import OrderStatus
from market.payments.models import Payment, PaymentStatus
from tests.groupbuy.conftest import GROUP_PRICE, MIN_QUANTITY, TIERS, WORLD_STOCK
from tests.payments.conftest import DECLINED_CARD, GOOD_CARD

SOON = timedelta(hours=2)  # authorise now, capture at close
LATER = timedelta(days=8)  # charge now, refund the difference at close


def intent(stripe_client, intent_id: str):
    return stripe_client.v1.payment_intents.retrieve(intent_id)


def refunded_at_stripe(stripe_client, intent_id: str) -> list[int]:
    """Refunds made on the intent (localstripe also lists the uncaptured remainder of a partial
    capture as a refund without an intent: that is not money given back)."""
    refunds = stripe_client.v1.refunds.list({"payment_intent": intent_id})
    return [r.amount for r in refunds.data if r.payment_intent == intent_id]


def received_at_stripe(stripe_client, intent_id: str) -> int:
    """What the intent took from the card. localstripe has no amount_received: a partial
    capture keeps `amount` and lists the uncaptured remainder as a refund of the charge
    without an intent, which is subtracted here."""
    pi = intent(stripe_client, intent_id)
    assert pi.status == "succeeded"
    received = pi.to_dict().get("amount_received")
    if received is not None:
        return received
    refunds = stripe_client.v1.refunds.list({"payment_intent": intent_id})
    return pi.amount - sum(r.amount for r in refunds.data if r.payment_intent != intent_id)


def net_by_order(movements) -> dict[int, int]:
    net: dict[int, int] = {}
    for movement in movements:
        net[movement.order_id] = net.get(movement.order_id, 0) + movement.amount_fen
    return net


def payments_of(order_id: int) -> list[Payment]:
    return list(
        db.session.scalars(select(Payment).where(Payment.order_id == order_id).order_by(Payment.id))
    )


@pytest.fixture
def card_kit(kit, stripe_app):
    return kit


def open_card(kit, closes_in: timedelta, **overrides) -> int:
    now = utcnow()
    return kit.open(payment_mode=PaymentMode.CARD, closes_at=now + closes_in, **overrides)


def test_manual_capture_when_closing_within_six_days(card_kit):
    group_buy_id = open_card(card_kit, SOON)
    with card_kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        closes_at = group_buy.closes_at
        assert joining.manual_capture(group_buy, closes_at - timedelta(days=6)) is True
        assert joining.manual_capture(group_buy, closes_at - timedelta(days=6, seconds=1)) is False
        assert joining.manual_capture(group_buy) is True


# -- authorised: captured in part, or released -------------------------------------------------
def test_authorised_at_the_group_price_then_captured_at_the_tier_reached(
    card_kit, card_token, stripe_client, movements
):
    kit = card_kit
    group_buy_id = open_card(kit, SOON)
    a, b = kit.members(2)
    pa, pb = kit.join(a, group_buy_id, 4), kit.join(b, group_buy_id, 2)
    paid_a = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    paid_b = kit.pay_by_card(b, group_buy_id, card_token(GOOD_CARD))

    assert (paid_a.status, paid_a.amount_fen) == (PaymentStatus.AUTHORIZED, 4 * GROUP_PRICE)
    assert (paid_b.status, paid_b.amount_fen) == (PaymentStatus.AUTHORIZED, 2 * GROUP_PRICE)
    held = intent(stripe_client, paid_a.intent_id)
    assert (held.status, held.capture_method, held.amount) == (
        "requires_capture",
        "manual",
        4 * GROUP_PRICE,
    )
    assert movements == []  # an authorisation is not money received
    with kit.ctx():
        assert kit.order_of(pa).status == OrderStatus.PENDING_PAYMENT
        assert queries.is_secured(db.session.get(Participation, pa))

    assert kit.close(group_buy_id) is True

    tier = TIERS[0].price_fen  # 6 units: the 5-unit tier
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.SUCCEEDED
        for pid, quantity in ((pa, 4), (pb, 2)):
            order = kit.order_of(pid)
            assert db.session.get(Participation, pid).status == ParticipationStatus.READY
            assert (order.status, order.total_fen, order.paid_fen) == (
                OrderStatus.PAID,
                tier * quantity,
                tier * quantity,
            )
            (payment,) = payments_of(order.id)
            assert payment.status == PaymentStatus.SUCCEEDED
            assert payment.received_fen == tier * quantity < payment.amount_fen
            assert payment.amount_fen == GROUP_PRICE * quantity
        group_buy = db.session.get(GroupBuy, group_buy_id)
        shipment_value = sum(line.amount_fen for line in fulfilment.consolidated_lines(group_buy))
        order_ids = {kit.order_of(pa).id: 4, kit.order_of(pb).id: 2}

    for paid, quantity in ((paid_a, 4), (paid_b, 2)):
        assert received_at_stripe(stripe_client, paid.intent_id) == tier * quantity
        assert refunded_at_stripe(stripe_client, paid.intent_id) == []
    assert net_by_order(movements) == {oid: tier * q for oid, q in order_ids.items()}
    assert len(movements) == 2  # one capture each
    assert shipment_value == tier * 6


def test_authorised_then_not_reached_releases_every_authorisation(
    card_kit, card_token, stripe_client, movements
):
    kit = card_kit
    group_buy_id = open_card(kit, SOON)
    a, b = kit.members(2)
    pa, pb = kit.join(a, group_buy_id, 2), kit.join(b, group_buy_id, 1)
    paid = [kit.pay_by_card(m, group_buy_id, card_token(GOOD_CARD)) for m in (a, b)]
    assert [p.status for p in paid] == [PaymentStatus.AUTHORIZED] * 2

    assert kit.close(group_buy_id) is True

    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.FAILED
        for pid in (pa, pb):
            assert db.session.get(Participation, pid).status == ParticipationStatus.RELEASED
            order = kit.order_of(pid)
            assert (order.status, order.paid_fen) == (OrderStatus.CANCELLED, 0)
            assert [p.status for p in payments_of(order.id)] == [PaymentStatus.CANCELLED]
    for p in paid:
        assert intent(stripe_client, p.intent_id).status == "canceled"
        assert refunded_at_stripe(stripe_client, p.intent_id) == []
    assert movements == []
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


# -- charged: refunded in part, or in full -------------------------------------------------------
def test_charged_at_joining_then_the_difference_refunded_at_the_tier_reached(
    card_kit, card_token, stripe_client, movements
):
    kit = card_kit
    group_buy_id = open_card(kit, LATER)
    a, b = kit.members(2)
    pa, pb = kit.join(a, group_buy_id, 7), kit.join(b, group_buy_id, 3)
    paid_a = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    paid_b = kit.pay_by_card(b, group_buy_id, card_token(GOOD_CARD))
    assert (paid_a.status, paid_b.status) == (PaymentStatus.SUCCEEDED, PaymentStatus.SUCCEEDED)
    assert intent(stripe_client, paid_a.intent_id).capture_method != "manual"
    with kit.ctx():
        order_a, order_b = kit.order_of(pa).id, kit.order_of(pb).id
    assert net_by_order(movements) == {order_a: 7 * GROUP_PRICE, order_b: 3 * GROUP_PRICE}

    assert kit.close(group_buy_id) is True

    tier = TIERS[1].price_fen  # 10 units: the 10-unit tier
    difference = GROUP_PRICE - tier
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.SUCCEEDED
        for pid, quantity in ((pa, 7), (pb, 3)):
            order = kit.order_of(pid)
            assert db.session.get(Participation, pid).status == ParticipationStatus.READY
            assert order.status == OrderStatus.PAID
            assert order.paid_fen == GROUP_PRICE * quantity
            assert order.refunded_fen == difference * quantity
            assert order.net_paid_fen == tier * quantity
            (payment,) = payments_of(order.id)
            assert payment.refunded_fen == difference * quantity
            (line,) = order.lines
            assert (line.quantity, line.refunded_fen) == (quantity, difference * quantity)
    for paid, quantity in ((paid_a, 7), (paid_b, 3)):
        assert refunded_at_stripe(stripe_client, paid.intent_id) == [difference * quantity]
    assert net_by_order(movements) == {order_a: 7 * tier, order_b: 3 * tier}
    refunds = [m for m in movements if m.refund_id is not None]
    assert all(line.quantity == 0 for m in refunds for line in m.lines)  # price, not goods
    assert kit.shipment_value(group_buy_id) == 10 * tier


def test_charged_at_joining_and_no_tier_reached_refunds_nothing(
    card_kit, card_token, stripe_client, movements
):
    kit = card_kit
    group_buy_id = open_card(kit, LATER, min_quantity=2)
    (a,) = kit.members(1)
    pa = kit.join(a, group_buy_id, 3)  # reaches the minimum, not the first tier (5)
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    assert kit.close(group_buy_id) is True
    with kit.ctx():
        order = kit.order_of(pa)
        assert (order.status, order.paid_fen, order.refunded_fen) == (
            OrderStatus.PAID,
            3 * GROUP_PRICE,
            0,
        )
    assert refunded_at_stripe(stripe_client, paid.intent_id) == []
    assert [m.amount_fen for m in movements] == [3 * GROUP_PRICE]


def test_charged_then_not_reached_refunds_in_full(card_kit, card_token, stripe_client, movements):
    kit = card_kit
    group_buy_id = open_card(kit, LATER)
    a, b = kit.members(2)
    pa, pb = kit.join(a, group_buy_id, 2), kit.join(b, group_buy_id, 2)
    paid = {
        pid: kit.pay_by_card(m, group_buy_id, card_token(GOOD_CARD))
        for pid, m in ((pa, a), (pb, b))
    }

    assert kit.close(group_buy_id) is True

    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.FAILED
        for pid in (pa, pb):
            assert db.session.get(Participation, pid).status == ParticipationStatus.RELEASED
            order = kit.order_of(pid)
            assert order.status == OrderStatus.CANCELLED
            assert order.paid_fen == order.refunded_fen == 2 * GROUP_PRICE
    for p in paid.values():
        assert refunded_at_stripe(stripe_client, p.intent_id) == [2 * GROUP_PRICE]
    assert sorted(net_by_order(movements).values()) == [0, 0]
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


# -- leaving, and cards that never went through --------------------------------------------------
@pytest.mark.parametrize("closes_in", [SOON, LATER], ids=["authorised", "charged"])
def test_leaving_before_the_close_releases_or_refunds(
    card_kit, card_token, stripe_client, movements, closes_in
):
    kit = card_kit
    group_buy_id = open_card(kit, closes_in)
    (a,) = kit.members(1)
    pa = kit.join(a, group_buy_id, 3)
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    kit.leave(a, group_buy_id)
    with kit.ctx():
        assert db.session.get(Participation, pa).status == ParticipationStatus.LEFT
        order = kit.order_of(pa)
        assert order.status == OrderStatus.CANCELLED
        (payment,) = payments_of(order.id)
        assert db.session.get(GroupBuy, group_buy_id).total_quantity == 0
    pi = intent(stripe_client, paid.intent_id)
    if closes_in == SOON:
        assert payment.status == PaymentStatus.CANCELLED
        assert pi.status == "canceled"
        assert movements == []
    else:
        assert (payment.received_fen, payment.refunded_fen) == (3 * GROUP_PRICE,) * 2
        assert refunded_at_stripe(stripe_client, paid.intent_id) == [3 * GROUP_PRICE]
        assert [m.amount_fen for m in movements] == [3 * GROUP_PRICE, -3 * GROUP_PRICE]
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


def test_changing_quantity_releases_the_old_authorisation_and_asks_the_card_again(
    card_kit, card_token, stripe_client
):
    kit = card_kit
    group_buy_id = open_card(kit, SOON)
    (a,) = kit.members(1)
    pa = kit.join(a, group_buy_id, 2)
    first = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    kit.change(a, group_buy_id, 5)
    assert intent(stripe_client, first.intent_id).status == "canceled"
    with kit.ctx():
        assert not queries.is_secured(db.session.get(Participation, pa))
    second = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    assert (second.status, second.amount_fen) == (PaymentStatus.AUTHORIZED, 5 * GROUP_PRICE)
    assert second.intent_id != first.intent_id
    assert kit.close(group_buy_id) is True
    assert received_at_stripe(stripe_client, second.intent_id) == 5 * TIERS[0].price_fen


def test_a_card_that_never_went_through_is_released_and_does_not_count(
    card_kit, card_token, stripe_client, movements
):
    """Without b (never paid) and c (declined) the group-buy has 3 < 5: it fails."""
    kit = card_kit
    group_buy_id = open_card(kit, SOON)
    a, b, c = kit.members(3)
    pa, pb, pc = (kit.join(m, group_buy_id, q) for m, q in ((a, 3), (b, 1), (c, 1)))
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    declined = kit.pay_by_card(c, group_buy_id, card_token(DECLINED_CARD))
    assert declined.status == PaymentStatus.FAILED
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).total_quantity == MIN_QUANTITY
        assert not queries.is_secured(db.session.get(Participation, pb))
        assert not queries.is_secured(db.session.get(Participation, pc))

    assert kit.close(group_buy_id) is True

    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.reached_quantity) == (GroupBuyStatus.FAILED, 3)
        for pid in (pa, pb, pc):
            assert db.session.get(Participation, pid).status == ParticipationStatus.RELEASED
            assert kit.order_of(pid).status == OrderStatus.CANCELLED
        (declined_payment,) = payments_of(kit.order_of(pc).id)
        assert declined_payment.status == PaymentStatus.CANCELLED
        assert payments_of(kit.order_of(pb).id) == []
    assert intent(stripe_client, paid.intent_id).status == "canceled"
    assert movements == []


def test_an_unpaid_participant_does_not_lower_the_price_of_the_others(
    card_kit, card_token, stripe_client, movements
):
    """a (5, authorised) reaches the 5-unit tier alone; b's unpaid 5 would have made it 10."""
    kit = card_kit
    group_buy_id = open_card(kit, SOON)
    a, b = kit.members(2)
    pa, pb = kit.join(a, group_buy_id, 5), kit.join(b, group_buy_id, 5)
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    with kit.ctx():
        order_b = kit.order_of(pb).number
        joining.start_card_payment(kit.user(b), group_buy_id)  # chose card, never typed one

    assert kit.close(group_buy_id) is True

    tier = TIERS[0].price_fen
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.reached_quantity) == (GroupBuyStatus.SUCCEEDED, 5)
        assert db.session.get(Participation, pa).status == ParticipationStatus.READY
        assert db.session.get(Participation, pb).status == ParticipationStatus.RELEASED
        assert kit.order_of(pa).paid_fen == 5 * tier
        b_order = kit.order_of(pb)
        assert (b_order.number, b_order.status) == (order_b, OrderStatus.CANCELLED)
        (b_payment,) = payments_of(b_order.id)
        assert b_payment.status == PaymentStatus.CANCELLED
        b_intent = b_payment.provider_ref
        assert [p.id for p in fulfilment.pickup_list(group_buy)] == [pa]
    assert received_at_stripe(stripe_client, paid.intent_id) == 5 * tier
    assert intent(stripe_client, b_intent).status == "canceled"
    assert [m.amount_fen for m in movements] == [5 * tier]
    assert kit.shipment_value(group_buy_id) == 5 * tier
    # b's 5 units are back on the shelf; a's 5 are sold.
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK - 5


def test_pay_at_pickup_group_buys_take_no_card(card_kit):
    kit = card_kit
    group_buy_id = kit.open()  # pay at pickup
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 1)
    with kit.ctx(), pytest.raises(DomainError, match="取货时付款"):
        joining.start_card_payment(kit.user(a), group_buy_id)
    assert kit.payment_count() == 0


def test_close_due_group_buys_settles_cards_once(card_kit, card_token, movements):
    kit = card_kit
    group_buy_id = open_card(kit, SOON)
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 5)
    kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    due = kit.closes_at(group_buy_id) + timedelta(minutes=1)
    with kit.ctx():
        assert closing.close_due_group_buys(due) == 1
    with kit.ctx():
        assert closing.close_due_group_buys(due) == 0
    assert [m.amount_fen for m in movements] == [5 * TIERS[0].price_fen]
