"""The ledger. Every amount received or refunded for an order line becomes one AttributionEntry,
appended and never changed; rollups, kept in the same transaction, make the dashboards fast."""

from __future__ import annotations

import enum
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.audit.models import protect_table, register_append_only
from market.directory.models import Unit
from market.extensions import db
from market.models import TimestampMixin, UTCDateTime, text_enum


class Basis(enum.StrEnum):
    UNIT_ORDER = "unit_order"  # the order was placed for the unit (group-buy, purchase, custom)
    MEMBER = "member"  # the buyer was a confirmed member of the unit then
    REFERRAL = "referral"  # the buyer came through the unit's link in the last 30 days
    NONE = "none"  # counted for the village only


BASIS_LABELS = {
    Basis.UNIT_ORDER: _l("单位订单"),
    Basis.MEMBER: _l("单位职工"),
    Basis.REFERRAL: _l("推广链接"),
    Basis.NONE: _l("未归属"),
}


class Campaign(TimestampMixin, db.Model):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("ends_on >= starts_on", name="ends_after_start"),
        CheckConstraint(
            "laggard_threshold_pct >= 0 AND laggard_threshold_pct <= 100", name="threshold_pct"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    # Only purchases from the unit's own paired villages count toward its target.
    paired_only: Mapped[bool] = mapped_column(Boolean, default=False)
    # Units below this share of their pro-rated target are listed for a reminder talk.
    laggard_threshold_pct: Mapped[int] = mapped_column(Integer, default=60)

    targets: Mapped[list[UnitTarget]] = relationship(back_populates="campaign")


class UnitTarget(db.Model):
    __tablename__ = "unit_targets"
    __table_args__ = (
        UniqueConstraint("campaign_id", "unit_id"),
        CheckConstraint("amount_fen >= 0", name="amount_nonnegative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    amount_fen: Mapped[int] = mapped_column(Integer)

    campaign: Mapped[Campaign] = relationship(back_populates="targets")
    unit: Mapped[Unit] = relationship()


class AttributionEntry(db.Model):
    __tablename__ = "attribution_entries"
    __table_args__ = (
        Index("ix_attribution_campaign_unit", "campaign_id", "unit_id"),
        Index("ix_attribution_order", "order_id"),
        Index("ix_attribution_line", "order_line_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"))
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    mode: Mapped[str] = mapped_column(String(20))
    basis: Mapped[Basis] = mapped_column(text_enum(Basis, "attribution_basis"))
    paired: Mapped[bool] = mapped_column(Boolean)
    amount_fen: Mapped[int] = mapped_column(Integer)  # signed: refunds are negative
    quantity: Mapped[int] = mapped_column(Integer)  # signed like the amount
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)  # the Shanghai calendar day of `at`


# Entries are never updated or deleted: the ORM refuses, and PostgreSQL refuses by trigger.
register_append_only(AttributionEntry)
protect_table(AttributionEntry.__table__)


class AttributionRollup(db.Model):
    """Sums of the ledger by everything the dashboards group or filter on. unit_id 0 and
    campaign_id 0 stand for 'none', so that the unique key works on every database."""

    __tablename__ = "attribution_rollups"
    __table_args__ = (
        UniqueConstraint(
            "campaign_id",
            "unit_id",
            "village_id",
            "coop_id",
            "category_id",
            "mode",
            "paired",
            "day",
            name="uq_attribution_rollups_key",
        ),
        Index("ix_attribution_rollups_campaign_day", "campaign_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)
    unit_id: Mapped[int] = mapped_column(Integer)
    village_id: Mapped[int] = mapped_column(Integer)
    coop_id: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(20))
    paired: Mapped[bool] = mapped_column(Boolean)
    day: Mapped[date] = mapped_column(Date)
    amount_fen: Mapped[int] = mapped_column(Integer, default=0)
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    entries: Mapped[int] = mapped_column(Integer, default=0)


class ReferralVisit(db.Model):
    __tablename__ = "referral_visits"
    __table_args__ = (Index("ix_referral_visits_unit_at", "unit_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
