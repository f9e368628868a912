"""Card payments through Stripe PaymentIntents, against a real localstripe: what the buyer's
order says, what Stripe holds, and what the campaign hook was told must agree to the fen."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from market.accounts.models import User
from market.catalog.models import Sku
from market.errors import DomainError, NotAllowed
from market.extensions import db
from market.orders.models import Order, OrderStatus, ShipmentStatus
from market.payments import background, providers, refunds, services
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.payments.stripe_provider import StripeProvider
from tests.payments.conftest import DECLINED_CARD, GOOD_CARD, THREE_D_SECURE_CARD

HONEY_FEN = 8800  # 原生态蜂蜜 500g, co-op 1
LYCHEE_FEN = 8900  # 白糖罂荔枝, co-op 2
TOTAL_FEN = 2 * HONEY_FEN + LYCHEE_FEN


@pytest.fixture
def number(place_order, world) -> str:
    """The buyer's unpaid order: two jars of honey from one co-op, lychees from another."""
    return place_order(world.buyer, {world.honey_product: 2, world.lychee: 1})


def user(user_id: int) -> User:
    return db.session.get(User, user_id)


def order_of(number: str) -> Order:
    return db.session.scalar(select(Order).where(Order.number == number))


def stock_of(product_id: int) -> int:
    return db.session.scalar(select(Sku.stock).where(Sku.product_id == product_id))


def payments_of(number: str) -> list[Payment]:
    order = order_of(number)
    return list(
        db.session.scalars(select(Payment).where(Payment.order_id == order.id).order_by(Payment.id))
    )


def refunded_at_stripe(stripe_client, intent_id: str) -> list[int]:
    """Refunds made on the intent (localstripe also lists the uncaptured remainder of a partial
    capture as a refund without an intent; that is not money given back)."""
    refunds = stripe_client.v1.refunds.list({"payment_intent": intent_id})
    return [r.amount for r in refunds.data if r.payment_intent == intent_id]


def start(app, world, number: str):
    with app.test_request_context():
        started = services.start_payment(user(world.buyer), number, "stripe")
        return SimpleNamespace(
            payment_id=started.payment.id, intent_id=started.payment.provider_ref
        )


def confirm(app, world, number: str, token: str) -> SimpleNamespace:
    with app.test_request_context():
        outcome = services.confirm_card(user(world.buyer), number, token)
        return SimpleNamespace(
            status=outcome.payment.status,
            message=outcome.payment.failure_message,
            requires_action=outcome.state.requires_action,
            client_secret=outcome.client_secret,
            intent_id=outcome.payment.provider_ref,
        )


# -- paying ------------------------------------------------------------------------------------
def test_a_good_card_pays_the_order_once(
    stripe_app, world, number, card_token, stripe_client, movements
):
    started = start(stripe_app, world, number)
    intent = stripe_client.v1.payment_intents.retrieve(started.intent_id)
    assert (intent.amount, intent.currency) == (TOTAL_FEN, "cny")
    assert intent.metadata["order_number"] == number
    assert intent.metadata["payment_id"] == str(started.payment_id)

    outcome = confirm(stripe_app, world, number, card_token(GOOD_CARD))
    assert (outcome.status, outcome.requires_action) == (PaymentStatus.SUCCEEDED, False)

    with stripe_app.test_request_context():
        order = order_of(number)
        assert order.status == OrderStatus.PAID
        assert order.paid_fen == TOTAL_FEN
        assert [s.status for s in order.shipments] == [ShipmentStatus.TO_SHIP] * 2
        (payment,) = payments_of(number)
        assert payment.received_fen == TOTAL_FEN
        lines = {line.id: (line.amount_fen, line.quantity) for line in order.lines}
    assert stripe_client.v1.payment_intents.retrieve(started.intent_id).status == "succeeded"

    # The return page, a webhook and the reconciler may all settle it again: nothing changes.
    with stripe_app.test_request_context():
        services.settle(started.payment_id)
    with stripe_app.test_request_context():
        assert order_of(number).paid_fen == TOTAL_FEN
        assert payments_of(number)[0].received_fen == TOTAL_FEN

    (movement,) = movements
    assert movement.amount_fen == TOTAL_FEN
    assert movement.refund_id is None
    assert {m.order_line_id: (m.amount_fen, m.quantity) for m in movement.lines} == lines
    assert sorted(lines.values()) == [(LYCHEE_FEN, 1), (HONEY_FEN * 2, 2)]

    # A second submit of the card form charges nothing more.
    with stripe_app.test_request_context(), pytest.raises(DomainError, match="不需要付款"):
        services.confirm_card(user(world.buyer), number, card_token(GOOD_CARD))


