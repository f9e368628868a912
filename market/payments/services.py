"""Where money moves: paying an order, settling a payment with the provider's truth, refunding
(flush-only helpers the other payment modules share), a group-buy's captures and pickups paid in
cash. Bank transfers are in market.payments.transfers, a buyer's cancel and finance's line
refunds in market.payments.refunds, expiry, webhooks and the reconciler in
market.payments.background. Every amount received or refunded is reported through `hook`, in
the same transaction that records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from market.accounts.models import User
from market.audit import services as audit
from market.errors import DomainError, NotFound
from market.extensions import db
from market.models import utcnow
from market.orders import lifecycle
from market.orders import services as orders
from market.orders.models import Order, OrderLine, OrderStatus, ShipmentStatus
from market.payments import hook, providers
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.payments.providers import Created, ProviderState
from market.transactions import unit_of_work

OPEN = (PaymentStatus.PENDING, PaymentStatus.AUTHORIZED, PaymentStatus.FAILED)


def lock_order(order_id: int) -> Order:
    return db.session.get(Order, order_id, with_for_update=True, populate_existing=True)


def lock_payment(payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    if payment is None:
        raise NotFound(_("找不到该支付"))
    return payment


def lock_order_and_payment(payment_id: int) -> tuple[Order, Payment]:
    """The payment's order, then the payment: the order every writer locks them in (paying,
    expiring, cancelling, refunding), so a webhook racing the expiry sweep waits for it
    instead of deadlocking with it."""
    order_id = db.session.scalar(select(Payment.order_id).where(Payment.id == payment_id))
    if order_id is None:
        raise NotFound(_("找不到该支付"))
    order = lock_order(order_id)
    return order, lock_payment(payment_id)


# -- paying --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentStart:
    payment: Payment
    created: Created | None


@unit_of_work
def start_payment(
    buyer: User, number: str, provider_name: str, *, manual_capture: bool = False
) -> PaymentStart:
    """The buyer pays their own pending order with a provider the shop offers (see
    `begin_payment`). An order past its deadline is closed instead: stock back, payments
    withdrawn."""
    order = orders.order_of_buyer(buyer, number, for_update=True)
    _check_payable(order, provider_name)
    if order.expires_at is not None and order.expires_at <= utcnow():
        expire(order)
        db.session.commit()  # closing the order is this call's outcome, though it refuses
        raise DomainError(_("订单已超时关闭，库存已释放，请重新下单"))
    started = begin_payment(order, provider_name, manual_capture=manual_capture)
    db.session.commit()
    return started


def _check_payable(order: Order, provider_name: str) -> None:
    if not order.awaits_payment:
        raise DomainError(_("该订单当前不需要付款"))
    if order.status == OrderStatus.ON_CREDIT and provider_name != "offline":
        # 先货后款 is settled by the unit's bank transfer against the invoice.
        raise DomainError(_("先货后款的订单请对公转账"))


def begin_payment(
    order: Order, provider_name: str, *, manual_capture: bool = False
) -> PaymentStart:
    """Open (or reuse) the payment of an order the caller has locked and found within its
    deadline (`start_payment` closes one past it; group-buy and unit-purchase orders have
    none). One open payment per provider is reused; choosing bank transfer gives the buyer
    days, not minutes. Flushes only: the caller commits."""
    _check_payable(order, provider_name)
    if provider_name not in providers.available():
        raise DomainError(_("不支持该支付方式"))
    now = utcnow()
    provider = providers.get(provider_name)
    payment = open_payment(order, provider_name)
    created = None
    if payment is None:
        payment = Payment(
            order=order,
            provider=provider_name,
            provider_ref=f"new-{order.number}-{now.timestamp()}",
            amount_fen=order.total_fen,
        )
        db.session.add(payment)
        db.session.flush()
        created = provider.create(payment, manual_capture=manual_capture)
        payment.provider_ref = created.provider_ref
    elif payment.status == PaymentStatus.FAILED:
        payment.move_to(PaymentStatus.PENDING)
        payment.failure_message = ""
    if provider_name == "offline" and order.expires_at is not None:
        order.expires_at = _transfer_deadline(order, now)
    db.session.flush()
    return PaymentStart(payment, created)


def _transfer_deadline(order: Order, now: datetime) -> datetime:
    """Bank transfer turns the checkout's minutes to pay (UNPAID_ORDER_MINUTES) into
    BANK_TRANSFER_DAYS from now. A deadline already beyond those minutes was set on purpose (a
    尾款's due date, a transfer chosen before) and stays: choosing how to pay never moves a
    deadline later, nor shortens one the buyer was given."""
    placed = order.created_at or now
    checkout_window = placed + timedelta(minutes=current_app.config["UNPAID_ORDER_MINUTES"])
    if order.expires_at > checkout_window:
        return order.expires_at
    return now + timedelta(days=current_app.config["BANK_TRANSFER_DAYS"])


def open_payment(order: Order, provider_name: str) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id,
            Payment.provider == provider_name,
            Payment.status.in_(OPEN),
        )
    )


@dataclass(frozen=True)
class CardOutcome:
    payment: Payment
    state: ProviderState
    client_secret: str


@unit_of_work
def confirm_card(buyer: User, number: str, card_token: str) -> CardOutcome:
    """The card the buyer typed (tokenised by Stripe.js in the browser) is attached to the
    order's PaymentIntent and confirmed on the server. A card that needs 3-D Secure comes back
    with requires_action, and the page finishes it with confirmCardPayment."""
    order = orders.order_of_buyer(buyer, number, for_update=True)
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise DomainError(_("该订单当前不需要付款"))
    payment = open_payment(order, "stripe")
    if payment is None:
        raise DomainError(_("请先选择银行卡支付"))
    if not card_token or len(card_token) > 200:
        raise DomainError(_("请填写银行卡信息"))
    if payment.status == PaymentStatus.FAILED:  # another card after a declined one
        payment.move_to(PaymentStatus.PENDING)
        payment.failure_message = ""
    provider = providers.get("stripe")
    state, client_secret = provider.confirm_with_token(payment, card_token)  # type: ignore[attr-defined]
    apply_state(payment, order, state)
    db.session.commit()
    return CardOutcome(payment, state, client_secret)


@unit_of_work
def settle(payment_id: int) -> Payment:
    """Make our record agree with what the provider says now. Safe to call any number of times,
    in any order, from the return page, a webhook or the reconciler: money is recorded once."""
    order, payment = lock_order_and_payment(payment_id)
    if payment.held_by:  # a group-buy's closer owns it and settles it itself
        db.session.commit()
        return payment
    state = providers.get(payment.provider).fetch(payment)
    apply_state(payment, order, state)
    db.session.commit()
    return payment


HELD_BY_CLOSING = "groupbuy-closing"


def hold_for_closing(order_ids: list[int]) -> None:
    """A group-buy's closer takes these orders' payments over: until it lets go, webhooks and
    the reconciler leave them alone, so nothing settles a payment halfway through its closing
    step (a capture's webhook must not book the un-repriced amount). Flushes only."""
    if order_ids:
        db.session.execute(
            update(Payment)
            .where(Payment.order_id.in_(order_ids), Payment.status.in_(OPEN))
            .values(held_by=HELD_BY_CLOSING)
            .execution_options(synchronize_session=False)
        )


def let_go(order_id: int) -> None:
    """The closer is done with this order's payments. Flushes only."""
    db.session.execute(
        update(Payment)
        .where(Payment.order_id == order_id, Payment.held_by != "")
        .values(held_by="")
        .execution_options(synchronize_session=False)
    )


def apply_state(payment: Payment, order: Order, state: ProviderState) -> None:
    if state.status == payment.status:
        return
    if state.status == PaymentStatus.SUCCEEDED:
        payment.move_to(PaymentStatus.SUCCEEDED)
        payment.received_fen = state.received_fen
        payment.received_at = utcnow()
        _receive(order, payment)
    elif state.status == PaymentStatus.AUTHORIZED and payment.status in (
        PaymentStatus.PENDING,
        PaymentStatus.FAILED,
    ):
        payment.move_to(PaymentStatus.AUTHORIZED)
    elif state.status == PaymentStatus.FAILED and payment.status == PaymentStatus.PENDING:
        payment.move_to(PaymentStatus.FAILED)
        payment.failure_message = state.failure_message[:300]
    elif state.status == PaymentStatus.CANCELLED and payment.status in OPEN:
        payment.move_to(PaymentStatus.CANCELLED)


def _receive(order: Order, payment: Payment) -> None:
    """Money arrived. It pays the order if the order still wants it; otherwise (expired,
    cancelled, or paid already through another payment) it goes straight back in full."""
    now = utcnow()
    order.paid_fen += payment.received_fen
    hook.received(order, payment.id, now)
    if order.awaits_payment and payment.received_fen == order.total_fen:
        lifecycle.mark_paid(order)
        cancel_open_payments(order, keep=payment)
    else:
        parts = [(line, line.amount_fen, line.quantity) for line in order.lines]
        make_refund(
            payment, order, parts, _("订单已关闭或已付过款，自动全额退款"), None, touch_lines=False
        )


def cancel_open_payments(order: Order, keep: Payment | None = None) -> None:
    for other in db.session.scalars(
        select(Payment).where(Payment.order_id == order.id, Payment.status.in_(OPEN))
    ):
        if keep is not None and other.id == keep.id:
            continue
        state = providers.get(other.provider).cancel(other)
        if state.status == PaymentStatus.SUCCEEDED:
            # The money came in before it could be stopped: record it; _receive gives it back.
            apply_state(other, order, state)
        else:
            other.move_to(PaymentStatus.CANCELLED)


# -- refunds -------------------------------------------------------------------------------------
def make_refund(
    payment: Payment,
    order: Order,
    parts: list[tuple[OrderLine, int, int]],
    reason: str,
    actor: User | None,
    *,
    touch_lines: bool = True,
    key: str | None = None,
) -> Refund:
    """Give `parts` (line, fen, quantity) back through the payment's provider. Never more than
    the payment received, nor more than a line's amount. Flushes only."""
    total = sum(fen for _line, fen, _qty in parts)
    if total <= 0:
        raise DomainError(_("退款金额必须大于 0"), field="amount")
    if total > payment.refundable_fen:
        raise DomainError(_("退款金额超过了可退金额"), field="amount")
    if touch_lines:
        for line, fen, _qty in parts:
            if fen > line.refundable_fen:
                raise DomainError(_("退款金额超过了该商品的可退金额"), field="amount")
    refund = Refund(
        payment=payment,
        order_line_id=parts[0][0].id if len(parts) == 1 else None,
        amount_fen=total,
        reason=reason[:300],
        created_by_id=actor.id if actor else None,
    )
    db.session.add(refund)
    db.session.flush()
    result = providers.get(payment.provider).refund(payment, total, reason, key=key)
    if not result.succeeded:
        raise DomainError(_("退款失败：%(message)s", message=result.failure_message))
    refund.provider_ref = result.provider_ref
    if not result.owed:  # a card: the provider has sent it; a transfer waits for finance
        refund.move_to(RefundStatus.SUCCEEDED)
        refund.sent_at = utcnow()
    book_refund(refund, payment, order, parts, actor, touch_lines=touch_lines)
    return refund


def book_refund(
    refund: Refund,
    payment: Payment,
    order: Order,
    parts: list[tuple[OrderLine, int, int]],
    actor: User | None,
    *,
    touch_lines: bool = True,
    audited: dict | None = None,
) -> None:
    """What every refund decided does to the books, once: the payment's, the order's and (with
    `touch_lines`) each line's refunded amounts, the ledger's reversal through `hook`, the
    audit entry (with `audited` added). Flushes only."""
    total = sum(fen for _line, fen, _qty in parts)
    payment.refunded_fen += total
    order.refunded_fen += total
    if touch_lines:
        for line, fen, _qty in parts:
            line.refunded_fen += fen
    hook.refunded(
        order, payment.id, refund.id, [(line.id, fen, qty) for line, fen, qty in parts], utcnow()
    )
    audit.record(
        actor,
        "refund.decided",
        refund,
        after={
            "status": refund.status,
            "amount_fen": total,
            "order": order.number,
            "reason": refund.reason,
            **(audited or {}),
        },
    )
    db.session.flush()


def received_payment(order: Order) -> Payment | None:
    return db.session.scalar(
        select(Payment)
        .where(Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED)
        .where(Payment.received_fen > Payment.refunded_fen)
        .order_by(Payment.id)
        .with_for_update()
    )


def refund_and_cancel_paid(
    order: Order, reason: str, actor: User | None, key: str | None = None
) -> None:
    """A paid order that will not be fulfilled: everything still held goes back. Flushes."""
    payment = received_payment(order)
    parts = [(line, line.refundable_fen, line.quantity) for line in order.lines]
    parts = [p for p in parts if p[1] > 0]
    if payment is not None and parts:
        make_refund(payment, order, parts, reason, actor, key=key)
    order.move_to(OrderStatus.CANCELLED)
    order.closed_at = utcnow()
    for shipment in order.shipments:
        shipment.move_to(ShipmentStatus.CANCELLED)
    orders.give_back_stock(order)


def release_order(order: Order, reason: str, key: str | None = None) -> None:
    """The shop withdraws an order (a group-buy that did not reach its minimum, or a
    participant who left): an authorisation is released, a charge refunded in full (once per
    `key`), stock given back. Flushes only: the caller commits."""
    order = lock_order(order.id)
    if order.status == OrderStatus.PENDING_PAYMENT:
        lifecycle.close_unpaid(order, OrderStatus.CANCELLED)
        cancel_open_payments(order)
    elif order.status == OrderStatus.PAID:
        refund_and_cancel_paid(order, reason, None, key=key)


def capture_order(order: Order, key: str | None = None) -> Payment:
    """Take the order's total (already repriced to what was agreed) from its authorisation;
    less than authorised is fine, more is refused. With a `key` the capture is done once at the
    provider however often it is retried; what is recorded is what the provider says it
    captured. Flushes only."""
    order = lock_order(order.id)
    payment = db.session.scalar(
        select(Payment)
        .where(Payment.order_id == order.id, Payment.status == PaymentStatus.AUTHORIZED)
        .with_for_update()
    )
    if payment is None:
        raise DomainError(_("该订单没有可扣款的授权"))
    if order.total_fen > payment.amount_fen:
        raise DomainError(_("扣款金额不能超过授权金额"))
    state = providers.get(payment.provider).capture(payment, order.total_fen, key=key)
    apply_state(payment, order, state)
    return payment


def authorisation_holds(order: Order) -> bool:
    """Whether the order's card authorisation can still be captured, as the provider says now
    (a capture already made by a closer that died counts as holding). Reads only."""
    payment = db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id, Payment.status == PaymentStatus.AUTHORIZED
        )
    )
    if payment is None:
        return False
    state = providers.get(payment.provider).fetch(payment)
    return state.status in (PaymentStatus.AUTHORIZED, PaymentStatus.SUCCEEDED)


