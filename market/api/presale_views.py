"""预售 through the API: the open presales, one presale, and reserving units of its coming
harvest (an order at the presale price, paid like any other: the pay page, or
POST /orders/<number>/payments). The same queries and service as the presale pages."""

from __future__ import annotations

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.buying_views import DeliveryFieldsSchema, IdempotencyHeaderSchema, delivery_fields
from market.api.catalog_views import PlaceSchema
from market.api.errors import error_response
from market.api.schemas import ErrorSchema, MoneySchema, money
from market.orders import carts
from market.orders import services as orders
from market.presales import queries, services
from market.presales.models import PaymentKind, PresaleStatus, ReservationStatus
from market.security.access import Access, requires

blp = blueprint("api_presales", "预售 presales: the coming harvest, reserved and paid now")

MAX_ID = 2**31 - 1


class PresaleArgsSchema(Schema):
    product_id = fields.Integer(
        validate=validate.Range(1, MAX_ID), metadata={"description": "one product's presales"}
    )


class PresaleSkuSchema(Schema):
    id = fields.Integer(required=True)
    spec = fields.String(required=True)


class PresaleSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in PresaleStatus]))
    status_label = fields.String(required=True)
    product = fields.Nested(PlaceSchema, required=True)
    sku = fields.Nested(PresaleSkuSchema, required=True)
    coop = fields.Nested(PlaceSchema, required=True)
    price = fields.Nested(MoneySchema, required=True, metadata={"description": "per unit"})
    payment_kind = fields.String(
        required=True,
        validate=validate.OneOf([k.value for k in PaymentKind]),
        metadata={"description": "full: the price when ordering; deposit: 定金 now, 尾款 later"},
    )
    payment_kind_label = fields.String(required=True)
    deposit = fields.Nested(
        MoneySchema,
        allow_none=True,
        required=True,
        metadata={"description": "定金 per unit, paid when ordering (deposit presales)"},
    )
    balance = fields.Nested(
        MoneySchema,
        allow_none=True,
        required=True,
        metadata={"description": "尾款 per unit, paid once harvested (deposit presales)"},
    )
    harvest_from = fields.Date(required=True)
    harvest_to = fields.Date(required=True)
    limit_quantity = fields.Integer(required=True)
    available = fields.Integer(required=True, metadata={"description": "units left to reserve"})
    note = fields.String(required=True)
    url = fields.String(required=True, metadata={"description": "the presale's page"})


class PresaleListSchema(Schema):
    items = fields.List(fields.Nested(PresaleSchema), required=True)


class ReserveSchema(DeliveryFieldsSchema):
    quantity = fields.Integer(required=True, validate=validate.Range(1, carts.MAX_QUANTITY))
    rollover_wanted = fields.Boolean(
        load_default=False,
        metadata={
            "description": "should the harvest fall short: true carries the reservation into "
            "the co-op's next presale of the SKU, false refunds it in full"
        },
    )
    for_unit = fields.Boolean(
        load_default=False,
        metadata={"description": "a unit coordinator reserves for the unit (bank transfer)"},
    )


class ReservationSchema(Schema):
    id = fields.Integer(required=True)
    presale_id = fields.Integer(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf([s.value for s in ReservationStatus])
    )
    status_label = fields.String(required=True)
    quantity = fields.Integer(required=True)
    rollover_wanted = fields.Boolean(required=True)
    unit_id = fields.Integer(allow_none=True, required=True)
    order_number = fields.String(required=True)
    order_status = fields.String(required=True)
    amount_due = fields.Nested(
        MoneySchema,
        required=True,
        metadata={"description": "what the order asks now (the 定金 of a deposit presale)"},
    )
    pay_url = fields.String(required=True, metadata={"description": "the order's pay page"})
    order_url = fields.String(required=True, metadata={"description": "the order in this API"})


def dump_presale(presale) -> dict:
    product = presale.sku.product
    deposit = presale.takes_deposit
    return {
        "id": presale.id,
        "status": presale.status.value,
        "status_label": presale.status_label,
        "product": {"id": product.id, "name": product.name},
        "sku": {"id": presale.sku.id, "spec": presale.sku.spec},
        "coop": {"id": product.coop.id, "name": product.coop.name},
        "price": money(presale.price_fen),
        "payment_kind": presale.payment_kind.value,
        "payment_kind_label": presale.payment_kind_label,
        "deposit": money(presale.deposit_fen) if deposit else None,
        "balance": money(presale.balance_fen) if deposit else None,
        "harvest_from": presale.harvest_from,
        "harvest_to": presale.harvest_to,
        "limit_quantity": presale.limit_quantity,
        "available": presale.available,
        "note": presale.note,
        "url": url_for("presales.detail", presale_id=presale.id, _external=True),
    }


def dump_reservation(reservation) -> dict:
    order = reservation.order
    return {
        "id": reservation.id,
        "presale_id": reservation.presale_id,
        "status": reservation.status.value,
        "status_label": reservation.shown_status_label,
        "quantity": reservation.quantity,
        "rollover_wanted": reservation.rollover_wanted,
        "unit_id": reservation.unit_id,
        "order_number": order.number,
        "order_status": order.status.value,
        "amount_due": money(order.total_fen),
        "pay_url": url_for("payments.pay", number=order.number, _external=True),
        "order_url": url_for("api_orders.order", number=order.number, _external=True),
    }


@blp.route("/presales", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.arguments(PresaleArgsSchema, location="query", unknown=RAISE)
@blp.response(200, PresaleListSchema)
def presales(args):
    """The presales taking reservations now (all, or one product's), the soonest harvest
    first."""
    return {"items": [dump_presale(p) for p in queries.open_presales(args.get("product_id"))]}


@blp.route("/presales/<int:presale_id>", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, PresaleSchema)
@blp.alt_response(404, schema=ErrorSchema)
def presale(presale_id: int):
    """One presale, open or not (its status says whether it takes reservations)."""
    return dump_presale(queries.presale(presale_id))


def _answer(presale_id: int, order, status: int):
    reservation = next(
        (r for r in queries.reservations_of(current_user, presale_id) if r.order_id == order.id),
        None,
    )
    if reservation is None:  # the key placed another order: it cannot be this reservation
        return error_response(
            409, _("该 Idempotency-Key 已用于另一笔订单"), code="idempotency_key_reused"
        )
    return dump_reservation(reservation), status


@blp.route("/presales/<int:presale_id>/reservations", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.arguments(ReserveSchema)
@blp.response(201, ReservationSchema)
@blp.alt_response(200, schema=ReservationSchema, description="the one this key already placed")
@blp.alt_response(400, schema=ErrorSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="more than the presale has left")
def reserve(headers, data, presale_id: int):
    """Reserve units of an open presale: taken from its limit at once, all or nothing (more
    than is left is 409 over_limit, nothing placed), and an order at the presale price (the
    定金 of a deposit presale) whose parcel waits for the harvest. Pay it on `pay_url` or
    through POST /orders/<number>/payments; unpaid, it expires and gives the units back.
    The same Idempotency-Key always answers with the same reservation."""
    key = headers["idempotency_key"]
    found = queries.presale(presale_id)  # none: 404
    already = orders.existing_order(current_user, key)
    if already is not None:
        return _answer(found.id, already, 200)
    order = services.reserve(
        current_user,
        found.id,
        data["quantity"],
        rollover_wanted=data["rollover_wanted"],
        for_unit=data["for_unit"],
        delivery=delivery_fields(data),
        idempotency_key=key,
    )
    return _answer(found.id, order, 201)
