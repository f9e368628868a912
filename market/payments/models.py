"""Money records. A Payment is one attempt to collect an order's total through one provider; a
Refund gives part of a received payment back. Webhook events are kept to process each once."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum
from market.orders.models import Order, OrderLine


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"  # created; waiting for the buyer, the card network or the transfer
    AUTHORIZED = "authorized"  # card authorised, to be captured (manual capture)
    SUCCEEDED = "succeeded"  # money received
    FAILED = "failed"
    CANCELLED = "cancelled"


class RefundStatus(enum.StrEnum):
    # Decided and owed to the buyer (待退款): a bank transfer that finance has still to send.
    PENDING = "pending"
    SUCCEEDED = "succeeded"  # the money has left: the provider confirmed it, or finance sent it
    FAILED = "failed"


REFUND_STATUS_LABELS = {
    RefundStatus.PENDING: _l("待退款"),
    RefundStatus.SUCCEEDED: _l("已退款"),
    RefundStatus.FAILED: _l("退款失败"),
}


PAYMENT_STATUS_LABELS = {
    PaymentStatus.PENDING: _l("待支付"),
    PaymentStatus.AUTHORIZED: _l("已授权"),
    PaymentStatus.SUCCEEDED: _l("已收款"),
    PaymentStatus.FAILED: _l("支付失败"),
    PaymentStatus.CANCELLED: _l("已撤销"),
}


class Payment(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "provider_ref"),
        Index("ix_payments_status_provider", "status", "provider"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint(
            "received_fen >= 0 AND received_fen <= amount_fen", name="received_within_amount"
        ),
        CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= received_fen", name="refund_within_received"
        ),
    )

    TRANSITIONS: ClassVar[dict[PaymentStatus, set[PaymentStatus]]] = {
        PaymentStatus.PENDING: {
            PaymentStatus.AUTHORIZED,
            PaymentStatus.SUCCEEDED,
            PaymentStatus.FAILED,
            PaymentStatus.CANCELLED,
        },
        PaymentStatus.AUTHORIZED: {PaymentStatus.SUCCEEDED, PaymentStatus.CANCELLED},
        # The buyer tries another card; or the provider later reports money after all.
        PaymentStatus.FAILED: {
            PaymentStatus.PENDING,
            PaymentStatus.AUTHORIZED,
            PaymentStatus.SUCCEEDED,
            PaymentStatus.CANCELLED,
        },
        PaymentStatus.SUCCEEDED: set(),
        PaymentStatus.CANCELLED: set(),
    }

    STATUS_LABELS = PAYMENT_STATUS_LABELS
    TRANSITION_MESSAGE = _l("支付当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    # PaymentIntent id for Stripe; our own reference for a bank transfer.
    provider_ref: Mapped[str] = mapped_column(String(100))
    status: Mapped[PaymentStatus] = mapped_column(
        text_enum(PaymentStatus, "payment_status"), default=PaymentStatus.PENDING
    )
    amount_fen: Mapped[int] = mapped_column(Integer)
    received_fen: Mapped[int] = mapped_column(Integer, default=0)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    failure_message: Mapped[str] = mapped_column(String(300), default="")
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bank transfers: who confirmed the money arrived, with the bank's reference and date.
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    transfer_reference: Mapped[str] = mapped_column(String(100), default="")
    transfer_date: Mapped[date | None] = mapped_column(Date)
    # An optional photo of the bank slip (回单), checked like every upload.
    proof_path: Mapped[str | None] = mapped_column(String(200))
    # Cash taken at a group-buy's pickup: held by the coordinator who ticked it off, owed by
    # that unit to the service centre until finance confirms the hand-over.
    cash_holder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    cash_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    cash_handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cash_handover_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Who settles this payment now: "" for anyone (return page, webhook, reconciler); a group-buy
    # closer that has claimed it ("groupbuy-closing") settles it itself, step by step.
    held_by: Mapped[str] = mapped_column(String(40), default="", server_default="")
    cash_handover_reference: Mapped[str] = mapped_column(String(100), default="", server_default="")

    order: Mapped[Order] = relationship()
    confirmed_by: Mapped[User | None] = relationship(foreign_keys=[confirmed_by_id])
    cash_holder: Mapped[User | None] = relationship(foreign_keys=[cash_holder_id])
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment", order_by="Refund.id")

    @property
    def refundable_fen(self) -> int:
        return self.received_fen - self.refunded_fen

    @property
    def cash_outstanding(self) -> bool:
        return self.cash_holder_id is not None and self.cash_handed_over_at is None


class Refund(StateMachine, TimestampMixin, db.Model):
    """Money given back. It is decided (the ledger reverses the sale then) and, for a card,
    sent by the provider at once; a bank transfer's refund stays owed (待退款) until finance
    records the outgoing transfer with the bank's reference."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        Index("ix_refunds_status", "status"),
    )

    TRANSITIONS: ClassVar[dict[RefundStatus, set[RefundStatus]]] = {
        RefundStatus.PENDING: {RefundStatus.SUCCEEDED, RefundStatus.FAILED},
        RefundStatus.SUCCEEDED: set(),
        RefundStatus.FAILED: set(),
    }
    STATUS_LABELS = REFUND_STATUS_LABELS
    TRANSITION_MESSAGE = _l("退款当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    order_line_id: Mapped[int | None] = mapped_column(ForeignKey("order_lines.id"))
    amount_fen: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[RefundStatus] = mapped_column(
        text_enum(RefundStatus, "refund_status"), default=RefundStatus.PENDING
    )
    provider_ref: Mapped[str] = mapped_column(String(100), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The outgoing bank transfer of an offline refund, recorded by finance.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sent_reference: Mapped[str] = mapped_column(String(100), default="", server_default="")
    sent_date: Mapped[date | None] = mapped_column(Date)
    proof_path: Mapped[str | None] = mapped_column(String(200))

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    order_line: Mapped[OrderLine | None] = relationship()
    sent_by: Mapped[User | None] = relationship(foreign_keys=[sent_by_id])


class WebhookEvent(db.Model):
    """A provider event we have processed; a replay with the same id changes nothing."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProviderReconciliation(db.Model):
    """One run of the reconciliation against a card provider (`flask payments reconcile
    --against-provider`, daily from Celery beat): how many payments it checked, the refunds it
    found at the provider and recorded, and every difference, for the organizer's page. Each
    difference is a dict: order, payment_id, kind, detail, shop_fen, provider_fen, explained."""

    __tablename__ = "provider_reconciliations"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    run_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    checked: Mapped[int] = mapped_column(Integer)
    recorded_refunds: Mapped[int] = mapped_column(Integer)
    unexplained: Mapped[int] = mapped_column(Integer)
    differences: Mapped[list[dict]] = mapped_column(JSON)
