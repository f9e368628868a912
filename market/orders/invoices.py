"""先货后款 and invoices (发票) for a unit's orders.

Rules:
- A unit's order (unit purchase, custom product) is seen here by its unit's coordinators and
  approvers; anyone else gets a 404, so order numbers cannot be probed.
- The unit asks for one invoice per order, with 抬头, 税号 and the address it goes to; it may
  correct them until the invoice is issued, never after.
- The co-op that supplies the order, or finance (the service centre, the merchant of record),
  issues it: with its number, an e-invoice file (PDF, OFD or picture, checked by its content,
  kept private), or both. A file may follow a number already given, once.
- An order shipped on credit is overdue once its payment_due_at has passed unpaid.
"""

from __future__ import annotations

import re

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from market.accounts.models import UnitRole, User
from market.audit import services as audit
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.orders.models import (
    Invoice,
    InvoiceStatus,
    Order,
    OrderMode,
    OrderStatus,
    Shipment,
)
from market.security.inputs import clamp_page
from market.transactions import unit_of_work
from market.uploads import store_private_document

UNIT_MODES = (OrderMode.UNIT_PURCHASE, OrderMode.CUSTOM)
TAX_ID = re.compile(r"^[0-9A-Z]{15,20}\Z")


# -- who sees what -------------------------------------------------------------------------------
def unit_of(user: User) -> int | None:
    """The unit whose orders the user handles: a coordinator's or approver's confirmed unit."""
    membership = user.confirmed_unit_membership()
    if membership is None or membership.role not in (UnitRole.COORDINATOR, UnitRole.APPROVER):
        return None
    return membership.unit_id


def unit_order(user: User, number: str) -> Order:
    """One of the user's unit's orders (unit purchase or custom); any other is a 404."""
    order = db.session.scalar(select(Order).where(Order.number == number))
    unit_id = unit_of(user)
    if order is None or order.mode not in UNIT_MODES or unit_id is None or order.unit_id != unit_id:
        raise NotFound(_("找不到该订单"))
    return order


def may_issue(user: User, order: Order) -> bool:
    """Finance, or a manager of a co-op that supplies the order."""
    if user.is_admin or user.is_finance:
        return True
    mine = {coop.id for coop in user.managed_coops()}
    return any(shipment.coop_id in mine for shipment in order.shipments)


def invoice_of(order: Order) -> Invoice | None:
    return db.session.scalar(select(Invoice).where(Invoice.order_id == order.id))


# -- the unit asks -------------------------------------------------------------------------------
@unit_of_work
def request_invoice(user: User, number: str, title: str, tax_id: str, address: str) -> Invoice:
    """The unit asks for (or corrects, until issued) the invoice of one of its orders."""
    order = unit_order(user, number)
    if order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
        raise DomainError(_("订单已关闭，不能申请发票"))
    title, tax_id, address = title.strip(), tax_id.strip().upper(), address.strip()
    if not title:
        raise DomainError(_("请填写发票抬头"), field="title")
    if not TAX_ID.match(tax_id):
        raise DomainError(_("税号应为 15 到 20 位字母或数字"), field="tax_id")
    if not address:
        raise DomainError(_("请填写发票寄送地址或邮箱"), field="address")
    invoice = db.session.scalar(
        select(Invoice).where(Invoice.order_id == order.id).with_for_update()
    )
    if invoice is not None and invoice.status != InvoiceStatus.REQUESTED:
        raise Conflict(_("发票已开具，不能再修改"))
    if invoice is None:
        invoice = Invoice(order_id=order.id, requested_by_id=user.id)
        db.session.add(invoice)
    invoice.title, invoice.tax_id, invoice.address = title[:100], tax_id[:30], address[:300]
    db.session.commit()
    return invoice


