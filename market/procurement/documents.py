"""A unit's order on paper: the co-op's copy of its purchase order or delivery note (only the
co-op's own parcels' lines), and the invoice details the unit already gave when it ordered (a
unit purchase's 抬头 and 税号, a custom request's address). For unit purchases and custom orders
alike."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select

from market.accounts.models import User
from market.errors import NotAllowed, NotFound
from market.extensions import db
from market.orders.models import Order, OrderLine, OrderMode
from market.procurement.models import CustomRequest, UnitPurchase, UnitPurchaseOrder


@dataclass(frozen=True)
class CoopDocument:
    order: Order
    lines: list[OrderLine]  # the co-op's own parcels' lines
    purchase: UnitPurchase | None


def coop_document_of(user: User, number: str) -> CoopDocument:
    """The co-op's copy of an order's purchase order or delivery note: only its own parcels'
    lines. A missing order is a 404, another co-op's a 403."""
    order = db.session.scalar(select(Order).where(Order.number == number))
    if order is None:
        raise NotFound(_("找不到该订单"))
    mine = {coop.id for coop in user.managed_coops()}
    shipments = [s for s in order.shipments if user.is_admin or s.coop_id in mine]
    if not shipments:
        raise NotAllowed(_("这不是您合作社的包裹"))
    purchase = db.session.scalar(
        select(UnitPurchase)
        .join(UnitPurchaseOrder, UnitPurchaseOrder.purchase_id == UnitPurchase.id)
        .where(UnitPurchaseOrder.order_id == order.id)
    )
    lines = [line for shipment in shipments for line in shipment.lines]
    return CoopDocument(order, lines, purchase)


@dataclass(frozen=True)
class InvoiceDetails:
    title: str
    tax_id: str
    address: str


def invoice_details_of(order: Order) -> InvoiceDetails:
    """What a unit already said when it ordered, to start its invoice request from: a
    purchase's 抬头 and 税号, a custom request's address, else the unit's name and the order's
    address."""
    title, tax_id, address = "", "", ""
    if order.mode == OrderMode.UNIT_PURCHASE:
        purchase = db.session.scalar(
            select(UnitPurchase)
            .join(UnitPurchaseOrder, UnitPurchaseOrder.purchase_id == UnitPurchase.id)
            .where(UnitPurchaseOrder.order_id == order.id)
        )
        if purchase is not None:
            title, tax_id = purchase.invoice_title, purchase.invoice_tax_id
    else:
        custom = db.session.scalar(select(CustomRequest).where(CustomRequest.order_id == order.id))
        title = order.unit.name if order.unit else ""
        if custom is not None and custom.address:
            address = custom.address
    return InvoiceDetails(title, tax_id, address or order.address)
