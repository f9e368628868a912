"""Refunds a person asks for: the buyer cancels an order before anything ships (refunded in
full), finance refunds part of a line. Both go through market.payments.services' refund."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from market.accounts.models import User
from market.errors import DomainError, NotFound
from market.extensions import db
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import lifecycle
from market.orders import services as orders
from market.orders.models import Order, OrderLine, OrderMode, OrderStatus, ShipmentStatus
from market.payments import services as payments
from market.payments.models import Refund, RefundStatus
from market.transactions import unit_of_work


@unit_of_work
def cancel_order(buyer: User, number: str) -> Order:
    """The buyer cancels before anything ships. Unpaid: stock back, payments withdrawn. Paid:
    refunded in full automatically, stock back."""
    order = orders.order_of_buyer(buyer, number, for_update=True)
    if order.mode == OrderMode.GROUP_BUY:
        raise DomainError(_("团购订单请在团购页面修改或退出"))
    if order.status == OrderStatus.PENDING_PAYMENT:
        lifecycle.close_unpaid(order, OrderStatus.CANCELLED)
        payments.cancel_open_payments(order)
    elif order.status == OrderStatus.PAID:
        if any(s.status == ShipmentStatus.AWAITING_HARVEST for s in order.shipments):
            # 预售: the paid reservation is the buyer's place in the harvest queue.
            raise DomainError(_("预售订单已付款，采收前不能取消；如歉收将全额退款"))
        if any(s.status != ShipmentStatus.TO_SHIP for s in order.shipments):
            raise DomainError(_("已有包裹发出，不能整单取消；请联系合作社退款"))
        payments.refund_and_cancel_paid(order, _("买家取消订单"), buyer)
    else:
        order.move_to(OrderStatus.CANCELLED)  # raises: says why in the buyer's words
    db.session.commit()
    return order


def _check_line_refund(order: Order, line: OrderLine, amount_fen: int, reason: str) -> None:
    if order.status not in (OrderStatus.PAID, OrderStatus.COMPLETED):
        raise DomainError(_("只有已付款的订单可以退款"))
    if not reason.strip():
        raise DomainError(_("请填写退款原因"), field="reason")
    if amount_fen <= 0:
        raise DomainError(_("退款金额必须大于 0"), field="amount")
    if amount_fen > line.refundable_fen:
        raise DomainError(
            _("最多可退 %(amount)s", amount=format_fen(line.refundable_fen)), field="amount"
        )


def line_refund_to_confirm(actor: User, line_id: int, amount_fen: int, reason: str) -> OrderLine:
    """The refund a co-op is about to confirm, checked as refund_line will check it; nothing
    changes (the confirmation page shows the amount and reason before money moves)."""
    line = db.session.get(OrderLine, line_id)
    if line is None:
        raise NotFound(_("找不到该商品行"))
    orders.shipment_of_coop(actor, line.shipment_id)  # 403 for another co-op's line
    _check_line_refund(line.order, line, amount_fen, reason)
    return line


@unit_of_work
def refund_line(actor: User, line_id: int, amount_fen: int, reason: str) -> Refund:
    """A co-op refunds part or all of one of its lines, with a reason. Never more than the line
    brought in after earlier refunds."""
    line = db.session.get(OrderLine, line_id)
    if line is None:
        raise NotFound(_("找不到该商品行"))
    orders.shipment_of_coop(actor, line.shipment_id)  # 403 for another co-op's line
    order = payments.lock_order(line.order_id)
    db.session.refresh(line)
    _check_line_refund(order, line, amount_fen, reason)
    payment = payments.received_payment(order)
    if payment is None:
        raise DomainError(_("该订单没有可退的款项"))
    quantity = line.quantity if amount_fen == line.amount_fen else 0
    refund = payments.make_refund(
        payment, order, [(line, amount_fen, quantity)], reason.strip(), actor
    )
    notify(
        [order.buyer_id],
        "refund.decided",
        _l("订单 %(number)s 退款 %(amount)s", number=order.number, amount=format_fen(amount_fen)),
        _l("退款原因：%(reason)s。款项已原路退回。", reason=refund.reason)
        if refund.status == RefundStatus.SUCCEEDED
        else _l("退款原因：%(reason)s。财务将把款项转回您的账户。", reason=refund.reason),
        recipients.link_to("orders.detail", number=order.number),
    )
    db.session.commit()
    return refund
