"""The signed-in header menu is stored per person and page (market/accounts/menu.py): what it
shows must still be this request's, this person's, at once."""

from __future__ import annotations

import re

from flask import render_template
from sqlalchemy import select

from market.accounts import menu
from market.accounts.models import CoopMembership, CoopRole, User
from market.extensions import db
from market.notifications import services as notifications
from tests import factories

NAV = re.compile(r'<nav class="navbar.*?</nav>', re.S)


def _nav(client, path: str = "/") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return NAV.search(response.text).group(0)


def test_stored_menu_is_the_menu_rendered_afresh(app, world):
    """Filled in, the stored menu is byte for byte what _nav.html renders for the request, with
    the request's search words, path and CSRF token."""
    path = "/products?q=%22%3Cb%3E%26%E8%9C%82"
    client = factories.signed_in_client(app, world.coordinator)
    client.get("/")  # the session is loaded the way every request loads it
    with app.test_request_context(path):
        from flask_login import login_user

        from market.accounts.sessions import load

        with client.session_transaction() as session:
            cookie_id = session["_user_id"]
        login_user(load(cookie_id))
        fresh = render_template("_nav.html")
        first = menu.render_menu()  # drawn and stored
        second = menu.render_menu()  # from the store
    assert first == second == fresh
    assert 'value="&#34;&lt;b&gt;&amp;蜂"' in fresh
    assert "/products?q=%22%3Cb%3E%26%E8%9C%82" in fresh
    assert menu.UNREAD not in fresh and menu.QUERY not in fresh and menu.PATH not in fresh


def test_menu_follows_the_person_at_once(app, world):
    client = factories.signed_in_client(app, world.buyer)
    nav = _nav(client)
    assert "周买家" in nav and 'id="nav-coop"' not in nav
    with app.app_context():
        user = db.session.get(User, world.buyer)
        user.name = "周新名"
        db.session.add(CoopMembership(user_id=user.id, coop_id=world.coop, role=CoopRole.MANAGER))
        db.session.commit()
    nav = _nav(client)
    assert "周新名" in nav and "周买家" not in nav and 'id="nav-coop"' in nav
    with app.app_context():
        db.session.execute(
            CoopMembership.__table__.delete().where(CoopMembership.user_id == world.buyer)
        )
        db.session.commit()
    assert 'id="nav-coop"' not in _nav(client)


def test_each_person_sees_their_own_menu(app, world):
    buyer = factories.signed_in_client(app, world.buyer)
    coop = factories.signed_in_client(app, world.coop_manager)
    for _round in range(2):
        buyer_nav, coop_nav = _nav(buyer, "/products/1"), _nav(coop, "/products/1")
        assert "周买家" in buyer_nav and "黄社长" not in buyer_nav
        assert "黄社长" in coop_nav and "周买家" not in coop_nav
        assert 'id="nav-coop"' in coop_nav and 'id="nav-coop"' not in buyer_nav


def test_badge_and_active_page_are_this_requests(app, world):
    from flask_babel import lazy_gettext as _l

    client = factories.signed_in_client(app, world.coop_manager)
    assert 'id="unread-count"' not in _nav(client)
    with app.app_context():
        notifications.notify([world.coop_manager], "test", _l("通知"), _l("通知"), "/")
        db.session.commit()
    assert 'id="unread-count">1<' in _nav(client)
    inbox = _nav(client, "/coop/orders")
    assert re.search(r'class="dropdown-item active" href="/coop/orders"', inbox)
    assert not re.search(r'class="dropdown-item active"', _nav(client, "/"))
    with app.app_context():
        user = db.session.scalar(select(User).where(User.id == world.coop_manager))
        notifications.mark_all_read(user)
        db.session.commit()
    assert 'id="unread-count"' not in _nav(client)


def test_the_badge_is_read_with_the_session_not_counted_again(app, world):
    """The header's unread count comes with the session's own query (sessions.LOADED_WITH_SESSION):
    a signed-in page shows it without a COUNT of its own."""
    from flask_babel import lazy_gettext as _l
    from sqlalchemy import event

    client = factories.signed_in_client(app, world.coop_manager)
    with app.app_context():
        for title in ("一", "二"):
            notifications.notify([world.coop_manager], "test", _l(title), _l(title), "/")
        db.session.commit()
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert 'id="unread-count">2<' in _nav(client, "/orders")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    counts = [s for s in seen if s.startswith("SELECT count(*)") and "notifications" in s]
    assert counts == []
    assert any("FROM user_sessions" in s and "notifications" in s for s in seen)


def test_a_request_that_changes_the_notifications_counts_them_again(app, world):
    """What the session's query read is this request's start; a request that tells the person
    something, or marks theirs read, shows the count after the change."""
    from flask_babel import lazy_gettext as _l
    from flask_login import login_user

    from market.accounts.sessions import load
    from market.notifications.views import unread_notification_count

    client = factories.signed_in_client(app, world.coop_manager)
    client.get("/")
    with client.session_transaction() as session:
        cookie_id = session["_user_id"]
    with app.app_context():
        notifications.notify([world.coop_manager], "test", _l("一"), _l("一"), "/")
        db.session.commit()
    with app.test_request_context("/"):
        user = load(cookie_id)
        login_user(user)
        assert user.loaded_with_session == {"unread_notifications": 1}
        assert unread_notification_count() == 1
        notifications.notify([world.coop_manager], "test", _l("二"), _l("二"), "/")
        assert unread_notification_count() == 2
        notifications.mark_all_read(user)
        assert unread_notification_count() == 0
