"""The home page's "本单位团购" for a signed-in employee: one stored copy per unit, so a signed-in
home page asks the database for the session and the unread count only; any group-buy change
(a join) or a change of its products shows at once on the next visit."""

from __future__ import annotations

import re

from market.catalog.models import Product
from market.extensions import db
from tests.test_query_budget import statements_run


def _section(html: str) -> str:
    match = re.search(r'<section class="mb-4" id="unit-group-buys">(.*?)</section>', html, re.S)
    return match.group(1) if match else ""


def _home(app, client) -> tuple[str, list[str]]:
    with statements_run(app) as statements:
        html = client.get("/").get_data(as_text=True)
    return html, statements


def test_the_units_section_is_stored_per_unit_and_renewed_by_a_change(app, kit, client_as):
    group_buy_id = kit.open(title="中秋蜂蜜团购")
    first, second = kit.members(2)
    employee, colleague = client_as(first), client_as(second)

    html, _cold = _home(app, employee)  # the page is rendered and stored
    assert "中秋蜂蜜团购" in _section(html) and "已参团 0 件" in _section(html)
    _home(app, employee)  # served from the cache: its section drawn and stored for the unit
    # A colleague of the same unit gets the stored section: no group-buy query at all.
    html, statements = _home(app, colleague)
    assert "中秋蜂蜜团购" in _section(html)
    assert not [s for s in statements if "group_buys" in s], statements
    assert len(statements) <= 2  # the session and the unread count

    kit.join(first, group_buy_id, 3)  # a change of the group-buy: the next visit shows it
    html, statements = _home(app, colleague)
    assert "已参团 3 件" in _section(html)
    assert [s for s in statements if "group_buys" in s]

    with app.app_context():  # its product renamed by the co-op: shown at once
        honey = db.session.get(Product, kit.world.honey_product)
        honey.name = "古丁土蜂蜜"
        db.session.commit()
    assert "古丁土蜂蜜" in _section(_home(app, employee)[0])


def test_a_visitor_without_a_unit_sees_no_section(app, kit, client_as):
    kit.open(title="中秋蜂蜜团购")
    html = client_as("buyer").get("/").get_data(as_text=True)
    assert "本单位团购" not in html and "中秋蜂蜜团购" not in html
