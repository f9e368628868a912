"""Cart and checkout for a signed-in buyer: the same order services as the pages (stock taken
in one conditional UPDATE, prices only as shown, one order per Idempotency-Key)."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import EXCLUDE, Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.catalog_views import stock_state
from market.api.errors import error_response
from market.api.order_views import OrderSchema, dump_order
from market.api.schemas import ErrorSchema, MoneySchema, money
from market.orders import carts, services
from market.orders.models import DeliveryMethod
from market.security.access import Access, requires

blp = blueprint("api_cart", "Cart and checkout")

MAX_ID = 2**31 - 1


class CartLineSchema(Schema):
    item_id = fields.Integer(required=True)
    sku_id = fields.Integer(required=True)
    product_id = fields.Integer(required=True)
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Nested(MoneySchema, required=True)
    amount = fields.Nested(MoneySchema, required=True)
    stock_state = fields.String(required=True)


class CartGroupSchema(Schema):
    coop_id = fields.Integer(required=True)
    coop_name = fields.String(required=True)
    items = fields.List(fields.Nested(CartLineSchema), required=True)
    subtotal = fields.Nested(MoneySchema, required=True)


class CartSchema(Schema):
    groups = fields.List(fields.Nested(CartGroupSchema), required=True)
    total = fields.Nested(MoneySchema, required=True)
    item_count = fields.Integer(required=True)


class AddToCartSchema(Schema):
    sku_id = fields.Integer(required=True, validate=validate.Range(1, MAX_ID))
    quantity = fields.Integer(load_default=1, validate=validate.Range(1, carts.MAX_QUANTITY))


class CartQuantitySchema(Schema):
    quantity = fields.Integer(
        required=True,
        validate=validate.Range(0, carts.MAX_QUANTITY),
        metadata={"description": "0 removes the line"},
    )


class ShownPriceSchema(Schema):
    sku_id = fields.Integer(required=True, validate=validate.Range(1, MAX_ID))
    unit_price_fen = fields.Integer(required=True, validate=validate.Range(0, 10**12))


class CheckoutLineSchema(Schema):
    sku_id = fields.Integer(required=True)
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Nested(MoneySchema, allow_none=True, required=True)
    amount = fields.Nested(MoneySchema, required=True)
    for_sale = fields.Boolean(required=True)
    short_of_stock = fields.Boolean(required=True)


class AddressSchema(Schema):
    id = fields.Integer(required=True)
    recipient = fields.String(required=True)
    phone = fields.String(required=True)
    address = fields.String(required=True)
    is_default = fields.Boolean(required=True)


class CheckoutSummarySchema(Schema):
    lines = fields.List(fields.Nested(CheckoutLineSchema), required=True)
    total = fields.Nested(MoneySchema, required=True)
    shown_prices = fields.List(
        fields.Nested(ShownPriceSchema),
        required=True,
        metadata={"description": "send these back with POST /checkout"},
    )
    addresses = fields.List(fields.Nested(AddressSchema), required=True)
    pickup_available = fields.Boolean(required=True)


class DeliveryFieldsSchema(Schema):
    """How an order reaches the buyer: pickup at the buyer's unit, a saved address, or a new
    one (saved). The checkout's and every other order-placing operation's."""

    delivery_method = fields.String(
        required=True, validate=validate.OneOf([m.value for m in DeliveryMethod])
    )
    address_id = fields.Integer(validate=validate.Range(1, MAX_ID))
    recipient = fields.String(validate=validate.Length(max=60))
    phone = fields.String(validate=validate.Length(max=20))
    region = fields.String(validate=validate.Length(max=100))
    detail = fields.String(validate=validate.Length(max=200))
    note = fields.String(validate=validate.Length(max=300))


def delivery_fields(data) -> dict:
    """The delivery asked for, as `orders.services.delivery_for` takes it (the API's
    `CheckoutForm.delivery_fields`)."""
    return {
        "method": data["delivery_method"],
        "address_id": data.get("address_id"),
        "recipient": data.get("recipient"),
        "phone": data.get("phone"),
        "region": data.get("region"),
        "detail": data.get("detail"),
        "note": data.get("note"),
    }


class CheckoutSchema(DeliveryFieldsSchema):
    shown_prices = fields.List(
        fields.Nested(ShownPriceSchema),
        required=True,
        validate=validate.Length(max=carts.MAX_SHOWN_PRICES),
        metadata={"description": "the unit prices the buyer was shown (GET /checkout)"},
    )


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        required=True,
        validate=validate.Length(1, 64),
        metadata={"description": "one per order the buyer means to place; a retry reuses it"},
    )


def dump_cart(cart) -> dict:
    groups = []
    for group in carts.cart_groups(cart):
        groups.append(
            {
                "coop_id": group.coop.id,
                "coop_name": group.coop.name,
                "items": [
                    {
                        "item_id": item.id,
                        "sku_id": item.sku_id,
                        "product_id": item.sku.product_id,
                        "product_name": item.sku.product.name,
                        "spec": item.sku.spec,
                        "quantity": item.quantity,
                        "unit_price": money(item.sku.price_fen),
                        "amount": money(item.sku.price_fen * item.quantity),
                        "stock_state": stock_state(item.sku.stock),
                    }
                    for item in group.items
                ],
                "subtotal": money(group.subtotal_fen),
            }
        )
    return {
        "groups": groups,
        "total": money(sum(group.subtotal_fen for group in carts.cart_groups(cart))),
        "item_count": sum(len(group["items"]) for group in groups),
    }


def _cart() -> dict:
    return dump_cart(carts.cart_for(current_user, None, lines=True))


@blp.route("/cart", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.response(200, CartSchema)
@blp.alt_response(401, schema=ErrorSchema)
def cart():
    """My cart, one group per co-op (one parcel each)."""
    return _cart()


@blp.route("/cart/items", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(AddToCartSchema)
@blp.response(200, CartSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema)
def add_item(data):
    """Add a listed SKU; the cart never holds more than the stock on hand."""
    carts.add_to_cart(current_user, None, data["sku_id"], data["quantity"])
    return _cart()


@blp.route("/cart/items/<int:item_id>", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(CartQuantitySchema)
@blp.response(200, CartSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema)
def set_quantity(data, item_id: int):
    """Change a line's quantity; 0 removes it."""
    carts.set_cart_quantity(current_user, None, item_id, data["quantity"])
    return _cart()


