"""Unit purchases (以买代帮) and custom-product requests (产品定制)."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.catalog.models import Product, Sku
from market.directory.models import Coop, Unit
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum
from market.orders.models import Order


class Purpose(enum.StrEnum):
    CANTEEN = "canteen"
    WELFARE = "welfare"
    FESTIVAL = "festival"
    OTHER = "other"


PURPOSE_LABELS = {
    Purpose.CANTEEN: _l("食堂采购"),
    Purpose.WELFARE: _l("工会福利"),
    Purpose.FESTIVAL: _l("节日慰问"),
    Purpose.OTHER: _l("其他"),
}


class PurchaseStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


PURCHASE_STATUS_LABELS = {
    PurchaseStatus.DRAFT: _l("草稿"),
    PurchaseStatus.SUBMITTED: _l("待审批"),
    PurchaseStatus.APPROVED: _l("已批准"),
    PurchaseStatus.REJECTED: _l("已驳回"),
}


class UnitPurchase(StateMachine, TimestampMixin, db.Model):
    """A unit buys for its canteen, trade-union welfare or festival gifts: drafted by a
    coordinator, approved by another person of the unit, then ordered per co-op."""

    __tablename__ = "unit_purchases"

    TRANSITIONS: ClassVar[dict[PurchaseStatus, set[PurchaseStatus]]] = {
        PurchaseStatus.DRAFT: {PurchaseStatus.SUBMITTED},
        PurchaseStatus.SUBMITTED: {PurchaseStatus.APPROVED, PurchaseStatus.REJECTED},
        PurchaseStatus.REJECTED: {PurchaseStatus.DRAFT},  # revised and submitted again
        PurchaseStatus.APPROVED: set(),
    }

    STATUS_LABELS = PURCHASE_STATUS_LABELS
    TRANSITION_MESSAGE = _l("采购单当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[Purpose] = mapped_column(text_enum(Purpose, "purchase_purpose"))
    purpose_note: Mapped[str] = mapped_column(String(200), default="")
    recipient: Mapped[str] = mapped_column(String(60))
    phone: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(300))
    # The invoice the unit needs (发票抬头, 税号); kept with the orders.
    invoice_title: Mapped[str] = mapped_column(String(100))
    invoice_tax_id: Mapped[str] = mapped_column(String(30))
    pay_online: Mapped[bool] = mapped_column(default=False)
    status: Mapped[PurchaseStatus] = mapped_column(
        text_enum(PurchaseStatus, "purchase_status"), default=PurchaseStatus.DRAFT
    )
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_note: Mapped[str] = mapped_column(String(300), default="")

    unit: Mapped[Unit] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    lines: Mapped[list[UnitPurchaseLine]] = relationship(
        back_populates="purchase", cascade="all, delete-orphan", order_by="UnitPurchaseLine.id"
    )
    events: Mapped[list[PurchaseEvent]] = relationship(
        back_populates="purchase", cascade="all, delete-orphan", order_by="PurchaseEvent.id"
    )
    orders: Mapped[list[Order]] = relationship(secondary="unit_purchase_orders")

    @property
    def purpose_label(self) -> str:
        return str(PURPOSE_LABELS[self.purpose])

    @property
    def total_fen(self) -> int:
        return sum(line.sku.price_fen * line.quantity for line in self.lines)


class UnitPurchaseLine(db.Model):
    __tablename__ = "unit_purchase_lines"
    __table_args__ = (
        UniqueConstraint("purchase_id", "sku_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("unit_purchases.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    quantity: Mapped[int] = mapped_column(Integer)

    purchase: Mapped[UnitPurchase] = relationship(back_populates="lines")
    sku: Mapped[Sku] = relationship()


class UnitPurchaseOrder(db.Model):
    """The orders an approved purchase became: one per co-op."""

    __tablename__ = "unit_purchase_orders"

    purchase_id: Mapped[int] = mapped_column(ForeignKey("unit_purchases.id"), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True, unique=True)


class PurchaseEvent(db.Model):
    """The status timeline everyone involved sees."""

    __tablename__ = "purchase_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("unit_purchases.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(String(300))

    purchase: Mapped[UnitPurchase] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship()


class PurchaseTarget(db.Model):
    """A unit's own yearly target for buying from its paired villages (optional)."""

    __tablename__ = "purchase_targets"
    __table_args__ = (
        UniqueConstraint("unit_id", "year"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    year: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(Integer)


# -- custom products ---------------------------------------------------------------------------
class RequestStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"


class QuoteStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    DECLINED = "declined"


REQUEST_STATUS_LABELS = {
    RequestStatus.OPEN: _l("征集报价中"),
    RequestStatus.ACCEPTED: _l("已选定"),
    RequestStatus.CANCELLED: _l("已取消"),
}
QUOTE_STATUS_LABELS = {
    QuoteStatus.SUBMITTED: _l("已报价"),
    QuoteStatus.ACCEPTED: _l("已选中"),
    QuoteStatus.DECLINED: _l("未选中，已谢绝"),
}


class CustomRequest(StateMachine, TimestampMixin, db.Model):
    """A unit asks co-ops for a custom product (a gift box with its logo, say)."""

    __tablename__ = "custom_requests"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("budget_fen > 0", name="budget_positive"),
    )

    # Open for quotes until the unit accepts one (or calls it off).
    TRANSITIONS: ClassVar[dict[RequestStatus, set[RequestStatus]]] = {
        RequestStatus.OPEN: {RequestStatus.ACCEPTED, RequestStatus.CANCELLED},
        RequestStatus.ACCEPTED: set(),
        RequestStatus.CANCELLED: set(),
    }
    STATUS_LABELS = REQUEST_STATUS_LABELS
    TRANSITION_MESSAGE = _l("定制需求当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int] = mapped_column(Integer)
    budget_fen: Mapped[int] = mapped_column(Integer)  # per piece
    needed_by: Mapped[date] = mapped_column(Date)
    logo_path: Mapped[str | None] = mapped_column(String(200))
    card_text: Mapped[str] = mapped_column(String(300), default="")
    packaging: Mapped[str] = mapped_column(String(200), default="")
    # Where the goods go: the order's delivery (the co-op's 送货单) is made from these.
    recipient: Mapped[str] = mapped_column(String(60), default="", server_default="")
    phone: Mapped[str] = mapped_column(String(20), default="", server_default="")
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    # Co-ops of the unit's paired villages see it first; everyone once opened to all.
    open_to_all: Mapped[bool] = mapped_column(default=False)
    status: Mapped[RequestStatus] = mapped_column(
        text_enum(RequestStatus, "custom_request_status"), default=RequestStatus.OPEN
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))

    unit: Mapped[Unit] = relationship()
    created_by: Mapped[User] = relationship()
    quotes: Mapped[list[Quote]] = relationship(back_populates="request", order_by="Quote.id")
    order: Mapped[Order | None] = relationship()

    @property
    def accepted_quote(self) -> Quote | None:
        return next((q for q in self.quotes if q.status == QuoteStatus.ACCEPTED), None)


class Quote(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "quotes"
    __table_args__ = (
        UniqueConstraint("request_id", "coop_id"),
        CheckConstraint("unit_price_fen > 0", name="price_positive"),
        CheckConstraint("lead_time_days > 0", name="lead_time_positive"),
    )

    # Decided once, when the unit accepts one quote of the request: the others are declined.
    TRANSITIONS: ClassVar[dict[QuoteStatus, set[QuoteStatus]]] = {
        QuoteStatus.SUBMITTED: {QuoteStatus.ACCEPTED, QuoteStatus.DECLINED},
        QuoteStatus.ACCEPTED: set(),
        QuoteStatus.DECLINED: set(),
    }
    STATUS_LABELS = QUOTE_STATUS_LABELS
    TRANSITION_MESSAGE = _l("报价当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("custom_requests.id"), index=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    unit_price_fen: Mapped[int] = mapped_column(Integer)
    lead_time_days: Mapped[int] = mapped_column(Integer)
    sample_photo_path: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[QuoteStatus] = mapped_column(
        text_enum(QuoteStatus, "quote_status"), default=QuoteStatus.SUBMITTED
    )
    # The hidden product that carries the accepted quote into an ordinary order.
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))

    request: Mapped[CustomRequest] = relationship(back_populates="quotes")
    coop: Mapped[Coop] = relationship()
    product: Mapped[Product | None] = relationship()
