"""The dashboard rollups (models.py, after AttributionRollup): sums by unit, unit and day,
village, category, product and day, and the distinct orders and buyers per unit, for the
organizer's default dashboard, the laggard list, a unit's page and the public page.

`add` runs inside the transaction that appends the entries (ledger.record): per movement, one
multi-row INSERT ... ON CONFLICT DO UPDATE per table (rows in key order, so that concurrent
payments take row locks in the same order), and the first sale of an order or buyer per unit
is an INSERT ... ON CONFLICT DO NOTHING RETURNING whose new rows raise the counters. Nothing
is read first, so concurrent payments never lose an addition or count a buyer twice.

What counts (the same as a count over the ledger): an order or buyer is counted once it has an
entry with amount > 0; refunds lower the sums, never the counts; sales credited to no unit count
for the campaign's totals, villages, categories, products and days (unit_id 0 in the unit sums).
`ledger_selects` says the same thing in SQL: the rebuild and the agreement check use it, and the
migration d13a0b1c2e04 backfills with the equivalent SQL.
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import (
    String,
    and_,
    case,
    delete,
    except_,
    func,
    literal_column,
    select,
    union,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from market.campaign.models import (
    AttributionCount,
    AttributionEntry,
    AttributionFirst,
    Basis,
    CategoryTotal,
    DayTotal,
    Distinct,
    ProductTotal,
    UnitDayTotal,
    UnitTotal,
    VillageTotal,
)
from market.extensions import db
from market.orders.models import OrderMode

E = AttributionEntry
# Modes in which the unit pays, not the person who placed the order (queries.unit_progress).
UNIT_PAID_MODES = (OrderMode.UNIT_PURCHASE.value, OrderMode.CUSTOM.value)
SUM_MODELS = (UnitTotal, UnitDayTotal, VillageTotal, CategoryTotal, ProductTotal, DayTotal)
ALL_MODELS = (*SUM_MODELS, AttributionFirst, AttributionCount)


def _key_columns(model) -> list[str]:
    return [column.name for column in model.__table__.primary_key.columns]


def _value_columns(model) -> list[str]:
    keys = set(_key_columns(model))
    return [column.name for column in model.__table__.columns if column.name not in keys]


def _insert(model):
    table = model.__table__
    if db.session.get_bind().dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


# -- written with the entries ----------------------------------------------------------------------
def _sum_rows(entry: AttributionEntry) -> Iterable[tuple[type, tuple, tuple]]:
    """(model, key, values) for each sum table, in the tables' column order."""
    campaign, unit, amount = entry.campaign_id, entry.unit_id or 0, entry.amount_fen
    paired = amount if entry.paired else 0
    referral = amount if entry.basis == Basis.REFERRAL else 0
    attributed = amount if entry.unit_id is not None else 0
    yield UnitTotal, (campaign, unit), (amount, paired, entry.quantity, referral)
    yield UnitDayTotal, (campaign, entry.day, unit), (amount, paired)
    yield VillageTotal, (campaign, entry.village_id), (amount, attributed, paired, entry.quantity)
    yield CategoryTotal, (campaign, entry.category_id), (amount, entry.quantity)
    yield ProductTotal, (campaign, entry.product_id), (amount, entry.quantity)
    yield DayTotal, (campaign, entry.day), (amount,)


def _firsts(entry: AttributionEntry) -> Iterable[tuple]:
    """(campaign, kind, unit, ref) rows the entry stands for; only sales (amount > 0) count."""
    if entry.amount_fen <= 0:
        return
    campaign = entry.campaign_id
    yield campaign, Distinct.CAMPAIGN_ORDER.value, 0, entry.order_id
    yield campaign, Distinct.CAMPAIGN_BUYER.value, 0, entry.buyer_id
    if entry.unit_id is None:
        return
    yield campaign, Distinct.ORDER.value, entry.unit_id, entry.order_id
    yield campaign, Distinct.BUYER.value, entry.unit_id, entry.buyer_id
    if entry.basis == Basis.REFERRAL:
        yield campaign, Distinct.REFERRAL_ORDER.value, entry.unit_id, entry.order_id
    if entry.mode not in UNIT_PAID_MODES:
        yield campaign, Distinct.OWN_BUYER.value, entry.unit_id, entry.buyer_id


def _add_up(model, rows: dict[tuple, list[int]]) -> None:
    if not rows:
        return
    keys, values = _key_columns(model), _value_columns(model)
    statement = _insert(model).values(
        [
            dict(zip(keys, key, strict=True)) | dict(zip(values, sums, strict=True))
            for key, sums in sorted(rows.items())
        ]
    )
    table = model.__table__
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.c[name] + statement.excluded[name] for name in values},
    )
    db.session.execute(statement)


def add(entries: Iterable[AttributionEntry]) -> None:
    """Add a movement's entries to the dashboard rollups. Flushes nothing itself."""
    sums: dict[type, dict[tuple, list[int]]] = {model: {} for model in SUM_MODELS}
    firsts: set[tuple] = set()
    for entry in entries:
        if entry.campaign_id is None:  # outside every campaign: no dashboard shows it
            continue
        for model, key, values in _sum_rows(entry):
            row = sums[model].setdefault(key, [0] * len(values))
            for index, value in enumerate(values):
                row[index] += value
        firsts.update(_firsts(entry))
    for model in SUM_MODELS:
        _add_up(model, sums[model])
    if not firsts:
        return
    statement = (
        _insert(AttributionFirst)
        .values(
            [
                dict(zip(("campaign_id", "kind", "unit_id", "ref_id"), row, strict=True))
                for row in sorted(firsts)
            ]
        )
        .on_conflict_do_nothing()
        .returning(
            AttributionFirst.__table__.c.campaign_id,
            AttributionFirst.__table__.c.kind,
            AttributionFirst.__table__.c.unit_id,
        )
    )
    new = Counter(tuple(row) for row in db.session.execute(statement))
    _add_up(AttributionCount, {key: [number] for key, number in new.items()})


