"""Read side of the campaign: the figures of the dashboards, the laggard list and the exports.

Every figure comes from rollups kept in the same transaction as the ledger (market.campaign.
rollups), so they are exact. The default view (the whole campaign, no filter), the laggard list, a
unit's page and the public page read the dashboard rollups, whose size is bounded by the directory
and the campaign's days, not by the number of entries. Filters by mode or town read the fine
AttributionRollup (one row per unit, village, co-op, category, mode, paired flag and day), and with
any filter the distinct orders and buyers are counted over the ledger itself: a count of distinct
orders in an arbitrary slice cannot be added up from coarser rows. Days are Shanghai calendar
days, inclusive.

Rules the figures follow:
- a unit's *net sales* are everything attributed to it (sales minus refunds) in the filters;
- what *counts toward its target* is the same, or only the sales from villages it was paired with
  on the day when the campaign says `paired_only`;
- *rank* is by % of target (higher first), ties by the counted amount; units without a target
  come after every unit with one, by counted amount; equal keys share a rank (1, 2, 2, 4);
- a unit *lags* on a day when what it counted from the campaign's start through that day is below
  `laggard_threshold_pct` of its target pro-rated to the day:
  target × (day − starts_on + 1) / (ends_on − starts_on + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import (
    Select,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal_column,
    null,
    select,
    union_all,
)

from market.accounts.models import MembershipStatus, UnitMembership
from market.campaign.ledger import SHANGHAI
from market.campaign.models import (
    AttributionCount,
    AttributionEntry,
    AttributionFirst,
    AttributionRollup,
    Basis,
    Campaign,
    CategoryTotal,
    DayTotal,
    Distinct,
    ProductTotal,
    ReferralVisit,
    UnitDayTotal,
    UnitTarget,
    UnitTotal,
    VillageTotal,
)
from market.catalog.models import Category, Product
from market.directory.models import Coop, Town, Unit, Village
from market.extensions import db
from market.orders.models import Order

R = AttributionRollup
E = AttributionEntry


# -- filters -------------------------------------------------------------------------------------
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


def _villages_of_town(town_id: int):
    return select(Village.id).where(Village.town_id == town_id).scalar_subquery()


def _rollups(filters: Filters, *columns) -> Select:
    query = select(*columns).where(R.campaign_id == filters.campaign_id)
    if filters.start:
        query = query.where(R.day >= filters.start)
    if filters.end:
        query = query.where(R.day <= filters.end)
    if filters.mode:
        query = query.where(R.mode == filters.mode)
    if filters.town_id:
        query = query.where(R.village_id.in_(_villages_of_town(filters.town_id)))
    return query


def _entries(filters: Filters, *columns) -> Select:
    query = select(*columns).where(E.campaign_id == filters.campaign_id)
    if filters.start:
        query = query.where(E.day >= filters.start)
    if filters.end:
        query = query.where(E.day <= filters.end)
    if filters.mode:
        query = query.where(E.mode == filters.mode)
    if filters.town_id:
        query = query.where(E.village_id.in_(_villages_of_town(filters.town_id)))
    return query


def _paired_amount():
    return func.sum(case((R.paired.is_(True), R.amount_fen), else_=0))


def _int(value: Any) -> int:
    return int(value or 0)


def shanghai_today() -> date:
    return datetime.now(UTC).astimezone(SHANGHAI).date()


# -- campaigns -----------------------------------------------------------------------------------
def campaigns() -> list[Campaign]:
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


def targets_of(campaign_id: int) -> dict[int, int]:
    return dict(
        db.session.execute(
            select(UnitTarget.unit_id, UnitTarget.amount_fen).where(
                UnitTarget.campaign_id == campaign_id
            )
        ).all()
    )


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


def _counts(campaign_id: int, kinds: tuple[Distinct, ...], unit_id: int | None = None) -> dict:
    """{(kind, unit): number} from the counters of the dashboard rollups."""
    query = select(AttributionCount.kind, AttributionCount.unit_id, AttributionCount.total).where(
        AttributionCount.campaign_id == campaign_id,
        AttributionCount.kind.in_([kind.value for kind in kinds]),
    )
    if unit_id is not None:
        query = query.where(AttributionCount.unit_id == unit_id)
    return {(kind, unit): _int(total) for kind, unit, total in db.session.execute(query)}


def _order_and_buyer_counts(filters: Filters, unit_id: int | None = None) -> dict[int, tuple]:
    """Distinct orders and buyers with a sale, per unit: from the counters for the whole
    campaign; with filters, counted over the ledger (no coarser rows can say it)."""
    if filters.whole_campaign:
        counts = _counts(filters.campaign_id, (Distinct.ORDER, Distinct.BUYER), unit_id)
        units = {unit for _kind, unit in counts}
        return {
            unit: (counts.get((Distinct.ORDER, unit), 0), counts.get((Distinct.BUYER, unit), 0))
            for unit in units
        }
    query = _entries(
        filters, E.unit_id, func.count(distinct(E.order_id)), func.count(distinct(E.buyer_id))
    ).where(E.unit_id.is_not(None), E.amount_fen > 0)
    if unit_id is not None:
        query = query.where(E.unit_id == unit_id)
    return {
        unit: (_int(orders), _int(buyers))
        for unit, orders, buyers in db.session.execute(query.group_by(E.unit_id))
    }


def _unit_sums(filters: Filters) -> dict[int, tuple[int, int]]:
    """{unit: (net, paired)} in the filters, units credited with nothing left out."""
    if not filters.days_only:
        return {
            unit_id: (_int(net), _int(paired))
            for unit_id, net, paired in db.session.execute(
                _rollups(filters, R.unit_id, func.sum(R.amount_fen), _paired_amount())
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
            unit_id: (_int(net), _int(paired))
            for unit_id, net, paired in db.session.execute(query.group_by(D.unit_id))
        }
    # From the start (the laggard list: through a day, usually today): the campaign's totals
    # minus the days after the end, which are few.
    sums = {
        unit_id: [_int(net), _int(paired)]
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
            row[0] -= _int(net)
            row[1] -= _int(paired)
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
            VillageRow(village_id, name, town_id, town, *(_int(v) for v in sums))
            for village_id, name, town_id, town, *sums in db.session.execute(
                villages.add_columns(
                    V.amount_fen, V.attributed_fen, V.paired_fen, V.quantity
                ).outerjoin(
                    V, and_(V.village_id == Village.id, V.campaign_id == filters.campaign_id)
                )
            )
        ]
    else:
        query = _rollups(
            filters,
            R.village_id,
            func.sum(R.amount_fen),
            func.sum(case((R.unit_id != 0, R.amount_fen), else_=0)),
            _paired_amount(),
            func.sum(R.quantity),
        ).group_by(R.village_id)
        sums = {
            village_id: (_int(net), _int(attributed), _int(paired), _int(quantity))
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
            _rollups(
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
        CategoryRow(category_id, name, _int(net), _int(quantity))
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
        query = _rollups(filters, R.day, func.sum(R.amount_fen)).group_by(R.day)
    daily = {day: _int(amount) for day, amount in db.session.execute(query)}
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


def _campaign_orders_and_buyers(filters: Filters) -> tuple[int, int]:
    """Distinct orders and buyers with a sale, credited to a unit or not."""
    if filters.whole_campaign:
        counts = _counts(filters.campaign_id, (Distinct.CAMPAIGN_ORDER, Distinct.CAMPAIGN_BUYER))
        return counts.get((Distinct.CAMPAIGN_ORDER, 0), 0), counts.get(
            (Distinct.CAMPAIGN_BUYER, 0), 0
        )
    orders, buyers = db.session.execute(
        _entries(filters, func.count(distinct(E.order_id)), func.count(distinct(E.buyer_id))).where(
            E.amount_fen > 0
        )
    ).one()
    return _int(orders), _int(buyers)


def totals(filters: Filters, units: list[UnitRow], villages: list[VillageRow]) -> Totals:
    orders, buyers = _campaign_orders_and_buyers(filters)
    return Totals(
        net_fen=sum(v.net_fen for v in villages),
        attributed_fen=sum(u.net_fen for u in units),
        paired_fen=sum(u.paired_fen for u in units),
        counted_fen=sum(u.counted_fen for u in units),
        target_fen=sum(u.target_fen or 0 for u in units),
        orders=_int(orders),
        buyers=_int(buyers),
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
            "trend": {
                "weeks": [w.starts_on.isoformat() for w in self.weeks],
                "amount_fen": [w.amount_fen for w in self.weeks],
                "cumulative_fen": [w.cumulative_fen for w in self.weeks],
            },
            "categories": [
                {"name": c.name, "value_fen": c.net_fen} for c in self.categories if c.net_fen > 0
            ],
            "top_units": {
                "names": [u.name for u in best if u.counted_fen > 0],
                "counted_fen": [u.counted_fen for u in best if u.counted_fen > 0],
                "target_fen": [u.target_fen or 0 for u in best if u.counted_fen > 0],
            },
        }


def dashboard(
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


# -- laggards ------------------------------------------------------------------------------------
@dataclass
class Laggard:
    unit_id: int
    name: str
    target_fen: int
    expected_fen: int  # the target pro-rated to the day (rounded down to the fen)
    threshold_fen: int  # what the unit needed by the day not to be listed (rounded up)
    counted_fen: int

    @property
    def pct_of_expected(self) -> float:
        return self.counted_fen * 100 / self.expected_fen if self.expected_fen else 0.0

    @property
    def shortfall_fen(self) -> int:
        return self.threshold_fen - self.counted_fen


@dataclass
class LaggardList:
    campaign: Campaign
    on: date
    elapsed_days: int
    total_days: int
    laggards: list[Laggard] = field(default_factory=list)

    @property
    def elapsed_pct(self) -> float:
        return self.elapsed_days * 100 / self.total_days


def clamp_to_campaign(campaign: Campaign, day: date) -> date:
    return min(max(day, campaign.starts_on), campaign.ends_on)


def laggards(campaign: Campaign, on: date) -> LaggardList:
    """Units with a target whose counted sales from the start through `on` are below the
    threshold of their pro-rated target. Integer arithmetic: exact at the boundary."""
    total_days = (campaign.ends_on - campaign.starts_on).days + 1
    elapsed = min(max((on - campaign.starts_on).days + 1, 0), total_days)
    result = LaggardList(campaign, on, elapsed, total_days)
    if elapsed == 0:
        return result
    rows = unit_rows(campaign, Filters(campaign.id, end=on), with_counts=False)
    threshold = campaign.laggard_threshold_pct
    for row in rows:
        if not row.target_fen:
            continue
        expected = row.target_fen * elapsed // total_days
        needed = -(-threshold * row.target_fen * elapsed // (100 * total_days))  # ceiling
        if row.counted_fen < needed:
            result.laggards.append(
                Laggard(row.unit_id, row.name, row.target_fen, expected, needed, row.counted_fen)
            )
    result.laggards.sort(
        key=lambda lag: (Fraction(lag.counted_fen, lag.target_fen), lag.counted_fen, lag.name)
    )
    return result


# -- the ledger detail ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerLine:
    entry_id: int
    at: datetime  # Shanghai time, naive (for spreadsheets)
    order_number: str
    unit: str
    basis: Basis
    paired: bool
    town: str
    village: str
    coop: str
    product: str
    category: str
    mode: str
    quantity: int
    amount_fen: int


def _names(model, *columns) -> dict[int, Any]:
    rows = db.session.execute(select(model.id, *columns)).all()
    if len(columns) == 1:
        return {row[0]: row[1] for row in rows}
    return {row[0]: tuple(row[1:]) for row in rows}


def _ledger_names() -> tuple[dict, dict, dict, dict, dict]:
    """The names a ledger line shows, {id: name} of units, villages (name, town), co-ops,
    products and categories: one read (a UNION ALL tagged by table)."""
    no_town = cast(null(), String)
    tagged = union_all(
        select(literal_column("0"), Village.id, Village.name, Town.name).join(Village.town),
        *(
            select(literal_column(str(tag)), model.id, model.name, no_town)
            for tag, model in enumerate((Unit, Coop, Product, Category), start=1)
        ),
    )
    names: tuple[dict, ...] = ({}, {}, {}, {}, {})
    for tag, key, name, town in db.session.execute(tagged):
        names[tag][key] = (name, town) if tag == 0 else name
    villages, units, coops, products, categories = names
    return units, villages, coops, products, categories


def ledger_extent(filters: Filters) -> tuple[int, int]:
    """(how many entries, the last entry's id) in the filters: what an export of them will hold,
    the ledger being append-only."""
    count, last = db.session.execute(_entries(filters, func.count(E.id), func.max(E.id))).one()
    return int(count or 0), int(last or 0)


def _keyset_batches(query: Select, batch: int, upto_id: int | None, on_batch) -> Iterator:
    """The rows of `query` (ordered by entry id) in batches of their own, each one short read,
    so that `on_batch(rows so far)` may commit between them (an export's progress)."""
    if upto_id is not None:
        query = query.where(E.id <= upto_id)
    last, done = 0, 0
    while True:
        rows = db.session.execute(query.where(E.id > last).limit(batch)).all()
        yield from rows
        done += len(rows)
        if rows:
            last = rows[-1].id
        if on_batch is not None:
            on_batch(done)
        if len(rows) < batch:
            return


def ledger_lines(
    filters: Filters,
    batch: int = 2000,
    *,
    upto_id: int | None = None,
    on_batch: Callable[[int], object] | None = None,
) -> Iterator[LedgerLine]:
    """Every entry of the campaign in the filters, oldest first, read in batches (for exports of
    any size). With `on_batch` (or `upto_id`, the last entry to include) each batch is a query
    of its own, and `on_batch` hears how many lines were read after each."""
    units, villages, coops, products, categories = _ledger_names()
    query = (
        _entries(
            filters,
            E.id,
            E.at,
            E.unit_id,
            E.basis,
            E.paired,
            E.village_id,
            E.coop_id,
            E.product_id,
            E.category_id,
            E.mode,
            E.quantity,
            E.amount_fen,
            Order.number,
        )
        .outerjoin(Order, Order.id == E.order_id)  # (always there; the bench has no orders)
        .order_by(E.id)
    )
    if on_batch is None and upto_id is None:
        rows = db.session.execute(query.execution_options(yield_per=batch))
    else:
        rows = _keyset_batches(query, batch, upto_id, on_batch)
    for entry in rows:
        number = entry.number or ""
        village, town = villages.get(entry.village_id, ("", ""))
        yield LedgerLine(
            entry_id=entry.id,
            at=entry.at.astimezone(SHANGHAI).replace(tzinfo=None),
            order_number=number,
            unit=units.get(entry.unit_id, "") if entry.unit_id else "",
            basis=entry.basis,
            paired=entry.paired,
            town=town,
            village=village,
            coop=coops.get(entry.coop_id, ""),
            product=products.get(entry.product_id, ""),
            category=categories.get(entry.category_id, ""),
            mode=entry.mode,
            quantity=entry.quantity,
            amount_fen=entry.amount_fen,
        )


# -- a unit's own page ---------------------------------------------------------------------------
def _utc_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The UTC moments that bound Shanghai days first..last (inclusive)."""
    start = datetime.combine(first, time.min, tzinfo=SHANGHAI).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=SHANGHAI).astimezone(UTC)
    return start, end


@dataclass
class UnitProgress:
    campaign: Campaign
    row: UnitRow
    units_ranked: int  # how many units the rank is out of
    members: int  # confirmed members now
    member_buyers: int  # of whom bought with their own money (not unit orders) in the campaign
    villages: list[VillageRow]  # where the unit's purchases came from
    referral_visits: int
    referral_orders: int
    referral_fen: int

    @property
    def participation_pct(self) -> float | None:
        return self.member_buyers * 100 / self.members if self.members else None


def unit_progress(campaign: Campaign, unit_id: int) -> UnitProgress:
    """A unit's progress in a campaign: its row of the organizer's table, its members'
    participation and what its referral link brought."""
    filters = Filters(campaign.id)
    rows = unit_rows(campaign, filters, with_counts=False)
    row = next(r for r in rows if r.unit_id == unit_id)
    # The whole campaign's counters: orders, buyers and orders through the referral link.
    kinds = (Distinct.ORDER, Distinct.BUYER, Distinct.REFERRAL_ORDER)
    counts = _counts(campaign.id, kinds, unit_id)
    row.orders, row.buyers, referral_orders = (counts.get((k, unit_id), 0) for k in kinds)
    members = select(UnitMembership.user_id).where(
        UnitMembership.unit_id == unit_id, UnitMembership.status == MembershipStatus.CONFIRMED
    )
    member_count = select(func.count()).select_from(members.subquery())
    # Members who bought with their own money (a unit purchase or custom order is the unit's,
    # not its coordinator's, though the coordinator placed it): one look-up per member.
    member_buyers = (
        select(func.count(distinct(UnitMembership.user_id)))
        .join(
            AttributionFirst,
            and_(
                AttributionFirst.campaign_id == campaign.id,
                AttributionFirst.kind == Distinct.OWN_BUYER.value,
                AttributionFirst.unit_id == unit_id,
                AttributionFirst.ref_id == UnitMembership.user_id,
            ),
        )
        .where(
            UnitMembership.unit_id == unit_id, UnitMembership.status == MembershipStatus.CONFIRMED
        )
    )
    start, end = _utc_bounds(campaign.starts_on, campaign.ends_on)
    visits = select(func.count(ReferralVisit.id)).where(
        ReferralVisit.unit_id == unit_id, ReferralVisit.at >= start, ReferralVisit.at < end
    )
    referral_fen = select(UnitTotal.referral_fen).where(
        UnitTotal.campaign_id == campaign.id, UnitTotal.unit_id == unit_id
    )
    # Four figures of four tables, read in one statement.
    member_count, member_buyers, visits, referral_fen = db.session.execute(
        select(*(q.scalar_subquery() for q in (member_count, member_buyers, visits, referral_fen)))
    ).one()
    by_village = {
        village_id: (_int(net), _int(paired), _int(quantity))
        for village_id, net, paired, quantity in db.session.execute(
            _rollups(
                filters,
                R.village_id,
                func.sum(R.amount_fen),
                _paired_amount(),
                func.sum(R.quantity),
            )
            .where(R.unit_id == unit_id)
            .group_by(R.village_id)
        )
    }
    villages = []
    if by_village:
        for village_id, name, town_id, town in db.session.execute(
            select(Village.id, Village.name, Town.id, Town.name)
            .join(Village.town)
            .where(Village.id.in_(by_village))
        ):
            net, paired, quantity = by_village[village_id]
            villages.append(VillageRow(village_id, name, town_id, town, net, net, paired, quantity))
        villages.sort(key=lambda v: (-v.net_fen, v.name))
    return UnitProgress(
        campaign=campaign,
        row=row,
        units_ranked=len(rows),
        members=_int(member_count),
        member_buyers=_int(member_buyers),
        villages=villages,
        referral_visits=_int(visits),
        referral_orders=_int(referral_orders),
        referral_fen=_int(referral_fen),
    )


# -- a co-op's own sales -------------------------------------------------------------------------
@dataclass(frozen=True)
class SalesRow:
    key: int
    name: str
    net_fen: int
    quantity: int


@dataclass
class CoopSales:
    campaign: Campaign | None
    net_fen: int
    by_product: list[SalesRow]
    by_unit: list[SalesRow]  # key 0: sales credited to no unit


def coop_sales(coop_ids: list[int], campaign: Campaign | None) -> CoopSales:
    """A co-op's sales (net of refunds) by product and by the unit credited; all campaigns and
    sales outside any campaign when `campaign` is None."""
    by_product_query = (
        select(Product.id, Product.name, func.sum(E.amount_fen), func.sum(E.quantity))
        .join(Product, Product.id == E.product_id)
        .where(E.coop_id.in_(coop_ids))
        .group_by(Product.id, Product.name)
    )
    by_unit_query = (
        select(R.unit_id, func.sum(R.amount_fen), func.sum(R.quantity))
        .where(R.coop_id.in_(coop_ids))
        .group_by(R.unit_id)
    )
    if campaign is not None:
        by_product_query = by_product_query.where(E.campaign_id == campaign.id)
        by_unit_query = by_unit_query.where(R.campaign_id == campaign.id)
    by_product = [
        SalesRow(pid, name, _int(net), _int(qty))
        for pid, name, net, qty in db.session.execute(by_product_query)
    ]
    units = _names(Unit, Unit.name)
    by_unit = [
        SalesRow(unit_id, units.get(unit_id, ""), _int(net), _int(qty))
        for unit_id, net, qty in db.session.execute(by_unit_query)
    ]
    by_product.sort(key=lambda r: (-r.net_fen, r.name))
    by_unit.sort(key=lambda r: (r.key == 0, -r.net_fen, r.name))
    return CoopSales(campaign, sum(r.net_fen for r in by_unit), by_product, by_unit)


# -- the public page -----------------------------------------------------------------------------
@dataclass
class PublicSummary:
    campaign: Campaign
    net_fen: int
    orders: int
    units: int  # units credited with sales
    villages: int  # villages with sales
    top_villages: list[VillageRow]
    top_products: list[SalesRow]
    weeks: list[Week]

    def chart_data(self) -> dict:
        return {
            "trend": {
                "weeks": [w.starts_on.isoformat() for w in self.weeks],
                "amount_fen": [w.amount_fen for w in self.weeks],
                "cumulative_fen": [w.cumulative_fen for w in self.weeks],
            }
        }


def public_summary(campaign: Campaign, today: date, top: int = 10) -> PublicSummary:
    """What everyone may see: the total helped, the villages and products bought most."""
    filters = Filters(campaign.id)
    villages = [v for v in village_rows(filters) if v.net_fen > 0]
    orders, _buyers = _campaign_orders_and_buyers(filters)
    units = db.session.scalar(
        select(func.count()).where(
            UnitTotal.campaign_id == campaign.id, UnitTotal.unit_id != 0, UnitTotal.amount_fen > 0
        )
    )
    P = ProductTotal
    best = (
        select(P.product_id, P.amount_fen.label("net"), P.quantity.label("quantity"))
        .where(P.campaign_id == campaign.id, P.amount_fen > 0)
        .order_by(P.amount_fen.desc(), P.product_id)
        .limit(top)
        .subquery()
    )
    products = [
        SalesRow(pid, name, _int(net), _int(qty))
        for pid, name, net, qty in db.session.execute(
            select(Product.id, Product.name, best.c.net, best.c.quantity)
            .join(best, best.c.product_id == Product.id)
            .order_by(best.c.net.desc(), Product.name)
        )
    ]
    return PublicSummary(
        campaign=campaign,
        net_fen=sum(v.net_fen for v in villages),
        orders=_int(orders),
        units=_int(units),
        villages=len(villages),
        top_villages=villages[:top],
        top_products=products,
        weeks=weekly_trend(campaign, filters, today),
    )


def towns() -> list[tuple[int, str]]:
    return [
        (town_id, name)
        for town_id, name in db.session.execute(select(Town.id, Town.name).order_by(Town.name))
    ]
