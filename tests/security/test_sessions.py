"""Sessions that end (issue 11, point 3): signing out ends every session and remember-me cookie
of the person, on every device; cookies copied before cannot sign anyone back in; the CSRF token
and the remember-me cookie are new at every sign-in; an idle session ends (2 hours, 30 days
with 记住我); cookies are HttpOnly, SameSite=Lax and Secure when configured; a referral link no
longer turns the session cookie into a month-long one.

Everything goes through the real sign-in form, as a browser would; a "fresh device" is a new
test client holding only the cookie values copied from another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import pytest
from flask import Flask
from flask_login.utils import encode_cookie
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from market.accounts import sessions
from market.accounts.models import UserSession
from market.directory.models import Unit
from market.extensions import db
from market.models import utcnow
from tests.factories import PASSWORD

SESSION = "session"
REMEMBER = "remember_token"


def sign_in(client, email: str = "buyer@example.com", *, remember: bool = False, **extra):
    data = {"email": email, "password": PASSWORD, **extra}
    if remember:
        data["remember"] = "y"
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def signed_in(client) -> bool:
    """What the person sees on /account: their page, or the way to the sign-in page."""
    response = client.get("/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"].startswith("/login"), response.headers["Location"]
    return False


def cookie(client, name: str) -> str:
    found = client.get_cookie(name)
    assert found is not None, f"no {name} cookie"
    return found.value


def device_with(app: Flask, **cookies: str):
    """Another browser that holds only these cookie values."""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value)
    return other


def set_cookie_headers(response) -> dict[str, dict[str, str | bool]]:
    """The Set-Cookie headers of a response: name -> {attribute (lower case): value or True}."""
    found = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name = first.split("=", 1)[0]
        parsed: dict[str, str | bool] = {}
        for attribute in attributes:
            key, sep, value = attribute.partition("=")
            parsed[key.lower()] = value if sep else True
        found[name] = parsed
    return found


def idle_for(app: Flask, user_id: int, idle: timedelta) -> None:
    """The person's sessions were last used `idle` ago."""
    with app.app_context():
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id)
            .values(last_seen_at=utcnow() - idle)
        )
        db.session.commit()


def sessions_of(app: Flask, user_id: int) -> list[UserSession]:
    with app.app_context():
        rows = db.session.scalars(
            select(UserSession).where(UserSession.user_id == user_id).order_by(UserSession.id)
        ).all()
        db.session.expunge_all()
        return list(rows)


# -- signing out ----------------------------------------------------------------------------------
def test_after_signing_out_neither_old_cookie_signs_anyone_in(app: Flask, world):
    browser = app.test_client()
    sign_in(browser, remember=True)
    session_cookie, remember_cookie = cookie(browser, SESSION), cookie(browser, REMEMBER)
    # Copied before signing out, each cookie alone opens the account on another device.
    assert signed_in(device_with(app, session=session_cookie))
    assert signed_in(device_with(app, remember_token=remember_cookie))

    assert browser.post("/logout").status_code == 302
    assert not signed_in(browser)
    assert not signed_in(device_with(app, session=session_cookie))
    assert not signed_in(device_with(app, remember_token=remember_cookie))
    assert not signed_in(device_with(app, session=session_cookie, remember_token=remember_cookie))
    assert all(row.ended_at is not None for row in sessions_of(app, world.buyer))


def test_signing_out_on_one_device_ends_the_others_too(app: Flask, world):
    phone, desktop, someone_else = app.test_client(), app.test_client(), app.test_client()
    sign_in(phone)
    sign_in(desktop, remember=True)
    sign_in(someone_else, "employee@example.com")
    desktop_remember = cookie(desktop, REMEMBER)
    assert signed_in(phone) and signed_in(desktop)

    phone.post("/logout")
    assert not signed_in(desktop)
    assert not signed_in(device_with(app, remember_token=desktop_remember))
    assert signed_in(someone_else)  # another person's sessions are theirs
    # Signing in again works, with a session of its own.
    sign_in(desktop)
    assert signed_in(desktop) and not signed_in(phone)


