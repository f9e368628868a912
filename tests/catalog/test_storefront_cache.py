"""The storefront's page cache (market/pagecache/): a page served again comes from the cache
(no SQL at all, the same page), and after each kind of change, made through the real pages and
services, the next visit shows the change. Languages, people and CSRF tokens never mix."""

from __future__ import annotations

import io
import os
import re
import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from sqlalchemy import event, text

from market import clock, create_app, pagecache
from market.campaign.models import Campaign
from market.catalog.models import Product, Sku
from market.extensions import db
from market.security.throttle import limiter
from tests.campaign.conftest import buy_and_pay
from tests.factories import PASSWORD, image_bytes, signed_in_client
from tests.orders.conftest import buy, sku_of


@contextmanager
def counting_sql(app):
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def page_text(response) -> str:
    return response.get_data(as_text=True)


def without_tokens(page: str) -> str:
    """The page without its CSRF tokens (signed with the time: they change by the second)."""
    page = re.sub(r'(name="csrf_token" value=")[^"]+"', r'\1"', page)
    return re.sub(r'(<meta name="csrf-token" content=")[^"]+"', r'\1"', page)


def storefront_paths(world) -> list[str]:
    return [
        "/",
        "/products?q=%E8%9C%82%E8%9C%9C",  # 蜂蜜
        "/category/honey",
        f"/products/{world.honey_product}",
        "/villages",
        f"/villages/{world.village}",
        "/campaign",
    ]


def price_cell(page: str) -> str:
    match = re.search(r'id="product-price">([^<]+)<', page)
    assert match, "the product page shows its price"
    return match.group(1).strip()


def stock_cell(page: str) -> str:
    """The first SKU's stock as the product page shows it."""
    match = re.search(
        r'<td class="text-end">(\d+|<span class="text-muted">[^<]+</span>)</td></tr>', page
    )
    assert match, "the product page shows the stock"
    return match.group(1)


# -- served from the cache ----------------------------------------------------------------------
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_each_storefront_page_is_served_again_from_the_cache_without_sql(
    app, client, client_as, world, signed_in
):
    visitor = client_as("buyer") if signed_in else client
    for path in storefront_paths(world):
        first = visitor.get(path)
        assert first.status_code == 200, path
        with counting_sql(app) as statements:
            second = visitor.get(path)
        assert second.status_code == 200 and second.headers["X-Cache"] == "hit", path
        if signed_in:
            # Only the personal menu is rendered: the person, their unread count, their rights.
            assert all(not s.lstrip().upper().startswith("SELECT PRODUCTS") for s in statements)
            assert "周买家" in page_text(second)
        else:
            assert statements == [], (path, statements)
        assert without_tokens(page_text(second)) == without_tokens(page_text(first)), path


def test_responses_say_how_they_may_be_kept(app, client, client_as, world):
    path = f"/products/{world.honey_product}"
    client.get(path)
    anonymous = client.get(path)
    assert anonymous.headers["Cache-Control"] == "private, no-cache"
    assert {"Cookie", "Accept-Language"} <= set(anonymous.vary)
    # The security headers stay on a page from the cache.
    assert anonymous.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in anonymous.headers["Content-Security-Policy"]
    buyer = client_as("buyer")
    buyer.get(path)
    signed_in = buyer.get(path)
    assert signed_in.headers["X-Cache"] == "hit"
    assert signed_in.headers["Cache-Control"] == "no-store"
    assert "Cookie" in signed_in.vary


# -- changes show on the next visit -------------------------------------------------------------
def test_a_new_price_shows_at_once_on_the_product_page_and_the_listings(
    app, client, client_as, world
):
    product, listing = f"/products/{world.honey_product}", "/category/honey"
    assert price_cell(page_text(client.get(product))) == "¥88.00"
    assert "¥88.00" in page_text(client.get(listing))
    assert client.get(product).headers["X-Cache"] == "hit"
    sku_id = sku_of(app, world.honey_product)
    response = client_as("coop_manager").post(
        f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "92.5", "active": "y"}
    )
    assert response.status_code == 302
    page = client.get(product)
    assert page.headers["X-Cache"] == "miss" and price_cell(page_text(page)) == "¥92.50"
    shown = page_text(client.get(listing))
    assert "¥92.50" in shown and "¥88.00" not in shown
    # Another product's page was not touched by the change.
    lychee = f"/products/{world.lychee}"
    client.get(lychee)
    client_as("coop_manager").post(
        f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "90", "active": "y"}
    )
    assert client.get(lychee).headers["X-Cache"] == "hit"


