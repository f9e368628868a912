"""爱心团购 through the API: my unit's group-buys, one with its progress and the tier reached,
joining, changing, leaving and paying by card; and for a coordinator, proposing one (the co-op
accepts it on its side). The same services and rules as the group-buy pages."""

from __future__ import annotations

from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.order_views import PaymentSchema, dump_payment
from market.api.paging import slice_of
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, local_time, money, paged
from market.extensions import db
from market.groupbuy import joining, proposals, queries
from market.groupbuy.display import progress, time_left
from market.groupbuy.models import GroupBuy, ParticipationStatus, PaymentMode, Visibility
from market.models import utcnow
from market.payments import providers
from market.payments import services as payments
from market.security.access import Access, requires

blp = blueprint("api_groupbuys", "爱心团购 group-buys")

MAX_ID = 2**31 - 1


class TierSchema(Schema):
    min_total_quantity = fields.Integer(required=True)
    price = fields.Nested(MoneySchema, required=True)


class GroupBuyItemSchema(Schema):
    id = fields.Integer(required=True)
    sku_id = fields.Integer(required=True)
    product_id = fields.Integer(required=True)
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    price = fields.Nested(MoneySchema, required=True, metadata={"description": "before tiers"})
    current_price = fields.Nested(
        MoneySchema, required=True, metadata={"description": "at the tier reached now"}
    )
    cap = fields.Integer(allow_none=True, required=True)
    joined_quantity = fields.Integer(required=True)
    tiers = fields.List(fields.Nested(TierSchema), required=True)


class ProgressSchema(Schema):
    total_quantity = fields.Integer(required=True)
    min_quantity = fields.Integer(required=True)
    percent = fields.Integer(required=True)
    to_minimum = fields.Integer(required=True)
    reached = fields.Boolean(required=True)
    tier_reached = fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "the highest tier threshold reached, if any"},
    )
    next_tier = fields.String(allow_none=True, required=True)


class MyParticipationSchema(Schema):
    status = fields.String(required=True)
    quantities = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    order_number = fields.String(allow_none=True, required=True)
    needs_payment = fields.Boolean(required=True)


class GroupBuySummarySchema(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True)
    unit_id = fields.Integer(required=True)
    coop_id = fields.Integer(required=True)
    coop_name = fields.String(required=True)
    opens_at = fields.DateTime(required=True)
    closes_at = fields.DateTime(required=True)
    time_left = fields.String(required=True)
    payment_mode = fields.String(required=True)
    progress = fields.Nested(ProgressSchema, required=True)


class GroupBuySchema(GroupBuySummarySchema):
    description = fields.String(required=True)
    visibility = fields.String(required=True)
    pickup_address = fields.String(required=True)
    pickup_contact = fields.String(required=True)
    pickup_window = fields.String(required=True)
    items = fields.List(fields.Nested(GroupBuyItemSchema), required=True)
    mine = fields.Nested(MyParticipationSchema, allow_none=True, required=True)


class QuantitySchema(Schema):
    item_id = fields.Integer(required=True, validate=validate.Range(1, MAX_ID))
    quantity = fields.Integer(required=True, validate=validate.Range(0, joining.MAX_QUANTITY))


class QuantitiesSchema(Schema):
    items = fields.List(
        fields.Nested(QuantitySchema), required=True, validate=validate.Length(1, 50)
    )


class NewTierSchema(Schema):
    min_total_quantity = fields.Integer(required=True, validate=validate.Range(1, 10**6))
    price_fen = fields.Integer(required=True, validate=validate.Range(0, 10**8))


class NewItemSchema(Schema):
    sku_id = fields.Integer(required=True, validate=validate.Range(1, MAX_ID))
    price_fen = fields.Integer(required=True, validate=validate.Range(0, 10**8))
    cap = fields.Integer(validate=validate.Range(1, 10**6), allow_none=True)
    tiers = fields.List(
        fields.Nested(NewTierSchema), load_default=list, validate=validate.Length(max=5)
    )


