"""The rule on tiers and the minimum when authorisations fail (market/groupbuy/closing.py,
close_group_buy's docstring): every authorisation is checked at the provider before anything is
decided, so a card that can no longer be captured never pays for, or counts towards, the tier;
the quantity left decides the tier and the minimum, and everyone left pays exactly that."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from market.campaign.models import AttributionEntry
from market.campaign.reconciliation import money_reconcile
from market.extensions import db
from market.groupbuy import closing
from market.groupbuy.models import GroupBuy, GroupBuyStatus, Participation, ParticipationStatus
from market.payments.models import Payment, PaymentStatus
from tests import factories
from tests.groupbuy.conftest import TIERS
from tests.groupbuy.test_card import SOON, open_card, received_at_stripe, refunded_at_stripe
from tests.payments.conftest import GOOD_CARD

LOW, HIGH = TIERS[0].price_fen, TIERS[1].price_fen  # from 5 in all; from 10 in all
SECOND = timedelta(seconds=1)


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


# -- an authorisation that lapses after the check, while the closer captures ---------------------
@contextmanager
def withdrawn_once_decided(stripe_client, intent_ids: list[str]) -> Iterator[None]:
    """The bank withdraws these authorisations in the moment after the closer checked every one
    and decided the tier, before it captures: the cancellation happens at localstripe when the
    closer writes its decision."""
    done: list[bool] = []

    def on_statement(_connection, _cursor, statement: str, *_args) -> None:
        if (
            not done
            and statement.startswith("UPDATE group_buys")
            and "decided_quantity" in statement
        ):
            done.append(True)
            for intent_id in intent_ids:
                stripe_client.v1.payment_intents.cancel(intent_id)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
    assert done, "the closer decided"


def _page(kit, user_id: int, path: str) -> str:
    """What the person sees on a page, signed in through the sign-in form."""
    return factories.signed_in_client(kit.app, user_id).get(path).get_data(as_text=True)


def test_a_capture_refused_after_the_check_releases_that_card_and_the_rest_keep_the_price(
    card_kit, card_token, stripe_client
):
    """12 authorised and checked: the 10-unit tier is decided. Then 3 authorisations lapse before
    their capture: those 3 are released (nothing taken, told why), the 9 others pay exactly the
    decided price, once — nobody pays more because 3 fell away — and the books agree."""
    kit = card_kit
    group_buy_id, participations, intents = _twelve_authorised(kit, card_token)
    with kit.ctx(), withdrawn_once_decided(stripe_client, intents[:3]):
        assert closing.close_group_buy(group_buy_id, kit.closes_at(group_buy_id) + SECOND)

    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.SUCCEEDED
        assert (group_buy.decided_quantity, group_buy.reached_quantity) == (12, 9)
        lapsed = [db.session.get(Participation, p) for p in participations[:3]]
        paying = [db.session.get(Participation, p) for p in participations[3:]]
        assert {p.status for p in lapsed} == {ParticipationStatus.RELEASED}
        assert {p.status for p in paying} == {ParticipationStatus.READY}
        assert [_net(p.order_id) for p in lapsed] == [(0, 0)] * 3
        assert [_net(p.order_id) for p in paying] == [(HIGH, HIGH)] * 9
        assert money_reconcile().differences == []
        lapsed_people = [p.user_id for p in lapsed]
        paying_person = paying[0].user_id
    for intent_id in intents[:3]:
        assert stripe_client.v1.payment_intents.retrieve(intent_id).status == "canceled"
    for intent_id in intents[3:]:
        assert received_at_stripe(stripe_client, intent_id) == HIGH
    # The buyer whose card fell away is told nothing was taken; the others that it succeeded.
    assert "您的参团未能结算" in _page(kit, lapsed_people[0], "/notifications")
    told = _page(kit, paying_person, "/notifications")
    assert "团购成功" in told and "未能结算" not in told


def test_when_captures_refused_after_the_check_leave_too_few_everyone_is_refunded_in_full(
    card_kit, card_token, stripe_client
):
    """12 authorised and checked, the minimum (5) met; then 8 authorisations lapse before their
    capture. The 4 captured are not enough: their money goes back in full, the group-buy fails,
    and nobody has paid anything — at the shop, at Stripe and in the ledger."""
    kit = card_kit
    group_buy_id, participations, intents = _twelve_authorised(kit, card_token)
    with kit.ctx(), withdrawn_once_decided(stripe_client, intents[:8]):
        assert closing.close_group_buy(group_buy_id, kit.closes_at(group_buy_id) + SECOND)

    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.decided_quantity) == (GroupBuyStatus.FAILED, 12)
        everyone = [db.session.get(Participation, p) for p in participations]
        assert {p.status for p in everyone} == {ParticipationStatus.RELEASED}
        assert [_net(p.order_id) for p in everyone] == [(0, 0)] * 12
        assert money_reconcile().differences == []
        captured_person = everyone[8].user_id
    for intent_id in intents[:8]:
        assert stripe_client.v1.payment_intents.retrieve(intent_id).status == "canceled"
    for intent_id in intents[8:]:  # taken at the decided price, then given back in full
        assert received_at_stripe(stripe_client, intent_id) == HIGH
        assert refunded_at_stripe(stripe_client, intent_id) == [HIGH]
    told = _page(kit, captured_person, "/notifications")
    assert "未成团" in told and "全额原路退回" in told
