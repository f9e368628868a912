"""My orders (list, detail, cancel, confirm receipt) and paying them: a Stripe PaymentIntent's
client secret, confirming a card token, asking Stripe what happened, bank-transfer details.
The same services as the order and payment pages."""

from __future__ import annotations

from flask import current_app, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.errors import error_response
from market.api.paging import from_pagination
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, local_time, money, paged
from market.batches import services as batches
from market.orders import lifecycle, queries
from market.orders import services as orders
from market.orders.models import OrderStatus
from market.payments import providers, refunds
from market.payments import services as payments
from market.security.access import Access, requires

blp = blueprint("api_orders", "My orders and paying them")

NUMBER = {"description": "the order number", "example": "26120212345678"}
BATCH_CODE = {
    "description": "the batch (批次) the line shipped from; null: not shipped yet, or "
    "shipped from stock outside any batch",
    "example": "7KQ2M9XTA",
}
TRACE_URL = {
    "description": "the batch's public trace page (the parcel's QR), absolute; null "
    "when the line has no batch",
    "example": "https://shop.example/t/7KQ2M9XTA",
}


class OrderLineSchema(Schema):
    id = fields.Integer(required=True)
    sku_id = fields.Integer(required=True)
    product_id = fields.Integer(required=True)
    product_name = fields.String(required=True)
    spec = fields.String(required=True)
    quantity = fields.Integer(required=True)
    unit_price = fields.Nested(MoneySchema, required=True)
    amount = fields.Nested(MoneySchema, required=True)
    refunded = fields.Nested(MoneySchema, required=True)
    batch_code = fields.String(allow_none=True, required=True, metadata=BATCH_CODE)
    trace_url = fields.String(allow_none=True, required=True, metadata=TRACE_URL)


class ShipmentSchema(Schema):
    id = fields.Integer(required=True)
    coop_id = fields.Integer(required=True)
    coop_name = fields.String(required=True)
    status = fields.String(required=True)
    carrier = fields.String(required=True)
    tracking_number = fields.String(required=True)
    shipped_at = fields.DateTime(allow_none=True, required=True)
    delivered_at = fields.DateTime(allow_none=True, required=True)
    line_ids = fields.List(fields.Integer(), required=True)