def test_a_3d_secure_card_waits_for_the_buyer_then_pays(
    stripe_app, world, number, card_token, authenticate, movements
):
    start(stripe_app, world, number)
    outcome = confirm(stripe_app, world, number, card_token(THREE_D_SECURE_CARD))
    assert (outcome.status, outcome.requires_action) == (PaymentStatus.PENDING, True)
    with stripe_app.test_request_context():
        assert order_of(number).status == OrderStatus.PENDING_PAYMENT
    assert movements == []

    authenticate(outcome.client_secret, success=True)  # the buyer passes 3-D Secure
    with stripe_app.test_request_context():
        payment_id = payments_of(number)[0].id
        assert services.settle(payment_id).status == PaymentStatus.SUCCEEDED
    with stripe_app.test_request_context():
        assert order_of(number).status == OrderStatus.PAID
        assert order_of(number).paid_fen == TOTAL_FEN
    assert [m.amount_fen for m in movements] == [TOTAL_FEN]


def test_failing_3d_secure_leaves_the_order_unpaid_with_a_reason(
    stripe_app, world, number, card_token, authenticate
):
    start(stripe_app, world, number)
    outcome = confirm(stripe_app, world, number, card_token(THREE_D_SECURE_CARD))
    authenticate(outcome.client_secret, success=False)
    with stripe_app.test_request_context():
        payment = services.settle(payments_of(number)[0].id)
        assert payment.status == PaymentStatus.FAILED
        assert "验证" in payment.failure_message
        assert order_of(number).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.parametrize("retry", ["on_the_same_page", "after_choosing_card_again"])
def test_a_declined_card_keeps_the_order_and_another_card_pays_it(
    stripe_app, world, number, card_token, stripe_client, movements, retry
):
    started = start(stripe_app, world, number)
    declined = confirm(stripe_app, world, number, card_token(DECLINED_CARD))
    assert declined.status == PaymentStatus.FAILED
    assert "拒绝" in declined.message
    with stripe_app.test_request_context():
        assert order_of(number).status == OrderStatus.PENDING_PAYMENT
        assert stock_of(world.honey_product) == 50 - 2  # still held for the buyer
        assert stock_of(world.lychee) == 50 - 1
    assert movements == []

    if retry == "after_choosing_card_again":
        again = start(stripe_app, world, number)
        assert again.payment_id == started.payment_id  # the same payment is tried again
    paid = confirm(stripe_app, world, number, card_token(GOOD_CARD))
    assert paid.status == PaymentStatus.SUCCEEDED
    with stripe_app.test_request_context():
        order = order_of(number)
        assert (order.status, order.paid_fen) == (OrderStatus.PAID, TOTAL_FEN)
        (payment,) = payments_of(number)
        assert payment.failure_message == ""
    # localstripe cannot confirm a declined intent again, so the provider withdrew it and put
    # the card on a fresh one (real Stripe re-confirms the same intent).
    assert paid.intent_id != started.intent_id
    assert stripe_client.v1.payment_intents.retrieve(started.intent_id).status == "canceled"
    paid_intent = stripe_client.v1.payment_intents.retrieve(paid.intent_id)
    assert (paid_intent.status, paid_intent.amount) == ("succeeded", TOTAL_FEN)
    assert [m.amount_fen for m in movements] == [TOTAL_FEN]


def test_stripe_unreachable_is_said_plainly_and_records_nothing(stripe_app, world, number):
    with socket_that_refuses() as dead_base:
        stripe_app.config["STRIPE_API_BASE"] = dead_base
        with stripe_app.test_request_context():
            with pytest.raises(DomainError, match="支付服务暂时不可用"):
                services.start_payment(user(world.buyer), number, "stripe")
            db.session.rollback()
        with stripe_app.test_request_context():
            assert payments_of(number) == []
            assert order_of(number).status == OrderStatus.PENDING_PAYMENT