def test_each_sign_in_gets_a_remember_cookie_and_a_session_of_its_own(app: Flask, world):
    first, second = app.test_client(), app.test_client()
    sign_in(first, remember=True)
    sign_in(second, remember=True)
    assert cookie(first, REMEMBER) != cookie(second, REMEMBER)
    assert cookie(first, SESSION) != cookie(second, SESSION)
    # The cookie is not derived from the person's id alone (the old "<id>|<HMAC of the id>").
    with app.test_request_context():
        assert cookie(first, REMEMBER) != encode_cookie(str(world.buyer))
    rows = sessions_of(app, world.buyer)
    assert len(rows) == 2 and rows[0].key_hash != rows[1].key_hash
    assert all(row.remember for row in rows)


def test_cookies_of_the_old_kind_sign_nobody_in(app: Flask, world):
    bare = app.test_client()
    with bare.session_transaction() as session:
        session["_user_id"] = str(world.buyer)
        session["_fresh"] = True
    assert not signed_in(bare)

    guessed = app.test_client()
    with guessed.session_transaction() as session:
        session["_user_id"] = f"{world.buyer}:not-a-key-of-any-session"
    assert not signed_in(guessed)

    with app.test_request_context():
        old_remember = encode_cookie(str(world.buyer))  # what a year-long cookie used to hold
    assert not signed_in(device_with(app, remember_token=old_remember))


def test_another_persons_key_does_not_open_my_account(app: Flask, world):
    """A session key is only good with the id it was issued for."""
    browser = app.test_client()
    sign_in(browser)
    with browser.session_transaction() as session:
        _user_id, key = session["_user_id"].split(":", 1)
    forged = app.test_client()
    with forged.session_transaction() as session:
        session["_user_id"] = f"{world.admin}:{key}"
    assert not signed_in(forged)
    assert signed_in(browser)


# -- a new CSRF token at sign-in ------------------------------------------------------------------
@pytest.fixture
def csrf_app(app: Flask) -> Iterator[Flask]:
    app.config["WTF_CSRF_ENABLED"] = True
    yield app
    app.config["WTF_CSRF_ENABLED"] = False


def csrf_token_of(response) -> str:
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.get_data(as_text=True))
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_the_csrf_token_changes_at_sign_in(csrf_app: Flask, world):
    browser = csrf_app.test_client()
    before = csrf_token_of(browser.get("/login"))
    response = browser.post(
        "/login", data={"csrf_token": before, "email": "buyer@example.com", "password": PASSWORD}
    )
    assert response.status_code == 302
    after = csrf_token_of(browser.get("/account"))
    tokens = URLSafeTimedSerializer(csrf_app.config["SECRET_KEY"], salt="wtf-csrf-token")
    assert tokens.loads(before) != tokens.loads(after)  # the secret behind it, not its timestamp

    # A token planted (or read) before sign-in is worthless afterwards; the new one works.
    refused = browser.post("/logout", data={"csrf_token": before})
    assert refused.status_code == 400 and signed_in(browser)
    assert browser.post("/logout", data={"csrf_token": after}).status_code == 302
    assert not signed_in(browser)


def test_a_guests_cart_and_language_survive_sign_in(app: Flask, world):
    browser = app.test_client()
    browser.post("/lang", data={"lang": "en", "next": "/"})
    with browser.session_transaction() as session:
        session["planted"] = "by an attacker"
    sign_in(browser)
    with browser.session_transaction() as session:
        assert session.get("lang") == "en"
        assert "planted" not in session


# -- idle sessions end by themselves --------------------------------------------------------------
def test_a_session_idle_longer_than_the_limit_is_signed_out(app: Flask, world):
    idle_minutes = app.config["SESSION_IDLE_MINUTES"]
    assert idle_minutes == 120
    browser = app.test_client()
    sign_in(browser)
    idle_for(app, world.buyer, timedelta(minutes=idle_minutes - 5))
    assert signed_in(browser)  # and using it counts as activity
    assert utcnow() - sessions_of(app, world.buyer)[0].last_seen_at < timedelta(minutes=1)

    idle_for(app, world.buyer, timedelta(minutes=idle_minutes + 1))
    assert not signed_in(browser)
    assert sessions_of(app, world.buyer)[0].ended_at is None  # refused; the GET wrote nothing
    with app.app_context():
        sessions.purge()  # the daily job records the end
    assert sessions_of(app, world.buyer)[0].ended_at is not None
    idle_for(app, world.buyer, timedelta(0))
    assert not signed_in(browser)  # an ended session stays ended


