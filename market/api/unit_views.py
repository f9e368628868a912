"""以买代帮 for a unit's coordinator: draft a unit purchase (with invoice details), change the
draft, submit it to the unit's approvers; and read the unit's purchases. The same services and
rules as /unit/purchases."""

from __future__ import annotations

from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.paging import slice_of
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, local_time, money, paged
from market.procurement import purchases as purchasing  # `purchases` is an operation's name
from market.procurement.models import Purpose
from market.security.access import Access, requires

blp = blueprint("api_unit", "以买代帮 unit purchases")

MAX_ID = 2**31 - 1


class PurchaseLineSchema(Schema):
    sku_id = fields.Integer(required=True, validate=validate.Range(1, MAX_ID))
    quantity = fields.Integer(required=True, validate=validate.Range(1, 9999))


class PurchaseInputSchema(Schema):
    purpose = fields.String(required=True, validate=validate.OneOf([p.value for p in Purpose]))
    purpose_note = fields.String(load_default="", validate=validate.Length(max=200))
    recipient = fields.String(required=True, validate=validate.Length(1, 60))
    phone = fields.String(required=True, validate=validate.Length(1, 20))
    address = fields.String(required=True, validate=validate.Length(1, 300))
    invoice_title = fields.String(required=True, validate=validate.Length(1, 100))
    invoice_tax_id = fields.String(required=True, validate=validate.Length(1, 30))
    pay_online = fields.Boolean(load_default=False)
    lines = fields.List(
        fields.Nested(PurchaseLineSchema), required=True, validate=validate.Length(1, 100)
    )


class PurchaseOutLineSchema(Schema):
    sku_id = fields.Integer(required=True)
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Nested(MoneySchema, required=True)


class PurchaseSchema(Schema):
    id = fields.Integer(required=True)
    unit_id = fields.Integer(required=True)
    status = fields.String(required=True)
    purpose = fields.String(required=True)
    purpose_note = fields.String(required=True)
    recipient = fields.String(required=True)
    phone = fields.String(required=True)
    address = fields.String(required=True)
    invoice_title = fields.String(required=True)
    invoice_tax_id = fields.String(required=True)
    pay_online = fields.Boolean(required=True)
    total = fields.Nested(MoneySchema, required=True)
    created_at = fields.DateTime(required=True)
    lines = fields.List(fields.Nested(PurchaseOutLineSchema), required=True)
    order_numbers = fields.List(fields.String(), required=True)


def dump_purchase(purchase) -> dict:
    return {
        "id": purchase.id,
        "unit_id": purchase.unit_id,
        "status": purchase.status.value,
        "purpose": purchase.purpose.value,
        "purpose_note": purchase.purpose_note,
        "recipient": purchase.recipient,
        "phone": purchase.phone,
        "address": purchase.address,
        "invoice_title": purchase.invoice_title,
        "invoice_tax_id": purchase.invoice_tax_id,
        "pay_online": purchase.pay_online,
        "total": money(purchase.total_fen),
        "created_at": local_time(purchase.created_at),
        "lines": [
            {
                "sku_id": line.sku_id,
                "product_name": line.sku.product.name,
                "spec": line.sku.spec,
                "quantity": line.quantity,
                "unit_price": money(line.sku.price_fen),
            }
            for line in purchase.lines
        ],
        "order_numbers": [order.number for order in purchase.orders],
    }


def _data(data) -> purchasing.PurchaseData:
    lines: dict[int, int] = {}
    for line in data["lines"]:
        lines[line["sku_id"]] = lines.get(line["sku_id"], 0) + line["quantity"]
    return purchasing.PurchaseData(
        purpose=Purpose(data["purpose"]),
        purpose_note=data["purpose_note"],
        recipient=data["recipient"],
        phone=data["phone"],
        address=data["address"],
        invoice_title=data["invoice_title"],
        invoice_tax_id=data["invoice_tax_id"],
        pay_online=data["pay_online"],
        lines=lines,
    )


def _errors(*codes):
    def decorate(view):
        for code in (401, 403, *codes):
            view = blp.alt_response(code, schema=ErrorSchema)(view)
        return view

    return decorate


@blp.route("/unit/purchases", methods=["GET"])
@requires(Access.COORDINATOR, Access.APPROVER)
@blp.arguments(PageArgsSchema, location="query", unknown=RAISE)
@blp.response(200, paged(PurchaseSchema, "PurchasePage"))
@_errors()
def purchases(args):
    """My unit's purchases, newest first."""
    unit = current_user.unit
    found = purchasing.unit_purchases(unit.id) if unit is not None else []
    return slice_of(found, args["page"], args["per_page"], dump_purchase)


@blp.route("/unit/purchases", methods=["POST"])
@requires(Access.COORDINATOR)
@blp.arguments(PurchaseInputSchema)
@blp.response(201, PurchaseSchema)
@_errors(400, 404)
def draft(data):
    """Draft a purchase for my unit (canteen, welfare, festival gifts) with invoice details."""
    made = purchasing.draft_purchase(current_user, _data(data))
    return dump_purchase(purchasing.purchase_for(current_user, made.id)), 201


@blp.route("/unit/purchases/<int:purchase_id>", methods=["GET"])
@requires(Access.COORDINATOR, Access.APPROVER)
@blp.response(200, PurchaseSchema)
@_errors(404)
def purchase(purchase_id: int):
    """One of my unit's purchases; another unit's is 404."""
    return dump_purchase(purchasing.purchase_for(current_user, purchase_id))


@blp.route("/unit/purchases/<int:purchase_id>", methods=["POST"])
@requires(Access.COORDINATOR)
@blp.arguments(PurchaseInputSchema)
@blp.response(200, PurchaseSchema)
@_errors(400, 404, 409)
def update(data, purchase_id: int):
    """Change a draft (or a rejected purchase, which becomes a draft again)."""
    purchasing.update_purchase(current_user, purchase_id, _data(data))
    return dump_purchase(purchasing.purchase_for(current_user, purchase_id))


@blp.route("/unit/purchases/<int:purchase_id>/submit", methods=["POST"])
@requires(Access.COORDINATOR)
@blp.response(200, PurchaseSchema)
@_errors(404, 409)
def submit(purchase_id: int):
    """Submit a draft to the unit's approvers (they are told)."""
    purchasing.submit_purchase(current_user, purchase_id)
    return dump_purchase(purchasing.purchase_for(current_user, purchase_id))
