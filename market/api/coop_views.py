"""For a co-op's manager: its parcels (to ship, shipped, done), marking one shipped with the
carrier and tracking number, and adjusting a SKU's stock. The same services and rules as
/coop/orders and /coop/products."""

from __future__ import annotations

from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market.api import blueprint
from market.api.catalog_views import SkuSchema, dump_sku
from market.api.groupbuy_views import GroupBuySummarySchema, dump_summary
from market.api.order_views import ShipmentSchema, dump_shipment
from market.api.paging import from_pagination
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, local_time, money, paged
from market.catalog import services as catalog
from market.catalog.services import MAX_STOCK
from market.groupbuy import fulfilment, proposals
from market.orders import queries
from market.orders import services as orders
from market.security.access import Access, requires

blp = blueprint("api_coop", "For co-ops: parcels to ship, stock")


class InboxArgsSchema(PageArgsSchema):
    tab = fields.String(load_default="to_ship", validate=validate.OneOf(sorted(queries.INBOX_TABS)))


class ParcelLineSchema(Schema):
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    quantity = fields.Integer(required=True)
    amount = fields.Nested(MoneySchema, required=True)


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


class StockSchema(Schema):
    delta = fields.Integer(
        required=True,
        validate=validate.Range(-MAX_STOCK, MAX_STOCK),
        metadata={"description": "入库 (positive) or 出库 (negative)"},
    )


def dump_parcel(shipment) -> dict:
    order = shipment.order
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
                "product_name": line.product_name,
                "spec": line.spec,
                "quantity": line.quantity,
                "amount": money(line.amount_fen),
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
    return from_pagination(page, dump_parcel)


@blp.route("/coop/parcels/<int:shipment_id>/ship", methods=["POST"])
@requires(Access.COOP_MANAGER)
@blp.arguments(ShipSchema)
@blp.response(200, ParcelSchema)
@_errors(400, 404, 409)
def ship(data, shipment_id: int):
    """Hand a parcel to a carrier; the buyer is told, with the tracking number."""
    shipment = orders.ship(current_user, shipment_id, data["carrier"], data["tracking_number"])
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
