"""For a co-op's manager: its parcels (to ship, shipped, done), marking one shipped with the
carrier and tracking number, and adjusting a SKU's stock. The same services and rules as
/coop/orders and /coop/products."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.catalog_views import SkuSchema, dump_sku
from market.api.groupbuy_views import GroupBuySummarySchema, dump_summary
from market.api.order_views import BATCH_CODE, TRACE_URL, ShipmentSchema, dump_shipment, dump_trace
from market.api.paging import from_pagination
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, local_time, money, paged
from market.batches import services as batches
from market.batches.forms import PICK_PREFIX
from market.catalog import services as catalog
from market.catalog.services import MAX_STOCK
from market.errors import DomainError
from market.groupbuy import fulfilment, proposals
from market.orders import lifecycle, queries
from market.orders import services as orders
from market.security.access import Access, requires

blp = blueprint("api_coop", "For co-ops: parcels to ship, stock")

MAX_ID = 2**31 - 1
# The parcels whose lines may still be given a batch: those the co-op may ship now.
SHIPPABLE = {"to_ship", "awaiting_payment"}
LINE_ID = re.compile(r"[0-9]{1,10}")


class InboxArgsSchema(PageArgsSchema):
    tab = fields.String(load_default="to_ship", validate=validate.OneOf(sorted(queries.INBOX_TABS)))


class OpenBatchSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    harvested_on = fields.Date(required=True)
    plot = fields.String(required=True)
    quantity_remaining = fields.Integer(required=True)
    inspection_result = fields.String(required=True)


class ParcelLineSchema(Schema):
    id = fields.Integer(required=True, metadata={"description": "the key of a batch pick"})
    sku_id = fields.Integer(required=True)
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    quantity = fields.Integer(required=True)
    amount = fields.Nested(MoneySchema, required=True)
    batch_code = fields.String(allow_none=True, required=True, metadata=BATCH_CODE)
    trace_url = fields.String(allow_none=True, required=True, metadata=TRACE_URL)
    open_batches = fields.List(
        fields.Nested(OpenBatchSchema),
        required=True,
        metadata={
            "description": "while the parcel may ship: the open batches of the line's SKU with "
            "something left, oldest harvest first (the first with enough is the default pick)"
        },
    )


class ParcelSchema(ShipmentSchema):
    order_number = fields.String(required=True)
    order_status = fields.String(required=True)
    recipient = fields.String(required=True)
    phone = fields.String(required=True)
    address = fields.String(required=True)
    note = fields.String(required=True)
    ordered_at = fields.DateTime(required=True)
    lines = fields.List(fields.Nested(ParcelLineSchema), required=True)


class ShipSchema(Schema):
    carrier = fields.String(required=True, validate=validate.Length(1, 40))
    tracking_number = fields.String(load_default="", validate=validate.Length(max=60))
    batches = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(allow_none=True, validate=validate.Range(1, MAX_ID)),
        load_default=dict,
        metadata={
            "description": "the batch (批次) each line ships from, by line id: a batch id of "
            "the line's SKU, or null for stock outside any batch; a line left out ships from "
            "its SKU's oldest open batch with enough left",
            "example": {"12": 3},
        },
    )


class StockSchema(Schema):
    delta = fields.Integer(
        required=True,
        validate=validate.Range(-MAX_STOCK, MAX_STOCK),
        metadata={"description": "入库 (positive) or 出库 (negative)"},
    )


def _open_batches(shipments) -> dict[int, list]:
    """The open batches of the SKUs of the parcels that may still ship, in one query."""
    return batches.open_batches_of(
        line.sku_id
        for shipment in shipments
        if shipment.status.value in SHIPPABLE
        for line in shipment.lines
    )


def dump_batch_choice(batch) -> dict:
    return {
        "id": batch.id,
        "code": batch.code,
        "harvested_on": batch.harvested_on,
        "plot": batch.plot,
        "quantity_remaining": batch.quantity_remaining,
        "inspection_result": batch.inspection_result.value,
    }


def dump_parcel(shipment, choices: dict[int, list] | None = None) -> dict:
    """A parcel with its lines; `choices` (from `_open_batches`) offers each line of a parcel
    that may still ship its SKU's open batches. A page of parcels passes the choices of the
    whole page (and its query loaded the lines' batches); one parcel alone asks for both."""
    order = shipment.order
    shippable = shipment.status.value in SHIPPABLE
    if choices is None:
        batches.preload_batches(shipment.lines)
        choices = _open_batches([shipment]) if shippable else {}
    body = dump_shipment(shipment)
    body.update(
        order_number=order.number,
        order_status=order.status.value,
        recipient=order.recipient,
        phone=order.phone,
        address=order.address,
        note=order.note,
        ordered_at=local_time(order.created_at),
        lines=[
            {
                "id": line.id,
                "sku_id": line.sku_id,
                "product_name": line.product_name,
                "spec": line.spec,
                "quantity": line.quantity,
                "amount": money(line.amount_fen),
                **dump_trace(line),
                "open_batches": [dump_batch_choice(b) for b in choices.get(line.sku_id, [])]
                if shippable and line.batch_id is None
                else [],
            }
            for line in shipment.lines
        ],
    )
    return body


def _errors(*codes):
    def decorate(view):
        for code in (401, 403, *codes):
            view = blp.alt_response(code, schema=ErrorSchema)(view)
        return view

    return decorate


@blp.route("/coop/parcels", methods=["GET"])
@requires(Access.COOP_MANAGER)
@blp.arguments(InboxArgsSchema, location="query", unknown=RAISE)
@blp.response(200, paged(ParcelSchema, "ParcelPage"))
@_errors()
def parcels(args):
    """My co-ops' parcels in one tab (to_ship by default), newest first; paged."""
    coop_ids = [coop.id for coop in current_user.managed_coops()]
    page = queries.coop_inbox(coop_ids, args["tab"], args["page"], per_page=args["per_page"])
    choices = _open_batches(page.items)
    return from_pagination(page, lambda shipment: dump_parcel(shipment, choices))


def _picks(shipment, wanted: dict) -> dict[int, int | str]:
    """The body's batch picks as the ship service takes them: each key a line of this parcel
    (else a 400 naming it), null -> batches.NO_BATCH."""
    line_ids = {line.id for line in shipment.lines}
    picks: dict[int, int | str] = {}
    for key, batch_id in wanted.items():
        if not LINE_ID.fullmatch(key) or int(key) not in line_ids:
            raise DomainError(_("该包裹中没有这一商品行"), field=f"batches.{key}")
        picks[int(key)] = batches.NO_BATCH if batch_id is None else batch_id
    return picks


@blp.route("/coop/parcels/<int:shipment_id>/ship", methods=["POST"])
@requires(Access.COOP_MANAGER)
@blp.arguments(ShipSchema)
@blp.response(200, ParcelSchema)
@_errors(400, 404, 409)
def ship(data, shipment_id: int):
    """Hand a parcel to a carrier; the buyer is told, with the tracking number. Each line
    ships from the batch picked for it in `batches`, else its SKU's oldest open batch with
    enough left; a pick the batch cannot serve (another SKU's, closed, short) is a 400 naming
    `batches.<line id>`, and nothing is shipped."""
    picks = _picks(orders.shipment_of_coop(current_user, shipment_id), data["batches"])
    try:
        shipment = lifecycle.ship(
            current_user, shipment_id, data["carrier"], data["tracking_number"], picks
        )
    except DomainError as error:
        if error.field and error.field.startswith(PICK_PREFIX):  # the form's name for it
            error.field = "batches." + error.field[len(PICK_PREFIX) :]
        raise
    return dump_parcel(orders.shipment_of_coop(current_user, shipment.id))


@blp.route("/coop/skus/<int:sku_id>/stock", methods=["POST"])
@requires(Access.COOP_MANAGER)
@blp.arguments(StockSchema)
@blp.response(200, SkuSchema)
@_errors(400, 404)
def adjust_stock(data, sku_id: int):
    """Add or remove stock of my SKU in one conditional UPDATE (never below zero); audited."""
    return dump_sku(catalog.adjust_stock(current_user, sku_id, data["delta"]))


# -- group-buys proposed to my co-op ---------------------------------------------------------
class CoopGroupBuysSchema(Schema):
    proposed = fields.List(fields.Nested(GroupBuySummarySchema), required=True)
    open = fields.List(fields.Nested(GroupBuySummarySchema), required=True)
    succeeded = fields.List(fields.Nested(GroupBuySummarySchema), required=True)


class ReasonSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 300))