def test_stock_taken_by_an_order_shows_on_the_next_visit(app, client, client_as, world):
    product = f"/products/{world.honey_product}"
    sku_id = sku_of(app, world.honey_product)
    with app.app_context():
        stock = db.session.get(Sku, sku_id).stock
    assert stock_cell(page_text(client.get(product))) == str(stock)
    client.get(f"/products/{world.lychee}")
    buy(client_as("buyer"), sku_id, 3)  # the conditional stock UPDATE of order placement
    assert stock_cell(page_text(client.get(product))) == str(stock - 3)
    # A checkout of one product leaves the other products' pages in the cache.
    assert client.get(f"/products/{world.lychee}").headers["X-Cache"] == "hit"


def test_stock_adjusted_by_the_coop_and_by_sql_elsewhere_shows(app, client, client_as, world):
    product = f"/products/{world.honey_product}"
    sku_id = sku_of(app, world.honey_product)
    client.get(product)
    assert (
        client_as("coop_manager")
        .post(f"/coop/skus/{sku_id}/stock", data={"delta": "7"})
        .status_code
        == 302
    )
    with app.app_context():
        stock = db.session.get(Sku, sku_id).stock
    assert stock_cell(page_text(client.get(product))) == str(stock)
    # A write on a plain connection, outside any session (a bulk load, a console).
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE skus SET stock = 0"))
    assert "售罄" in stock_cell(page_text(client.get(product)))


def test_delisting_answers_410_at_once_and_listing_again_brings_it_back(
    app, client, client_as, world
):
    product = f"/products/{world.honey_product}"
    card = f'href="{product}"'
    client.get(product)
    assert card in page_text(client.get("/"))
    manager = client_as("coop_manager")
    manager.post(f"/coop/products/{world.honey_product}/status", data={"status": "delisted"})
    gone = client.get(product)
    assert gone.status_code == 410 and "X-Cache" not in gone.headers
    assert card not in page_text(client.get("/"))
    assert card not in page_text(client.get("/category/honey"))
    # The co-op still sees its own product, with the warning, and nobody gets that from the cache.
    own = manager.get(product)
    assert own.status_code == 200 and "此商品未上架" in page_text(own)
    assert client.get(product).status_code == 410
    assert client_as("buyer").get(product).status_code == 410
    manager.post(f"/coop/products/{world.honey_product}/status", data={"status": "listed"})
    back = client.get(product)
    assert back.status_code == 200 and "此商品未上架" not in page_text(back)


def test_missing_pages_and_drafts_are_never_stored(app, client, client_as, world):
    for path in ("/products/99999", f"/products/{world.draft}", "/category/nope", "/villages/9999"):
        assert client.get(path).status_code == 404
        again = client.get(path)
        assert again.status_code == 404 and "X-Cache" not in again.headers
    assert client_as("coop_manager").get(f"/products/{world.draft}").status_code == 200


