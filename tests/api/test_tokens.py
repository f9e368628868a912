"""Sign-in by token: issue, use, refresh (rotation), revoke; hashed storage; no cookies, no CSRF;
rate limited; WeChat code2session through a stand-in; errors in the API's shape and language."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from market.accounts import recovery
from market.accounts.models import User
from market.api import wechat
from market.api.models import ApiToken
from market.extensions import db
from tests import factories
from tests.api.conftest import API, EMAILS, assert_error, sign_in


def test_sign_in_by_email_or_phone_gives_an_access_and_a_refresh_token(client, world):
    body = sign_in(client, "employee@example.com")
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("mka_") and body["refresh_token"].startswith("mkr_")
    assert 0 < body["expires_in"] <= 15 * 60
    assert body["access_expires_at"].endswith("+08:00")
    by_phone = sign_in(client, "13800000003")
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {by_phone['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["name"] == "刘职工"
    assert "employee" in me.get_json()["roles"]
    assert me.get_json()["unit"]["unit_name"] == "高州市市场监管局"


def test_tokens_are_stored_hashed(app, client, world):
    body = sign_in(client, "employee@example.com")
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert row.access_hash == hashlib.sha256(body["access_token"].encode()).hexdigest()
        assert body["access_token"] not in (row.access_hash, row.refresh_hash)


def test_a_wrong_password_is_a_400_in_the_requests_language(client, world):
    response = client.post(f"{API}/tokens", json={"login": EMAILS["employee"], "password": "x"})
    body = assert_error(response, 400, "bad_request")
    assert body["message"] == "账号或密码不正确"
    assert "password" in body["fields"]
    english = client.post(
        f"{API}/tokens",
        json={"login": EMAILS["employee"], "password": "x"},
        headers={"Accept-Language": "en"},
    )
    assert assert_error(english, 400)["message"] == "Incorrect account or password"


def test_a_malformed_body_is_a_422_naming_the_fields(client, world):
    body = assert_error(client.post(f"{API}/tokens", json={"login": "x"}), 422, "validation_error")
    assert body["fields"] == {"password": ["必填"]}
    assert body["message"] == "提交的内容有误"
    english = client.post(f"{API}/tokens", json={"login": "x"}, headers={"Accept-Language": "en"})
    assert assert_error(english, 422)["fields"] == {
        "password": ["Missing data for required field."]
    }
    nested = client.post(f"{API}/cart/items", json={"sku_id": 0})
    assert_error(nested, 401)  # signed out first: nothing is validated for nobody
    assert_error(client.post(f"{API}/tokens", json=["x"]), 422)
    assert_error(client.post(f"{API}/tokens", data="not json"), 422)


def test_sign_in_is_rate_limited_like_the_site(app, client, world):
    statuses = [
        client.post(
            f"{API}/tokens", json={"login": EMAILS["buyer"], "password": "wrong"}
        ).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [400] * 5
    assert statuses[5] == 429
    response = client.post(f"{API}/tokens", json={"login": EMAILS["buyer"], "password": "wrong"})
    assert_error(response, 429)
    assert int(response.headers["Retry-After"]) > 0


def test_refresh_rotates_and_a_reused_refresh_token_revokes_everything(client, world):
    first = sign_in(client, EMAILS["employee"])
    second = client.post(f"{API}/tokens/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 201
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    old = {"Authorization": f"Bearer {first['access_token']}"}
    new = {"Authorization": f"Bearer {second['access_token']}"}
    assert_error(client.get(f"{API}/me", headers=old), 401, "unauthorized")
    assert client.get(f"{API}/me", headers=new).status_code == 200
    # The first refresh token again: someone copied it. Every token of the person ends.
    replay = client.post(f"{API}/tokens/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(replay, 401, "invalid_token")
    assert_error(client.get(f"{API}/me", headers=new), 401)
    assert_error(client.post(f"{API}/tokens/refresh", json={"refresh_token": "mkr_x"}), 401)


def test_revoke_signs_out_every_token_and_site_session(app, client, world):
    one = sign_in(client, EMAILS["employee"])["access_token"]
    two = sign_in(client, EMAILS["employee"])["access_token"]
    site = factories.signed_in_client(app, world.employee)
    assert site.get("/account").status_code == 200
    response = client.post(f"{API}/tokens/revoke", headers={"Authorization": f"Bearer {one}"})
    assert response.status_code == 200
    for token in (one, two):
        assert_error(client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}), 401)
    assert site.get("/account").status_code == 302  # the site's session ended too


def test_site_sign_out_and_password_change_revoke_tokens(app, client, world):
    token = sign_in(client, EMAILS["employee"])["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    site = factories.signed_in_client(app, world.employee)
    site.post("/logout")
    assert_error(client.get(f"{API}/me", headers=auth), 401)
    token = sign_in(client, EMAILS["employee"])["access_token"]
    with app.test_request_context():
        user = db.session.get(User, world.employee)
        recovery.change_password(user, factories.PASSWORD, "a much longer new secret 42")
    assert_error(client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}), 401)


def test_an_expired_access_token_is_refused(app, client, world):
    from datetime import timedelta

    from market.models import utcnow

    token = sign_in(client, EMAILS["employee"])["access_token"]
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        row.access_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_error(client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}), 401)


def test_cookie_sessions_are_not_accepted_on_the_api(app, world):
    site = factories.signed_in_client(app, world.employee)
    assert site.get("/account").status_code == 200
    assert_error(site.get(f"{API}/me"), 401, "unauthorized")
    assert_error(site.get(f"{API}/cart"), 401)


def test_bearer_posts_need_no_csrf_token(app, client, world):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        token = sign_in(client, EMAILS["employee"])["access_token"]
        response = client.post(
            f"{API}/notifications/read-all", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        # The HTML pages still want theirs.
        assert client.post("/cart/add", data={"sku_id": 1, "quantity": 1}).status_code == 400
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_wechat_sign_in_through_the_stand_in(app, client, world):
    app.config["WECHAT_CODE2SESSION"] = wechat.FakeCode2Session({"code-1": "openid-1"})
    app.config["WECHAT_OPENIDS"] = {"openid-1": world.employee}
    try:
        response = client.post(f"{API}/tokens/wechat", json={"code": "code-1"})
        assert response.status_code == 201
        token = response.get_json()["access_token"]
        me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
        assert me.get_json()["id"] == world.employee
        assert_error(client.post(f"{API}/tokens/wechat", json={"code": "nope"}), 401)
    finally:
        app.config.pop("WECHAT_CODE2SESSION")
        app.config.pop("WECHAT_OPENIDS")


def test_without_wechat_settings_every_code_is_refused(client, world):
    assert_error(client.post(f"{API}/tokens/wechat", json={"code": "x"}), 401, "wechat_not_bound")


def test_unknown_paths_and_methods_answer_in_the_api_shape(client):
    assert_error(client.get(f"{API}/no-such-thing"), 404, "not_found")
    response = client.get(f"{API}/tokens")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    # The HTML pages keep theirs.
    assert "页面不存在" in client.get("/no-such-page").get_data(as_text=True)


def test_docs_page_and_document_are_served_without_a_cdn(client):
    spec = client.get(f"{API}/openapi.json")
    assert spec.status_code == 200
    assert spec.get_json()["openapi"].startswith("3.")
    page = client.get(f"{API}/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in html
    assert "http" not in html.replace("http-equiv", "")  # nothing from elsewhere
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get(f"{API}/docs/swagger-ui-bundle.js").status_code == 200
    assert client.get(f"{API}/docs/init.js").status_code == 200
    assert client.get(f"{API}/docs/../secret").status_code == 404


def test_revoke_needs_a_token(client, world):
    assert_error(client.post(f"{API}/tokens/revoke"), 401, "unauthorized")
    assert_error(client.post(f"{API}/tokens/refresh", json={}), 422)
    assert_error(client.post(f"{API}/tokens/wechat", json={"code": ""}), 422)
