"""CSRF: with protection on (as in production), a POST without the token changes nothing."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from market.accounts.models import User
from market.catalog.models import Product
from market.extensions import db
from tests.factories import signed_in_client


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    yield app
    app.config["WTF_CSRF_ENABLED"] = False


def test_every_post_route_refuses_a_missing_token(csrf_app, world):
    client = signed_in_client(csrf_app, world.admin)
    adapter = csrf_app.url_map.bind("localhost")
    posts = [r for r in csrf_app.url_map.iter_rules() if "POST" in (r.methods or ())]
    assert len(posts) > 15
    # The webhook proves itself with Stripe's signature instead (tests/payments/test_webhooks.py).
    exempt = {"payments.stripe_webhook"}
    special = {"decision": "confirm", "provider": "offline"}
    for rule in posts:
        # The JSON API signs in by bearer token only, never by cookie, so there is no forged
        # request to refuse (tests/api/test_tokens.py: a cookie session is a 401 there).
        if rule.endpoint in exempt or rule.endpoint.startswith("api_"):
            continue
        values = {arg: special.get(arg, 1) for arg in rule.arguments}
        path = adapter.build(rule.endpoint, values)
        response = client.post(path, data={"name": "x", "status": "listed", "delta": "5"})
        assert response.status_code == 400, (path, response.status_code)


def test_a_forged_registration_creates_no_user(csrf_app):
    client = csrf_app.test_client()
    response = client.post(
        "/register",
        data={"name": "x", "email": "x@example.com", "password": "12345678", "confirm": "12345678"},
    )
    assert response.status_code == 400
    assert "安全令牌" in response.get_data(as_text=True)
    with csrf_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_a_real_form_with_its_token_works(csrf_app, world):
    client = signed_in_client(csrf_app, world.coop_manager)
    page = client.get(f"/coop/products/{world.draft}/edit").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert token
    response = client.post(
        f"/coop/products/{world.draft}/status",
        data={"csrf_token": token.group(1), "status": "listed"},
    )
    assert response.status_code == 302
    with csrf_app.app_context():
        assert db.session.get(Product, world.draft).status == "listed"
