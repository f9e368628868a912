"""An order's life after it is placed, money aside (market.payments.services moves it): paid
(its parcels may ship; the co-op is told), shipped with each line's batch, delivered, completed
once every parcel is in; or closed unpaid, its stock given back. Parcel events reach the
workflows above through market.orders.parcels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from market.accounts.models import User
from market.batches import services as batches
from market.errors import DomainError, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import parcels
from market.orders.models import (
    Order,
    OrderMode,
    OrderStatus,
    Shipment,
    ShipmentStatus,
)
from market.orders.services import give_back_stock, order_of_buyer, shipment_of_coop
from market.transactions import unit_of_work


def close_unpaid(order: Order, status: OrderStatus) -> None:
    """Cancel or expire an unpaid order: stock back, shipments cancelled. Flushes only."""
    order.move_to(status)
    order.closed_at = utcnow()
    for shipment in order.shipments:
        shipment.move_to(ShipmentStatus.CANCELLED)
    give_back_stock(order)
    db.session.flush()


def mark_paid(order: Order) -> None:
    """Money for the whole order arrived: parcels still waiting for it may ship; an order paid
    after delivery (先货后款) whose parcels are all in is completed at once."""
    order.move_to(OrderStatus.PAID)
    order.paid_at = utcnow()
    order.expires_at = None
    to_ship = set()
    for shipment in order.shipments:
        if shipment.status == ShipmentStatus.AWAITING_PAYMENT:
            shipment.move_to(ShipmentStatus.TO_SHIP)
            to_ship.add(shipment.coop_id)
    if order.mode != OrderMode.GROUP_BUY:  # a group-buy's co-op is told once, at its closing
        notify(
            recipients.coop_manager_ids(to_ship),
            "order.paid",
            _l("订单 %(number)s 已付款，请发货", number=order.number),
            _l(
                "金额 %(amount)s，请在订单发货页打印拣货单并发货。",
                amount=format_fen(order.total_fen),
            ),
            recipients.link_to("orders.coop_inbox"),
        )
    _complete_if_done(order)
    db.session.flush()


def release_on_credit(order: Order, at: datetime) -> None:
    """先货后款: the order ships before it is paid (the order's state machine says which modes
    may; any other raises). The payment term starts now; the order no longer expires.
    Flushes only."""
    order.move_to(OrderStatus.ON_CREDIT)
    order.expires_at = None
    order.payment_due_at = at + timedelta(days=current_app.config["PAYMENT_TERM_DAYS"])
    for shipment in order.shipments:
        if shipment.status == ShipmentStatus.AWAITING_PAYMENT:
            shipment.move_to(ShipmentStatus.TO_SHIP)
    db.session.flush()


@unit_of_work
def ship(
    user: User,
    shipment_id: int,
    carrier: str,
    tracking_number: str,
    batch_picks: Mapping[int, str | int | None] | None = None,
) -> Shipment:
    """The co-op hands its parcel to a carrier (or it waits at the pickup point). A unit's
    order may go before it is paid (先货后款, see Order.MODE_TRANSITIONS): its payment term
    starts with this shipping; a retail order's unpaid parcel is refused as before. Each line
    gets the batch (批次) it ships from: the one picked per line id, else the oldest open one."""
    shipment = shipment_of_coop(user, shipment_id)
    carrier, tracking_number = (carrier or "").strip(), (tracking_number or "").strip()
    if not carrier:
        raise DomainError(_("请填写快递公司"), field="carrier")
    # The order first, then its parcel: the order the payment side locks them in.
    order = db.session.get(Order, shipment.order_id, with_for_update=True, populate_existing=True)
    shipment = db.session.get(Shipment, shipment.id, with_for_update=True, populate_existing=True)
    now = utcnow()
    if shipment.status == ShipmentStatus.AWAITING_PAYMENT and order.may_move_to(
        OrderStatus.ON_CREDIT
    ):
        release_on_credit(order, now)
    shipment.move_to(ShipmentStatus.SHIPPED)
    shipment.carrier = carrier
    shipment.tracking_number = tracking_number
    shipment.shipped_at = now
    batches.allocate_lines(shipment.lines, batch_picks or {})
    parcels.parcel_moved(shipment)
    notify(
        [order.buyer_id],
        "order.shipped",
        _l("订单 %(number)s 已发货", number=order.number),
        _l(
            "%(coop)s 已交 %(carrier)s 发出，运单号 %(tracking)s。",
            coop=shipment.coop.name,
            carrier=shipment.carrier,
            tracking=shipment.tracking_number,
        )
        if shipment.tracking_number
        else _l(
            "%(coop)s 已交 %(carrier)s 发出。", coop=shipment.coop.name, carrier=shipment.carrier
        ),
        recipients.link_to("orders.detail", number=order.number),
    )
    db.session.commit()
    return shipment


@unit_of_work
def confirm_delivery(user: User, number: str, shipment_id: int) -> Shipment:
    """The buyer confirms a parcel arrived; with every parcel in, the order is completed."""
    order = order_of_buyer(user, number, for_update=True)
    shipment = next((s for s in order.shipments if s.id == shipment_id), None)
    if shipment is None:
        raise NotFound(_("找不到该包裹"))
    shipment.move_to(ShipmentStatus.DELIVERED)
    shipment.delivered_at = utcnow()
    _complete_if_done(order)
    parcels.parcel_moved(shipment)
    db.session.commit()
    return shipment


def _complete_if_done(order: Order) -> None:
    settled = {ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED}
    if order.status == OrderStatus.PAID and all(s.status in settled for s in order.shipments):
        order.move_to(OrderStatus.COMPLETED)
        order.closed_at = utcnow()
