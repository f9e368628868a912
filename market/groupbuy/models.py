"""Group-buys. A coordinator proposes one for a co-op's SKUs; the co-op accepts its prices, caps and
dates (or declines); employees join the open group-buy with a quantity; at the deadline it closes
by itself: reached -> everyone pays the tier price reached; not reached -> everyone's money is
released. Before the deadline the coordinator, the co-op or an organizer may cancel it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.catalog.models import Sku
from market.directory.models import Coop, Unit
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum, utcnow
from market.orders.models import Order
from market.presales.models import Presale


class GroupBuyStatus(enum.StrEnum):
    PROPOSED = "proposed"  # waiting for the co-op to accept its prices, caps and dates
    DECLINED = "declined"  # the co-op said no (with a reason): it never opened
    OPEN = "open"
    CLOSING = "closing"  # claimed by a closer; participants being charged or released
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # called off before the deadline: all money and stock released


class PaymentMode(enum.StrEnum):
    CARD = "card"  # authorised (or charged) when joining
    PICKUP = "pickup"  # paid at pickup (offline provider)


class Visibility(enum.StrEnum):
    MEMBERS = "members"  # confirmed members of the unit
    LINK = "link"  # anyone signed in who has the link


class ParticipationStatus(enum.StrEnum):
    ACTIVE = "active"
    SETTLING = "settling"  # claimed by the closer
    READY = "ready"  # reached and charged: ready for pickup
    PICKED_UP = "picked_up"
    LEFT = "left"
    RELEASED = "released"  # not reached, or its card never authorised: money released


GROUP_BUY_STATUS_LABELS = {
    GroupBuyStatus.PROPOSED: _l("待合作社确认"),
    GroupBuyStatus.DECLINED: _l("合作社已拒绝"),
    GroupBuyStatus.OPEN: _l("进行中"),
    GroupBuyStatus.CLOSING: _l("结算中"),
    GroupBuyStatus.SUCCEEDED: _l("已成团"),
    GroupBuyStatus.FAILED: _l("未成团"),
    GroupBuyStatus.CANCELLED: _l("已取消"),
}
PARTICIPATION_STATUS_LABELS = {
    ParticipationStatus.ACTIVE: _l("已参团"),
    ParticipationStatus.SETTLING: _l("结算中"),
    ParticipationStatus.READY: _l("待取货"),
    ParticipationStatus.PICKED_UP: _l("已取货"),
    ParticipationStatus.LEFT: _l("已退出"),
    ParticipationStatus.RELEASED: _l("未结算（未扣款或已全额退款）"),  # not charged, or refunded
}
# A ready participation before its parcel is at the pickup point.
AWAITING_SHIPMENT = _l("已成团 · 待发货")
IN_TRANSIT = _l("已发货 · 待到货")


class GroupBuy(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "group_buys"
    __table_args__ = (
        Index("ix_group_buys_status_closes", "status", "closes_at"),
        CheckConstraint("min_quantity > 0", name="min_quantity_positive"),
        CheckConstraint("closes_at > opens_at", name="closes_after_opening"),
    )

    # Only a co-op's acceptance opens a group-buy; cancelling is possible until the closer
    # claims it (CLOSING), never afterwards.
    TRANSITIONS: ClassVar[dict[GroupBuyStatus, set[GroupBuyStatus]]] = {
        GroupBuyStatus.PROPOSED: {
            GroupBuyStatus.OPEN,
            GroupBuyStatus.DECLINED,
            GroupBuyStatus.CANCELLED,
        },
        GroupBuyStatus.OPEN: {GroupBuyStatus.CLOSING, GroupBuyStatus.CANCELLED},
        GroupBuyStatus.CLOSING: {GroupBuyStatus.SUCCEEDED, GroupBuyStatus.FAILED},
        GroupBuyStatus.SUCCEEDED: set(),
        GroupBuyStatus.FAILED: set(),
        GroupBuyStatus.DECLINED: set(),
        GroupBuyStatus.CANCELLED: set(),
    }

    STATUS_LABELS = GROUP_BUY_STATUS_LABELS
    TRANSITION_MESSAGE = _l("团购当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    min_quantity: Mapped[int] = mapped_column(Integer)
    payment_mode: Mapped[PaymentMode] = mapped_column(text_enum(PaymentMode, "groupbuy_payment"))
    visibility: Mapped[Visibility] = mapped_column(text_enum(Visibility, "groupbuy_visibility"))
    pickup_address: Mapped[str] = mapped_column(String(200))
    pickup_contact: Mapped[str] = mapped_column(String(100))
    pickup_window: Mapped[str] = mapped_column(String(100))
    status: Mapped[GroupBuyStatus] = mapped_column(
        text_enum(GroupBuyStatus, "groupbuy_status"), default=GroupBuyStatus.PROPOSED
    )
    # The co-op's answer to the proposal: accepted (who, when), or declined with a reason.
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decline_reason: Mapped[str] = mapped_column(String(300), default="", server_default="")
    # Called off before the deadline by the coordinator, the co-op or an organizer.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str] = mapped_column(String(300), default="", server_default="")
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    reached_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    # The closer's lease: who holds it ("host:pid") and when it last renewed it (each
    # participant it settles). An expired lease, or a holder on this host that no longer
    # runs, is taken over by the next closer (market/groupbuy/closing.py).
    closing_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closing_owner: Mapped[str] = mapped_column(String(80), default="", server_default="")
    # The quantity the tier and the minimum were decided on, once, at closing; a resumed
    # closing keeps that decision (GroupBuyItem.settled_price_fen).
    decided_quantity: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reached_quantity: Mapped[int | None] = mapped_column(Integer)
    # The co-op's one consolidated parcel to the pickup point.
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    carrier: Mapped[str] = mapped_column(String(40), default="")
    tracking_number: Mapped[str] = mapped_column(String(60), default="")
    # The coordinator saw the parcel arrive at the pickup point: pickups may start.
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    unit: Mapped[Unit] = relationship()
    coop: Mapped[Coop] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    accepted_by: Mapped[User | None] = relationship(foreign_keys=[accepted_by_id])
    cancelled_by: Mapped[User | None] = relationship(foreign_keys=[cancelled_by_id])
    items: Mapped[list[GroupBuyItem]] = relationship(
        back_populates="group_buy", cascade="all, delete-orphan", order_by="GroupBuyItem.id"
    )
    participations: Mapped[list[Participation]] = relationship(
        back_populates="group_buy", order_by="Participation.id"
    )

    @property
    def total_quantity(self) -> int:
        return sum(item.joined_quantity for item in self.items)

    def is_open_at(self, moment: datetime) -> bool:
        return self.status == GroupBuyStatus.OPEN and self.opens_at <= moment < self.closes_at

    @property
    def is_open_now(self) -> bool:
        return self.is_open_at(utcnow())

    @property
    def awaits_coop(self) -> bool:
        """A proposal the co-op can still accept: its closing time has not passed."""
        return self.status == GroupBuyStatus.PROPOSED and utcnow() < self.closes_at

    @property
    def cancellable(self) -> bool:
        """Proposed or open, before the deadline (afterwards the outcome is the closer's)."""
        return (
            self.status in (GroupBuyStatus.PROPOSED, GroupBuyStatus.OPEN)
            and utcnow() < self.closes_at
        )

    @property
    def pickups_started(self) -> bool:
        """The consolidated parcel is at the pickup point: 可以取货了."""
        return self.arrived_at is not None

    def next_tier_threshold(self) -> int | None:
        """The smallest tier threshold (over all items) above the current total, if any."""
        total = self.total_quantity
        thresholds = sorted(
            {t.min_total_quantity for item in self.items for t in item.tiers} | {self.min_quantity}
        )
        return next((t for t in thresholds if t > total), None)


class GroupBuyItem(db.Model):
    __tablename__ = "group_buy_items"
    __table_args__ = (
        UniqueConstraint("group_buy_id", "sku_id"),
        CheckConstraint("price_fen > 0", name="price_positive"),
        CheckConstraint("cap IS NULL OR cap > 0", name="cap_positive"),
        CheckConstraint(
            "joined_quantity >= 0 AND (cap IS NULL OR joined_quantity <= cap)",
            name="joined_within_cap",
        ),
        CheckConstraint("reserved_stock >= 0", name="reserved_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_buy_id: Mapped[int] = mapped_column(ForeignKey("group_buys.id"), index=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    # The group-buy price before any tier is reached: the most a participant may pay.
    price_fen: Mapped[int] = mapped_column(Integer)
    cap: Mapped[int | None] = mapped_column(Integer)
    # Stock taken from the SKU for the cap when the group-buy opened; what is unsold goes back.
    reserved_stock: Mapped[int] = mapped_column(Integer, default=0)
    # Sum of active participations' quantities, kept with conditional UPDATEs.
    joined_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # The tier price every participant pays, decided at closing (None before).
    settled_price_fen: Mapped[int | None] = mapped_column(Integer)
    # A presale (预售) item: the cap is claimed from the presale's limit when the co-op accepts,
    # not from today's stock; each paid participant becomes a reservation at closing and the
    # consolidated parcel leaves once the harvest is in (market/groupbuy/presale.py).
    presale_id: Mapped[int | None] = mapped_column(ForeignKey("presales.id"), index=True)

    group_buy: Mapped[GroupBuy] = relationship(back_populates="items")
    sku: Mapped[Sku] = relationship()
    presale: Mapped[Presale | None] = relationship()
    tiers: Mapped[list[GroupBuyTier]] = relationship(
        back_populates="item",
        cascade="all, delete-orphan",
        order_by="GroupBuyTier.min_total_quantity",
    )

    def price_at(self, total_quantity: int) -> int:
        """The price once the group-buy's total reaches `total_quantity`."""
        price = self.price_fen
        for tier in self.tiers:
            if total_quantity >= tier.min_total_quantity:
                price = tier.price_fen
        return price


class GroupBuyTier(db.Model):
    """From `min_total_quantity` (all items of the group-buy together), this item costs
    `price_fen`."""

    __tablename__ = "group_buy_tiers"
    __table_args__ = (
        UniqueConstraint("item_id", "min_total_quantity"),
        CheckConstraint("min_total_quantity > 0", name="threshold_positive"),
        CheckConstraint("price_fen > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("group_buy_items.id"), index=True)
    min_total_quantity: Mapped[int] = mapped_column(Integer)
    price_fen: Mapped[int] = mapped_column(Integer)

    item: Mapped[GroupBuyItem] = relationship(back_populates="tiers")


class Participation(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "participations"
    __table_args__ = (
        UniqueConstraint("group_buy_id", "user_id"),
        Index("ix_participations_group_buy_status", "group_buy_id", "status"),
    )

    # Joined -> claimed by the closer -> charged (ready) -> picked up; or released (cancelled,
    # not reached, card never secured, or too little left after failed captures). Someone who
    # left may join again while the group-buy is open.
    TRANSITIONS: ClassVar[dict[ParticipationStatus, set[ParticipationStatus]]] = {
        ParticipationStatus.ACTIVE: {
            ParticipationStatus.SETTLING,
            ParticipationStatus.LEFT,
            ParticipationStatus.RELEASED,
        },
        ParticipationStatus.SETTLING: {ParticipationStatus.READY, ParticipationStatus.RELEASED},
        ParticipationStatus.READY: {ParticipationStatus.PICKED_UP, ParticipationStatus.RELEASED},
        ParticipationStatus.LEFT: {ParticipationStatus.ACTIVE},
        ParticipationStatus.PICKED_UP: set(),
        ParticipationStatus.RELEASED: set(),
    }
    STATUS_LABELS = PARTICIPATION_STATUS_LABELS
    TRANSITION_MESSAGE = _l("参团记录当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    group_buy_id: Mapped[int] = mapped_column(ForeignKey("group_buys.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[ParticipationStatus] = mapped_column(
        text_enum(ParticipationStatus, "participation_status"),
        default=ParticipationStatus.ACTIVE,
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    picked_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    group_buy: Mapped[GroupBuy] = relationship(back_populates="participations")
    user: Mapped[User] = relationship()
    order: Mapped[Order | None] = relationship()
    lines: Mapped[list[ParticipationLine]] = relationship(
        back_populates="participation",
        cascade="all, delete-orphan",
        order_by="ParticipationLine.id",
    )

    @property
    def status_label(self) -> str:
        """Honest about the parcel: a ready participation says 待取货 only once the co-op's
        consolidated parcel has arrived at the pickup point."""
        if self.status == ParticipationStatus.READY and not self.group_buy.pickups_started:
            return str(AWAITING_SHIPMENT if self.group_buy.shipped_at is None else IN_TRANSIT)
        return str(self.STATUS_LABELS[self.status])

    @property
    def quantity(self) -> int:
        return sum(line.quantity for line in self.lines)


class ParticipationLine(db.Model):
    __tablename__ = "participation_lines"
    __table_args__ = (
        UniqueConstraint("participation_id", "item_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participation_id: Mapped[int] = mapped_column(ForeignKey("participations.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("group_buy_items.id"))
    quantity: Mapped[int] = mapped_column(Integer)

    participation: Mapped[Participation] = relationship(back_populates="lines")
    item: Mapped[GroupBuyItem] = relationship()
