"""The harvest of a presale (预售): the co-op announces what it picked; reservations are served
in the order they were paid, the rest refunded in full or rolled over to the next season, as
each buyer chose; once every served parcel has left, the co-op ends the presale."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from market.accounts.models import User
from market.audit import services as audit
from market.batches import services as batches
from market.catalog.models import Sku
from market.clock import today
from market.errors import DomainError
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import services as orders
from market.orders.models import Order, Shipment, ShipmentStatus
from market.payments import services as payments
from market.presales.models import (
    MAX_LIMIT,
    Presale,
    PresaleReservation,
    PresaleStatus,
    ReservationStatus,
)
from market.presales.services import ACTIVE, presale_of_coop, release_lapsed
from market.transactions import unit_of_work


# -- announcing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Harvest:
    presale: Presale
    served: int  # reservations served
    refunded: int
    rolled_over: int
    already: bool  # announced before: nothing changed


def _serve(user: User, reservation: PresaleReservation, batch_id: int | None) -> None:
    order = reservation.order
    reservation.move_to(ReservationStatus.SERVED)
    reservation.decided_at = utcnow()
    for shipment in order.shipments:
        if shipment.status == ShipmentStatus.AWAITING_HARVEST:
            shipment.move_to(ShipmentStatus.TO_SHIP)
    if batch_id is not None:
        # The goods now come out of the harvest's batch (received into stock just before).
        taken: set[int] = set()
        for line in order.lines:
            if line.sku_id not in taken and orders.take_stock(line.sku_id, line.quantity):
                taken.add(line.sku_id)
                line.holds_stock = True
        batches.allocate_lines(order.lines, {line.id: batch_id for line in order.lines})
    notify(
        [reservation.buyer_id],
        "presale.served",
        _l("您预订的 %(product)s 已采收，即将发货", product=order.lines[0].product_name),
        _l("订单 %(number)s 将按付款先后发出，发货后会再通知您。", number=order.number),
        recipients.link_to("orders.detail", number=order.number),
    )


def _refund(reservation: PresaleReservation) -> None:
    order = reservation.order
    payments.release_order(
        order, _("预售歉收，未能供货，全额退款"), key=f"presale-refund-{reservation.id}"
    )
    reservation.move_to(ReservationStatus.REFUNDED)
    reservation.decided_at = utcnow()
    notify(
        [reservation.buyer_id],
        "presale.refunded",
        _l("预售歉收：订单 %(number)s 已全额退款", number=order.number),
        _l(
            "退款 %(amount)s 将原路退回（对公转账由财务转回）。", amount=format_fen(order.total_fen)
        ),
        recipients.link_to("orders.detail", number=order.number),
    )


def _roll_over(reservation: PresaleReservation) -> None:
    reservation.move_to(ReservationStatus.ROLLED_OVER)
    reservation.decided_at = utcnow()
    notify(
        [reservation.buyer_id],
        "presale.rolled_over",
        _l("预售歉收：订单 %(number)s 顺延到下一季", number=reservation.order.number),
        _l("按您下单时的选择，款项保留，下一季预售开启时自动转入并优先发货。"),
        recipients.link_to("orders.detail", number=reservation.order.number),
    )


def _withdraw_unpaid(presale: Presale) -> None:
    """At the harvest, reservations still unpaid are withdrawn (their orders cancelled). Each
    order is locked first, as the payment side locks it, then the reservation read again: one
    paid meanwhile is kept, at the end of the queue. Flushes only."""
    for reservation_id, order_id in db.session.execute(
        select(PresaleReservation.id, PresaleReservation.order_id).where(
            PresaleReservation.presale_id == presale.id,
            PresaleReservation.status == ReservationStatus.AWAITING_PAYMENT,
        )
    ).all():
        order = db.session.get(Order, order_id, with_for_update=True, populate_existing=True)
        reservation = db.session.get(PresaleReservation, reservation_id, populate_existing=True)
        if reservation.status != ReservationStatus.AWAITING_PAYMENT:
            continue
        payments.release_order(order, _("预售已采收，未付款的预订取消"))
        reservation.move_to(ReservationStatus.CANCELLED)
        reservation.decided_at = utcnow()
        presale.reserved_quantity -= reservation.quantity
    db.session.flush()


@unit_of_work
def announce_harvest(user: User, presale_id: int, quantity: int | None) -> Harvest:
    """The co-op announces how many units it harvested (0: the harvest failed). Paid
    reservations are served in the order they were paid (then by id) while the harvest lasts,
    each whole; the first that does not fit and every later one is not served: rolled over to
    the next season if its buyer chose so, else refunded in full. Unpaid reservations are
    withdrawn. The harvest goes into a new batch, which the served parcels ship from. Announcing
    again changes nothing."""
    presale = presale_of_coop(user, presale_id, for_update=True)
    if presale.status not in ACTIVE:
        db.session.commit()
        return Harvest(presale, 0, 0, 0, already=True)
    if quantity is None or not 0 <= quantity <= MAX_LIMIT:
        raise DomainError(_("收成数量应在 0 到 %(n)d 之间", n=MAX_LIMIT), field="quantity")
    release_lapsed(presale)
    _withdraw_unpaid(presale)
    reservations = list(
        db.session.scalars(
            select(PresaleReservation)
            .where(
                PresaleReservation.presale_id == presale.id,
                PresaleReservation.status == ReservationStatus.RESERVED,
            )
            .order_by(PresaleReservation.paid_at, PresaleReservation.id)
            .options(joinedload(PresaleReservation.order))
        )
    )
    batch_id = None
    if quantity > 0:
        sku = db.session.get(Sku, presale.sku_id)
        batch_id = batches.receive_into_new_batch(
            sku,
            harvested_on=today(),
            plot="",
            quantity=quantity,
            notes=_("预售采收"),
            actor=user,
        ).id
    left = quantity
    served = refunded = rolled = 0
    queue_open = True
    for reservation in reservations:
        if queue_open and reservation.quantity <= left:
            left -= reservation.quantity
            _serve(user, reservation, batch_id)
            served += 1
            continue
        queue_open = False  # strictly in payment order: no later one jumps the queue
        if reservation.rollover_wanted:
            _roll_over(reservation)
            rolled += 1
        else:
            _refund(reservation)
            refunded += 1
    if batch_id is not None:
        db.session.expire(sku, ["stock"])  # received and taken in SQL
    presale.harvested_quantity = quantity
    presale.announced_at = utcnow()
    presale.move_to(PresaleStatus.HARVESTED if quantity > 0 else PresaleStatus.FAILED)
    if served:
        notify(
            recipients.coop_manager_ids({presale.coop_id}),
            "presale.to_ship",
            _l("预售已采收：%(n)d 个订单待发货", n=served),
            _l("请在订单发货页按付款先后发货。"),
            recipients.link_to("orders.coop_inbox"),
        )
    audit.record(
        user,
        "presale.harvest_announced",
        presale,
        after={
            "harvested": quantity,
            "served": served,
            "refunded": refunded,
            "rolled_over": rolled,
            "status": presale.status,
        },
    )
    db.session.commit()
    return Harvest(presale, served, refunded, rolled, already=False)


@unit_of_work
def finish_presale(user: User, presale_id: int) -> Presale:
    """After the harvest, once every served parcel has left, the co-op ends the presale."""
    presale = presale_of_coop(user, presale_id, for_update=True)
    if _unshipped(presale):
        raise DomainError(_("还有预售包裹未发货"))
    presale.move_to(PresaleStatus.DONE)
    audit.record(user, "presale.finished", presale, after={"status": presale.status})
    db.session.commit()
    return presale


def _unshipped(presale: Presale) -> bool:
    return (
        db.session.scalar(
            select(Shipment.id)
            .join(PresaleReservation, PresaleReservation.order_id == Shipment.order_id)
            .where(
                PresaleReservation.presale_id == presale.id,
                PresaleReservation.status == ReservationStatus.SERVED,
                Shipment.status == ShipmentStatus.TO_SHIP,
            )
            .limit(1)
        )
        is not None
    )
