"""The ledger detail, line by line, with the names a spreadsheet shows: what the exports write
(market.campaign.exports), read in batches for ledgers of any size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, String, cast, func, literal_column, null, select, union_all

from market.campaign.models import AttributionEntry, Basis
from market.campaign.read.filters import Filters, entries_in
from market.catalog.models import Category, Product
from market.clock import SHANGHAI
from market.directory.models import Coop, Town, Unit, Village
from market.extensions import db
from market.orders.models import Order

E = AttributionEntry


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
    count, last = db.session.execute(entries_in(filters, func.count(E.id), func.max(E.id))).one()
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
    any size), each batch a short query of its own (by entry id: no server-side cursor, which
    PostgreSQL opens only in a transaction, and a reading request has none, market/database.py);
    `upto_id` is the last entry to include, and `on_batch` hears how many lines were read after
    each batch."""
    units, villages, coops, products, categories = _ledger_names()
    query = (
        entries_in(
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
    for entry in _keyset_batches(query, batch, upto_id, on_batch):
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