def test_a_new_photo_shows_on_the_product_page(app, client, client_as, world):
    product = f"/products/{world.honey_product}"
    assert "carousel-item" not in page_text(client.get(product))
    client_as("coop_manager").post(
        f"/coop/products/{world.honey_product}/edit",
        data={
            "name": "原生态蜂蜜",
            "category_id": world.honey,
            "images": [(io.BytesIO(image_bytes()), "a.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert "carousel-item" in page_text(client.get(product))


def test_a_new_pairing_shows_on_the_product_and_village_pages(app, client, client_as, world):
    product, village = f"/products/{world.honey_product}", f"/villages/{world.village}"
    assert "高州市委办" not in page_text(client.get(product))
    assert "高州市委办" not in page_text(client.get(village))
    today = clock.today() - timedelta(days=1)
    response = client_as("organizer").post(
        "/admin/pairings/new",
        data={"unit_id": world.other_unit, "village_id": world.village, "since": today.isoformat()},
    )
    assert response.status_code in (302, 303), page_text(response)[-1500:]
    assert "高州市委办" in page_text(client.get(product))
    assert "高州市委办" in page_text(client.get(village))


def test_the_public_campaign_page_shows_each_new_ledger_entry(app, client, client_as, world):
    today = clock.today()
    with app.app_context():
        db.session.add(
            Campaign(
                name="2026年我为果农办实事",
                year=today.year,
                starts_on=today - timedelta(days=9),
                ends_on=today + timedelta(days=90),
                paired_only=False,
                laggard_threshold_pct=60,
            )
        )
        db.session.commit()
    total = re.compile(r'id="public-total">([^<]+)<')
    assert total.search(page_text(client.get("/campaign"))).group(1) == "¥0.00"
    assert client.get("/campaign").headers["X-Cache"] == "hit"
    buy_and_pay(app, client_as("employee"), client_as("finance"), world.honey_product, 2)
    assert total.search(page_text(client.get("/campaign"))).group(1) == "¥176.00"


def test_a_product_renamed_in_a_transaction_that_rolls_back_keeps_its_page(app, client, world):
    product = f"/products/{world.honey_product}"
    client.get(product)
    with app.app_context():
        db.session.get(Product, world.honey_product).name = "改名"
        db.session.flush()
        db.session.rollback()
    assert client.get(product).headers["X-Cache"] == "hit"
    with app.app_context():
        db.session.get(Product, world.honey_product).name = "改名蜂蜜"
        db.session.commit()
    page = client.get(product)
    assert page.headers["X-Cache"] == "miss" and "改名蜂蜜" in page_text(page)


# -- nothing personal from the cache ------------------------------------------------------------
def test_languages_do_not_mix(app, client, world):
    path = f"/products/{world.honey_product}"
    assert "加入购物车" in page_text(client.get(path))
    english = app.test_client()
    english.post("/lang", data={"lang": "en", "next": path})
    shown = page_text(english.get(path))
    assert "加入购物车" not in shown and 'lang="en"' in shown
    assert "加入购物车" in page_text(client.get(path))
    assert "加入购物车" not in page_text(english.get(path))


def csrf_tokens(page: str) -> set[str]:
    return set(re.findall(r'name="csrf_token" value="([^"]+)"', page)) | set(
        re.findall(r'<meta name="csrf-token" content="([^"]+)"', page)
    )


def test_signed_in_people_see_their_own_name_and_token_only(app, client, client_as, world):
    path = f"/products/{world.honey_product}"
    buyer, coop = client_as("buyer"), client_as("coop_manager")
    anonymous_page = page_text(client.get(path))
    buyer_page = page_text(buyer.get(path))
    coop_page = page_text(coop.get(path))
    assert "周买家" in buyer_page and "黄社长" not in buyer_page
    assert "黄社长" in coop_page and "周买家" not in coop_page
    assert "周买家" not in anonymous_page and "黄社长" not in anonymous_page
    assert "登录" in page_text(client.get(path))
    tokens = [csrf_tokens(p) for p in (anonymous_page, buyer_page, coop_page)]
    assert all(len(t) == 1 for t in tokens), tokens
    assert len(set().union(*tokens)) == 3
    assert "__pagecache" not in buyer_page + coop_page + anonymous_page + page_text(
        client.get(path)
    )


def test_a_cached_page_carries_a_working_csrf_token_and_flashes_show_once(app, world):
    app.config["WTF_CSRF_ENABLED"] = True
    path = f"/products/{world.honey_product}"
    app.test_client().get(path)  # someone else's visit stores the page
    visitor = app.test_client()
    page = visitor.get(path)
    assert page.headers["X-Cache"] == "hit"
    (token,) = csrf_tokens(page_text(page))
    sku_id = sku_of(app, world.honey_product)
    refused = visitor.post("/cart/add", data={"sku_id": sku_id, "quantity": 1})
    assert refused.status_code == 400
    added = visitor.post("/cart/add", data={"sku_id": sku_id, "quantity": 1, "csrf_token": token})
    assert added.status_code in (302, 303)
    with app.app_context():
        assert visitor.get("/cart").status_code == 200
    assert "原生态蜂蜜" in page_text(visitor.get("/cart"))
    # A flashed message appears once, on the next page, even a cached one, and never again.
    with visitor.session_transaction() as session:
        session["_flashes"] = [("success", "只说一次的话")]
    assert "只说一次的话" in page_text(visitor.get(path))
    assert "只说一次的话" not in page_text(visitor.get(path))
    assert "只说一次的话" not in page_text(app.test_client().get(path))


def test_signing_in_with_the_token_of_a_cached_page_works(app, world):
    app.config["WTF_CSRF_ENABLED"] = True
    app.test_client().get("/")
    visitor = app.test_client()
    page = visitor.get("/")
    assert page.headers["X-Cache"] == "hit" and "周买家" not in page_text(page)
    (token,) = csrf_tokens(page_text(page))
    response = visitor.post(
        "/login", data={"email": "buyer@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code in (302, 303), page_text(response)[-800:]
    home = visitor.get("/")
    assert home.headers["X-Cache"] == "hit" and "周买家" in page_text(home)
    assert token not in csrf_tokens(page_text(home))  # signing in made a new token


# -- added: more changes, personal parts, concurrent commits, Redis -----------------------------
def test_a_product_edit_shows_on_its_page_and_on_every_listing(app, client, client_as, world):
    paths = [
        f"/products/{world.honey_product}",
        "/",
        "/category/honey",
        "/products?q=%E8%9C%82%E8%9C%9C",  # 蜂蜜
        f"/villages/{world.village}",
    ]
    before = {}
    for path in paths:
        before[path] = page_text(client.get(path)).count("原生态蜂蜜")
        assert before[path] > 0, path
        assert client.get(path).headers["X-Cache"] == "hit", path
    response = client_as("coop_manager").post(
        f"/coop/products/{world.honey_product}/edit",
        data={"name": "古丁土蜂蜜", "category_id": world.honey},
        content_type="multipart/form-data",
    )
    assert response.status_code in (302, 303), page_text(response)[-1500:]
    for path in paths:
        shown = page_text(client.get(path))  # (the home page's intro names 原生态蜂蜜 too)
        assert "古丁土蜂蜜" in shown and shown.count("原生态蜂蜜") < before[path], path


def test_a_new_photo_shows_on_the_listings_too(app, client, client_as, world):
    listing = "/category/honey"
    assert "card-img-top placeholder-img" in page_text(client.get(listing))
    client_as("coop_manager").post(
        f"/coop/products/{world.honey_product}/edit",
        data={
            "name": "原生态蜂蜜",
            "category_id": world.honey,
            "images": [(io.BytesIO(image_bytes()), "a.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert '<img src="/media/' in page_text(client.get(listing))


def test_a_page_rendered_from_rows_older_than_a_concurrent_commit_is_not_kept(
    app, client, world, monkeypatch
):
    """A change committed while a page is being rendered (after its queries read the old price):
    that visitor sees the old price, and the next one the new price, never the old page again."""
    from market.catalog import queries

    product = f"/products/{world.honey_product}"
    sku_id = sku_of(app, world.honey_product)
    original = queries.product_for_page

    def read_then_someone_commits(product_id: int):
        found = original(product_id)
        with app.app_context():  # another request's session, committing now
            db.session.get(Sku, sku_id).price_fen = 9500
            db.session.commit()
        return found

    monkeypatch.setattr(queries, "product_for_page", read_then_someone_commits)
    assert price_cell(page_text(client.get(product))) == "¥88.00"
    monkeypatch.setattr(queries, "product_for_page", original)
    for _ in range(2):
        assert price_cell(page_text(client.get(product))) == "¥95.00"
    assert client.get(product).headers["X-Cache"] == "hit"


def test_the_home_page_shows_each_person_their_own_units_group_buys(app, client, client_as, world):
    from tests.groupbuy.conftest import Kit

    kit = Kit(app, world)
    group_buy = kit.open(title="中秋蜂蜜团购")  # of the world's unit
    employee, coordinator = client_as("employee"), client_as("coordinator")
    assert "中秋蜂蜜团购" in page_text(employee.get("/"))  # rendered and stored by this visit
    for other in (client, client_as("buyer"), client_as("other_coordinator"), client):
        page = other.get("/")
        assert page.headers["X-Cache"] == "hit"
        assert "中秋蜂蜜团购" not in page_text(page) and "本单位团购" not in page_text(page)
    # Served from the cache, the section is still the visitor's own, and current.
    page = coordinator.get("/")
    assert page.headers["X-Cache"] == "hit" and "中秋蜂蜜团购" in page_text(page)
    before = page_text(employee.get("/"))
    kit.join(world.employee, group_buy, 2)
    after = page_text(employee.get("/"))  # (joining reserved stock: a fresh page anyway)
    assert "中秋蜂蜜团购" in after and after != before  # the progress moved
    again = employee.get("/")
    assert again.headers["X-Cache"] == "hit" and "中秋蜂蜜团购" in page_text(again)
    assert "中秋蜂蜜团购" not in page_text(client.get("/"))


def test_each_signed_in_person_sees_their_own_unread_count(app, client, client_as, world):
    from market.notifications.services import notify

    with app.test_request_context():
        for n in range(3):
            notify([world.buyer], "test", f"通知{n}", "正文", "/orders")
        db.session.commit()
    path = f"/products/{world.honey_product}"
    buyer, coop = client_as("buyer"), client_as("coop_manager")
    unread = re.compile(r'id="unread-count">(\d+)<')
    assert unread.search(page_text(buyer.get(path))).group(1) == "3"
    for other in (coop, client):
        page = other.get(path)
        assert page.headers["X-Cache"] == "hit" and not unread.search(page_text(page))
    assert "黄社长" in page_text(coop.get(path))
    with app.test_request_context():
        notify([world.coop_manager], "test", "通知", "正文", "/orders")
        db.session.commit()
    page = coop.get(path)
    assert page.headers["X-Cache"] == "hit"
    assert unread.search(page_text(page)).group(1) == "1"
    assert unread.search(page_text(buyer.get(path))).group(1) == "3"


# -- with Redis, as in production: several processes, one cache ---------------------------------
@pytest.fixture
def redis_apps(app):
    """Two apps (as two gunicorn workers) sharing a Redis cache, under a key prefix of this test
    (other runs may share the server), on the test database."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    prefix = f"market-test-{uuid.uuid4().hex[:12]}:"

    def worker():
        return create_app(
            {
                "TESTING": True,
                "SECRET_KEY": app.config["SECRET_KEY"],
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "UPLOAD_DIR": app.config["UPLOAD_DIR"],
                "WTF_CSRF_ENABLED": False,
                "RATELIMIT_STORAGE_URI": "memory://",
                "CELERY_TASK_ALWAYS_EAGER": True,
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_URL": url,
                "CACHE_KEY_PREFIX": prefix,
            }
        )

    workers = (worker(), worker())
    yield workers
    for each in workers:
        with each.app_context():
            db.session.remove()
            db.engine.dispose()
    limiter.init_app(app)  # one limiter per process: back to the test app's memory storage
    server = redis.Redis.from_url(url)
    for key in server.scan_iter(f"{prefix}*"):
        server.delete(key)
    server.close()


def test_with_redis_a_change_through_one_worker_shows_on_the_others(redis_apps, world):
    first, second = redis_apps
    product, lychee = f"/products/{world.honey_product}", f"/products/{world.lychee}"
    visitor, other_visitor = first.test_client(), second.test_client()
    assert price_cell(page_text(visitor.get(product))) == "¥88.00"
    assert other_visitor.get(product).headers["X-Cache"] == "hit"  # stored by the other worker
    other_visitor.get(lychee)
    sku_id = sku_of(first, world.honey_product)
    manager = signed_in_client(second, world.coop_manager)
    response = manager.post(
        f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "92.5", "active": "y"}
    )
    assert response.status_code == 302
    page = visitor.get(product)
    assert page.headers["X-Cache"] == "miss" and price_cell(page_text(page)) == "¥92.50"
    # Only what the change touched: the other product's page is still in the cache.
    assert visitor.get(lychee).headers["X-Cache"] == "hit"
    # Signed in, through the other worker: the same stored page around their own menu.
    buyer = signed_in_client(second, world.buyer)
    page = buyer.get(product)
    assert page.headers["X-Cache"] == "hit" and "周买家" in page_text(page)
    assert price_cell(page_text(page)) == "¥92.50"
    # A write outside any session, on the first worker's engine.
    with first.app_context(), db.engine.begin() as connection:
        connection.execute(text("UPDATE skus SET stock = 0"))
    assert "售罄" in stock_cell(page_text(other_visitor.get(product)))


def test_with_redis_concurrent_changes_leave_each_version_at_the_latest(redis_apps):
    first, _second = redis_apps
    keys = {pagecache.product_key(1), pagecache.product_key(2), pagecache.CATALOG}
    start = threading.Barrier(4)

    def change_often() -> None:
        with first.app_context():
            start.wait()
            for _ in range(40):
                pagecache.bump(keys)

    threads = [threading.Thread(target=change_often) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with first.app_context():
        versions = pagecache.versions()
        latest = versions.seq()
        assert versions.get(sorted(keys)) == [latest] * len(keys)