# -- the co-op or finance issues -----------------------------------------------------------------
@unit_of_work
def issue_invoice(
    actor: User, invoice_id: int, number: str, upload: FileStorage | None = None
) -> Invoice:
    """Mark the invoice issued with its number and/or attach the e-invoice file. Only the
    order's co-op or finance may; an issued invoice takes a file once, if it had none."""
    invoice = db.session.get(Invoice, invoice_id, with_for_update=True, populate_existing=True)
    if invoice is None:
        raise NotFound(_("找不到该发票申请"))
    if not may_issue(actor, invoice.order):
        raise NotAllowed(_("只有供货合作社或财务可以开具发票"))
    number = (number or "").strip()[:40]
    has_file = upload is not None and bool(upload.filename)
    if not number and not has_file:
        raise DomainError(_("请填写发票号码或上传电子发票"), field="number")
    before = {"status": invoice.status, "number": invoice.number, "file": bool(invoice.file_path)}
    if invoice.status == InvoiceStatus.ISSUED:
        if invoice.file_path or not has_file:
            raise Conflict(_("发票已开具"))
    else:
        invoice.move_to(InvoiceStatus.ISSUED)
        invoice.issued_at = utcnow()
        invoice.issued_by_id = actor.id
    if number:
        invoice.number = number
    if has_file:
        invoice.file_path = store_private_document(upload, "invoices")
    audit.record(
        actor,
        "invoice.issued",
        invoice,
        before=before,
        after={
            "status": invoice.status,
            "number": invoice.number,
            "file": bool(invoice.file_path),
            "order": invoice.order.number,
        },
    )
    db.session.commit()
    return invoice


def issuable_invoice(actor: User, invoice_id: int) -> Invoice:
    """An invoice the actor may issue or download as its issuer; others are a 404."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or not may_issue(actor, invoice.order):
        raise NotFound(_("找不到该发票申请"))
    return invoice


# -- lists ---------------------------------------------------------------------------------------
def outstanding_order_ids():
    """Orders whose invoice was asked for and not issued yet (发票未开), as a subquery."""
    return select(Invoice.order_id).where(Invoice.status == InvoiceStatus.REQUESTED)


def invoices(status: InvoiceStatus | None, page: int, coop_ids: list[int] | None = None):
    query = select(Invoice).options(
        selectinload(Invoice.order).selectinload(Order.unit),
        selectinload(Invoice.order).selectinload(Order.shipments).selectinload(Shipment.coop),
    )
    if status is not None:
        query = query.where(Invoice.status == status)
    if coop_ids is not None:
        query = query.where(
            Invoice.order_id.in_(select(Shipment.order_id).where(Shipment.coop_id.in_(coop_ids)))
        )
    query = query.order_by(Invoice.id if status == InvoiceStatus.REQUESTED else Invoice.id.desc())
    return db.paginate(query, page=clamp_page(page), per_page=50, error_out=False)


def on_credit_orders(*, unit_id: int | None = None, overdue_only: bool = False, page: int = 1):
    """Orders shipped before payment and not paid yet, the first due first."""
    query = select(Order).where(Order.status == OrderStatus.ON_CREDIT)
    if unit_id is not None:
        query = query.where(Order.unit_id == unit_id)
    if overdue_only:
        query = query.where(Order.payment_due_at < utcnow())
    query = query.options(
        selectinload(Order.unit), selectinload(Order.shipments).selectinload(Shipment.coop)
    ).order_by(Order.payment_due_at, Order.id)
    return db.paginate(query, page=clamp_page(page), per_page=50, error_out=False)


def unit_orders(unit_id: int, page: int = 1):
    """The unit's own orders (unit purchases, custom products), the newest first."""
    query = (
        select(Order)
        .where(Order.unit_id == unit_id, Order.mode.in_(UNIT_MODES))
        .options(selectinload(Order.shipments).selectinload(Shipment.coop))
        .order_by(Order.id.desc())
    )
    return db.paginate(query, page=clamp_page(page), per_page=50, error_out=False)


def invoices_by_order(order_ids: list[int]) -> dict[int, Invoice]:
    if not order_ids:
        return {}
    return {
        invoice.order_id: invoice
        for invoice in db.session.scalars(select(Invoice).where(Invoice.order_id.in_(order_ids)))
    }
