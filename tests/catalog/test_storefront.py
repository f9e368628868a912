"""What a visitor sees: home, search (Chinese text), categories, pagination, product pages."""

from __future__ import annotations

from sqlalchemy import event

from market.catalog.models import Product, ProductStatus
from market.extensions import cache, db
from tests.factories import make_product


def test_home_shows_featured_categories_and_villages(client, world):
    page = client.get("/").get_data(as_text=True)
    for text in ["原生态蜂蜜", "¥88.00", "白糖罂荔枝", "蜂蜜", "南药", "古丁村", "柏桥村"]:
        assert text in page
    assert "益智（草稿）" not in page


def test_search_finds_chinese_words_in_names_villages_and_categories(client, world):
    by_name = client.get("/products?q=蜂蜜").get_data(as_text=True)
    assert "原生态蜂蜜" in by_name and "白糖罂荔枝" not in by_name
    by_village = client.get("/products?q=柏桥").get_data(as_text=True)
    assert "白糖罂荔枝" in by_village and "原生态蜂蜜" not in by_village
    by_category = client.get("/products?q=南药").get_data(as_text=True)
    assert "藿香" in by_category and "益智（草稿）" not in by_category
    both_words = client.get("/products?q=古丁 藿").get_data(as_text=True)
    assert "藿香" in both_words and "原生态蜂蜜" not in both_words


def test_search_treats_wildcards_as_text(client, world):
    page = client.get("/products?q=%25").get_data(as_text=True)
    assert "没有找到相关商品" in page


def test_search_without_results_says_so(client, world):
    page = client.get("/products?q=榴莲").get_data(as_text=True)
    assert "没有找到相关商品" in page


def test_category_listing(client, world):
    page = client.get("/category/fruit").get_data(as_text=True)
    assert "白糖罂荔枝" in page and "原生态蜂蜜" not in page
    assert client.get("/category/nope").status_code == 404


def test_listing_is_paginated(app, client, world):
    app.config["PRODUCTS_PER_PAGE"] = 2
    try:
        first = client.get("/products").get_data(as_text=True)
        assert "共 3 件" in first and "下一页" in first
        third = client.get("/products?page=2").get_data(as_text=True)
        names = ["原生态蜂蜜", "藿香", "白糖罂荔枝"]
        assert sum(name in first for name in names) == 2
        assert sum(name in third for name in names) == 1
        assert client.get("/products?page=abc").status_code == 200
        assert client.get("/products?page=99").status_code == 200
    finally:
        app.config["PRODUCTS_PER_PAGE"] = 24


def test_product_page_shows_what_a_buyer_needs(client, world):
    page = client.get(f"/products/{world.honey_product}").get_data(as_text=True)
    for text in [
        "原生态蜂蜜",
        "¥88.00",
        "500g",
        "古丁镇古丁村",
        "古丁南药合作社",
        "高州市市场监管局",
        "全年",
    ]:
        assert text in page
    assert "高州市委办" not in page  # paired with another village


def test_season_months_are_shown(app, client, world):
    with app.app_context():
        lychee = db.session.get(Product, world.lychee)
        lychee.season_mask = 0b000001110000  # May, June, July
        db.session.commit()
    page = client.get(f"/products/{world.lychee}").get_data(as_text=True)
    assert "5月、6月、7月" in page


def test_drafts_are_hidden_from_everyone_but_their_coop(client, client_as, world):
    assert client.get(f"/products/{world.draft}").status_code == 404
    assert client_as("other_coop_manager").get(f"/products/{world.draft}").status_code == 404
    own = client_as("coop_manager").get(f"/products/{world.draft}")
    assert own.status_code == 200
    assert "此商品未上架" in own.get_data(as_text=True)


def test_unknown_product_is_404(client, world):
    assert client.get("/products/99999").status_code == 404


def _queries(app, client, path: str) -> int:
    statements: list[str] = []
    with app.app_context():
        engine = db.engine
        cache.clear()  # the real render's count, not the page cache's

    def count(*_args):
        statements.append("q")

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def test_query_count_does_not_grow_with_the_products_shown(app, client, world):
    paths = ["/", "/products", "/category/herbs", f"/products/{world.honey_product}"]
    before = {path: _queries(app, client, path) for path in paths}
    with app.app_context():
        from market.catalog.models import Category
        from market.directory.models import Coop

        coop = db.session.get(Coop, world.coop)
        herbs = db.session.get(Category, world.herbs)
        for n in range(15):
            make_product(coop, herbs, f"南药{n}", status=ProductStatus.LISTED)
        db.session.commit()
    after = {path: _queries(app, client, path) for path in paths}
    assert after == before
