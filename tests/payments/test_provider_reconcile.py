"""The reconciliation against Stripe (`flask payments reconcile --against-provider`), against a
real localstripe changed behind the shop's back: a refund made directly at Stripe (as in its
dashboard) is found and recorded, so the ledger and the co-ops' settlement entries reverse it; a
capture of another amount than the shop knows is reported and booked nowhere."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from market.accounts.models import User
from market.campaign.models import AttributionEntry
from market.campaign.reconciliation import money_reconcile
from market.extensions import db
from market.orders.models import Order
from market.payments import refunds, services
from market.payments.models import (
    Payment,
    PaymentStatus,
    ProviderReconciliation,
    Refund,
    RefundStatus,
)
from market.payments.reconciliation import last_provider_reconciliation
from market.settlements.models import SettlementEntry
from market.tasks import reconcile_against_provider as daily_task
from tests.payments.conftest import GOOD_CARD

HONEY_FEN = 8800  # 原生态蜂蜜 500g, co-op 1; the order's first line holds two jars
LYCHEE_FEN = 8900  # 白糖罂荔枝, co-op 2
TOTAL_FEN = 2 * HONEY_FEN + LYCHEE_FEN


@pytest.fixture
def number(place_order, world) -> str:
    """The buyer's unpaid order: two jars of honey (the first line), lychees (the second)."""
    return place_order(world.buyer, {world.honey_product: 2, world.lychee: 1})


def order_of(number: str) -> Order:
    return db.session.scalar(select(Order).where(Order.number == number))


def pay(app, world, number: str, card_token, *, manual_capture: bool = False) -> SimpleNamespace:
    """Pay the order by card through the shop, as the buyer does (authorised only, with
    manual_capture)."""
    with app.test_request_context():
        buyer = db.session.get(User, world.buyer)
        started = services.start_payment(buyer, number, "stripe", manual_capture=manual_capture)
        payment_id = started.payment.id
        outcome = services.confirm_card(buyer, number, card_token(GOOD_CARD))
        return SimpleNamespace(
            payment_id=payment_id,
            intent_id=outcome.payment.provider_ref,
            status=outcome.payment.status,
        )


def ledger_of(number: str) -> tuple[int, int]:
    """(attribution ledger, settlement entries) for the order, in fen."""
    order_id = order_of(number).id
    ledger = db.session.scalar(
        select(func.coalesce(func.sum(AttributionEntry.amount_fen), 0)).where(
            AttributionEntry.order_id == order_id
        )
    )
    entries = db.session.scalar(
        select(func.coalesce(func.sum(SettlementEntry.amount_fen), 0)).where(
            SettlementEntry.order_id == order_id
        )
    )
    return int(ledger), int(entries)


def against_provider(app):
    return app.test_cli_runner().invoke(args=["payments", "reconcile", "--against-provider"])


def test_a_refund_made_at_stripe_is_recorded_and_the_ledger_reverses_it(
    stripe_app, world, number, card_token, stripe_client
):
    paid = pay(stripe_app, world, number, card_token)
    assert paid.status == PaymentStatus.SUCCEEDED
    with stripe_app.app_context():
        assert ledger_of(number) == (TOTAL_FEN, TOTAL_FEN)
    # Someone refunds ¥30 in the Stripe dashboard: the shop is not told.
    at_stripe = stripe_client.v1.refunds.create({"payment_intent": paid.intent_id, "amount": 3000})

    result = against_provider(stripe_app)
    assert result.exit_code == 0, result.output
    assert f"order {number} payment #{paid.payment_id}: 在 Stripe 后台退款" in result.output
    assert "shop ¥0.00, Stripe ¥30.00 (recorded)" in result.output
    assert "1 differences, 1 refunds recorded from the provider" in result.output

    with stripe_app.app_context():
        payment = db.session.get(Payment, paid.payment_id)
        (refund,) = payment.refunds
        assert (refund.amount_fen, refund.status, refund.provider_ref) == (
            3000,
            RefundStatus.SUCCEEDED,
            at_stripe.id,
        )
        assert (refund.reason, refund.created_by_id) == ("在 Stripe 后台退款", None)
        assert payment.refunded_fen == order_of(number).refunded_fen == 3000
        honey, lychee = order_of(number).lines
        assert (honey.refunded_fen, lychee.refunded_fen) == (3000, 0)
        assert ledger_of(number) == (TOTAL_FEN - 3000, TOTAL_FEN - 3000)
        assert money_reconcile().differences == []

    again = against_provider(stripe_app)
    assert again.exit_code == 0, again.output
    assert "0 differences, 0 refunds recorded from the provider" in again.output
    with stripe_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
        assert ledger_of(number) == (TOTAL_FEN - 3000, TOTAL_FEN - 3000)


def test_a_refund_at_stripe_larger_than_a_line_is_spread_over_the_lines_in_order(
    stripe_app, world, number, card_token, stripe_client, movements
):
    paid = pay(stripe_app, world, number, card_token)
    # The whole honey line and ¥1 of the lychees.
    stripe_client.v1.refunds.create(
        {"payment_intent": paid.intent_id, "amount": 2 * HONEY_FEN + 100}
    )
    result = against_provider(stripe_app)
    assert result.exit_code == 0, result.output
    with stripe_app.app_context():
        honey, lychee = order_of(number).lines
        assert (honey.refunded_fen, lychee.refunded_fen) == (2 * HONEY_FEN, 100)
        assert [(m.order_line_id, m.amount_fen, m.quantity) for m in movements[-1].lines] == [
            (honey.id, -2 * HONEY_FEN, -2),  # a line given back whole gives its jars back
            (lychee.id, -100, 0),
        ]
        assert ledger_of(number) == (LYCHEE_FEN - 100, LYCHEE_FEN - 100)


