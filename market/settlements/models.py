"""Where the money goes after it came in (DESIGN.md §6b).

A SettlementEntry is one amount received (+) or refunded (−) for one order line, written in the
same transaction as the money, through market.payments.hook. Entries become *due* to the line's
co-op once its parcel is received, or SETTLE_AFTER_DAYS after shipping; cash taken at a pickup
only once finance confirmed the coordinator handed it over. A Statement (结算单) gathers a co-op's
due entries into one line per order line, subtracts the platform fee, carries a negative balance
forward, and never changes once issued; a Payout records the transfer that paid it.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.audit.models import register_append_only
from market.directory.models import Coop
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum
from market.orders.models import Order, OrderLine


class SettlementEntry(db.Model):
    __tablename__ = "settlement_entries"
    __table_args__ = (
        Index("ix_settlement_entries_coop_statement", "coop_id", "statement_id"),
        Index("ix_settlement_entries_order", "order_id"),
        Index("ix_settlement_entries_payment", "payment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    amount_fen: Mapped[int] = mapped_column(Integer)  # signed: refunds are negative
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set once, when the entry goes onto a statement.
    statement_id: Mapped[int | None] = mapped_column(ForeignKey("statements.id"))


class StatementStatus(enum.StrEnum):
    DRAFT = "draft"  # being assembled; never seen outside the transaction that issues it
    ISSUED = "issued"
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    PAID = "paid"


STATEMENT_STATUS_LABELS = {
    StatementStatus.DRAFT: _l("草稿"),
    StatementStatus.ISSUED: _l("待确认"),
    StatementStatus.CONFIRMED: _l("已确认"),
    StatementStatus.DISPUTED: _l("有异议"),
    StatementStatus.PAID: _l("已付款"),
}


class Statement(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("coop_id", "period_end"),
        CheckConstraint("received_fen >= 0 AND refunded_fen >= 0", name="amounts_nonnegative"),
        CheckConstraint("opening_balance_fen <= 0", name="opening_not_positive"),
        CheckConstraint("closing_balance_fen <= 0", name="closing_not_positive"),
        CheckConstraint("payable_fen >= 0", name="payable_nonnegative"),
        # What is payable, less what carries forward, is the opening balance plus this period.
        CheckConstraint(
            "payable_fen + closing_balance_fen"
            " = opening_balance_fen + received_fen - refunded_fen - fee_fen",
            name="balance_carries",
        ),
        Index("ix_statements_status", "status"),
    )

    TRANSITIONS: ClassVar[dict[StatementStatus, set[StatementStatus]]] = {
        StatementStatus.DRAFT: {StatementStatus.ISSUED},
        StatementStatus.ISSUED: {StatementStatus.CONFIRMED, StatementStatus.DISPUTED},
        # The co-op may withdraw its dispute; finance pays a disputed statement once resolved.
        StatementStatus.DISPUTED: {StatementStatus.CONFIRMED, StatementStatus.PAID},
        StatementStatus.CONFIRMED: {StatementStatus.PAID},
        StatementStatus.PAID: set(),
    }
    STATUS_LABELS = STATEMENT_STATUS_LABELS
    TRANSITION_MESSAGE = _l("结算单当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"), index=True)
    period_start: Mapped[date | None] = mapped_column(Date)  # the day after the last one
    period_end: Mapped[date] = mapped_column(Date)
    status: Mapped[StatementStatus] = mapped_column(
        text_enum(StatementStatus, "statement_status"), default=StatementStatus.DRAFT
    )
    received_fen: Mapped[int] = mapped_column(Integer, default=0)
    refunded_fen: Mapped[int] = mapped_column(Integer, default=0)
    fee_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points of the net
    fee_fen: Mapped[int] = mapped_column(Integer, default=0)
    opening_balance_fen: Mapped[int] = mapped_column(Integer, default=0)
    payable_fen: Mapped[int] = mapped_column(Integer, default=0)
    closing_balance_fen: Mapped[int] = mapped_column(Integer, default=0)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dispute_reason: Mapped[str] = mapped_column(String(500), default="")
    disputed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    coop: Mapped[Coop] = relationship()
    lines: Mapped[list[StatementLine]] = relationship(
        back_populates="statement", order_by="StatementLine.id"
    )
    payout: Mapped[Payout | None] = relationship(back_populates="statement", uselist=False)

    @property
    def net_fen(self) -> int:
        """This period's lines less the fee (negative when refunds outweigh sales)."""
        return self.received_fen - self.refunded_fen - self.fee_fen

    @property
    def needs_payout(self) -> bool:
        return self.payable_fen > 0 and self.status in (
            StatementStatus.CONFIRMED,
            StatementStatus.DISPUTED,
        )


class StatementLine(db.Model):
    """One order line on a statement: what came in and went back for it since the co-op's last
    statement. A refund after an earlier statement is a line with only `refunded_fen`."""

    __tablename__ = "statement_lines"
    __table_args__ = (
        CheckConstraint("received_fen >= 0 AND refunded_fen >= 0", name="amounts_nonnegative"),
        CheckConstraint(
            "payable_fen = received_fen - refunded_fen - fee_fen", name="payable_is_net"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    received_fen: Mapped[int] = mapped_column(Integer)
    refunded_fen: Mapped[int] = mapped_column(Integer)
    fee_fen: Mapped[int] = mapped_column(Integer)
    payable_fen: Mapped[int] = mapped_column(Integer)  # signed

    statement: Mapped[Statement] = relationship(back_populates="lines")
    order: Mapped[Order] = relationship()
    order_line: Mapped[OrderLine] = relationship()


class Payout(TimestampMixin, db.Model):
    """The transfer from the service centre to a co-op that paid one statement; at most one."""

    __tablename__ = "payouts"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), unique=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(100))
    paid_on: Mapped[date] = mapped_column(Date)
    proof_path: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(300), default="")
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    statement: Mapped[Statement] = relationship(back_populates="payout")
    coop: Mapped[Coop] = relationship()
    recorded_by: Mapped[User] = relationship()


# An issued statement never changes: its lines are written once, with the statement.
register_append_only(StatementLine)
