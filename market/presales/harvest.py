"""The harvest of a presale (预售): the co-op announces what it picked; reservations are served
in the order they were paid, the rest refunded in full or rolled over to the next season, as
each buyer chose; once every served parcel has left, the co-op ends the presale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from market.accounts.models import User
from market.audit import services as audit
from market.batches import services as batches
from market.catalog.models import Sku
from market.clock import SHANGHAI, today
from market.errors import DomainError
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import services as orders
from market.orders.models import Order, Shipment, ShipmentStatus
from market.payments import services as payments
from market.presales import seams
from market.presales.balances import label_lines
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


def _balance_per_unit(presale: Presale, reservation: PresaleReservation) -> int:
    """尾款 per unit: the presale's price less the 定金 the reservation paid (none when it paid
    in full; a carried deposit pays this season's price)."""
    if reservation.deposit_fen is None:
        return 0
    return max(presale.price_fen - reservation.deposit_fen, 0)


def _serve(
    user: User, presale: Presale, reservation: PresaleReservation, batch_id: int | None
) -> None:
    balance = _balance_per_unit(presale, reservation)
    if balance > 0:
        _serve_with_balance(presale, reservation, balance)
        return
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


def _serve_with_balance(presale: Presale, reservation: PresaleReservation, balance: int) -> None:
    """A served deposit reservation: a 尾款 order ((price − deposit) × quantity) is placed for
    its buyer (the unit's, for a unit), taking the units out of the stock the harvest just
    received, due within PRESALE_BALANCE_DAYS, paid on the ordinary pay page. Its parcel
    carries the goods and ships only once it is paid; the deposit order's parcel holds none and
    follows it (services.follow_parcel), so the co-op ships once, after the 尾款. Flushes only."""
    deposit_order = reservation.order
    buyer = db.session.get(User, reservation.buyer_id)
    balance_order = orders.build_order(
        buyer,
        [orders.WantedLine(presale.sku_id, reservation.quantity)],
        orders.Delivery(
            method=deposit_order.delivery_method,
            recipient=deposit_order.recipient,
            phone=deposit_order.phone,
            address=deposit_order.address,
            note=deposit_order.note,
        ),
        f"presale-balance-{reservation.id}",
        unit_id=reservation.unit_id,
        referral_unit_id=deposit_order.referral_unit_id,
        prices={presale.sku_id: balance},
        take_stock_for={presale.sku_id},  # out of the harvest just received
        allow_unlisted=True,
    )
    label_lines(balance_order, _("尾款"))
    deadline = utcnow() + timedelta(days=current_app.config["PRESALE_BALANCE_DAYS"])
    balance_order.expires_at = deadline
    reservation.balance_order_id = balance_order.id
    reservation.move_to(ReservationStatus.SERVED)
    reservation.decided_at = utcnow()
    notify(
        [reservation.buyer_id],
        "presale.balance_due",
        _l(
            "您预订的 %(product)s 已采收，请支付尾款 %(amount)s",
            product=deposit_order.lines[0].product_name,
            amount=format_fen(balance_order.total_fen),
        ),
        _l(
            "请在 %(deadline)s 前付清尾款订单 %(number)s，付清后按付款先后发货；"
            "逾期未付，预订取消，定金全额退款。",
            deadline=deadline.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
            number=balance_order.number,
        ),
        recipients.link_to("payments.pay", number=balance_order.number),
    )


def _refund(reservation: PresaleReservation) -> None:
    order = reservation.order
    payments.release_order(
        order, _("预售歉收，未能供货，全额退款"), key=f"presale-refund-{reservation.id}"
    )
    reservation.move_to(ReservationStatus.REFUNDED)
    reservation.decided_at = utcnow()
    seams.reservation_unserved(reservation)
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
    blocked = seams.harvest_blocked(presale)
    if blocked:
        raise DomainError(blocked)
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
            _serve(user, presale, reservation, batch_id)
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
            _l("尾款付清的订单会出现在订单发货页，请按付款先后发货。")
            if presale.takes_deposit
            else _l("请在订单发货页按付款先后发货。"),
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
            .join(
                PresaleReservation,
                or_(
                    PresaleReservation.order_id == Shipment.order_id,
                    PresaleReservation.balance_order_id == Shipment.order_id,
                ),
            )
            .where(
                PresaleReservation.presale_id == presale.id,
                PresaleReservation.status == ReservationStatus.SERVED,
                # a 尾款 not paid yet (or not yet lapsed), a parcel not gone
                Shipment.status.in_(
                    (
                        ShipmentStatus.AWAITING_PAYMENT,
                        ShipmentStatus.AWAITING_HARVEST,
                        ShipmentStatus.TO_SHIP,
                    )
                ),
            )
            .limit(1)
        )
        is not None
    )
