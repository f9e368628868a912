"""The catalogue through the API: public, paged with Link headers, the same visibility rules as
the storefront (a draft is its co-op's, a delisted product is gone)."""

from __future__ import annotations

from tests.api.conftest import assert_error


def test_categories_with_counts_in_the_requests_language(api, world):
    body = api().get("/categories").get_json()
    honey = next(c for c in body["items"] if c["slug"] == "honey")
    assert honey["name"] == "蜂蜜" and honey["product_count"] == 1


def test_search_pages_with_link_headers_and_bounds(api, world):
    client = api()
    response = client.get("/products?per_page=1")
    assert response.status_code == 200
    body = response.get_json()
    assert body["pagination"] == {"page": 1, "per_page": 1, "total": 3, "pages": 3}
    assert len(body["items"]) == 1
    assert 'rel="next"' in response.headers["Link"] and 'rel="last"' in response.headers["Link"]
    assert "page=2" in response.headers["Link"]
    assert response.headers["X-Total-Count"] == "3"
    names = {p["name"] for p in client.get("/products?q=蜂蜜").get_json()["items"]}
    assert names == {"原生态蜂蜜"}
    card = client.get("/products?q=蜂蜜").get_json()["items"][0]
    assert card["min_price"] == {"fen": 8800, "formatted": "¥88.00"}
    assert card["skus"][0]["stock_state"] == "in_stock"
    assert card["village"]["name"] == "古丁村"
    assert_error(client.get("/products?per_page=101"), 422, "validation_error")
    assert_error(client.get("/products?page=0"), 422)
    assert_error(client.get("/products?category=nope"), 404)
    in_category = client.get("/products?category=fruit").get_json()["items"]
    assert [p["name"] for p in in_category] == ["白糖罂荔枝"]


def test_a_product_with_skus_images_and_paired_units(api, world):
    body = api().get(f"/products/{world.honey_product}").get_json()
    assert body["skus"][0]["price"]["fen"] == 8800
    assert body["paired_units"] == [{"id": world.unit, "name": "高州市市场监管局"}]
    assert body["images"] == []


def test_a_draft_is_only_its_coops(api, world):
    assert_error(api().get(f"/products/{world.draft}"), 404, "not_found")
    assert_error(api("other_coop").get(f"/products/{world.draft}"), 404)
    assert api("coop").get(f"/products/{world.draft}").status_code == 200


def test_a_delisted_product_is_gone(app, api, world):
    from market.catalog.models import Product, ProductStatus
    from market.extensions import db

    with app.app_context():
        db.session.get(Product, world.herb_product).status = ProductStatus.DELISTED
        db.session.commit()
    assert_error(api().get(f"/products/{world.herb_product}"), 410, "delisted")


def test_villages_and_coops_with_their_pairing_units(api, world):
    client = api()
    towns = client.get("/villages").get_json()["items"]
    assert {v["name"] for t in towns for v in t["villages"]} == {"古丁村", "柏桥村"}
    village = client.get(f"/villages/{world.village}").get_json()
    assert village["coops"] == [{"id": world.coop, "name": "古丁南药合作社"}]
    assert village["paired_units"][0]["name"] == "高州市市场监管局"
    coop = client.get(f"/coops/{world.coop}").get_json()
    assert coop["village"]["name"] == "古丁村"
    assert coop["paired_units"][0]["id"] == world.unit
    assert_error(client.get("/villages/999999"), 404)
    assert_error(client.get("/coops/999999"), 404)
    assert_error(client.get("/coops/0"), 404)
