"""Read side of orders: a buyer's orders, a co-op's inbox, the organizer's filtered list."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import selectinload

from market.clock import day_end, day_start
from market.extensions import db
from market.orders.models import (
    Invoice,
    InvoiceStatus,
    Order,
    OrderLine,
    OrderMode,
    OrderStatus,
    Shipment,
    ShipmentStatus,
)
from market.security.inputs import MAX_ID, clamp_page, sane_day_or_none

INBOX_TABS = {
    # Unit purchases and custom orders reach the co-op on approval, before the unit's transfer.
    "awaiting": (ShipmentStatus.AWAITING_PAYMENT,),
    "to_ship": (ShipmentStatus.TO_SHIP,),
    "shipped": (ShipmentStatus.SHIPPED,),
    "done": (ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED),
}
# 待采收: 预售 parcels paid for and waiting for the harvest; only the harvest lets them ship, so
# the tab only shows them. Kept out of INBOX_TABS, which is the API's list (docs/openapi.json).
HARVEST_TAB = "awaiting_harvest"
# The tabs whose parcels the inbox counts (已完成 only grows: no badge).
COUNTED_TABS = ("awaiting", HARVEST_TAB, "to_ship", "shipped")


def _with_details(query: Select) -> Select:
    return query.options(
        selectinload(Order.lines), selectinload(Order.shipments).selectinload(Shipment.coop)
    )


def buyer_orders(buyer_id: int, page: int, per_page: int = 20):
    """The buyer's own orders; unit purchases and custom orders they placed for their unit are
    the unit's and are followed on its purchase and custom-request pages."""
    query = _with_details(
        select(Order)
        .where(
            Order.buyer_id == buyer_id,
            Order.mode.notin_([OrderMode.UNIT_PURCHASE, OrderMode.CUSTOM]),
        )
        .order_by(Order.id.desc())
    )
    return db.paginate(query, page=clamp_page(page), per_page=per_page, error_out=False)


def _invoice_outstanding():
    """Orders whose invoice the unit asked for and nobody has issued yet (发票未开)."""
    return select(Invoice.order_id).where(Invoice.status == InvoiceStatus.REQUESTED)


def _in_tab(tab: str):
    if tab == HARVEST_TAB:  # an unpaid reservation may still lapse: not the co-op's to prepare
        return and_(
            Shipment.status == ShipmentStatus.AWAITING_HARVEST, Order.status == OrderStatus.PAID
        )
    return Shipment.status.in_(INBOX_TABS.get(tab, INBOX_TABS["to_ship"]))


def _coop_parcels(coop_ids: list[int]) -> Select:
    # A group-buy's orders travel as one consolidated parcel, listed on its own page.
    return (
        select(Shipment)
        .join(Shipment.order)
        .where(Shipment.coop_id.in_(coop_ids), Order.mode != OrderMode.GROUP_BUY)
    )


def coop_inbox(
    coop_ids: list[int],
    tab: str,
    page: int,
    *,
    invoice_outstanding: bool = False,
    per_page: int = 30,
):
    """A co-op's parcels in one tab; with `invoice_outstanding`, only those of orders waiting
    for their invoice, whatever their status."""
    query = _coop_parcels(coop_ids)
    if invoice_outstanding:
        query = query.where(Shipment.order_id.in_(_invoice_outstanding()))
    else:
        query = query.where(_in_tab(tab))
    query = query.options(
        selectinload(Shipment.lines).selectinload(OrderLine.batch),
        selectinload(Shipment.order),
    ).order_by(Shipment.id.desc())
    return db.paginate(query, page=clamp_page(page), per_page=per_page, error_out=False)


def coop_inbox_counts(coop_ids: list[int]) -> dict[str, int]:
    """How many of the co-op's parcels each counted tab holds, and `invoice` (发票未开), in one
    statement whatever the number of parcels."""
    counted = {tab: func.sum(case((_in_tab(tab), 1), else_=0)) for tab in COUNTED_TABS}
    counted["invoice"] = func.sum(case((Shipment.order_id.in_(_invoice_outstanding()), 1), else_=0))
    row = db.session.execute(
        _coop_parcels(coop_ids).with_only_columns(*counted.values(), maintain_column_froms=True)
    ).one()
    return {tab: int(n or 0) for tab, n in zip(counted, row, strict=True)}


# What a layer above knows of parcels waiting for their harvest (a presale's harvest window),
# registered by it (market.presales): builder(order ids) -> {order id: text}, one query a page.
HarvestNotes = Callable[[list[int]], dict[int, str]]
_harvest_notes: list[HarvestNotes] = []


def describe_harvest_with(builder: HarvestNotes) -> HarvestNotes:
    if builder not in _harvest_notes:
        _harvest_notes.append(builder)
    return builder


def harvest_notes(shipments: Iterable[Shipment]) -> dict[int, str]:
    """{order id: what its parcel waits for} for the parcels among `shipments` that wait for
    a harvest; no query when none does."""
    order_ids = sorted(
        {s.order_id for s in shipments if s.status == ShipmentStatus.AWAITING_HARVEST}
    )
    notes: dict[int, str] = {}
    if order_ids:
        for builder in _harvest_notes:
            notes.update(builder(order_ids))
    return notes


@dataclass(frozen=True)
class OrderFilters:
    status: OrderStatus | None = None
    mode: OrderMode | None = None
    village_id: int | None = None
    coop_id: int | None = None
    start: date | None = None
    end: date | None = None
    invoice_outstanding: bool = False  # 发票未开: asked for, not issued yet


def filtered_orders(filters: OrderFilters, page: int):
    """The organizer's list. Dates are Shanghai calendar days, inclusive; an id, date or page
    beyond what the shop stores filters nothing (2**63, 0001-01-01, 9999-12-31)."""
    village_id = filters.village_id if 0 < (filters.village_id or 0) <= MAX_ID else None
    coop_id = filters.coop_id if 0 < (filters.coop_id or 0) <= MAX_ID else None
    start, end = sane_day_or_none(filters.start), sane_day_or_none(filters.end)
    query = select(Order)
    if filters.status is not None:
        query = query.where(Order.status == filters.status)
    if filters.mode is not None:
        query = query.where(Order.mode == filters.mode)
    if filters.invoice_outstanding:
        query = query.where(Order.id.in_(_invoice_outstanding()))
    if village_id or coop_id:
        lines = select(OrderLine.order_id)
        if village_id:
            lines = lines.where(OrderLine.village_id == village_id)
        if coop_id:
            lines = lines.where(OrderLine.coop_id == coop_id)
        query = query.where(Order.id.in_(lines))
    if start:
        query = query.where(Order.created_at >= day_start(start))
    if end:
        query = query.where(Order.created_at < day_end(end))
    query = _with_details(query.options(selectinload(Order.buyer)).order_by(Order.id.desc()))
    return db.paginate(query, page=clamp_page(page), per_page=50, error_out=False)
