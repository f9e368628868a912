"""What every audience of the campaign's read side shares: the filters (a campaign, a date range,
a mode, a town), the slices of the rollups and of the ledger they select, the distinct counters,
and choosing a campaign.

The default view (the whole campaign, no filter) reads the dashboard rollups, whose size is bounded
by the directory and the campaign's days, not by the number of entries. Filters by mode or town read
the fine AttributionRollup (one row per unit, village, co-op, category, mode, paired flag and day),
and with any filter the distinct orders and buyers are counted over the ledger itself: a count of
distinct orders in an arbitrary slice cannot be added up from coarser rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, case, func, select

from market.campaign.models import (
    AttributionCount,
    AttributionEntry,
    AttributionRollup,
    Campaign,
    Distinct,
)
from market.directory.models import Town, Village
from market.extensions import db

R = AttributionRollup


@dataclass(frozen=True)
class Filters:
    campaign_id: int
    start: date | None = None
    end: date | None = None
    mode: str | None = None
    town_id: int | None = None

    @property
    def whole_campaign(self) -> bool:
        """No filter at all: the dashboard rollups answer every figure."""
        return not (self.start or self.end or self.mode or self.town_id)

    @property
    def days_only(self) -> bool:
        """At most a date range: the per-day dashboard rollups answer the sums."""
        return not (self.mode or self.town_id)

    def as_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for links to exports and back)."""
        args = {}
        if self.start:
            args["start"] = self.start.isoformat()
        if self.end:
            args["end"] = self.end.isoformat()
        if self.mode:
            args["mode"] = self.mode
        if self.town_id:
            args["town"] = str(self.town_id)
        return args


def _sliced(model: type[AttributionRollup] | type[AttributionEntry], filters: Filters, columns):
    """`columns` of the rollup rows or ledger entries in the filters (both carry the campaign,
    day, mode and village)."""
    query = select(*columns).where(model.campaign_id == filters.campaign_id)
    if filters.start:
        query = query.where(model.day >= filters.start)
    if filters.end:
        query = query.where(model.day <= filters.end)
    if filters.mode:
        query = query.where(model.mode == filters.mode)
    if filters.town_id:
        villages = select(Village.id).where(Village.town_id == filters.town_id)
        query = query.where(model.village_id.in_(villages.scalar_subquery()))
    return query


def rollups_in(filters: Filters, *columns) -> Select:
    """The fine rollup rows (AttributionRollup) in the filters."""
    return _sliced(AttributionRollup, filters, columns)


def entries_in(filters: Filters, *columns) -> Select:
    """The ledger's entries in the filters."""
    return _sliced(AttributionEntry, filters, columns)


def paired_amount():
    """The sum of the rollup rows' amounts from villages paired with the unit on the day."""
    return func.sum(case((R.paired.is_(True), R.amount_fen), else_=0))


def as_int(value: Any) -> int:
    """A sum or count as read (None when no row matched) as an integer."""
    return int(value or 0)


def counters(campaign_id: int, kinds: tuple[Distinct, ...], unit_id: int | None = None) -> dict:
    """{(kind, unit): number} from the counters of the dashboard rollups."""
    query = select(AttributionCount.kind, AttributionCount.unit_id, AttributionCount.total).where(
        AttributionCount.campaign_id == campaign_id,
        AttributionCount.kind.in_([kind.value for kind in kinds]),
    )
    if unit_id is not None:
        query = query.where(AttributionCount.unit_id == unit_id)
    return {(kind, unit): as_int(total) for kind, unit, total in db.session.execute(query)}


@dataclass(frozen=True)
class SalesRow:
    """Net sales and quantity of one product or unit (a co-op's page, the public page)."""

    key: int
    name: str
    net_fen: int
    quantity: int


# -- choosing a campaign, a day, a town ----------------------------------------------------------
def all_campaigns() -> list[Campaign]:
    return list(db.session.scalars(select(Campaign).order_by(Campaign.starts_on.desc())))


def current_campaign(today: date) -> Campaign | None:
    """The campaign running today; else the latest one that has started; else the next one."""
    running = db.session.scalar(
        select(Campaign)
        .where(Campaign.starts_on <= today, Campaign.ends_on >= today)
        .order_by(Campaign.starts_on.desc(), Campaign.id.desc())
        .limit(1)
    )
    if running is not None:
        return running
    started = db.session.scalar(
        select(Campaign)
        .where(Campaign.starts_on <= today)
        .order_by(Campaign.ends_on.desc(), Campaign.id.desc())
        .limit(1)
    )
    if started is not None:
        return started
    return db.session.scalar(select(Campaign).order_by(Campaign.starts_on, Campaign.id).limit(1))


def clamp_to_campaign(campaign: Campaign, day: date) -> date:
    return min(max(day, campaign.starts_on), campaign.ends_on)


def towns() -> list[tuple[int, str]]:
    return [
        (town_id, name)
        for town_id, name in db.session.execute(select(Town.id, Town.name).order_by(Town.name))
    ]
