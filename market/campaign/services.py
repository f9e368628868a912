"""Campaign upkeep: referral visits, rebuilding rollups from the ledger, and reconciling the
ledger with the money actually received and refunded."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import delete, func, select

from market.campaign.ledger import ROLLUP_KEY
from market.campaign.models import AttributionEntry, AttributionRollup, ReferralVisit
from market.directory.models import Unit
from market.errors import NotFound
from market.extensions import db
from market.models import utcnow
from market.payments.models import Payment, Refund, RefundStatus

REFERRAL_DAYS = 30


def follow_referral(code: str) -> Unit:
    """Someone opened a unit's link or scanned its QR code: count the visit."""
    unit = db.session.scalar(select(Unit).where(Unit.referral_code == code.strip().upper()))
    if unit is None:
        raise NotFound(_("推广链接无效"))
    db.session.add(ReferralVisit(unit_id=unit.id, at=utcnow()))
    db.session.commit()
    return unit


def _rollups_from_ledger() -> dict[tuple, tuple[int, int, int]]:
    key_columns = [
        func.coalesce(AttributionEntry.campaign_id, 0),
        func.coalesce(AttributionEntry.unit_id, 0),
        AttributionEntry.village_id,
        AttributionEntry.coop_id,
        AttributionEntry.category_id,
        AttributionEntry.mode,
        AttributionEntry.paired,
        AttributionEntry.day,
    ]
    rows = db.session.execute(
        select(
            *key_columns,
            func.sum(AttributionEntry.amount_fen),
            func.sum(AttributionEntry.quantity),
            func.count(),
        ).group_by(*key_columns)
    )
    return {tuple(row[:8]): (int(row[8]), int(row[9]), int(row[10])) for row in rows}


def _rollups_stored() -> dict[tuple, tuple[int, int, int]]:
    rows = db.session.scalars(select(AttributionRollup))
    return {
        tuple(getattr(r, name) for name in ROLLUP_KEY): (r.amount_fen, r.quantity, r.entries)
        for r in rows
    }


def rollups_agree() -> bool:
    return _rollups_from_ledger() == _rollups_stored()


def rebuild_rollups() -> tuple[bool, int]:
    """Recompute every rollup from the ledger. Returns whether the stored ones were equal, and
    how many rows there are now."""
    fresh = _rollups_from_ledger()
    equal = fresh == _rollups_stored()
    db.session.execute(delete(AttributionRollup))
    for key, (amount, quantity, entries) in fresh.items():
        db.session.add(
            AttributionRollup(
                **dict(zip(ROLLUP_KEY, key, strict=True)),
                amount_fen=amount,
                quantity=quantity,
                entries=entries,
            )
        )
    db.session.commit()
    return equal, len(fresh)


@dataclass(frozen=True)
class Difference:
    order_id: int
    ledger_fen: int
    money_fen: int


def _sums(query) -> dict[int, int]:
    return {key: int(total or 0) for key, total in db.session.execute(query)}


def reconcile() -> tuple[int, int, list[Difference]]:
    """The ledger against payments received minus refunds, per order and overall."""
    ledger = _sums(
        select(AttributionEntry.order_id, func.sum(AttributionEntry.amount_fen)).group_by(
            AttributionEntry.order_id
        )
    )
    received = _sums(
        select(Payment.order_id, func.sum(Payment.received_fen)).group_by(Payment.order_id)
    )
    refunded = _sums(
        select(Payment.order_id, func.sum(Refund.amount_fen))
        .join(Refund.payment)
        .where(Refund.status == RefundStatus.SUCCEEDED)
        .group_by(Payment.order_id)
    )
    differences = []
    for order_id in sorted(set(ledger) | set(received) | set(refunded)):
        money = int(received.get(order_id) or 0) - int(refunded.get(order_id) or 0)
        booked = int(ledger.get(order_id) or 0)
        if money != booked:
            differences.append(Difference(order_id, booked, money))
    total_ledger = sum(int(v or 0) for v in ledger.values())
    total_money = sum(int(v or 0) for v in received.values()) - sum(
        int(v or 0) for v in refunded.values()
    )
    return total_ledger, total_money, differences