def test_a_capture_changed_behind_the_shops_back_is_unexplained_and_booked_nowhere(
    stripe_app, world, number, card_token, stripe_client, movements
):
    held = pay(stripe_app, world, number, card_token, manual_capture=True)
    assert held.status == PaymentStatus.AUTHORIZED
    # Captured at Stripe, for less than the shop would have, and the shop never hears of it.
    stripe_client.v1.payment_intents.capture(held.intent_id, {"amount_to_capture": 20000})

    result = against_provider(stripe_app)
    assert result.exit_code == 1, result.output
    assert f"order {number} payment #{held.payment_id}: 扣款金额与 Stripe 不符" in result.output
    assert "shop ¥0.00, Stripe ¥200.00 UNEXPLAINED" in result.output
    # localstripe releases the rest as a refund of its own; that is not a dashboard refund.
    assert "1 differences, 0 refunds recorded from the provider" in result.output

    with stripe_app.app_context():
        payment = db.session.get(Payment, held.payment_id)
        assert (payment.status, payment.received_fen, payment.refunded_fen) == (
            PaymentStatus.AUTHORIZED,
            0,
            0,
        )
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
        assert ledger_of(number) == (0, 0)
        last = last_provider_reconciliation()
        assert (last.checked, len(last.unexplained)) == (1, 1)
        assert last.unexplained[0].provider_fen == 20000
    assert movements == []


def test_a_refund_the_shop_made_but_lost_is_reported_not_booked_twice(
    stripe_app, world, number, card_token, stripe_client
):
    paid = pay(stripe_app, world, number, card_token)
    # As the shop's refund call leaves it when its transaction is lost after Stripe answered.
    metadata = {"payment_id": str(paid.payment_id), "order_number": number, "reason": "破损"}
    stripe_client.v1.refunds.create(
        {"payment_intent": paid.intent_id, "amount": 500, "metadata": metadata}
    )
    result = against_provider(stripe_app)
    assert result.exit_code == 1, result.output
    assert "Stripe 上有商城发起、但未记录的退款" in result.output
    with stripe_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 0
        assert ledger_of(number) == (TOTAL_FEN, TOTAL_FEN)


def test_a_clean_state_says_0_differences(stripe_app, world, place_order, number, card_token):
    paid = pay(stripe_app, world, number, card_token)
    with stripe_app.test_request_context():
        honey = order_of(number).lines[0]
        refunds.refund_line(db.session.get(User, world.coop_manager), honey.id, 1234, "破损")
    held = place_order(world.buyer, {world.lychee: 2})
    pay(stripe_app, world, held, card_token, manual_capture=True)

    result = against_provider(stripe_app)
    assert result.exit_code == 0, result.output
    assert "0 differences, 0 refunds recorded from the provider (2 card payments checked)" in (
        result.output
    )
    with stripe_app.app_context():
        assert db.session.get(Payment, paid.payment_id).refunded_fen == 1234


def test_the_organizers_page_shows_the_last_result(
    stripe_app, world, number, card_token, stripe_client, client_as
):
    organizer = client_as("organizer")
    page = organizer.get("/admin/reconciliation").get_data(as_text=True)
    assert "与 Stripe 对账" in page and "尚未与 Stripe 对账" in page

    held = pay(stripe_app, world, number, card_token, manual_capture=True)
    stripe_client.v1.payment_intents.capture(held.intent_id, {"amount_to_capture": 20000})
    assert against_provider(stripe_app).exit_code == 1

    page = organizer.get("/admin/reconciliation").get_data(as_text=True)
    assert "核对 1 笔银行卡支付" in page
    assert "1 处差异无法解释" in page
    assert number in page and "扣款金额与 Stripe 不符" in page and "¥200.00" in page
    assert "待查" in page
    assert client_as("buyer").get("/admin/reconciliation").status_code == 403


def test_the_daily_task_runs_it_and_stores_the_result(stripe_app, world, number, card_token):
    pay(stripe_app, world, number, card_token)
    with stripe_app.app_context():
        assert daily_task() == {
            "checked": 1,
            "differences": 0,
            "unexplained": 0,
            "refunds_recorded": 0,
        }
        assert db.session.scalar(select(func.count()).select_from(ProviderReconciliation)) == 1


def test_without_the_stripe_key_it_says_so_in_one_line(app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "")
    result = against_provider(app)
    assert result.exit_code == 1
    assert result.output.strip() == "card payments need STRIPE_SECRET_KEY"
    with app.app_context():
        assert daily_task() is None


def test_the_plain_reconcile_says_how_many_it_skipped_as_too_recent(
    stripe_app, world, number, card_token
):
    with stripe_app.test_request_context():
        services.start_payment(db.session.get(User, world.buyer), number, "stripe")
    result = stripe_app.test_cli_runner().invoke(args=["payments", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "0 payments changed; 1 open payments skipped as too recent (under 2 min)" in (
        result.output
    )
