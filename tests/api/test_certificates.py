"""Certificates (证书) through the catalogue API: a product's page lists its verified
certificates valid today, and its card their kinds, by the storefront's own rule (pending and
rejected ones never, a co-op's licence on every product of the co-op, gone the day after the
last day); the product list asks the same number of queries however many cards it shows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine

from market import clock
from market.catalog.models import Category
from market.directory.models import Coop
from market.extensions import db
from tests import factories
from tests.api.conftest import statements_sent
from tests.certificates.conftest import certificates_cell, last_certificate_id, upload

ISSUER = "高州市农业农村局"


@pytest.fixture
def certify(app, world, client_as):
    """certify(decision="verify", **upload fields) -> the id of a certificate uploaded by the
    co-op manager and verified (or rejected, or left pending) by an organizer on the pages."""
    manager, organizer = client_as("coop_manager"), client_as("organizer")

    def make(decision: str = "verify", **changes) -> int:
        assert upload(manager, world, **changes).status_code == 303
        certificate_id = last_certificate_id(app)
        if decision == "verify":
            done = organizer.post(f"/admin/certificates/{certificate_id}/verify")
            assert done.status_code == 303
        elif decision == "reject":
            done = organizer.post(
                f"/admin/certificates/{certificate_id}/reject", data={"reason": "编号不符"}
            )
            assert done.status_code == 303
        return certificate_id

    return make


def _beijing(day, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=clock.SHANGHAI).astimezone(UTC)


def _cards(api) -> dict[int, list[dict]]:
    body = api().get("/products?per_page=100").get_json()
    return {card["id"]: card["badges"] for card in body["items"]}


def test_a_product_lists_its_valid_certificates_as_the_storefront_shows_them(
    app, api, world, certify
):
    selenium_until = clock.today() + timedelta(days=365)
    licence_until = clock.today() + timedelta(days=30)
    certify()  # 富硒 of 原生态蜂蜜
    certify("pending", kind="organic", number="YJ-1")
    certify("reject", kind="green_food", number="LS-1")
    certify(
        kind="food_business_licence",
        number="JY144098100001",
        covers_all_products="y",
        product_ids=None,
        valid_until=licence_until.isoformat(),
    )
    selenium = {
        "kind": "selenium_rich",
        "label": "富硒",
        "number": "FX-2026-0001",
        "issuer": ISSUER,
        "valid_until": selenium_until.isoformat(),
    }
    licence = {
        "kind": "food_business_licence",
        "label": "食品经营许可",
        "number": "JY144098100001",
        "issuer": ISSUER,
        "valid_until": licence_until.isoformat(),
    }
    client = api()
    honey = client.get(f"/products/{world.honey_product}").get_json()
    assert honey["certificates"] == [selenium, licence]
    assert honey["badges"] == [
        {"kind": "selenium_rich", "label": "富硒"},
        {"kind": "food_business_licence", "label": "食品经营许可"},
    ]
    assert client.get(f"/products/{world.herb_product}").get_json()["certificates"] == [licence]
    assert client.get(f"/products/{world.lychee}").get_json()["certificates"] == []
    # The storefront's product page shows the same ones.
    page = app.test_client().get(f"/products/{world.honey_product}").get_data(as_text=True)
    cell = certificates_cell(page)
    assert (
        "富硒" in cell and "食品经营许可" in cell and "有机" not in cell and "绿色食品" not in cell
    )
    # The list's cards carry the kinds.
    cards = _cards(api)
    assert [b["kind"] for b in cards[world.honey_product]] == [
        "selenium_rich",
        "food_business_licence",
    ]
    assert [b["kind"] for b in cards[world.herb_product]] == ["food_business_licence"]
    assert cards[world.lychee] == []


def test_a_certificate_is_gone_the_day_after_its_last_day(app, api, world, certify):
    last_day = clock.today() + timedelta(days=10)
    certify(valid_until=last_day.isoformat())
    with time_machine.travel(_beijing(last_day, 23), tick=False):
        detail = api().get(f"/products/{world.honey_product}").get_json()
        assert [c["kind"] for c in detail["certificates"]] == ["selenium_rich"]
        assert _cards(api)[world.honey_product] == [{"kind": "selenium_rich", "label": "富硒"}]
    with time_machine.travel(_beijing(last_day + timedelta(days=1), 0), tick=False):
        detail = api().get(f"/products/{world.honey_product}").get_json()
        assert detail["certificates"] == [] and detail["badges"] == []
        assert _cards(api)[world.honey_product] == []


def _queries(app, path: str) -> tuple[int, dict]:
    with statements_sent(app) as statements:
        response = app.test_client().get(f"/api/v1{path}")
    assert response.status_code == 200
    return len(statements), response.get_json()


def test_the_product_list_asks_the_same_queries_for_more_certified_products(app, world, certify):
    certify()
    before, body = _queries(app, "/products?category=honey")
    assert [len(card["badges"]) for card in body["items"]] == [1]
    with app.app_context():
        coop, honey = db.session.get(Coop, world.coop), db.session.get(Category, world.honey)
        made = [factories.make_product(coop, honey, f"蜂蜜{n}") for n in range(4)]
        db.session.commit()
        ids = [product.id for product in made]
    for product_id in ids:
        certify(product_ids=[product_id], number=f"FX-{product_id}")
    after, body = _queries(app, "/products?category=honey")
    assert [len(card["badges"]) for card in body["items"]] == [1] * 5
    assert after == before
