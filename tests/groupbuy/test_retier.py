"""The rule on tiers and the minimum when authorisations fail (market/groupbuy/closing.py,
close_group_buy's docstring): every authorisation is checked at the provider before anything is
decided, so a card that can no longer be captured never pays for, or counts towards, the tier;
the quantity left decides the tier and the minimum, and everyone left pays exactly that."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from market.campaign.models import AttributionEntry
from market.extensions import db
from market.groupbuy.models import GroupBuy, GroupBuyStatus, Participation, ParticipationStatus
from market.payments.models import Payment, PaymentStatus
from tests.groupbuy.conftest import TIERS
from tests.groupbuy.test_card import SOON, open_card, received_at_stripe
from tests.payments.conftest import GOOD_CARD

LOW, HIGH = TIERS[0].price_fen, TIERS[1].price_fen  # from 5 in all; from 10 in all


@pytest.fixture
def card_kit(kit, stripe_app):
    return kit


def _twelve_authorised(kit, card_token) -> tuple[int, list[int], list[str]]:
    group_buy_id = open_card(kit, SOON)
    participations, intents = [], []
    for user_id in kit.members(12):
        participations.append(kit.join(user_id, group_buy_id, 1))
        intents.append(kit.pay_by_card(user_id, group_buy_id, card_token(GOOD_CARD)).intent_id)
    return group_buy_id, participations, intents


def _net(order_id: int) -> tuple[int, int]:
    payment = db.session.scalar(
        select(Payment).where(Payment.order_id == order_id).order_by(Payment.id).limit(1)
    )
    ledger = sum(
        db.session.scalars(
            select(AttributionEntry.amount_fen).where(AttributionEntry.order_id == order_id)
        )
    )
    return payment.received_fen - payment.refunded_fen, ledger


def test_cancelled_authorisations_are_found_first_and_the_rest_pay_the_tier_they_reach(
    card_kit, card_token, stripe_client
):
    """12 authorised would reach the 10-unit tier; 3 authorisations are cancelled at the
    provider before the close (lapsed, or withdrawn by the bank): the 9 left reach only the
    5-unit tier, and each pays exactly that — nobody the lower price of a quantity that was
    never paid for."""
    kit = card_kit
    group_buy_id, participations, intents = _twelve_authorised(kit, card_token)
    for intent_id in intents[:3]:
        stripe_client.v1.payment_intents.cancel(intent_id)

    assert kit.close(group_buy_id) is True

    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.decided_quantity) == (GroupBuyStatus.SUCCEEDED, 9)
        for participation_id in participations[:3]:
            participation = db.session.get(Participation, participation_id)
            assert participation.status == ParticipationStatus.RELEASED
            assert _net(participation.order_id) == (0, 0)
        for participation_id in participations[3:]:
            participation = db.session.get(Participation, participation_id)
            assert participation.status == ParticipationStatus.READY
            assert participation.order.total_fen == LOW
            assert _net(participation.order_id) == (LOW, LOW)
    for intent_id in intents[3:]:
        assert received_at_stripe(stripe_client, intent_id) == LOW


def test_when_the_cards_left_no_longer_meet_the_minimum_nobody_is_charged(
    card_kit, card_token, stripe_client
):
    kit = card_kit
    group_buy_id, participations, intents = _twelve_authorised(kit, card_token)
    for intent_id in intents[:8]:  # 4 left, the minimum is 5
        stripe_client.v1.payment_intents.cancel(intent_id)

    assert kit.close(group_buy_id) is True

    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.decided_quantity) == (GroupBuyStatus.FAILED, 4)
        for participation_id in participations:
            participation = db.session.get(Participation, participation_id)
            assert participation.status == ParticipationStatus.RELEASED
            assert _net(participation.order_id) == (0, 0)
            payment = db.session.scalar(
                select(Payment).where(Payment.order_id == participation.order_id)
            )
            assert payment.status == PaymentStatus.CANCELLED
    for intent_id in intents:
        assert stripe_client.v1.payment_intents.retrieve(intent_id).status == "canceled"


def test_with_every_authorisation_holding_all_twelve_pay_the_higher_tier(
    card_kit, card_token, stripe_client
):
    kit = card_kit
    group_buy_id, participations, intents = _twelve_authorised(kit, card_token)
    assert kit.close(group_buy_id) is True
    with kit.ctx():
        for participation_id in participations:
            participation = db.session.get(Participation, participation_id)
            assert _net(participation.order_id) == (HIGH, HIGH)
    for intent_id in intents:
        assert received_at_stripe(stripe_client, intent_id) == HIGH