def refund_difference(
    order: Order, parts: list[tuple[OrderLine, int]], reason: str, key: str | None = None
) -> None:
    """Give back part of each line's price (a lower tier reached after a full charge); the
    quantities stay. Done once per `key` at the provider. Flushes only."""
    payment = received_payment(order)
    wanted = [(line, fen, 0) for line, fen in parts if fen > 0]
    if payment is not None and wanted:
        make_refund(payment, order, wanted, reason, None, key=key)


def record_paid_at_pickup(actor: User, order: Order) -> Payment:
    """Money handed over at the pickup point (offline provider), recorded by the coordinator.
    Flushes only."""
    order = lock_order(order.id)
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise DomainError(_("该订单当前不需要付款"))
    payment = open_payment(order, "offline")
    if payment is None:
        payment = Payment(
            order=order,
            provider="offline",
            provider_ref=f"new-{order.number}-{utcnow().timestamp()}",
            amount_fen=order.total_fen,
        )
        db.session.add(payment)
        db.session.flush()
        payment.provider_ref = providers.get("offline").create(payment).provider_ref
    payment.amount_fen = order.total_fen
    payment.confirmed_by_id = actor.id
    payment.transfer_reference = _("自提时付款")
    # The coordinator now holds the cash for the service centre until finance confirms it.
    payment.cash_holder_id = actor.id
    payment.cash_unit_id = order.unit_id
    before = {"status": payment.status, "received_fen": payment.received_fen}
    apply_state(payment, order, ProviderState(PaymentStatus.SUCCEEDED, order.total_fen))
    audit.record(
        actor,
        "cash.received",
        payment,
        before=before,
        after={
            "status": payment.status,
            "received_fen": payment.received_fen,
            "amount_fen": order.total_fen,
            "holder_id": actor.id,
            "holder": actor.name,
            "order": order.number,
        },
        acting_as=None if actor.is_admin else "coordinator",
    )
    return payment


def expire(order: Order) -> None:
    lifecycle.close_unpaid(order, OrderStatus.EXPIRED)
    cancel_open_payments(order)