@contextlib.contextmanager
def socket_that_refuses() -> Iterator[str]:
    """An address on loopback where nothing listens: bound, never listening."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{probe.getsockname()[1]}"


# -- cancelling and refunding ------------------------------------------------------------------
def test_cancelling_a_paid_order_refunds_it_in_full(
    stripe_app, world, number, card_token, stripe_client, movements
):
    started = start(stripe_app, world, number)
    confirm(stripe_app, world, number, card_token(GOOD_CARD))
    with stripe_app.test_request_context():
        refunds.cancel_order(user(world.buyer), number)
    with stripe_app.test_request_context():
        order = order_of(number)
        assert order.status == OrderStatus.CANCELLED
        assert (order.paid_fen, order.refunded_fen) == (TOTAL_FEN, TOTAL_FEN)
        assert [s.status for s in order.shipments] == [ShipmentStatus.CANCELLED] * 2
        (payment,) = payments_of(number)
        assert payment.refunded_fen == TOTAL_FEN
        (refund,) = payment.refunds
        assert (refund.amount_fen, refund.status) == (TOTAL_FEN, RefundStatus.SUCCEEDED)
        assert refund.provider_ref.startswith("re_")
        assert stock_of(world.honey_product) == 50
        assert stock_of(world.lychee) == 50
    assert refunded_at_stripe(stripe_client, started.intent_id) == [TOTAL_FEN]
    assert [m.amount_fen for m in movements] == [TOTAL_FEN, -TOTAL_FEN]
    assert sorted(line.amount_fen for line in movements[1].lines) == [-HONEY_FEN * 2, -LYCHEE_FEN]


def test_a_coop_refunds_part_of_its_line_and_never_more_than_is_left(
    stripe_app, world, number, card_token, stripe_client, movements
):
    started = start(stripe_app, world, number)
    confirm(stripe_app, world, number, card_token(GOOD_CARD))
    with stripe_app.test_request_context():
        honey_line = next(
            line for line in order_of(number).lines if line.product_id == world.honey_product
        )
        line_id = honey_line.id
        manager = user(world.coop_manager)
        refunds.refund_line(manager, line_id, 1234, "一瓶蜂蜜破损")

    with stripe_app.test_request_context():
        order = order_of(number)
        (payment,) = payments_of(number)
        (refund,) = payment.refunds
        assert (refund.amount_fen, refund.order_line_id, refund.reason) == (
            1234,
            line_id,
            "一瓶蜂蜜破损",
        )
        assert payment.refunded_fen == order.refunded_fen == 1234
        assert order.status == OrderStatus.PAID
        left = HONEY_FEN * 2 - 1234
        assert next(line for line in order.lines if line.id == line_id).refundable_fen == left
    assert refunded_at_stripe(stripe_client, started.intent_id) == [1234]
    assert movements[-1].amount_fen == -1234
    assert [(m.order_line_id, m.amount_fen, m.quantity) for m in movements[-1].lines] == [
        (line_id, -1234, 0)
    ]

    with stripe_app.test_request_context(), pytest.raises(DomainError, match="最多可退"):
        refunds.refund_line(user(world.coop_manager), line_id, left + 1, "再退一点")
    with stripe_app.test_request_context(), pytest.raises(NotAllowed):
        refunds.refund_line(user(world.other_coop_manager), line_id, 100, "不是我的")
    with stripe_app.test_request_context():
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
        assert order_of(number).refunded_fen == 1234
    assert refunded_at_stripe(stripe_client, started.intent_id) == [1234]
    assert len(movements) == 2


def test_money_arriving_after_the_order_expired_goes_straight_back(
    stripe_app, world, number, card_token, authenticate, stripe_client, movements
):
    started = start(stripe_app, world, number)
    outcome = confirm(stripe_app, world, number, card_token(THREE_D_SECURE_CARD))
    # The buyer finishes 3-D Secure, but the page never reports back (closed tab, lost network).
    authenticate(outcome.client_secret, success=True)
    with stripe_app.test_request_context():
        later = order_of(number).expires_at + timedelta(minutes=1)
        assert background.expire_unpaid_orders(now=later) == 1

    with stripe_app.test_request_context():
        order = order_of(number)
        assert order.status == OrderStatus.EXPIRED
        assert (order.paid_fen, order.refunded_fen) == (TOTAL_FEN, TOTAL_FEN)
        (payment,) = payments_of(number)
        assert payment.status == PaymentStatus.SUCCEEDED
        assert payment.received_fen == payment.refunded_fen == TOTAL_FEN
        assert stock_of(world.honey_product) == 50
        assert stock_of(world.lychee) == 50
    assert refunded_at_stripe(stripe_client, started.intent_id) == [TOTAL_FEN]
    assert [m.amount_fen for m in movements] == [TOTAL_FEN, -TOTAL_FEN]

    with stripe_app.test_request_context():  # running the expiry again changes nothing
        assert background.expire_unpaid_orders(now=later) == 0
        services.settle(payment.id)
    assert refunded_at_stripe(stripe_client, started.intent_id) == [TOTAL_FEN]
    assert len(movements) == 2


def test_an_unpaid_order_that_expires_withdraws_its_intent(
    stripe_app, world, number, card_token, stripe_client, movements
):
    started = start(stripe_app, world, number)
    with stripe_app.test_request_context():
        later = order_of(number).expires_at + timedelta(minutes=1)
        assert background.expire_unpaid_orders(now=later) == 1
    with stripe_app.test_request_context():
        assert payments_of(number)[0].status == PaymentStatus.CANCELLED
        assert stock_of(world.honey_product) == 50
    assert stripe_client.v1.payment_intents.retrieve(started.intent_id).status == "canceled"
    assert movements == []


# -- the provider on its own: manual capture -------------------------------------------------
def test_manual_capture_authorises_captures_part_cancels_and_refunds(
    stripe_app, world, number, card_token, stripe_client
):
    with stripe_app.test_request_context():
        order = order_of(number)
        provider = providers.get("stripe")
        assert isinstance(provider, StripeProvider)

        def new_payment() -> Payment:
            payment = Payment(order=order, provider="stripe", provider_ref="", amount_fen=TOTAL_FEN)
            db.session.add(payment)
            db.session.flush()
            payment.provider_ref = provider.create(payment, manual_capture=True).provider_ref
            return payment

        captured = new_payment()
        state, _secret = provider.confirm_with_token(captured, card_token(GOOD_CARD))
        assert state.status == PaymentStatus.AUTHORIZED
        state = provider.fetch(captured)
        assert (state.status, state.authorized_fen) == (PaymentStatus.AUTHORIZED, TOTAL_FEN)
        assert state.received_fen == 0

        state = provider.capture(captured, 20000)  # e.g. the group-buy tier price reached
        assert (state.status, state.received_fen) == (PaymentStatus.SUCCEEDED, 20000)
        again = provider.capture(captured, 20000)  # a retried capture takes nothing more
        assert again.status == PaymentStatus.SUCCEEDED
        # It can no longer be withdrawn; saying so is not an error.
        assert provider.cancel(captured).status == PaymentStatus.SUCCEEDED

        result = provider.refund(captured, 5000, "团购未成团部分退款")
        assert result.succeeded and result.provider_ref.startswith("re_")
        assert refunded_at_stripe(stripe_client, captured.provider_ref) == [5000]

        released = new_payment()
        provider.confirm_with_token(released, card_token(GOOD_CARD))
        assert provider.cancel(released).status == PaymentStatus.CANCELLED
        assert provider.fetch(released).status == PaymentStatus.CANCELLED
        assert provider.cancel(released).status == PaymentStatus.CANCELLED  # twice is fine
        released_ref = released.provider_ref
    intent = stripe_client.v1.payment_intents.retrieve(released_ref)
    assert (intent.status, intent.capture_method) == ("canceled", "manual")


# -- reconciliation ----------------------------------------------------------------------------
def test_reconcile_records_a_payment_whose_webhook_was_lost(
    stripe_app, world, number, card_token, stripe_client, movements
):
    started = start(stripe_app, world, number)
    # The buyer paid at Stripe, and nothing told the shop.
    card = stripe_client.v1.tokens.retrieve(card_token(GOOD_CARD)).card
    stripe_client.v1.payment_intents.update(started.intent_id, {"payment_method": card.id})
    stripe_client.v1.payment_intents.confirm(started.intent_id)

    with stripe_app.test_request_context():
        done = background.reconcile(older_than=timedelta(0))
        assert done.changed == [(number, "pending", "succeeded")]
    with stripe_app.test_request_context():
        order = order_of(number)
        assert (order.status, order.paid_fen) == (OrderStatus.PAID, TOTAL_FEN)
        assert background.reconcile(older_than=timedelta(0)).changed == []
    assert [m.amount_fen for m in movements] == [TOTAL_FEN]


def test_reconcile_leaves_recent_payments_to_their_buyers(stripe_app, world, number):
    start(stripe_app, world, number)
    with stripe_app.test_request_context():
        assert background.reconcile(older_than=timedelta(minutes=2)).changed == []
        assert payments_of(number)[0].status == PaymentStatus.PENDING