def test_remember_me_survives_hours_idle_but_not_more_than_thirty_days(app: Flask, world):
    browser = app.test_client()
    sign_in(browser, remember=True)
    remember_cookie = cookie(browser, REMEMBER)
    idle_for(app, world.buyer, timedelta(hours=3))
    assert signed_in(browser)
    idle_for(app, world.buyer, timedelta(hours=3))
    # The browser was closed: only the remember-me cookie is left.
    assert signed_in(device_with(app, remember_token=remember_cookie))

    idle_for(app, world.buyer, timedelta(days=app.config["REMEMBER_DAYS"] + 1))
    assert not signed_in(device_with(app, remember_token=remember_cookie))
    assert not signed_in(browser)


# -- cookie attributes ----------------------------------------------------------------------------
@pytest.fixture
def secure_cookies(app: Flask, monkeypatch) -> Flask:
    """What SESSION_COOKIE_SECURE=1 sets (market/config.py)."""
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    monkeypatch.setitem(app.config, "REMEMBER_COOKIE_SECURE", True)
    return app


def assert_protected(attributes: dict, *, secure: bool) -> None:
    assert attributes.get("httponly") is True, attributes
    assert str(attributes.get("samesite", "")).lower() == "lax", attributes
    assert (attributes.get("secure") is True) is secure, attributes


def days_until(expires: str) -> float:
    return (parsedate_to_datetime(expires) - datetime.now(UTC)).total_seconds() / 86400


@pytest.mark.parametrize("secure", [True, False], ids=["secure", "plain-http"])
def test_sign_in_cookies_are_http_only_same_site_and_secure_when_configured(
    app: Flask, world, monkeypatch, secure
):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", secure)
    monkeypatch.setitem(app.config, "REMEMBER_COOKIE_SECURE", secure)
    cookies = set_cookie_headers(sign_in(app.test_client(), remember=True))
    assert {SESSION, REMEMBER} <= cookies.keys(), cookies
    assert_protected(cookies[SESSION], secure=secure)
    assert_protected(cookies[REMEMBER], secure=secure)
    # The session cookie ends with the browser; 记住我 lasts the remember-me period.
    assert "expires" not in cookies[SESSION] and "max-age" not in cookies[SESSION]
    assert 29 < days_until(cookies[REMEMBER]["expires"]) <= app.config["REMEMBER_DAYS"]


def test_without_remember_me_no_lasting_cookie_is_set(app: Flask, world):
    cookies = set_cookie_headers(sign_in(app.test_client()))
    assert REMEMBER not in cookies
    assert "expires" not in cookies[SESSION] and "max-age" not in cookies[SESSION]


def test_a_referral_link_leaves_the_session_a_browser_session_cookie(
    secure_cookies: Flask, world: SimpleNamespace
):
    app = secure_cookies
    with app.app_context():
        code = db.session.get(Unit, world.unit).referral_code
    browser = app.test_client()
    browser.post("/lang", data={"lang": "zh_CN", "next": "/"})  # a guest with a session
    response = browser.get(f"/r/{code}")
    assert response.status_code == 302
    cookies = set_cookie_headers(response)
    referral = cookies["referral"]
    assert_protected(referral, secure=True)
    assert referral["max-age"] == str(30 * 86400)
    assert 29.9 < days_until(referral["expires"]) <= 30
    if SESSION in cookies:
        assert "expires" not in cookies[SESSION] and "max-age" not in cookies[SESSION]

    # Whatever the session holds from now on, it stays a cookie that ends with the browser.
    for later in (
        browser.post("/lang", data={"lang": "en", "next": "/"}),
        sign_in(browser),
    ):
        session_cookie = set_cookie_headers(later)[SESSION]
        assert "expires" not in session_cookie and "max-age" not in session_cookie
        assert_protected(session_cookie, secure=True)
    assert browser.get_cookie("referral") is not None  # the link is still remembered
