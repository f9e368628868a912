"""Payments are tested against localstripe, a stateful fake Stripe on loopback (DESIGN.md §7),
started once per session; and through the real order services, so what is paid is what a buyer
would have ordered."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
import stripe
from flask import Flask
from sqlalchemy import select

from market.accounts.models import User
from market.catalog.models import Sku
from market.extensions import db
from market.orders import services as orders
from market.orders.models import DeliveryMethod
from tests.localstripe import running_localstripe

SECRET_KEY = "sk_test_market"
PUBLISHABLE_KEY = "pk_test_market"
WEBHOOK_SECRET = "whsec_test_market"

# Stripe's test cards (https://docs.stripe.com/testing), as localstripe plays them.
GOOD_CARD = "4242424242424242"
THREE_D_SECURE_CARD = "4000002760003184"
# localstripe declines 4000000000000002 only when it is attached to a customer; this one is
# declined when charged, by Stripe and localstripe alike.
DECLINED_CARD = "4000000000000341"


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory) -> Iterator[str]:
    """One localstripe for the whole run, with a state file of its own."""
    with running_localstripe(tmp_path_factory.mktemp("localstripe")) as url:
        yield url


STRIPE_CONFIG = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_API_BASE")
STRIPE_CONFIG += ("STRIPE_WEBHOOK_SECRET", "STRIPE_JS_URL")


@pytest.fixture
def stripe_app(app: Flask, localstripe_url: str) -> Iterator[Flask]:
    """The app with card payments through localstripe."""
    saved = {key: app.config.get(key) for key in STRIPE_CONFIG}
    app.config.update(
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
        STRIPE_API_BASE=localstripe_url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_JS_URL=f"{localstripe_url}/js.stripe.com/v3/",
    )
    yield app
    app.config.update(saved)


@pytest.fixture
def stripe_client(localstripe_url: str) -> stripe.StripeClient:
    """The shop's view of localstripe, to check what really happened there."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": localstripe_url})


@pytest.fixture
def card_token(localstripe_url: str) -> Callable[[str], str]:
    """card_token("4242...") -> a token id, made as Stripe.js createToken makes it: with the
    publishable key only (sent in the body, as the browser does)."""
    browser = stripe.StripeClient(PUBLISHABLE_KEY, base_addresses={"api": localstripe_url})

    def make(number: str) -> str:
        card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
        params = {"card": card, "key": PUBLISHABLE_KEY}
        return browser.v1.tokens.create(params).id

    return make


@pytest.fixture
def authenticate(localstripe_url: str) -> Callable[[str, bool], None]:
    """What the stand-in Stripe.js does when the buyer answers the 3-D Secure window."""
    browser = stripe.StripeClient(PUBLISHABLE_KEY, base_addresses={"api": localstripe_url})

    def answer(client_secret: str, success: bool = True) -> None:
        intent_id = client_secret.split("_secret_")[0]
        browser.raw_request(
            "post",
            f"/v1/payment_intents/{intent_id}/_authenticate",
            success="true" if success else "false",
            client_secret=client_secret,
            key=PUBLISHABLE_KEY,
        )

    return answer


@pytest.fixture
def place_order(stripe_app: Flask, world: SimpleNamespace) -> Callable[..., str]:
    """place_order(buyer_id, {product_id: quantity}) -> the number of a new unpaid order,
    placed through the real order service (stock taken, one shipment per co-op)."""

    def place(buyer_id: int, quantities: dict[int, int]) -> str:
        with stripe_app.test_request_context():
            buyer = db.session.get(User, buyer_id)
            wanted = []
            for product_id, quantity in quantities.items():
                sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == product_id))
                wanted.append(orders.WantedLine(sku_id, quantity))
            delivery = orders.Delivery(
                DeliveryMethod.DELIVERY, "周买家", "13900000009", "广东省茂名市高州市人民路 1 号"
            )
            order = orders.build_order(buyer, wanted, delivery, secrets.token_hex(16))
            db.session.commit()
            return order.number

    return place