# -- the same, from the ledger -------------------------------------------------------------------
def _unit():
    return func.coalesce(E.unit_id, literal_column("0"))


def _when(condition, value):
    return case((condition, value), else_=0)


def _kind(kind: Distinct):
    return literal_column(f"'{kind.value}'", String)


def firsts_select():
    """Every AttributionFirst row the ledger implies (UNION: each once)."""
    sale = and_(E.campaign_id.is_not(None), E.amount_fen > 0)
    credited = and_(sale, E.unit_id.is_not(None))

    def first(kind: Distinct, unit, ref):
        return select(
            E.campaign_id.label("campaign_id"),
            _kind(kind).label("kind"),
            unit.label("unit_id"),
            ref.label("ref_id"),
        )

    zero = literal_column("0")
    return union(
        first(Distinct.CAMPAIGN_ORDER, zero, E.order_id).where(sale),
        first(Distinct.CAMPAIGN_BUYER, zero, E.buyer_id).where(sale),
        first(Distinct.ORDER, E.unit_id, E.order_id).where(credited),
        first(Distinct.BUYER, E.unit_id, E.buyer_id).where(credited),
        first(Distinct.REFERRAL_ORDER, E.unit_id, E.order_id).where(
            credited, E.basis == Basis.REFERRAL
        ),
        first(Distinct.OWN_BUYER, E.unit_id, E.buyer_id).where(
            credited, E.mode.notin_(UNIT_PAID_MODES)
        ),
    )


def counts_select(firsts):
    """AttributionCount rows from a selectable shaped like attribution_firsts."""
    first = firsts.subquery("firsts")
    keys = (first.c.campaign_id, first.c.kind, first.c.unit_id)
    return select(*keys, func.count()).group_by(*keys)


def sum_selects() -> dict[type, object]:
    """Each sum table's rows as a grouped SELECT over the ledger, in its column order."""
    paired = func.sum(_when(E.paired.is_(True), E.amount_fen))
    amount, quantity = func.sum(E.amount_fen), func.sum(E.quantity)
    attributed = func.sum(_when(E.unit_id.is_not(None), E.amount_fen))
    referral = func.sum(_when(E.basis == Basis.REFERRAL, E.amount_fen))

    def grouped(*keys):
        return lambda *values: (
            select(*keys, *values).where(E.campaign_id.is_not(None)).group_by(*keys)
        )

    return {
        UnitTotal: grouped(E.campaign_id, _unit())(amount, paired, quantity, referral),
        UnitDayTotal: grouped(E.campaign_id, E.day, _unit())(amount, paired),
        VillageTotal: grouped(E.campaign_id, E.village_id)(amount, attributed, paired, quantity),
        CategoryTotal: grouped(E.campaign_id, E.category_id)(amount, quantity),
        ProductTotal: grouped(E.campaign_id, E.product_id)(amount, quantity),
        DayTotal: grouped(E.campaign_id, E.day)(amount),
    }


def ledger_selects() -> dict[type, object]:
    selects = sum_selects()
    selects[AttributionFirst] = firsts_select()
    selects[AttributionCount] = counts_select(firsts_select())
    return selects


def _columns(model) -> list[str]:
    return [column.name for column in model.__table__.columns]


def _as_set(rows) -> set[tuple]:
    return {tuple(int(v) if isinstance(v, int) else v for v in row) for row in rows}


def _rows(query):
    # A compound SELECT (the firsts' UNION) cannot be an operand of EXCEPT on SQLite as it is.
    return select(*query.subquery().c)


def _rows_apart(left, right):
    """How many rows one SELECT has that the other lacks, either way (as sets)."""
    left, right = _rows(left), _rows(right)
    return [
        select(func.count()).select_from(except_(a, b).subquery()).scalar_subquery()
        for a, b in ((left, right), (right, left))
    ]


def agree(*also: tuple) -> bool:
    """Whether every dashboard rollup equals what the ledger says (and each (stored, ledger)
    pair of SELECTs in `also`), in one statement: a page shows it."""
    pairs = [(select(*model.__table__.columns), query) for model, query in ledger_selects().items()]
    counts = [count for pair in [*pairs, *also] for count in _rows_apart(*pair)]
    return not db.session.scalar(select(functools.reduce(operator.add, counts)))


def rebuild() -> int:
    """Replace every dashboard rollup by what the ledger says; flushes only. Returns the number
    of rows written."""
    for model in ALL_MODELS:
        db.session.execute(delete(model))
    for model, query in sum_selects().items():
        db.session.execute(model.__table__.insert().from_select(_columns(model), query))
    db.session.execute(
        AttributionFirst.__table__.insert().from_select(_columns(AttributionFirst), firsts_select())
    )
    db.session.execute(
        AttributionCount.__table__.insert().from_select(
            _columns(AttributionCount), counts_select(select(*AttributionFirst.__table__.columns))
        )
    )
    return sum(
        db.session.scalar(select(func.count()).select_from(model.__table__)) for model in ALL_MODELS
    )