class OrderSchema(Schema):
    number = fields.String(required=True, metadata=NUMBER)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in OrderStatus]))
    mode = fields.String(required=True)
    total = fields.Nested(MoneySchema, required=True)
    paid = fields.Nested(MoneySchema, required=True)
    refunded = fields.Nested(MoneySchema, required=True)
    delivery_method = fields.String(required=True)
    recipient = fields.String(required=True)
    phone = fields.String(required=True)
    address = fields.String(required=True)
    note = fields.String(required=True)
    unit_id = fields.Integer(allow_none=True, required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(allow_none=True, required=True)
    paid_at = fields.DateTime(allow_none=True, required=True)
    payment_due_at = fields.DateTime(allow_none=True, required=True)
    awaits_payment = fields.Boolean(required=True)
    lines = fields.List(fields.Nested(OrderLineSchema), required=True)
    shipments = fields.List(fields.Nested(ShipmentSchema), required=True)


class OrderSummarySchema(Schema):
    number = fields.String(required=True)
    status = fields.String(required=True)
    mode = fields.String(required=True)
    total = fields.Nested(MoneySchema, required=True)
    created_at = fields.DateTime(required=True)


class StartPaymentSchema(Schema):
    provider = fields.String(required=True, validate=validate.OneOf(["stripe", "offline"]))


class BankAccountSchema(Schema):
    account_name = fields.String(required=True)
    bank_name = fields.String(required=True)
    account_number = fields.String(required=True)
    reference = fields.String(
        required=True, metadata={"description": "write this (the order number) on the transfer"}
    )


class PaymentSchema(Schema):
    id = fields.Integer(required=True)
    provider = fields.String(required=True)
    status = fields.String(required=True)
    amount = fields.Nested(MoneySchema, required=True)
    order_status = fields.String(required=True)
    client_secret = fields.String(
        allow_none=True, required=True, metadata={"description": "Stripe PaymentIntent's"}
    )
    publishable_key = fields.String(allow_none=True, required=True)
    requires_action = fields.Boolean(required=True)
    message = fields.String(required=True)
    bank_account = fields.Nested(BankAccountSchema, allow_none=True, required=True)
    expires_at = fields.DateTime(allow_none=True, required=True)


class CardTokenSchema(Schema):
    card_token = fields.String(required=True, validate=validate.Length(1, 200))


def dump_trace(line) -> dict:
    """The batch a shipped line came from, for its trace page (lines preloaded with
    `batches.preload_batches`, so a list of lines asks once)."""
    batch = line.batch if line.batch_id is not None else None
    if batch is None:
        return {"batch_code": None, "trace_url": None}
    return {
        "batch_code": batch.code,
        "trace_url": url_for("batches.trace", code=batch.code, _external=True),
    }


def dump_order(order) -> dict:
    batches.preload_batches(order.lines)
    return {
        "number": order.number,
        "status": order.status.value,
        "mode": order.mode.value,
        "total": money(order.total_fen),
        "paid": money(order.paid_fen),
        "refunded": money(order.refunded_fen),
        "delivery_method": order.delivery_method.value,
        "recipient": order.recipient,
        "phone": order.phone,
        "address": order.address,
        "note": order.note,
        "unit_id": order.unit_id,
        "created_at": local_time(order.created_at),
        "expires_at": local_time(order.expires_at),
        "paid_at": local_time(order.paid_at),
        "payment_due_at": local_time(order.payment_due_at),
        "awaits_payment": order.awaits_payment,
        "lines": [
            {
                "id": line.id,
                "sku_id": line.sku_id,
                "product_id": line.product_id,
                "product_name": line.product_name,
                "spec": line.spec,
                "quantity": line.quantity,
                "unit_price": money(line.unit_price_fen),
                "amount": money(line.amount_fen),
                "refunded": money(line.refunded_fen),
                **dump_trace(line),
            }
            for line in order.lines
        ],
        "shipments": [dump_shipment(s) for s in order.shipments],
    }


def dump_shipment(shipment) -> dict:
    return {
        "id": shipment.id,
        "coop_id": shipment.coop_id,
        "coop_name": shipment.coop.name,
        "status": shipment.status.value,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "shipped_at": local_time(shipment.shipped_at),
        "delivered_at": local_time(shipment.delivered_at),
        "line_ids": [line.id for line in shipment.lines],
    }


def bank_account(order) -> dict:
    config = current_app.config
    return {
        "account_name": config["BANK_ACCOUNT_NAME"],
        "bank_name": config["BANK_NAME"],
        "account_number": config["BANK_ACCOUNT_NUMBER"],
        "reference": order.number,
    }


def dump_payment(payment, order, *, client_secret=None, requires_action=False) -> dict:
    offline = payment.provider == "offline"
    return {
        "id": payment.id,
        "provider": payment.provider,
        "status": payment.status.value,
        "amount": money(payment.amount_fen),
        "order_status": order.status.value,
        "client_secret": client_secret,
        "publishable_key": None if offline else current_app.config.get("STRIPE_PUBLISHABLE_KEY"),
        "requires_action": requires_action,
        "message": payment.failure_message or "",
        "bank_account": bank_account(order) if offline else None,
        "expires_at": local_time(order.expires_at),
    }


ERRORS_OF_AN_ORDER = (401, 404)


def _errors(*codes):
    def decorate(view):
        for code in (*ERRORS_OF_AN_ORDER, *codes):
            view = blp.alt_response(code, schema=ErrorSchema)(view)
        return view

    return decorate


@blp.route("/orders", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.arguments(PageArgsSchema, location="query", unknown=RAISE)
@blp.response(200, paged(OrderSummarySchema, "OrderPage"))
@_errors()
def my_orders(args):
    """My orders, newest first; paged, with a Link header."""
    page = queries.buyer_orders(current_user.id, args["page"], per_page=args["per_page"])
    return from_pagination(
        page,
        lambda order: {
            "number": order.number,
            "status": order.status.value,
            "mode": order.mode.value,
            "total": money(order.total_fen),
            "created_at": local_time(order.created_at),
        },
    )


@blp.route("/orders/<number>", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.response(200, OrderSchema)
@_errors()
def order(number: str):
    """One of my orders with its lines and parcels; someone else's is 404."""
    return dump_order(orders.order_of_buyer(current_user, number))


@blp.route("/orders/<number>/cancel", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, OrderSchema)
@_errors(400, 409)
def cancel(number: str):
    """Cancel before anything ships: unpaid, the stock goes back; paid, refunded in full.
    Cancelling a cancelled order again answers with it, changing nothing."""
    found = orders.order_of_buyer(current_user, number)
    if found.status == OrderStatus.CANCELLED:
        return dump_order(found)
    return dump_order(refunds.cancel_order(current_user, number))


@blp.route("/orders/<number>/shipments/<int:shipment_id>/received", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, OrderSchema)
@_errors(409)
def confirm_receipt(number: str, shipment_id: int):
    """确认收货 of one parcel; with every parcel in, the order is completed."""
    lifecycle.confirm_delivery(current_user, number, shipment_id)
    return dump_order(orders.order_of_buyer(current_user, number))


@blp.route("/orders/<number>/payments", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(StartPaymentSchema)
@blp.response(201, PaymentSchema)
@_errors(400, 409)
def start_payment(data, number: str):
    """Pay by card (a Stripe PaymentIntent: its client secret, for Stripe's SDK to confirm) or
    by bank transfer (the account to send it to). Safe to repeat: the open payment of that
    method is reused, never a second intent."""
    provider = data["provider"]
    started = payments.start_payment(current_user, number, provider)
    found = orders.order_of_buyer(current_user, number)
    secret = None
    if provider == "stripe":
        secret = providers.get("stripe").client_secret(started.payment)  # type: ignore[attr-defined]
    return dump_payment(started.payment, found, client_secret=secret), 201


@blp.route("/orders/<number>/payments/bank-transfer", methods=["GET"])
@requires(Access.SIGNED_IN)
@blp.response(200, BankAccountSchema)
@_errors(409)
def transfer_details(number: str):
    """Where to send a bank transfer (对公转账) for this order, and what to write on it."""
    found = orders.order_of_buyer(current_user, number)
    if not found.awaits_payment:
        return error_response(409, _("该订单当前不需要付款"), code="not_awaiting_payment")
    return bank_account(found)


@blp.route("/orders/<number>/payments/card", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.arguments(CardTokenSchema)
@blp.response(200, PaymentSchema)
@_errors(400, 409)
def confirm_card(data, number: str):
    """Confirm the order's PaymentIntent on the server with a card token made by Stripe's SDK
    (as the card page does); 3-D Secure comes back as requires_action with the client secret."""
    outcome = payments.confirm_card(current_user, number, data["card_token"])
    found = orders.order_of_buyer(current_user, number)
    return dump_payment(
        outcome.payment,
        found,
        client_secret=outcome.client_secret,
        requires_action=bool(outcome.state.requires_action),
    )


@blp.route("/orders/<number>/payments/refresh", methods=["POST"])
@requires(Access.SIGNED_IN)
@blp.response(200, PaymentSchema)
@_errors(400, 409)
def refresh_payment(number: str):
    """After the client finished with Stripe: ask Stripe, not the client, what happened."""
    found = orders.order_of_buyer(current_user, number)
    payment = payments.open_payment(found, "stripe")
    if payment is None:
        return error_response(409, _("请先选择银行卡支付"), code="no_card_payment")
    payment = payments.settle(payment.id)
    return dump_payment(payment, orders.order_of_buyer(current_user, number))
