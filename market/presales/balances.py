"""定金预售's second half: the 尾款 after the harvest. A 尾款 order unpaid at its deadline cancels
its served reservation and refunds the deposit in full (the periodic job); a paid 尾款's parcel
carries the goods, and the deposit order's parcel (no goods) follows it when it ships and
arrives, so the co-op ships once and the deposit is settled with the goods."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import aliased

from market.audit import services as audit
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders.models import Order, OrderStatus, Shipment, ShipmentStatus
from market.payments import services as payments
from market.presales.models import PresaleReservation, ReservationStatus

CLOSED_UNPAID = (OrderStatus.EXPIRED, OrderStatus.CANCELLED)


def release_lapsed_balances() -> int:
    """Served deposit reservations whose 尾款 order expired (or was cancelled) unpaid: the
    reservation is cancelled and its 定金 refunded in full (a government buyer never forfeits
    money); the expiry already gave the units back to the stock, and the batch never gave them
    out (a parcel takes its batch when it ships). Each committed on its own; a rerun, or a
    reservation already handled, changes nothing (the refund's key makes it once)."""
    balance = aliased(Order)
    ids = db.session.scalars(
        select(PresaleReservation.id)
        .join(balance, balance.id == PresaleReservation.balance_order_id)
        .where(
            PresaleReservation.status == ReservationStatus.SERVED,
            balance.status.in_(CLOSED_UNPAID),
        )
        .order_by(PresaleReservation.id)
    ).all()
    done = 0
    for reservation_id in ids:
        done += _cancel_for_unpaid_balance(reservation_id)
        db.session.commit()  # a batch: each reservation on its own
    return done


def _cancel_for_unpaid_balance(reservation_id: int) -> int:
    reservation = db.session.get(PresaleReservation, reservation_id)
    deposit_order = db.session.get(
        Order, reservation.order_id, with_for_update=True, populate_existing=True
    )
    db.session.refresh(reservation, with_for_update=True)
    if reservation.status != ReservationStatus.SERVED:
        return 0  # handled meanwhile
    payments.release_order(
        deposit_order,
        _("预售尾款逾期未付，定金全额退款"),
        key=f"presale-deposit-refund-{reservation.id}",
    )
    reservation.move_to(ReservationStatus.CANCELLED)
    reservation.decided_at = utcnow()
    notify(
        [reservation.buyer_id],
        "presale.balance_lapsed",
        _l("尾款逾期：订单 %(number)s 已取消，定金全额退款", number=deposit_order.number),
        _l(
            "定金 %(amount)s 将原路退回（对公转账由财务转回）。",
            amount=format_fen(deposit_order.total_fen),
        ),
        recipients.link_to("orders.detail", number=deposit_order.number),
    )
    audit.record(
        None,
        "presale.balance_lapsed",
        reservation,
        after={"deposit_order": deposit_order.number, "refunded_fen": deposit_order.total_fen},
    )
    db.session.flush()
    return 1


def label_lines(order: Order, label: str) -> None:
    """Name what a line pays for (定金, 尾款) in its spec, which the buyer's order, the co-op's
    inbox, picking list and settlement show. Flushes only."""
    for line in order.lines:
        line.spec = f"{line.spec} · {label}"[:60]
    db.session.flush()


def follow_parcel(shipment: Shipment) -> None:
    """The parcels hook: a 尾款 order's parcel (the goods) shipped or arrived -> the deposit
    order's parcel, which holds no goods, follows it (same carrier, same times), so that the
    deposit is settled with the goods and never shipped on its own. Flushes only."""
    if shipment.status not in (ShipmentStatus.SHIPPED, ShipmentStatus.DELIVERED):
        return
    reservation = db.session.scalar(
        select(PresaleReservation).where(
            PresaleReservation.balance_order_id == shipment.order_id,
            PresaleReservation.status == ReservationStatus.SERVED,
        )
    )
    if reservation is None:
        return
    deposit_order = reservation.order
    for parcel in deposit_order.shipments:
        if parcel.coop_id != shipment.coop_id:
            continue
        if parcel.status == ShipmentStatus.AWAITING_HARVEST:
            parcel.move_to(ShipmentStatus.TO_SHIP)
            parcel.move_to(ShipmentStatus.SHIPPED)
            parcel.carrier = shipment.carrier
            parcel.tracking_number = shipment.tracking_number
            parcel.shipped_at = shipment.shipped_at
        if shipment.status == ShipmentStatus.DELIVERED and parcel.status == ShipmentStatus.SHIPPED:
            parcel.move_to(ShipmentStatus.DELIVERED)
            parcel.delivered_at = shipment.delivered_at
    settled = {ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED}
    if deposit_order.status == OrderStatus.PAID and all(
        s.status in settled for s in deposit_order.shipments
    ):
        deposit_order.move_to(OrderStatus.COMPLETED)
        deposit_order.closed_at = utcnow()
    db.session.flush()