class NewGroupBuySchema(Schema):
    title = fields.String(required=True, validate=validate.Length(1, 100))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    opens_at = fields.AwareDateTime(load_default=None, allow_none=True)
    closes_at = fields.AwareDateTime(required=True)
    min_quantity = fields.Integer(required=True, validate=validate.Range(1, 10**6))
    payment_mode = fields.String(
        required=True, validate=validate.OneOf([m.value for m in PaymentMode])
    )
    visibility = fields.String(
        required=True, validate=validate.OneOf([v.value for v in Visibility])
    )
    pickup_address = fields.String(required=True, validate=validate.Length(1, 200))
    pickup_contact = fields.String(load_default="", validate=validate.Length(max=100))
    pickup_window = fields.String(load_default="", validate=validate.Length(max=100))
    items = fields.List(
        fields.Nested(NewItemSchema), required=True, validate=validate.Length(1, 20)
    )


def _tier_reached(group_buy: GroupBuy, total: int) -> int | None:
    reached = [
        tier.min_total_quantity
        for item in group_buy.items
        for tier in item.tiers
        if tier.min_total_quantity <= total
    ]
    return max(reached) if reached else None


def dump_summary(group_buy: GroupBuy) -> dict:
    shown = progress(group_buy)
    return {
        "id": group_buy.id,
        "title": group_buy.title,
        "status": group_buy.status.value,
        "unit_id": group_buy.unit_id,
        "coop_id": group_buy.coop_id,
        "coop_name": group_buy.coop.name,
        "opens_at": local_time(group_buy.opens_at),
        "closes_at": local_time(group_buy.closes_at),
        "time_left": time_left(group_buy.closes_at),
        "payment_mode": group_buy.payment_mode.value,
        "progress": {
            "total_quantity": shown.total,
            "min_quantity": shown.minimum,
            "percent": shown.percent,
            "to_minimum": shown.to_minimum,
            "reached": shown.to_minimum == 0,
            "tier_reached": _tier_reached(group_buy, shown.total),
            "next_tier": shown.next_tier,
        },
    }


def dump_group_buy(group_buy: GroupBuy) -> dict:
    body = dump_summary(group_buy)
    total = body["progress"]["total_quantity"]
    participation = queries.participation_of(group_buy.id, current_user.id)
    mine = None
    if participation is not None:
        active = participation.status == ParticipationStatus.ACTIVE
        mine = {
            "status": participation.status.value,
            "quantities": {str(line.item_id): line.quantity for line in participation.lines},
            "order_number": participation.order.number if participation.order else None,
            "needs_payment": active
            and group_buy.payment_mode == PaymentMode.CARD
            and not queries.is_secured(participation),
        }
    body.update(
        description=group_buy.description,
        visibility=group_buy.visibility.value,
        pickup_address=group_buy.pickup_address,
        pickup_contact=group_buy.pickup_contact,
        pickup_window=group_buy.pickup_window,
        items=[
            {
                "id": item.id,
                "sku_id": item.sku_id,
                "product_id": item.sku.product_id,
                "product_name": item.sku.product.name,
                "spec": item.sku.spec,
                "price": money(item.price_fen),
                "current_price": money(item.price_at(total)),
                "cap": item.cap,
                "joined_quantity": item.joined_quantity,
                "tiers": [
                    {"min_total_quantity": t.min_total_quantity, "price": money(t.price_fen)}
                    for t in item.tiers
                ],
            }
            for item in group_buy.items
        ],
        mine=mine,
    )
    return body


def _errors(*codes):
    def decorate(view):
        for code in (401, 404, *codes):
            view = blp.alt_response(code, schema=ErrorSchema)(view)
        return view

    return decorate


