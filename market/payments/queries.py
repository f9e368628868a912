"""Read side of payments: what a buyer sees of the money on their order."""

from __future__ import annotations

from sqlalchemy import select

from market.extensions import db
from market.payments.models import Payment, Refund


def order_refunds(order_id: int) -> list[Refund]:
    """The order's refunds, oldest first: owed (待退款) until finance sends a transfer's refund."""
    return list(
        db.session.scalars(
            select(Refund)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(Payment.order_id == order_id)
            .order_by(Refund.id)
        )
    )
