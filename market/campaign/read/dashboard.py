"""The organizer's dashboard: each unit ranked against its target, the villages, towns and
categories sold, the weekly trend and the totals, for a campaign and the filters.

Rules the figures follow:
- a unit's *net sales* are everything attributed to it (sales minus refunds) in the filters;
- what *counts toward its target* is the same, or only the sales from villages it was paired with
  on the day when the campaign says `paired_only`;
- *rank* is by % of target (higher first), ties by the counted amount; units without a target
  come after every unit with one, by counted amount; equal keys share a rank (1, 2, 2, 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction

from sqlalchemy import and_, case, distinct, func, select

from market.campaign.models import (
    AttributionEntry,
    AttributionRollup,
    Campaign,
    CategoryTotal,
    DayTotal,
    Distinct,
    UnitDayTotal,
    UnitTarget,
    UnitTotal,
    VillageTotal,
)
from market.campaign.read.filters import (
    Filters,
    as_int,
    clamp_to_campaign,
    counters,
    entries_in,
    paired_amount,
    rollups_in,
)
from market.catalog.models import Category
from market.directory.models import Town, Unit, Village
from market.extensions import db

R = AttributionRollup
E = AttributionEntry


# -- per unit ------------------------------------------------------------------------------------
@dataclass
class UnitRow:
    unit_id: int
    name: str
    target_fen: int | None
    net_fen: int = 0  # everything attributed to the unit: sales minus refunds
    paired_fen: int = 0  # of which from villages paired with the unit on the day
    counted_fen: int = 0  # what counts toward the target (paired only, if the campaign says so)
    orders: int = 0  # distinct orders with a sale
    buyers: int = 0  # distinct buyers with a sale
    rank: int = 0

    @property
    def pct(self) -> float | None:
        """% of target; None without a (positive) target."""
        if not self.target_fen:
            return None
        return self.counted_fen * 100 / self.target_fen

    @property
    def paired_share(self) -> float | None:
        """% of net sales from paired villages; None without net sales."""
        if self.net_fen <= 0:
            return None
        return self.paired_fen * 100 / self.net_fen

    def rank_key(self) -> tuple:
        if self.target_fen:
            return (1, Fraction(self.counted_fen, self.target_fen), self.counted_fen)
        return (0, Fraction(0), self.counted_fen)


def _rank(rows: list[UnitRow]) -> list[UnitRow]:
    """Sort best first and number them; equal keys share a rank (1, 2, 2, 4)."""
    rows.sort(key=lambda r: r.name)
    rows.sort(key=lambda r: r.rank_key(), reverse=True)  # stable: equals stay in name order
    previous = None
    for position, row in enumerate(rows, start=1):
        key = row.rank_key()
        row.rank = rows[position - 2].rank if key == previous else position
        previous = key
    return rows


def _order_and_buyer_counts(filters: Filters, unit_id: int | None = None) -> dict[int, tuple]:
    """Distinct orders and buyers with a sale, per unit: from the counters for the whole
    campaign; with filters, counted over the ledger (no coarser rows can say it)."""
    if filters.whole_campaign:
        counts = counters(filters.campaign_id, (Distinct.ORDER, Distinct.BUYER), unit_id)
        units = {unit for _kind, unit in counts}
        return {
            unit: (counts.get((Distinct.ORDER, unit), 0), counts.get((Distinct.BUYER, unit), 0))
            for unit in units
        }
    query = entries_in(
        filters, E.unit_id, func.count(distinct(E.order_id)), func.count(distinct(E.buyer_id))
    ).where(E.unit_id.is_not(None), E.amount_fen > 0)
    if unit_id is not None:
        query = query.where(E.unit_id == unit_id)
    return {
        unit: (as_int(orders), as_int(buyers))
        for unit, orders, buyers in db.session.execute(query.group_by(E.unit_id))
    }


def _unit_sums(filters: Filters) -> dict[int, tuple[int, int]]:
    """{unit: (net, paired)} in the filters, units credited with nothing left out."""
    if not filters.days_only:
        return {
            unit_id: (as_int(net), as_int(paired))
            for unit_id, net, paired in db.session.execute(
                rollups_in(filters, R.unit_id, func.sum(R.amount_fen), paired_amount())
                .where(R.unit_id != 0)
                .group_by(R.unit_id)
            )
        }
    D = UnitDayTotal
    if filters.start is not None:
        query = select(D.unit_id, func.sum(D.amount_fen), func.sum(D.paired_fen)).where(
            D.campaign_id == filters.campaign_id, D.unit_id != 0, D.day >= filters.start
        )
        if filters.end is not None:
            query = query.where(D.day <= filters.end)
        return {
            unit_id: (as_int(net), as_int(paired))
            for unit_id, net, paired in db.session.execute(query.group_by(D.unit_id))
        }
    # From the start (the laggard list: through a day, usually today): the campaign's totals
    # minus the days after the end, which are few.
    sums = {
        unit_id: [as_int(net), as_int(paired)]
        for unit_id, net, paired in db.session.execute(
            select(UnitTotal.unit_id, UnitTotal.amount_fen, UnitTotal.paired_fen).where(
                UnitTotal.campaign_id == filters.campaign_id, UnitTotal.unit_id != 0
            )
        )
    }
    if filters.end is not None:
        for unit_id, net, paired in db.session.execute(
            select(D.unit_id, func.sum(D.amount_fen), func.sum(D.paired_fen))
            .where(D.campaign_id == filters.campaign_id, D.unit_id != 0, D.day > filters.end)
            .group_by(D.unit_id)
        ):
            row = sums.setdefault(unit_id, [0, 0])
            row[0] -= as_int(net)
            row[1] -= as_int(paired)
    return {unit_id: (net, paired) for unit_id, (net, paired) in sums.items()}


def unit_rows(campaign: Campaign, filters: Filters, with_counts: bool = True) -> list[UnitRow]:
    """Every unit of the directory with its figures in the filters, ranked. Without
    `with_counts` the orders and buyers stay 0 (ranks and amounts need the rollups only)."""
    sums = _unit_sums(filters)
    counts = _order_and_buyer_counts(filters) if with_counts else {}
    rows = []
    # Each unit with its target (if it has one), in one read.
    units = (
        select(Unit.id, Unit.name, UnitTarget.amount_fen)
        .outerjoin(
            UnitTarget, and_(UnitTarget.unit_id == Unit.id, UnitTarget.campaign_id == campaign.id)
        )
        .order_by(Unit.name)
    )
    for unit_id, name, target_fen in db.session.execute(units):
        net, paired = sums.get(unit_id, (0, 0))
        orders, buyers = counts.get(unit_id, (0, 0))
        rows.append(
            UnitRow(
                unit_id=unit_id,
                name=name,
                target_fen=target_fen,
                net_fen=net,
                paired_fen=paired,
                counted_fen=paired if campaign.paired_only else net,
                orders=orders,
                buyers=buyers,
            )
        )
    return _rank(rows)


# -- per village, town, category -----------------------------------------------------------------
@dataclass
class VillageRow:
    village_id: int
    name: str
    town_id: int
    town: str
    net_fen: int = 0
    attributed_fen: int = 0  # credited to some unit
    paired_fen: int = 0  # credited to a unit paired with the village
    quantity: int = 0


@dataclass
class TownRow:
    town_id: int
    name: str
    net_fen: int = 0
    attributed_fen: int = 0
    paired_fen: int = 0
    quantity: int = 0
    villages: int = 0  # villages with sales


@dataclass
class CategoryRow:
    category_id: int
    name: str
    net_fen: int = 0
    quantity: int = 0


def village_rows(filters: Filters) -> list[VillageRow]:
    """Every village (of the town, if filtered) with its sales, most first."""
    villages = select(Village.id, Village.name, Town.id, Town.name).join(Village.town)
    if filters.town_id:
        villages = villages.where(Village.town_id == filters.town_id)
    if filters.whole_campaign:
        # Each village with its totals (if it sold), in one read.
        V = VillageTotal
        rows = [
            VillageRow(village_id, name, town_id, town, *(as_int(v) for v in sums))
            for village_id, name, town_id, town, *sums in db.session.execute(
                villages.add_columns(
                    V.amount_fen, V.attributed_fen, V.paired_fen, V.quantity
                ).outerjoin(
                    V, and_(V.village_id == Village.id, V.campaign_id == filters.campaign_id)
                )
            )
        ]
    else:
        query = rollups_in(
            filters,
            R.village_id,
            func.sum(R.amount_fen),
            func.sum(case((R.unit_id != 0, R.amount_fen), else_=0)),
            paired_amount(),
            func.sum(R.quantity),
        ).group_by(R.village_id)
        sums = {
            village_id: (as_int(net), as_int(attributed), as_int(paired), as_int(quantity))
            for village_id, net, attributed, paired, quantity in db.session.execute(query)
        }
        rows = []
        for village_id, name, town_id, town in db.session.execute(villages):
            net, attributed, paired, quantity = sums.get(village_id, (0, 0, 0, 0))
            rows.append(
                VillageRow(village_id, name, town_id, town, net, attributed, paired, quantity)
            )
    rows.sort(key=lambda r: (-r.net_fen, r.town, r.name))
    return rows


def town_rows(villages: list[VillageRow]) -> list[TownRow]:
    towns: dict[int, TownRow] = {}
    for village in villages:
        row = towns.setdefault(village.town_id, TownRow(village.town_id, village.town))
        row.net_fen += village.net_fen
        row.attributed_fen += village.attributed_fen
        row.paired_fen += village.paired_fen
        row.quantity += village.quantity
        row.villages += 1 if village.net_fen else 0
    return sorted(towns.values(), key=lambda r: (-r.net_fen, r.name))


def category_rows(filters: Filters) -> list[CategoryRow]:
    if filters.whole_campaign:
        C = CategoryTotal
        query = (
            select(C.category_id, Category.name, C.amount_fen, C.quantity)
            .join(Category, Category.id == C.category_id)
            .where(C.campaign_id == filters.campaign_id)
        )
    else:
        query = (
            rollups_in(
                filters,
                R.category_id,
                Category.name,
                func.sum(R.amount_fen),
                func.sum(R.quantity),
            )
            .join(Category, Category.id == R.category_id)
            .group_by(R.category_id, Category.name)
        )
    rows = [
        CategoryRow(category_id, name, as_int(net), as_int(quantity))
        for category_id, name, net, quantity in db.session.execute(query)
    ]
    return sorted(rows, key=lambda r: (-r.net_fen, r.name))


# -- weekly trend --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Week:
    starts_on: date  # a Monday
    amount_fen: int
    cumulative_fen: int


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly_trend(campaign: Campaign, filters: Filters, today: date) -> list[Week]:
    """Net sales per calendar week (Monday to Sunday) over the filtered period, through the
    later of today and the last day with sales (never past the period's end)."""
    if filters.days_only:
        query = select(DayTotal.day, DayTotal.amount_fen).where(
            DayTotal.campaign_id == filters.campaign_id
        )
        if filters.start:
            query = query.where(DayTotal.day >= filters.start)
        if filters.end:
            query = query.where(DayTotal.day <= filters.end)
    else:
        query = rollups_in(filters, R.day, func.sum(R.amount_fen)).group_by(R.day)
    daily = {day: as_int(amount) for day, amount in db.session.execute(query)}
    # Within the campaign's period: a filter of 1900-01-01 lists its weeks, not 6,000 others.
    first = clamp_to_campaign(campaign, filters.start or campaign.starts_on)
    last = clamp_to_campaign(campaign, filters.end or campaign.ends_on)
    shown_until = min(last, max([today, *daily.keys()]))
    if shown_until < first:
        shown_until = first
    by_week: dict[date, int] = {}
    monday = monday_of(first)
    while monday <= shown_until:
        by_week[monday] = 0
        monday += timedelta(days=7)
    for day, amount in daily.items():
        by_week[monday_of(day)] = by_week.get(monday_of(day), 0) + amount
    weeks, running = [], 0
    for monday in sorted(by_week):
        running += by_week[monday]
        weeks.append(Week(monday, by_week[monday], running))
    return weeks


def trend_chart(weeks: list[Week]) -> dict:
    """The weekly trend as static/js/charts.js draws it; amounts in fen (the script shows yuan)."""
    return {
        "weeks": [w.starts_on.isoformat() for w in weeks],
        "amount_fen": [w.amount_fen for w in weeks],
        "cumulative_fen": [w.cumulative_fen for w in weeks],
    }


# -- totals and the whole dashboard --------------------------------------------------------------
@dataclass
class Totals:
    net_fen: int = 0
    attributed_fen: int = 0
    paired_fen: int = 0
    counted_fen: int = 0
    target_fen: int = 0
    orders: int = 0
    buyers: int = 0
    units_with_sales: int = 0
    villages_with_sales: int = 0

    @property
    def unattributed_fen(self) -> int:
        return self.net_fen - self.attributed_fen

    @property
    def pct(self) -> float | None:
        return self.counted_fen * 100 / self.target_fen if self.target_fen else None


def campaign_orders_and_buyers(filters: Filters) -> tuple[int, int]:
    """Distinct orders and buyers with a sale, credited to a unit or not."""
    if filters.whole_campaign:
        counts = counters(filters.campaign_id, (Distinct.CAMPAIGN_ORDER, Distinct.CAMPAIGN_BUYER))
        return counts.get((Distinct.CAMPAIGN_ORDER, 0), 0), counts.get(
            (Distinct.CAMPAIGN_BUYER, 0), 0
        )
    orders, buyers = db.session.execute(
        entries_in(
            filters, func.count(distinct(E.order_id)), func.count(distinct(E.buyer_id))
        ).where(E.amount_fen > 0)
    ).one()
    return as_int(orders), as_int(buyers)


def totals(filters: Filters, units: list[UnitRow], villages: list[VillageRow]) -> Totals:
    orders, buyers = campaign_orders_and_buyers(filters)
    return Totals(
        net_fen=sum(v.net_fen for v in villages),
        attributed_fen=sum(u.net_fen for u in units),
        paired_fen=sum(u.paired_fen for u in units),
        counted_fen=sum(u.counted_fen for u in units),
        target_fen=sum(u.target_fen or 0 for u in units),
        orders=as_int(orders),
        buyers=as_int(buyers),
        units_with_sales=sum(1 for u in units if u.net_fen),
        villages_with_sales=sum(1 for v in villages if v.net_fen),
    )


@dataclass
class Dashboard:
    campaign: Campaign
    filters: Filters
    totals: Totals
    units: list[UnitRow]
    villages: list[VillageRow]
    towns: list[TownRow]
    categories: list[CategoryRow]
    weeks: list[Week]

    def chart_data(self, top: int = 10) -> dict:
        """What static/js/charts.js draws; amounts in fen (the script shows yuan)."""
        best = sorted(self.units, key=lambda u: -u.counted_fen)[:top]
        return {
            "trend": trend_chart(self.weeks),
            "categories": [
                {"name": c.name, "value_fen": c.net_fen} for c in self.categories if c.net_fen > 0
            ],
            "top_units": {
                "names": [u.name for u in best if u.counted_fen > 0],
                "counted_fen": [u.counted_fen for u in best if u.counted_fen > 0],
                "target_fen": [u.target_fen or 0 for u in best if u.counted_fen > 0],
            },
        }


def dashboard_of(
    campaign: Campaign, filters: Filters, today: date, *, with_weeks: bool = True
) -> Dashboard:
    """The organizer's dashboard: every figure, for one campaign and the filters (without the
    weekly trend if not `with_weeks`: the workbook has no chart)."""
    units = unit_rows(campaign, filters)
    villages = village_rows(filters)
    return Dashboard(
        campaign=campaign,
        filters=filters,
        totals=totals(filters, units, villages),
        units=units,
        villages=villages,
        towns=town_rows(villages),
        categories=category_rows(filters),
        weeks=weekly_trend(campaign, filters, today) if with_weeks else [],
    )