@blp.route("/checkout", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.response(200, CheckoutSummarySchema)
@blp.alt_response(401, schema=ErrorSchema)
def checkout_summary():
    """What placing the order would cost now, the prices to send back, my saved addresses."""
    current = carts.cart_for(current_user, None, lines=True)
    summary = carts.checkout_summary(current)
    return {
        "lines": [
            {
                "sku_id": line.sku.id,
                "product_name": line.sku.product.name,
                "spec": line.sku.spec,
                "quantity": line.quantity,
                "unit_price": money(line.price_fen),
                "amount": money(line.amount_fen),
                "for_sale": line.price_fen is not None,
                "short_of_stock": line in summary.short,
            }
            for line in summary.lines
        ],
        "total": money(summary.total_fen),
        "shown_prices": [
            {"sku_id": line.sku.id, "unit_price_fen": line.price_fen}
            for line in summary.lines
            if line.price_fen is not None
        ],
        "addresses": [
            {
                "id": a.id,
                "recipient": a.recipient,
                "phone": a.phone,
                "address": a.one_line,
                "is_default": a.is_default,
            }
            for a in services.addresses_of(current_user)
        ],
        "pickup_available": current_user.unit is not None,
    }


@blp.route("/checkout", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(IdempotencyHeaderSchema, location="headers")
@blp.arguments(CheckoutSchema)
@blp.response(201, OrderSchema)
@blp.alt_response(200, schema=OrderSchema, description="the order this key already placed")
@blp.alt_response(400, schema=ErrorSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema)
def checkout(headers, data):
    """Place the cart as one order, at exactly the prices shown (else 409 prices_changed and
    nothing is placed). The same Idempotency-Key always answers with the same order."""
    key = headers["idempotency_key"]
    current = carts.cart_for(current_user, None, lines=True, for_order=True)
    already = services.existing_order(current_user, key)
    if already is not None:
        return dump_order(already), 200
    if not carts.cart_groups(current):
        return error_response(409, _("购物车是空的"), code="cart_empty")
    shown = {line["sku_id"]: line["unit_price_fen"] for line in data["shown_prices"]}
    delivery = services.delivery_for(
        current_user, **delivery_fields(data), addresses=services.addresses_of(current_user)
    )
    # A refusal is rolled back by place_order and answered by the API's one error handler.
    order = services.place_order(
        current_user,
        delivery,
        key,
        shown_prices=shown,
        key_is_new=True,
        cart=current,
    )
    return dump_order(order), 201