@blp.route("/coop/group-buys", methods=["GET"])
@requires(Access.COOP_MANAGER)
@blp.response(200, CoopGroupBuysSchema)
@_errors()
def coop_group_buys():
    """Group-buys of my co-ops: proposals to answer, the open ones, those that succeeded."""
    lists = fulfilment.coop_group_buys(current_user)
    return {
        "proposed": [dump_summary(g) for g in lists.proposed],
        "open": [dump_summary(g) for g in lists.open],
        "succeeded": [dump_summary(g) for g in lists.succeeded],
    }


@blp.route("/coop/group-buys/<int:group_buy_id>/accept", methods=["POST"])
@requires(Access.COOP_MANAGER)
@blp.response(200, GroupBuySummarySchema)
@_errors(400, 404, 409)
def accept_group_buy(group_buy_id: int):
    """Accept a proposal's prices, caps and dates: it opens (caps are reserved from stock)."""
    return dump_summary(proposals.accept_group_buy(current_user, group_buy_id))


@blp.route("/coop/group-buys/<int:group_buy_id>/decline", methods=["POST"])
@requires(Access.COOP_MANAGER)
@blp.arguments(ReasonSchema)
@blp.response(200, GroupBuySummarySchema)
@_errors(400, 404, 409)
def decline_group_buy(data, group_buy_id: int):
    """Decline a proposal with a reason (the coordinator is told)."""
    return dump_summary(proposals.decline_group_buy(current_user, group_buy_id, data["reason"]))
