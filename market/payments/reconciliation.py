"""Reconciliation against the card provider: `flask --app market payments reconcile
--against-provider`, daily from Celery beat; the organizer's reconciliation page shows the last
run.

Every card payment that could hold money (authorised or succeeded; pending, failed or cancelled
once it is a minute old) is compared with what Stripe itself holds, fetched through the API (the
PaymentIntent and every refund listed for it):

- captured: the shop's `received_fen` against the intent's `amount_received`. Money captured
  that the shop did not record (captured at Stripe while the shop says authorised, or another
  amount) is never booked here: it is a difference nobody has explained, for a person to see.
- refunds: every refund the shop recorded must be at Stripe, given back, with the same amount.
  A refund at Stripe that the shop does not know and did not make (one made in the Stripe
  dashboard carries none of the shop's metadata) is recorded as a refund (已退款, reason
  "在 Stripe 后台退款"), spread over the order's lines in line order, each line at most what is
  left of it, so the attribution ledger and the co-ops' settlement entries reverse it; Stripe is
  not asked for anything again. One the shop made but never recorded (its transaction was lost)
  is reported, not booked, since the shop's own retry would book it a second time; so is one on
  a payment a group-buy's closer holds (the closer books its own steps).
- finally the payment's `refunded_fen` against the total Stripe gave back.

Each payment is checked in its own transaction with its order and payment rows locked, so a
capture or refund in progress elsewhere finishes before Stripe is asked. Every run is stored
(ProviderReconciliation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from market.errors import DomainError
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order, OrderLine
from market.payments import background, providers
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus, ProviderReconciliation
from market.payments.providers import ProviderRefund, ProviderTruth

PROVIDER = "stripe"
# A payment still open this soon after it was made may have its money on the way.
SETTLED_AFTER = timedelta(minutes=1)
# The shop's metadata on every refund it asks Stripe for (StripeProvider.refund).
SHOP_METADATA = ("payment_id", "market_key")

KIND_LABELS = {
    "captured": _l("扣款金额与 Stripe 不符"),
    "refund_recorded": _l("在 Stripe 后台退款，已记为退款"),
    "refund_too_large": _l("在 Stripe 后台退款，超出可退金额，未能记录"),
    "refund_by_shop": _l("Stripe 上有商城发起、但未记录的退款"),
    "refund_while_closing": _l("团购结算中，Stripe 上有未记录的退款"),
    "refund_missing": _l("商城记录的退款在 Stripe 找不到或未退回"),
    "refund_amount": _l("退款金额与 Stripe 不符"),
    "refunded": _l("退款合计与 Stripe 不符"),
    "unavailable": _l("无法向 Stripe 核对"),
}


@dataclass(frozen=True)
class ProviderDifference:
    order_number: str
    payment_id: int
    kind: str  # a key of KIND_LABELS
    shop_fen: int
    provider_fen: int
    explained: bool = False  # the reconciliation resolved it (a dashboard refund recorded)
    detail: str = ""  # the provider's ids and statuses, or the error; not translated

    @property
    def what(self) -> str:
        label = str(KIND_LABELS.get(self.kind, self.kind))
        return f"{label}（{self.detail}）" if self.detail else label

    def as_json(self) -> dict[str, Any]:
        return {
            "order": self.order_number,
            "payment_id": self.payment_id,
            "kind": self.kind,
            "shop_fen": self.shop_fen,
            "provider_fen": self.provider_fen,
            "explained": self.explained,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProviderDifference:
        return cls(
            order_number=str(data.get("order", "")),
            payment_id=int(data.get("payment_id", 0)),
            kind=str(data.get("kind", "")),
            shop_fen=int(data.get("shop_fen", 0)),
            provider_fen=int(data.get("provider_fen", 0)),
            explained=bool(data.get("explained", False)),
            detail=str(data.get("detail", "")),
        )


@dataclass(frozen=True)
class ProviderReconcileResult:
    run_at: datetime
    checked: int
    refunds_recorded: int
    differences: tuple[ProviderDifference, ...]

    @property
    def unexplained(self) -> list[ProviderDifference]:
        return [d for d in self.differences if not d.explained]

    @property
    def agrees(self) -> bool:
        return not self.unexplained

    @classmethod
    def from_row(cls, row: ProviderReconciliation) -> ProviderReconcileResult:
        return cls(
            run_at=row.run_at,
            checked=row.checked,
            refunds_recorded=row.recorded_refunds,
            differences=tuple(ProviderDifference.from_json(d) for d in row.differences or []),
        )


def reconcile_against_provider(now: datetime | None = None) -> ProviderReconcileResult:
    """Compare every card payment that could hold money with Stripe, record the refunds made
    in Stripe's dashboard, and store the run. LookupError when card payments are not configured
    (no STRIPE_SECRET_KEY). If Stripe cannot be reached the run stops there, with that as an
    unexplained difference."""
    provider = providers.get(PROVIDER)
    now = now or utcnow()
    ids = db.session.scalars(
        select(Payment.id)
        .where(
            Payment.provider == PROVIDER,
            or_(
                Payment.status.in_((PaymentStatus.AUTHORIZED, PaymentStatus.SUCCEEDED)),
                Payment.created_at <= now - SETTLED_AFTER,
            ),
        )
        .order_by(Payment.id)
    ).all()
    db.session.commit()  # end the read: each payment below is a transaction of its own
    checked, recorded = 0, 0
    differences: list[ProviderDifference] = []
    for payment_id in ids:
        try:
            found = _check(provider, payment_id)
            db.session.commit()  # money talk: what Stripe said of this payment is kept at once
        except DomainError as error:
            db.session.rollback()
            differences.append(
                ProviderDifference(
                    _order_number(payment_id), payment_id, "unavailable", 0, 0, detail=str(error)
                )
            )
            if error.status_code == 503:  # Stripe cannot be reached: the rest would fail too
                break
            continue
        checked += 1
        recorded += sum(1 for d in found if d.kind == "refund_recorded")
        differences.extend(found)
    result = ProviderReconcileResult(now, checked, recorded, tuple(differences))
    db.session.add(
        ProviderReconciliation(
            provider=PROVIDER,
            run_at=now,
            checked=checked,
            recorded_refunds=recorded,
            unexplained=len(result.unexplained),
            differences=[d.as_json() for d in differences],
        )
    )
    db.session.commit()
    return result


def last_provider_reconciliation() -> ProviderReconcileResult | None:
    row = db.session.scalar(
        select(ProviderReconciliation)
        .where(ProviderReconciliation.provider == PROVIDER)
        .order_by(ProviderReconciliation.run_at.desc(), ProviderReconciliation.id.desc())
        .limit(1)
    )
    return ProviderReconcileResult.from_row(row) if row is not None else None


def _order_number(payment_id: int) -> str:
    return (
        db.session.scalar(
            select(Order.number)
            .join(Payment, Payment.order_id == Order.id)
            .where(Payment.id == payment_id)
        )
        or ""
    )


def _check(provider: Any, payment_id: int) -> list[ProviderDifference]:
    """One payment against Stripe, its order and payment rows locked (in that order, as the
    refund paths lock them). Flushes only."""
    order_id = db.session.scalar(select(Payment.order_id).where(Payment.id == payment_id))
    order = payments.lock_order(order_id)
    payment = payments.lock_payment(payment_id)
    truth: ProviderTruth = provider.truth(payment)
    number = order.number

    def difference(kind: str, shop: int, theirs: int, detail: str = "") -> ProviderDifference:
        return ProviderDifference(
            number, payment.id, kind, shop, theirs, kind == "refund_recorded", detail
        )

    found: list[ProviderDifference] = []
    if payment.received_fen != truth.received_fen:
        status = f"{payment.status.value} / Stripe {truth.provider_status}"
        found.append(difference("captured", payment.received_fen, truth.received_fen, status))

    at_provider = {refund.provider_ref: refund for refund in truth.refunds}
    for ours in payment.refunds:
        if not ours.provider_ref:
            continue  # the total below says it
        theirs = at_provider.get(ours.provider_ref)
        if theirs is None or not theirs.given_back:
            detail = ours.provider_ref + (f" {theirs.status}" if theirs is not None else "")
            found.append(difference("refund_missing", ours.amount_fen, 0, detail))
        elif theirs.amount_fen != ours.amount_fen:
            found.append(
                difference("refund_amount", ours.amount_fen, theirs.amount_fen, ours.provider_ref)
            )

    known = {ours.provider_ref for ours in payment.refunds if ours.provider_ref}
    for theirs in truth.refunds:
        if theirs.given_back and theirs.provider_ref not in known:
            kind = _record(payment, order, theirs)
            found.append(difference(kind, 0, theirs.amount_fen, theirs.provider_ref))

    refund_kinds = {d.kind for d in found} - {"captured", "refund_recorded"}
    if payment.refunded_fen != truth.refunded_fen and not refund_kinds:
        found.append(difference("refunded", payment.refunded_fen, truth.refunded_fen))
    return found


def _record(payment: Payment, order: Order, theirs: ProviderRefund) -> str:
    """Record a refund found at Stripe that the shop does not know, if it was made in Stripe's
    dashboard and fits what is left of the payment and the order's lines; say which kind of
    difference it is."""
    if payment.held_by:
        return "refund_while_closing"
    if any(theirs.metadata.get(name) for name in SHOP_METADATA):
        return "refund_by_shop"
    parts = _spread(order, theirs.amount_fen)
    if parts is None or theirs.amount_fen > payment.refundable_fen:
        return "refund_too_large"
    background.record_provider_refund(
        payment, order, parts, _("在 Stripe 后台退款"), theirs.provider_ref
    )
    return "refund_recorded"


def _spread(order: Order, amount_fen: int) -> list[tuple[OrderLine, int, int]] | None:
    """`amount_fen` over the order's lines in line order, each at most what is left of it; a
    line given back whole gives its quantity back too. None when the lines cannot take it."""
    parts, left = [], amount_fen
    for line in order.lines:
        fen = min(left, line.refundable_fen)
        if fen > 0:
            parts.append((line, fen, line.quantity if fen == line.amount_fen else 0))
            left -= fen
        if left == 0:
            return parts
    return None
