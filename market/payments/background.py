"""What moves money without a person: unpaid orders expiring at their deadline, the
provider's webhooks, and the reconciler that settles payments left pending (market.tasks and
market.jobs run them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from market.errors import DomainError
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order, OrderLine, OrderStatus
from market.payments import providers
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus, WebhookEvent
from market.transactions import unit_of_work


class InvalidWebhook(DomainError):
    status_code = 400


# -- deadlines, webhooks, reconciliation -------------------------------------------------------


def expire_unpaid_orders(now: datetime | None = None) -> int:
    """Close every unpaid order past its deadline: stock back, open payments withdrawn. Safe to
    run from several places at once: each order is locked and checked again."""
    now = now or utcnow()
    due = db.session.scalars(
        select(Order.id).where(Order.status == OrderStatus.PENDING_PAYMENT, Order.expires_at <= now)
    ).all()
    closed = 0
    for order_id in due:
        order = payments.lock_order(order_id)
        if order.status == OrderStatus.PENDING_PAYMENT and order.expires_at <= now:
            payments.expire(order)
            closed += 1
        db.session.commit()  # a batch: each order closed on its own (a rerun does the rest)
    return closed


@unit_of_work
def handle_webhook(provider_name: str, payload: bytes, signature: str | None) -> str:
    """Verify, deduplicate on the event id, then settle the payment it concerns from the
    provider's current state (so replays and out-of-order events change nothing)."""
    provider = providers.get(provider_name)
    try:
        notice = provider.parse_webhook(payload, signature)  # type: ignore[attr-defined]
    except ValueError as error:
        raise InvalidWebhook(str(error)) from None
    db.session.add(
        WebhookEvent(
            id=notice.event_id,
            provider=provider_name,
            type=notice.event_type,
            received_at=utcnow(),
        )
    )
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    payment = None
    if notice.payment_ref:
        payment = db.session.scalar(
            select(Payment).where(
                Payment.provider == provider_name, Payment.provider_ref == notice.payment_ref
            )
        )
    if payment is None:
        db.session.commit()
        return "ignored"
    order, payment = payments.lock_order_and_payment(payment.id)
    if payment.held_by:
        db.session.commit()
        return "left to the closer"
    payments.apply_state(payment, order, provider.fetch(payment))
    db.session.commit()
    return "processed"


@dataclass(frozen=True)
class Reconciled:
    changed: list[tuple[str, str, str]]  # (order, before, after) for each payment that changed
    skipped_recent: int  # open payments younger than `older_than`, left to their buyers


def reconcile(older_than: timedelta = timedelta(minutes=2)) -> Reconciled:
    """Settle open payments whose webhooks never came. Payments younger than `older_than` are
    left alone (their buyer may still be on the payment page) and only counted."""
    cutoff = utcnow() - older_than
    open_card = (
        Payment.status.in_((PaymentStatus.PENDING, PaymentStatus.AUTHORIZED)),
        Payment.provider != "offline",
    )
    ids = db.session.scalars(
        select(Payment.id).where(*open_card, Payment.created_at <= cutoff)
    ).all()
    skipped = db.session.scalar(
        select(func.count()).select_from(Payment).where(*open_card, Payment.created_at > cutoff)
    )
    changed = []
    for payment_id in ids:
        before = db.session.get(Payment, payment_id).status
        payment = payments.settle(payment_id)
        if payment.status != before:
            changed.append((payment.order.number, str(before), str(payment.status)))
    return Reconciled(changed, int(skipped or 0))


def record_provider_refund(
    payment: Payment,
    order: Order,
    parts: list[tuple[OrderLine, int, int]],
    reason: str,
    provider_ref: str,
) -> Refund:
    """Book a refund the provider has already made (in its dashboard, found by the
    reconciliation against the provider): the same records, limits and ledger reversal as
    `payments.make_refund`, without asking the provider for anything. Flushes only."""
    total = sum(fen for _line, fen, _qty in parts)
    if total <= 0:
        raise DomainError(_("退款金额必须大于 0"), field="amount")
    if total > payment.refundable_fen:
        raise DomainError(_("退款金额超过了可退金额"), field="amount")
    for line, fen, _qty in parts:
        if fen > line.refundable_fen:
            raise DomainError(_("退款金额超过了该商品的可退金额"), field="amount")
    now = utcnow()
    refund = Refund(
        payment=payment,
        order_line_id=parts[0][0].id if len(parts) == 1 else None,
        amount_fen=total,
        reason=reason[:300],
        created_by_id=None,
        provider_ref=provider_ref,
    )
    db.session.add(refund)
    db.session.flush()
    refund.move_to(RefundStatus.SUCCEEDED)
    refund.sent_at = now
    payments.book_refund(
        refund, payment, order, parts, None, audited={"provider_ref": provider_ref}
    )
    return refund
