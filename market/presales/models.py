"""预售: a co-op sells a SKU's coming harvest before it is picked. A presale has a harvest window,
a price and a quantity limit; each buyer's reservation is paid through an ordinary order whose
lines hold no stock (the goods do not exist yet) and whose parcel waits for the harvest. When
the co-op announces what it harvested, reservations are served in the order they were paid;
the rest are refunded in full, or carried into the co-op's next presale of the SKU when the
buyer chose so."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.catalog.models import Sku
from market.directory.models import Coop, Unit
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum
from market.orders.models import Order

MAX_LIMIT = 1_000_000


class PaymentKind(enum.StrEnum):
    FULL = "full"  # the whole price when ordering
    DEPOSIT = "deposit"  # 定金 when ordering, 尾款 once the harvest is in


PAYMENT_KIND_LABELS = {
    PaymentKind.FULL: _l("全款预订"),
    PaymentKind.DEPOSIT: _l("定金预订"),
}


class PresaleStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # no more orders; waiting for the harvest
    HARVESTED = "harvested"
    FAILED = "failed"  # nothing harvested: every paid reservation refunded or rolled over
    DONE = "done"


PRESALE_STATUS_LABELS = {
    PresaleStatus.OPEN: _l("预订中"),
    PresaleStatus.CLOSED: _l("已截止预订"),
    PresaleStatus.HARVESTED: _l("已采收发货"),
    PresaleStatus.FAILED: _l("歉收"),
    PresaleStatus.DONE: _l("预售已结束"),
}


class ReservationStatus(enum.StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    RESERVED = "reserved"  # paid: waiting for the harvest
    SERVED = "served"  # harvested for it: its parcel may ship
    REFUNDED = "refunded"
    ROLLED_OVER = "rolled_over"  # carried into the next season's presale
    CANCELLED = "cancelled"  # never paid: its order expired or was cancelled


RESERVATION_STATUS_LABELS = {
    ReservationStatus.AWAITING_PAYMENT: _l("待付款"),
    ReservationStatus.RESERVED: _l("已预订 · 待采收"),
    ReservationStatus.SERVED: _l("已安排发货"),
    ReservationStatus.REFUNDED: _l("未能供货 · 已全额退款"),
    ReservationStatus.ROLLED_OVER: _l("顺延到下一季"),
    ReservationStatus.CANCELLED: _l("未付款 · 已取消"),
}
# A served deposit reservation whose 尾款 lapsed (cancelled, its deposit refunded in full).
BALANCE_LAPSED_LABEL = _l("尾款逾期 · 定金已全额退款")


class Presale(StateMachine, TimestampMixin, db.Model):
    """open -> closed -> harvested | failed; harvested -> done. The reserved quantity never
    passes the limit (a CHECK, and one conditional UPDATE per reservation)."""

    __tablename__ = "presales"
    __table_args__ = (
        CheckConstraint("price_fen > 0", name="price_positive"),
        CheckConstraint("limit_quantity > 0", name="limit_positive"),
        CheckConstraint(
            "reserved_quantity >= 0 AND reserved_quantity <= limit_quantity",
            name="reserved_within_limit",
        ),
        CheckConstraint("harvest_to >= harvest_from", name="window_ordered"),
        CheckConstraint(
            "(payment_kind = 'full' AND deposit_fen IS NULL) OR (payment_kind = 'deposit' "
            "AND deposit_fen > 0 AND deposit_fen < price_fen)",
            name="deposit_below_price",
        ),
        CheckConstraint(
            "harvested_quantity IS NULL OR harvested_quantity >= 0",
            name="harvested_nonnegative",
        ),
        Index("ix_presales_sku_status", "sku_id", "status"),
    )

    TRANSITIONS: ClassVar[dict[PresaleStatus, set[PresaleStatus]]] = {
        PresaleStatus.OPEN: {PresaleStatus.CLOSED, PresaleStatus.HARVESTED, PresaleStatus.FAILED},
        PresaleStatus.CLOSED: {PresaleStatus.HARVESTED, PresaleStatus.FAILED},
        PresaleStatus.HARVESTED: {PresaleStatus.DONE},
        PresaleStatus.FAILED: set(),
        PresaleStatus.DONE: set(),
    }
    STATUS_LABELS = PRESALE_STATUS_LABELS
    TRANSITION_MESSAGE = _l("预售当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    sku_id: Mapped[int] = mapped_column(ForeignKey("skus.id"))
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"), index=True)
    harvest_from: Mapped[date] = mapped_column(Date)
    harvest_to: Mapped[date] = mapped_column(Date)
    price_fen: Mapped[int] = mapped_column(Integer)
    payment_kind: Mapped[PaymentKind] = mapped_column(
        text_enum(PaymentKind, "presale_payment_kind"), default=PaymentKind.FULL
    )
    # 定金 per unit (deposit presales only): paid when ordering; the rest once harvested.
    deposit_fen: Mapped[int | None] = mapped_column(Integer)
    limit_quantity: Mapped[int] = mapped_column(Integer)
    reserved_quantity: Mapped[int] = mapped_column(Integer, default=0)
    harvested_quantity: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[PresaleStatus] = mapped_column(
        text_enum(PresaleStatus, "presale_status"), default=PresaleStatus.OPEN, index=True
    )
    rolled_over_from_id: Mapped[int | None] = mapped_column(ForeignKey("presales.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    sku: Mapped[Sku] = relationship()
    coop: Mapped[Coop] = relationship()
    rolled_over_from: Mapped[Presale | None] = relationship(remote_side=[id])

    @property
    def available(self) -> int:
        return max(self.limit_quantity - self.reserved_quantity, 0)

    @property
    def is_open(self) -> bool:
        return self.status == PresaleStatus.OPEN

    @property
    def group_buyable(self) -> bool:
        """A unit may open a group-buy of it (market/groupbuy/presale.py): open, paid in full."""
        return self.is_open and not self.takes_deposit

    @property
    def takes_deposit(self) -> bool:
        return self.payment_kind == PaymentKind.DEPOSIT

    @property
    def balance_fen(self) -> int:
        """尾款 per unit (0 for a full-payment presale)."""
        return self.price_fen - self.deposit_fen if self.takes_deposit and self.deposit_fen else 0

    @property
    def payment_kind_label(self) -> str:
        return str(PAYMENT_KIND_LABELS[self.payment_kind])


class PresaleReservation(StateMachine, TimestampMixin, db.Model):
    """A buyer's share of a presale, paid through `order` (its lines hold no stock; its parcel
    waits for the harvest). `paid_at` is the place in the queue at the harvest."""

    __tablename__ = "presale_reservations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_presale_reservations_presale_status", "presale_id", "status"),
    )

    TRANSITIONS: ClassVar[dict[ReservationStatus, set[ReservationStatus]]] = {
        ReservationStatus.AWAITING_PAYMENT: {
            ReservationStatus.RESERVED,
            ReservationStatus.CANCELLED,
        },
        ReservationStatus.RESERVED: {
            ReservationStatus.SERVED,
            ReservationStatus.REFUNDED,
            ReservationStatus.ROLLED_OVER,
        },
        # A deposit's 尾款 not paid by its deadline: the deposit is refunded in full.
        ReservationStatus.SERVED: {ReservationStatus.CANCELLED},
        ReservationStatus.REFUNDED: set(),
        ReservationStatus.ROLLED_OVER: set(),
        ReservationStatus.CANCELLED: set(),
    }
    STATUS_LABELS = RESERVATION_STATUS_LABELS
    TRANSITION_MESSAGE = _l("预订当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    presale_id: Mapped[int] = mapped_column(ForeignKey("presales.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The unit a coordinator ordered for (paid by bank transfer; attributed to the unit).
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    # 定金 per unit paid through `order` (None: `order` paid the full price).
    deposit_fen: Mapped[int | None] = mapped_column(Integer)
    # The 尾款 order placed at the harvest for a served deposit reservation; its parcel carries
    # the goods and ships once it is paid (the deposit order's parcel follows it, holding none).
    balance_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), unique=True)
    # The buyer's choice at ordering, should the harvest fall short: 顺延到下一季 or 全额退款.
    rollover_wanted: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ReservationStatus] = mapped_column(
        text_enum(ReservationStatus, "presale_reservation_status"),
        default=ReservationStatus.AWAITING_PAYMENT,
    )
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A reservation carried from last season's presale (one carry per rolled-over reservation).
    rolled_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("presale_reservations.id"), unique=True
    )

    presale: Mapped[Presale] = relationship()
    buyer: Mapped[User] = relationship()
    unit: Mapped[Unit | None] = relationship()
    order: Mapped[Order] = relationship(foreign_keys=[order_id])
    balance_order: Mapped[Order | None] = relationship(foreign_keys=[balance_order_id])

    @property
    def shown_status_label(self) -> str:
        if self.status == ReservationStatus.CANCELLED and self.balance_order_id is not None:
            return str(BALANCE_LAPSED_LABEL)
        return self.status_label
