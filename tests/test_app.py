"""App-wide behaviour: health, error pages, language, and that every view says who may use it."""

from __future__ import annotations

from market import create_app
from market.security.access import Access, requires


def test_health_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_page_is_a_styled_404_in_chinese(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "页面不存在" in body
    assert "返回首页" in body


def test_json_clients_get_json_errors(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "页面不存在"


def test_server_errors_are_a_styled_500(tmp_path):
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db", "UPLOAD_DIR": str(tmp_path)}
    )

    @app.get("/_boom")
    @requires(Access.PUBLIC)
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/_boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "服务器出了点问题" in body
    assert "RuntimeError" not in body


def test_chinese_by_default_and_english_on_request(client, world):
    home = client.get("/").get_data(as_text=True)
    assert "全部商品" in home
    assert 'lang="zh-CN"' in home
    response = client.post("/lang", data={"lang": "en", "next": "/"})
    assert response.status_code == 302
    english = client.get("/").get_data(as_text=True)
    assert 'lang="en"' in english
    assert "All products" in english
    assert "全部商品" not in english


def test_language_switch_does_not_redirect_elsewhere(client):
    response = client.post("/lang", data={"lang": "en", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"


def test_every_view_declares_who_may_use_it(app):
    undeclared = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        and not getattr(app.view_functions[rule.endpoint], "access", None)
    ]
    assert undeclared == []


def test_every_state_change_is_a_post(app):
    """The only mutating verb is POST: no route takes PUT, PATCH or DELETE. That GET routes never
    change anything is checked on the demo data, page by page and role by role, by
    tests/test_query_budget.py::test_get_routes_never_change_anything."""
    for rule in app.url_map.iter_rules():
        assert not (rule.methods or set()) & {"PUT", "PATCH", "DELETE"}, rule


def test_public_views_are_only_the_ones_meant_for_everyone(app):
    public = sorted(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and Access.PUBLIC in app.view_functions[rule.endpoint].access
    )
    assert public == [
        "accounts.login",
        "accounts.register",
        "api_auth.create_tokens",
        "api_auth.refresh_tokens",
        "api_auth.wechat_tokens",
        "api_catalog.categories",
        "api_catalog.coop",
        "api_catalog.product",
        "api_catalog.products",
        "api_catalog.village",
        "api_catalog.villages",
        "api_docs.asset",
        "api_docs.docs",
        "api_docs.openapi_json",
        "api_presales.presale",
        "api_presales.presales",
        "api_trace.batch",
        "batches.report",
        "batches.trace",
        "campaign.referral",
        "catalog.category",
        "catalog.home",
        "catalog.product",
        "catalog.search",
        "dashboards.public",
        "directory.village",
        "directory.villages",
        "orders.add_to_cart",
        "orders.cart",
        "orders.update_cart_item",
        "passwords.forgot",
        "passwords.reset_with_code",
        "passwords.reset_with_link",
        "payments.stripe_webhook",
        "presales.detail",
        "presales.index",
        "web.healthz",
        "web.media",
        "web.set_language",
    ]


def test_pages_forbid_inline_scripts_and_framing(client):
    response = client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "onsubmit=" not in response.get_data(as_text=True)