@blp.route("/group-buys", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.arguments(PageArgsSchema, location="query", unknown=RAISE)
@blp.response(200, paged(GroupBuySummarySchema, "GroupBuyPage"))
@_errors()
def group_buys(args):
    """The open group-buys of my unit (none without a unit); paged, with a Link header."""
    unit = current_user.unit
    found = queries.open_for_unit(unit.id) if unit is not None else []
    return slice_of(found, args["page"], args["per_page"], dump_summary)


@blp.route("/group-buys/<int:group_buy_id>", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.response(200, GroupBuySchema)
@_errors()
def group_buy(group_buy_id: int):
    """A group-buy I may see, with its progress, the tier reached and my participation."""
    return dump_group_buy(queries.group_buy_for(current_user, group_buy_id))


def _quantities(data) -> dict[int, int]:
    return {line["item_id"]: line["quantity"] for line in data["items"]}


@blp.route("/group-buys/<int:group_buy_id>/join", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(QuantitiesSchema)
@blp.response(201, GroupBuySchema)
@_errors(400, 409)
def join(data, group_buy_id: int):
    """Join with quantities per item. A card group-buy then wants POST …/pay."""
    joining.join(current_user, group_buy_id, _quantities(data))
    return dump_group_buy(queries.group_buy_for(current_user, group_buy_id)), 201


@blp.route("/group-buys/<int:group_buy_id>/change", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(QuantitiesSchema)
@blp.response(200, GroupBuySchema)
@_errors(400, 409)
def change(data, group_buy_id: int):
    """Change my quantities while it is open."""
    joining.change(current_user, group_buy_id, _quantities(data))
    return dump_group_buy(queries.group_buy_for(current_user, group_buy_id))


@blp.route("/group-buys/<int:group_buy_id>/leave", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, GroupBuySchema)
@_errors(400, 409)
def leave(group_buy_id: int):
    """Leave while it is open; anything paid goes back."""
    joining.leave(current_user, group_buy_id)
    return dump_group_buy(queries.group_buy_for(current_user, group_buy_id))


@blp.route("/group-buys/<int:group_buy_id>/pay", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(201, PaymentSchema)
@_errors(400, 409)
def pay(group_buy_id: int):
    """Secure my participation by card: the PaymentIntent's client secret (an authorisation at
    the highest price, or a charge, as the page decides). Safe to repeat."""
    order = joining.start_card_payment(current_user, group_buy_id)
    payment = payments.open_payment(order, "stripe")
    secret = providers.get("stripe").client_secret(payment)  # type: ignore[attr-defined]
    db.session.refresh(order)
    return dump_payment(payment, order, client_secret=secret), 201


@blp.route("/unit/group-buys", methods=["POST"])
@requires(Access.COORDINATOR)
@blp.arguments(NewGroupBuySchema)
@blp.response(201, GroupBuySchema)
@_errors(400, 403, 409)
def open_group_buy(data):
    """A coordinator proposes a group-buy for one co-op's SKUs; the co-op accepts its prices,
    caps and dates before it opens (as on /unit/group-buys/new)."""
    made = proposals.open_group_buy(
        current_user,
        proposals.GroupBuyData(
            title=data["title"],
            description=data["description"],
            opens_at=data["opens_at"] or utcnow(),
            closes_at=data["closes_at"],
            min_quantity=data["min_quantity"],
            payment_mode=PaymentMode(data["payment_mode"]),
            visibility=Visibility(data["visibility"]),
            pickup_address=data["pickup_address"],
            pickup_contact=data["pickup_contact"],
            pickup_window=data["pickup_window"],
            items=[
                proposals.ItemData(
                    sku_id=item["sku_id"],
                    price_fen=item["price_fen"],
                    cap=item.get("cap"),
                    tiers=[
                        proposals.TierData(t["min_total_quantity"], t["price_fen"])
                        for t in item["tiers"]
                    ],
                )
                for item in data["items"]
            ],
        ),
    )
    return dump_group_buy(queries.group_buy_for(current_user, made.id)), 201
