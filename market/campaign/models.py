"""The ledger. Every amount received or refunded for an order line becomes one AttributionEntry,
appended and never changed; rollups, kept in the same transaction, make the dashboards fast."""

from __future__ import annotations

import enum
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger,
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


# What a fine rollup row sums over: its unique key (the ledger adds to it by this key).
ROLLUP_KEY = (
    "campaign_id",
    "unit_id",
    "village_id",
    "coop_id",
    "category_id",
    "mode",
    "paired",
    "day",
)


class AttributionRollup(db.Model):
    """Sums of the ledger by everything the dashboards group or filter on. unit_id 0 and
    campaign_id 0 stand for 'none', so that the unique key works on every database."""

    __tablename__ = "attribution_rollups"
    __table_args__ = (
        UniqueConstraint(*ROLLUP_KEY, name="uq_attribution_rollups_key"),
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


# -- dashboard rollups: one row per figure the default dashboard shows, never per entry ----------
# The fine rollup above grows with the ledger (its key has the day, the co-op, the category...).
# These are keyed only by what the organizer's default dashboard, the laggard list, a unit's page
# and the public page show, so that their size is bounded by the directory (units, villages,
# categories, products, days of the campaign), not by the number of entries. Written in the same
# transaction as the entries (market.campaign.rollups); entries without a campaign are left out.
# Sums are BIGINT: a category's or a busy unit's year can pass 2^31 fen (¥21 million).


class Distinct(enum.StrEnum):
    """What an AttributionFirst row stands for: the first sale (amount > 0) of ..."""

    ORDER = "order"  # ... an order credited to the unit
    BUYER = "buyer"  # ... a buyer credited to the unit
    REFERRAL_ORDER = "referral_order"  # ... an order credited through the unit's referral link
    OWN_BUYER = "own_buyer"  # ... a buyer, with own money (not a unit purchase or custom order)
    CAMPAIGN_ORDER = "campaign_order"  # ... an order in the campaign (unit_id 0: any unit or none)
    CAMPAIGN_BUYER = "campaign_buyer"  # ... a buyer in the campaign (unit_id 0)


class AttributionFirst(db.Model):
    """An order or a buyer seen once per (campaign, kind, unit): inserted with ON CONFLICT DO
    NOTHING, and when a row is new its AttributionCount goes up by one."""

    __tablename__ = "attribution_firsts"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # an order or a user


class AttributionCount(db.Model):
    """How many AttributionFirst rows a (campaign, kind, unit) has: distinct orders and buyers
    without counting them."""

    __tablename__ = "attribution_counts"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(Integer, default=0)


class UnitTotal(db.Model):
    """A unit's sums over the whole campaign (unit_id 0: sales credited to no unit)."""

    __tablename__ = "attribution_unit_totals"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paired_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    referral_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # basis `referral`


class UnitDayTotal(db.Model):
    """A unit's sums per day: the laggard list subtracts the days after the chosen one from the
    unit's totals (few rows, since the chosen day is usually today)."""

    __tablename__ = "attribution_unit_days"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    paired_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class VillageTotal(db.Model):
    __tablename__ = "attribution_village_totals"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    attributed_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # credited to some unit
    paired_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)


class CategoryTotal(db.Model):
    __tablename__ = "attribution_category_totals"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)


class ProductTotal(db.Model):
    __tablename__ = "attribution_product_totals"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)


class DayTotal(db.Model):
    __tablename__ = "attribution_day_totals"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class ReferralVisit(db.Model):
    __tablename__ = "referral_visits"
    __table_args__ = (Index("ix_referral_visits_unit_at", "unit_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
