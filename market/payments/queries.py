"""Read side of payments: what a buyer sees of the money on their order, and who may see an
order's money documents (bank slips, refund slips)."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from market.accounts.models import UnitRole, User
from market.errors import NotFound
from market.extensions import db
from market.orders.models import Order, OrderMode
from market.payments.models import Payment, Refund

# Orders a unit places and pays for itself (以买代帮, 定制): its coordinators and approvers
# follow them on the purchase and custom-request pages. A group-buy order is the employee's own.
UNIT_PAID_MODES = (OrderMode.UNIT_PURCHASE, OrderMode.CUSTOM)


def order_refunds(order_id: int) -> list[Refund]:
    """The order's refunds, oldest first: owed (待退款) until finance sends a transfer's refund."""
    return list(
        db.session.scalars(
            select(Refund)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(Payment.order_id == order_id)
            .order_by(Refund.id)
        )
    )


def order_slips(order_id: int) -> list[Payment]:
    """The order's payments that carry a bank slip (回单), oldest first."""
    return list(
        db.session.scalars(
            select(Payment)
            .where(Payment.order_id == order_id, Payment.proof_path.is_not(None))
            .order_by(Payment.id)
        )
    )


def sees_money_documents(user: User, order: Order) -> bool:
    """Who may see an order's bank slips, as the order pages already let them see the order:
    its buyer; finance, organizers and admins (every order); the coordinators and approvers of
    the unit that placed it, for the unit's own purchases; the co-ops with a parcel in it."""
    if not user.is_authenticated:
        return False
    if user.is_admin or user.is_finance or user.is_organizer or order.buyer_id == user.id:
        return True
    unit = user.unit
    if (
        order.mode in UNIT_PAID_MODES
        and unit is not None
        and unit.id == order.unit_id
        and user.has_unit_role(UnitRole.COORDINATOR, UnitRole.APPROVER)
    ):
        return True
    managed = {coop.id for coop in user.managed_coops()}
    return any(shipment.coop_id in managed for shipment in order.shipments)


def payment_slip_for(user: User, payment_id: int) -> Payment:
    """A payment with a slip the user may see; anything else is a 404 (ids cannot be probed)."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or not payment.proof_path or not sees_money_documents(user, payment.order):
        raise NotFound(_("找不到该回单"))
    return payment


def refund_slip_for(user: User, refund_id: int) -> Refund:
    """A refund with a slip the user may see; anything else is a 404."""
    refund = db.session.get(Refund, refund_id)
    if (
        refund is None
        or not refund.proof_path
        or not sees_money_documents(user, refund.payment.order)
    ):
        raise NotFound(_("找不到该回单"))
    return refund
