"""Stripe's webhook, through the real endpoint: events signed the way Stripe signs them, for
PaymentIntents that really exist at localstripe. The shop believes the signature, never the
event's copy of the intent: it asks Stripe what the intent is now."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from market.accounts.models import User
from market.extensions import db
from market.orders.models import Order, OrderStatus
from market.payments import services
from market.payments.models import PaymentStatus, WebhookEvent
from tests.payments.conftest import GOOD_CARD, WEBHOOK_SECRET

WEBHOOK_URL = "/payments/stripe/webhook"


def sign(payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """Stripe's scheme: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>">."""
    timestamp = int(time.time()) if at is None else at
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(event_type: str, obj: dict) -> bytes:
    body = {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
    }
    return json.dumps(body).encode()


@pytest.fixture
def deliver(stripe_app):
    """deliver(payload, signature) -> (status code, JSON body), as Stripe would POST it."""
    client = stripe_app.test_client()

    def post(payload: bytes, signature: str | None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        response = client.post(WEBHOOK_URL, data=payload, headers=headers)
        return response.status_code, response.get_json()

    return post


@pytest.fixture
def paid_at_stripe(stripe_app, world, place_order, card_token, stripe_client):
    """An order whose PaymentIntent succeeded at Stripe while the shop has not heard yet."""
    number = place_order(world.buyer, {world.honey_product: 1})
    with stripe_app.test_request_context():
        buyer = db.session.get(User, world.buyer)
        started = services.start_payment(buyer, number, "stripe")
        intent_id = started.created.provider_ref
    failed_snapshot = stripe_client.v1.payment_intents.retrieve(intent_id).to_dict()
    card = stripe_client.v1.tokens.retrieve(card_token(GOOD_CARD)).card
    stripe_client.v1.payment_intents.update(intent_id, {"payment_method": card.id})
    stripe_client.v1.payment_intents.confirm(intent_id)
    intent = stripe_client.v1.payment_intents.retrieve(intent_id).to_dict()
    return SimpleNamespace(number=number, intent=intent, earlier_intent=failed_snapshot)


def order_status(app, number: str) -> OrderStatus:
    with app.test_request_context():
        return db.session.scalar(select(Order.status).where(Order.number == number))


def events_recorded(app) -> int:
    with app.test_request_context():
        return db.session.scalar(select(func.count()).select_from(WebhookEvent))


def test_the_endpoint_is_there(stripe_app):
    assert WEBHOOK_URL in {rule.rule for rule in stripe_app.url_map.iter_rules()}


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "t=1,v1=deadbeef",
        "signed-by-someone",
        "wrong secret",
        "too old",
    ],
)
def test_an_event_not_signed_by_stripe_is_refused_and_changes_nothing(
    stripe_app, deliver, paid_at_stripe, signature, movements
):
    payload = event("payment_intent.succeeded", paid_at_stripe.intent)
    if signature == "wrong secret":
        signature = sign(payload, secret="whsec_someone_else")
    elif signature == "too old":
        signature = sign(payload, at=int(time.time()) - 3600)
    status, body = deliver(payload, signature)
    assert status == 400
    assert body["error"] == "InvalidWebhook"
    assert events_recorded(stripe_app) == 0
    assert order_status(stripe_app, paid_at_stripe.number) == OrderStatus.PENDING_PAYMENT
    assert movements == []


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"\xff\xfe", b"[]", json.dumps({"type": "payment_intent.succeeded"}).encode()],
)
def test_a_signed_body_that_is_not_an_event_is_refused(stripe_app, deliver, payload):
    status, body = deliver(payload, sign(payload))
    assert (status, body["error"]) == (400, "InvalidWebhook")
    assert events_recorded(stripe_app) == 0


def test_a_succeeded_event_pays_the_order_once(stripe_app, deliver, paid_at_stripe, movements):
    payload = event("payment_intent.succeeded", paid_at_stripe.intent)
    assert deliver(payload, sign(payload)) == (200, {"result": "processed"})
    assert order_status(stripe_app, paid_at_stripe.number) == OrderStatus.PAID
    assert [m.amount_fen for m in movements] == [8800]

    # Stripe delivers at least once: the same event again changes nothing.
    assert deliver(payload, sign(payload)) == (200, {"result": "duplicate"})
    assert order_status(stripe_app, paid_at_stripe.number) == OrderStatus.PAID
    assert events_recorded(stripe_app) == 1
    assert len(movements) == 1


def test_a_charge_event_finds_its_payment_intent(stripe_app, deliver, paid_at_stripe):
    charge = paid_at_stripe.intent["latest_charge"]
    charge = charge if isinstance(charge, dict) else {"id": charge}
    charge = {**charge, "object": "charge", "payment_intent": paid_at_stripe.intent["id"]}
    payload = event("charge.succeeded", charge)
    assert deliver(payload, sign(payload)) == (200, {"result": "processed"})
    assert order_status(stripe_app, paid_at_stripe.number) == OrderStatus.PAID


def test_an_old_failure_arriving_after_the_success_does_not_unpay(
    stripe_app, deliver, paid_at_stripe, movements
):
    succeeded = event("payment_intent.succeeded", paid_at_stripe.intent)
    assert deliver(succeeded, sign(succeeded)) == (200, {"result": "processed"})
    # An earlier attempt's failure, delivered late, with the intent as it was then.
    old_intent = {
        **paid_at_stripe.earlier_intent,
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
    }
    failed = event("payment_intent.payment_failed", old_intent)
    assert deliver(failed, sign(failed)) == (200, {"result": "processed"})

    assert order_status(stripe_app, paid_at_stripe.number) == OrderStatus.PAID
    with stripe_app.test_request_context():
        order = db.session.scalar(select(Order).where(Order.number == paid_at_stripe.number))
        assert order.paid_fen == 8800
        statuses = [p.status for p in db.session.scalars(select(services.Payment))]
        assert statuses == [PaymentStatus.SUCCEEDED]
    assert [m.amount_fen for m in movements] == [8800]


def test_an_event_for_an_intent_the_shop_never_made_is_ignored(stripe_app, deliver, stripe_client):
    intent = stripe_client.v1.payment_intents.create({"amount": 100, "currency": "cny"})
    payload = event("payment_intent.succeeded", intent.to_dict())
    assert deliver(payload, sign(payload)) == (200, {"result": "ignored"})
    other = event("customer.created", {"id": "cus_123", "object": "customer"})
    assert deliver(other, sign(other)) == (200, {"result": "ignored"})
    assert events_recorded(stripe_app) == 2
