"""Writing the ledger. `record` listens to market.payments.hook: it runs inside the transaction
that records the money, adds entries and rollups, and only flushes.

Who gets the credit (DESIGN.md §6), first match wins:
1. the unit the order was placed for (group-buy, unit purchase, custom product) — `unit_order`;
2. the buyer's unit membership confirmed at that moment — `member`;
3. the unit whose referral link the buyer followed within 30 days before ordering — `referral`;
4. nobody — the sale still counts for the village.
A refund reverses the sale it belongs to: same unit, basis, campaign and paired flag.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from market.accounts.models import MembershipStatus, UnitMembership
from market.campaign import rollups
from market.campaign.models import (
    ROLLUP_KEY,
    AttributionEntry,
    AttributionRollup,
    Basis,
    Campaign,
)
from market.clock import local_day
from market.directory.models import Pairing
from market.extensions import db
from market.orders.models import Order, OrderLine
from market.payments import hook


def member_unit(user_id: int, at: datetime) -> int | None:
    """The unit the person was a confirmed member of at that moment, if any."""
    return db.session.scalar(
        select(UnitMembership.unit_id)
        .where(
            UnitMembership.user_id == user_id,
            UnitMembership.status.in_((MembershipStatus.CONFIRMED, MembershipStatus.ENDED)),
            UnitMembership.confirmed_at <= at,
            or_(UnitMembership.ended_at.is_(None), UnitMembership.ended_at > at),
        )
        .order_by(UnitMembership.confirmed_at.desc())
        .limit(1)
    )


def attribute(order: Order, at: datetime) -> tuple[int | None, Basis]:
    if order.unit_id is not None:
        return order.unit_id, Basis.UNIT_ORDER
    unit_id = member_unit(order.buyer_id, at)
    if unit_id is not None:
        return unit_id, Basis.MEMBER
    if order.referral_unit_id is not None:
        return order.referral_unit_id, Basis.REFERRAL
    return None, Basis.NONE


def is_paired(unit_id: int | None, village_id: int, day: date) -> bool:
    if unit_id is None:
        return False
    found = db.session.scalar(
        select(Pairing.id)
        .where(
            Pairing.unit_id == unit_id,
            Pairing.village_id == village_id,
            Pairing.since <= day,
            or_(Pairing.until.is_(None), Pairing.until >= day),
        )
        .limit(1)
    )
    return found is not None


def campaign_on(day: date) -> int | None:
    return db.session.scalar(
        select(Campaign.id)
        .where(and_(Campaign.starts_on <= day, Campaign.ends_on >= day))
        .order_by(Campaign.id.desc())
        .limit(1)
    )


def _upsert_rollup(entry: AttributionEntry) -> None:
    """Add the entry to its rollup row in one statement (INSERT ... ON CONFLICT DO UPDATE), so
    that concurrent payments never lose an addition."""
    values = {
        "campaign_id": entry.campaign_id or 0,
        "unit_id": entry.unit_id or 0,
        "village_id": entry.village_id,
        "coop_id": entry.coop_id,
        "category_id": entry.category_id,
        "mode": entry.mode,
        "paired": entry.paired,
        "day": entry.day,
        "amount_fen": entry.amount_fen,
        "quantity": entry.quantity,
        "entries": 1,
    }
    table = AttributionRollup.__table__
    if db.session.get_bind().dialect.name == "postgresql":
        statement = pg_insert(table).values(**values)
    else:
        statement = sqlite_insert(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=list(ROLLUP_KEY),
        set_={
            "amount_fen": table.c.amount_fen + statement.excluded.amount_fen,
            "quantity": table.c.quantity + statement.excluded.quantity,
            "entries": table.c.entries + 1,
        },
    )
    db.session.execute(statement)


def _original_sale(order_line_id: int) -> AttributionEntry | None:
    return db.session.scalar(
        select(AttributionEntry)
        .where(AttributionEntry.order_line_id == order_line_id, AttributionEntry.amount_fen > 0)
        .order_by(AttributionEntry.id.desc())
        .limit(1)
    )


def record(movement: hook.MoneyMovement) -> None:
    """One entry per order line of the movement; rollups follow. Flushes only."""
    order = db.session.get(Order, movement.order_id)
    day = local_day(movement.at)
    sale_unit, sale_basis = attribute(order, movement.at)
    sale_campaign = campaign_on(day)
    entries = []
    for part in movement.lines:
        line = db.session.get(OrderLine, part.order_line_id)
        unit_id, basis, campaign_id = sale_unit, sale_basis, sale_campaign
        paired = None
        if movement.refund_id is not None:
            original = _original_sale(line.id)
            if original is not None:
                unit_id, basis = original.unit_id, original.basis
                campaign_id, paired = original.campaign_id, original.paired
        if paired is None:
            paired = is_paired(unit_id, line.village_id, day)
        entry = AttributionEntry(
            campaign_id=campaign_id,
            order_id=order.id,
            order_line_id=line.id,
            payment_id=movement.payment_id,
            refund_id=movement.refund_id,
            buyer_id=order.buyer_id,
            unit_id=unit_id,
            village_id=line.village_id,
            coop_id=line.coop_id,
            product_id=line.product_id,
            category_id=line.category_id,
            mode=order.mode.value,
            basis=basis,
            paired=paired,
            amount_fen=part.amount_fen,
            quantity=part.quantity,
            at=movement.at,
            day=day,
        )
        db.session.add(entry)
        _upsert_rollup(entry)
        entries.append(entry)
    rollups.add(entries)
    db.session.flush()


def install() -> None:
    hook.subscribe(record)
