"""Who may call what, for every operation at once: the API's views carry the same `requires`
rules as the pages; without a token every non-public operation is a 401 in the API's shape;
a signed-in person without the role gets 403; and the rules are the pages' own."""

from __future__ import annotations

import re

import pytest

from market.security.access import Access
from tests.api.conftest import assert_error


def _operations(app):
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api_") or rule.endpoint.startswith("api_docs"):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            access = app.view_functions[rule.endpoint].access
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", "1", rule.rule)
            yield rule.endpoint, method, path, access


def _call(client, method: str, path: str, headers: dict | None = None):
    send = client.get if method == "GET" else client.post
    return send(path, json={}, headers=headers or {})


def test_every_operation_says_who_may_call_it(app):
    assert all(access for _, _, _, access in _operations(app))


def test_without_a_token_every_non_public_operation_is_a_401(app, client, world):
    checked = 0
    for _endpoint, method, path, access in _operations(app):
        if Access.PUBLIC in access:
            continue
        assert_error(_call(client, method, path), 401, "unauthorized")
        checked += 1
    assert checked > 25


def test_a_bad_token_is_no_token(app, client, world):
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Bearer mka_nope"}), 401)
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Basic eDp5"}), 401)


@pytest.mark.parametrize(
    ("role", "needed"),
    [
        ("buyer", {Access.COORDINATOR, Access.APPROVER, Access.COOP_MANAGER, Access.EMPLOYEE}),
        ("employee", {Access.COORDINATOR, Access.APPROVER, Access.COOP_MANAGER}),
        ("coop", {Access.COORDINATOR, Access.APPROVER}),
    ],
)
def test_without_the_role_the_answer_is_403(app, api, world, role, needed):
    client = api(role)
    checked = 0
    for _endpoint, method, path, access in _operations(app):
        if not access <= needed:
            continue
        response = _call(client.client, method, path, client.headers())
        assert_error(response, 403, "forbidden")
        checked += 1
    assert checked >= 3


def test_the_rules_are_the_pages_own(app):
    """An API operation and the page doing the same thing admit the same people."""
    pages = {
        "api_cart.checkout": "orders.checkout",
        "api_orders.my_orders": "orders.my_orders",
        "api_orders.cancel": "payments.cancel",
        "api_groupbuys.join": "groupbuy.join",
        "api_groupbuys.open_group_buy": "groupbuy.new",
        "api_me.unit_campaign": "dashboards.unit_progress",
        "api_me.notification_list": "notifications.index",
        "api_unit.draft": "procurement.new_purchase",
        "api_unit.submit": "procurement.submit_purchase",
        "api_coop.parcels": "orders.coop_inbox",
        "api_coop.ship": "orders.ship",
        "api_coop.adjust_stock": "coop.adjust_stock",
        "api_coop.accept_group_buy": "groupbuy.accept",
        "api_coop.decline_group_buy": "groupbuy.decline",
        "api_catalog.product": "catalog.product",
    }
    views = app.view_functions
    for api_endpoint, page in pages.items():
        assert views[api_endpoint].access == views[page].access, api_endpoint
