"""Campaign upkeep: referral visits, rebuilding rollups from the ledger, and reconciling the
ledger with the money actually received and refunded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload

from market.campaign import rollups
from market.campaign.models import ROLLUP_KEY, AttributionEntry, AttributionRollup, ReferralVisit
from market.directory.models import Unit
from market.errors import NotFound
from market.extensions import db
from market.payments.models import Payment, Refund, RefundStatus
from market.settlements.reconciliation import keyed_sums
from market.transactions import unit_of_work


def referral_unit(code: str) -> Unit:
    """The unit whose link someone opened (or QR code scanned); an unknown code is a 404. Reads
    only: the page is a GET, and the visit is counted after its response
    (`record_referral_visit`, on a worker)."""
    unit = db.session.scalar(select(Unit).where(Unit.referral_code == code.strip().upper()))
    if unit is None:
        raise NotFound(_("推广链接无效"))
    return unit


@unit_of_work
def record_referral_visit(unit_id: int, at: datetime) -> None:
    """Count one visit through a unit's link (the task market.record_referral_visit)."""
    db.session.add(ReferralVisit(unit_id=unit_id, at=at))
    db.session.commit()


def _fine_rollups_select():
    """The fine rollups' rows as the ledger says them: key (ROLLUP_KEY), amount, quantity,
    entries."""
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
    return select(
        *key_columns,
        func.sum(AttributionEntry.amount_fen),
        func.sum(AttributionEntry.quantity),
        func.count(),
    ).group_by(*key_columns)


def _rollups_from_ledger() -> dict[tuple, tuple[int, int, int]]:
    rows = db.session.execute(_fine_rollups_select())
    return {tuple(row[:8]): (int(row[8]), int(row[9]), int(row[10])) for row in rows}


def _rollups_stored() -> dict[tuple, tuple[int, int, int]]:
    rows = db.session.scalars(select(AttributionRollup))
    return {
        tuple(getattr(r, name) for name in ROLLUP_KEY): (r.amount_fen, r.quantity, r.entries)
        for r in rows
    }


def rollups_agree() -> bool:
    """The fine rollups and the dashboard rollups (market.campaign.rollups) equal the ledger."""
    stored = select(
        *(AttributionRollup.__table__.c[name] for name in ROLLUP_KEY),
        AttributionRollup.amount_fen,
        AttributionRollup.quantity,
        AttributionRollup.entries,
    )
    return rollups.agree((stored, _fine_rollups_select()))


def rebuild_rollups() -> tuple[bool, int]:
    """Recompute every rollup from the ledger. Returns whether the stored ones were equal, and
    how many rows there are now (fine rollups; the dashboard rollups are rebuilt too)."""
    fresh = _rollups_from_ledger()
    equal = fresh == _rollups_stored() and rollups.agree()
    rollups.rebuild()
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


def reconcile() -> tuple[int, int, list[Difference]]:
    """The ledger against payments received minus refunds, per order and overall."""
    sums = keyed_sums(
        {
            "ledger": select(
                AttributionEntry.order_id, func.sum(AttributionEntry.amount_fen)
            ).group_by(AttributionEntry.order_id),
            "received": select(Payment.order_id, func.sum(Payment.received_fen)).group_by(
                Payment.order_id
            ),
            "refunded": select(Payment.order_id, func.sum(Refund.amount_fen))
            .join(Refund.payment)
            # Decided refunds, sent or still owed: the ledger reverses a sale when it is decided.
            .where(Refund.status.in_((RefundStatus.PENDING, RefundStatus.SUCCEEDED)))
            .group_by(Payment.order_id),
        }
    )
    ledger, received, refunded = sums["ledger"], sums["received"], sums["refunded"]
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


# -- reconciliation, for the organizer's page ----------------------------------------------------
@dataclass(frozen=True)
class DifferenceLine:
    order_id: int
    order_number: str
    ledger_fen: int
    money_fen: int

    @property
    def gap_fen(self) -> int:
        return self.ledger_fen - self.money_fen


@dataclass(frozen=True)
class Reconciliation:
    ledger_fen: int
    money_fen: int
    differences: list[DifferenceLine]
    rollups_equal: bool

    @property
    def agrees(self) -> bool:
        return self.ledger_fen == self.money_fen and not self.differences and self.rollups_equal


def reconciliation() -> Reconciliation:
    """`reconcile()` with each differing order's number, and whether the rollups equal the
    ledger: everything the organizer needs to see that the figures can be trusted."""
    from market.orders.models import Order

    ledger, money, differences = reconcile()
    numbers = (
        dict(
            db.session.execute(
                select(Order.id, Order.number).where(
                    Order.id.in_([d.order_id for d in differences])
                )
            ).all()
        )
        if differences
        else {}
    )
    return Reconciliation(
        ledger_fen=ledger,
        money_fen=money,
        differences=[
            DifferenceLine(d.order_id, numbers.get(d.order_id, "?"), d.ledger_fen, d.money_fen)
            for d in differences
        ],
        rollups_equal=rollups_agree(),
    )


# -- referral QR codes and posters ---------------------------------------------------------------
def unit_for_promotion(user, unit_id: int) -> Unit:
    """A unit's QR code and poster are for its own coordinators and for organizers."""
    from market.accounts.models import UnitRole
    from market.errors import NotAllowed

    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(_("找不到该单位"))
    if user.is_organizer or user.is_admin:
        return unit
    membership = user.confirmed_unit_membership()
    if (
        membership is None
        or membership.unit_id != unit.id
        or membership.role != UnitRole.COORDINATOR
    ):
        raise NotAllowed(_("只有本单位联络员和活动组织方可以查看"))
    return unit


def qr_png(url: str) -> bytes:
    import io

    import qrcode

    image = qrcode.make(url, box_size=12, border=4, error_correction=qrcode.ERROR_CORRECT_M)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_svg(url: str) -> bytes:
    import io

    import qrcode
    from qrcode.image.svg import SvgPathFillImage

    image = qrcode.make(
        url,
        image_factory=SvgPathFillImage,
        box_size=12,
        border=4,
        error_correction=qrcode.ERROR_CORRECT_M,
    )
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Poster:
    unit: Unit
    villages: list  # Village, paired today
    products: list  # Product, listed, of those villages' co-ops, featured first


def poster(user, unit_id: int, today, limit: int = 6) -> Poster:
    """What the unit's A4 poster shows: the unit, its paired villages and their products."""
    from sqlalchemy.orm import joinedload

    from market.catalog.models import Product, ProductStatus
    from market.directory.models import Coop, Pairing

    unit = unit_for_promotion(user, unit_id)
    pairings = db.session.scalars(
        select(Pairing).where(Pairing.unit_id == unit.id).options(joinedload(Pairing.village))
    ).all()
    villages = sorted(
        {p.village for p in pairings if p.active_on(today)}, key=lambda v: (v.town.name, v.name)
    )
    products = []
    if villages:
        products = list(
            db.session.scalars(
                select(Product)
                .join(Product.coop)
                .where(
                    Coop.village_id.in_([v.id for v in villages]),
                    Product.status == ProductStatus.LISTED,
                )
                .options(joinedload(Product.coop), selectinload(Product.skus))
                .order_by(Product.featured.desc(), Product.id.desc())
                .limit(limit)
            ).unique()
        )
    return Poster(unit, villages, products)
