"""The orders' pages point to a unit's purchases without naming procurement's pages: procurement
registers the links (market.orders.elsewhere), and the people who have such purchases see them."""

from __future__ import annotations

import re

import pytest

ELSEWHERE = re.compile(r'<p[^>]*id="unit-orders-elsewhere".*?</p>', re.S)


def _elsewhere(client) -> list[tuple[str, str]]:
    """(url, label) of each link in the note above one's own orders, none without the note."""
    found = ELSEWHERE.search(client.get("/orders").get_data(as_text=True))
    return re.findall(r'<a href="([^"]+)">([^<]+)</a>', found.group(0)) if found else []


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("coordinator", [("/unit/purchases", "单位采购"), ("/unit/custom", "产品定制")]),
        ("approver", [("/unit/purchases", "单位采购")]),
        ("employee", []),
        ("buyer", []),
    ],
)
def test_own_orders_point_to_the_units_purchases_for_those_who_make_them(client_as, role, links):
    assert _elsewhere(client_as(role)) == links
