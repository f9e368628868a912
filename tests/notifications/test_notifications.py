"""The notification centre: what a user sees in the header and the list, marking read, and the
e-mail that follows a committed notification (never a rolled-back one) through a real SMTP server
on loopback."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import socket

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from market.extensions import db
from market.notifications import services
from market.notifications.models import Notification
from tests import factories

REACHED = "团购已成团：原生态蜂蜜"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _notify(
    app, user_ids, title=REACHED, link="/orders", kind="groupbuy.reached", body="请按时取货"
):
    with app.app_context():
        services.notify(user_ids, kind, title, body, link)
        db.session.commit()


def _rows(app, user_id: int | None = None) -> list[Notification]:
    with app.app_context():
        query = select(Notification).order_by(Notification.id)
        if user_id is not None:
            query = query.where(Notification.user_id == user_id)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return rows


def _badge(page: str) -> str | None:
    found = re.search(r'id="unread-count">([^<]*)<', page)
    return found.group(1) if found else None


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"

    @property
    def messages(self):
        return [
            email.message_from_bytes(e.original_content, policy=email.policy.default)
            for e in self.envelopes
        ]


@pytest.fixture
def mailbox(app, monkeypatch):
    """A real SMTP server on loopback, and the app pointed at it for this test."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()  # returns once the server answers
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", controller.port)
    yield inbox
    controller.stop()


# -- in the app --------------------------------------------------------------------------------
def test_committed_notifications_show_in_the_header_of_every_page(app, client_as, world):
    _notify(app, [world.employee], title="已参团：原生态蜂蜜", kind="groupbuy.joined")
    _notify(app, [world.employee, world.buyer])
    assert [(n.user_id, n.kind) for n in _rows(app, world.employee)] == [
        (world.employee, "groupbuy.joined"),
        (world.employee, "groupbuy.reached"),
    ]
    employee = client_as("employee")
    for path in ("/", "/orders", "/products"):
        page = employee.get(path).get_data(as_text=True)
        assert 'id="nav-notifications"' in page
        assert _badge(page) == "2", path
    assert _badge(client_as("buyer").get("/").get_data(as_text=True)) == "1"
    # Nothing unread: the bell without a badge.
    coop_page = client_as("coop_manager").get("/").get_data(as_text=True)
    assert 'id="nav-notifications"' in coop_page and _badge(coop_page) is None


def test_anonymous_visitors_see_no_bell_and_are_sent_to_login(client, world):
    assert 'id="nav-notifications"' not in client.get("/").get_data(as_text=True)
    for response in (
        client.get("/notifications"),
        client.post("/notifications/read-all"),
        client.post("/notifications/1/read"),
    ):
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


def test_a_rolled_back_notification_is_neither_kept_nor_mailed(app, world, mailbox):
    with app.app_context():
        services.notify([world.employee], "groupbuy.succeeded", REACHED, "", "/orders")
        db.session.rollback()
    assert _rows(app) == []
    assert mailbox.envelopes == []


def test_the_list_shows_newest_first_with_unread_highlighted(app, client_as, world):
    _notify(app, [world.employee], title="已参团：原生态蜂蜜", kind="groupbuy.joined")
    _notify(app, [world.employee], title="团购未成团，款项已退回", kind="groupbuy.failed")
    first = _rows(app, world.employee)[0]
    employee = client_as("employee")
    employee.post(f"/notifications/{first.id}/read")
    page = employee.get("/notifications").get_data(as_text=True)
    assert page.index("团购未成团，款项已退回") < page.index("已参团：原生态蜂蜜")
    items = re.findall(r'<form[^>]*class="[^"]*notification ([a-z]+)', page)
    assert items == ["unread", "read"]
    assert f'action="/notifications/{first.id}/read"' in page
    assert "请按时取货" in page
    assert "全部标为已读" in page


def test_an_empty_list_says_so(client_as, world):
    page = client_as("buyer").get("/notifications").get_data(as_text=True)
    assert "暂无通知" in page and "全部标为已读" not in page


def test_opening_one_marks_it_read_and_goes_to_its_link(app, client_as, world):
    _notify(app, [world.employee], link="/orders?tab=group-buys")
    _notify(app, [world.employee], link="/products")
    first, _second = _rows(app, world.employee)
    employee = client_as("employee")
    response = employee.post(f"/notifications/{first.id}/read")
    assert response.status_code == 303
    assert response.headers["Location"] == "/orders?tab=group-buys"
    assert _badge(employee.get("/").get_data(as_text=True)) == "1"
    read_first, unread_second = _rows(app, world.employee)
    assert read_first.read_at is not None and unread_second.read_at is None
    # Opening it again changes nothing and still leads there.
    again = employee.post(f"/notifications/{first.id}/read")
    assert again.headers["Location"] == "/orders?tab=group-buys"
    assert _rows(app, world.employee)[0].read_at == read_first.read_at


def test_a_link_that_is_not_ours_leads_back_to_the_list(app, client_as, world):
    with app.app_context():
        # Written past notify(), which refuses such links, to prove the view checks too.
        for link in ("https://evil.example/", "//evil.example/x", ""):
            db.session.add(Notification(user_id=world.employee, kind="x", title="t", link=link))
        db.session.commit()
    employee = client_as("employee")
    for notification in _rows(app, world.employee):
        response = employee.post(f"/notifications/{notification.id}/read")
        assert response.headers["Location"] == "/notifications"
    with app.app_context(), pytest.raises(ValueError):
        services.notify([world.employee], "x", "t", "", "//evil.example/")


def test_someone_elses_notification_is_not_found_and_stays_unread(app, client_as, world):
    _notify(app, [world.employee])
    (notification,) = _rows(app, world.employee)
    response = client_as("buyer").post(f"/notifications/{notification.id}/read")
    assert response.status_code == 404
    assert client_as("buyer").post("/notifications/999999/read").status_code == 404
    assert _rows(app, world.employee)[0].read_at is None
    assert _badge(client_as("employee").get("/").get_data(as_text=True)) == "1"


def test_read_all_clears_only_ones_own(app, client_as, world):
    _notify(app, [world.employee, world.buyer])
    _notify(app, [world.employee])
    employee = client_as("employee")
    response = employee.post("/notifications/read-all")
    assert response.status_code == 303 and response.headers["Location"] == "/notifications"
    page = employee.get("/notifications").get_data(as_text=True)
    assert "已全部标为已读" in page
    assert _badge(page) is None and "全部标为已读</button>" not in page
    assert all(n.read_at is not None for n in _rows(app, world.employee))
    assert _badge(client_as("buyer").get("/").get_data(as_text=True)) == "1"
    with app.app_context():
        assert services.unread_count(world.employee) == 0
        assert services.unread_count(world.buyer) == 1


def test_one_row_per_user_even_when_named_twice(app, world):
    _notify(app, [world.employee, world.employee, world.buyer])
    _notify(app, [])
    assert sorted(n.user_id for n in _rows(app)) == sorted([world.employee, world.buyer])


# -- by e-mail ---------------------------------------------------------------------------------
def test_a_committed_notification_is_mailed_to_users_with_an_address(app, world, mailbox):
    with app.app_context():
        no_email = factories.make_user("何职工", phone="13700000007").id
        db.session.commit()
    _notify(app, [world.employee, no_email], link="/orders")
    assert len(_rows(app)) == 2
    (envelope,) = mailbox.envelopes
    assert envelope.rcpt_tos == ["employee@example.com"]
    (message,) = mailbox.messages
    assert message["Subject"] == REACHED
    assert message["To"].addresses[0].addr_spec == "employee@example.com"
    assert message["To"].addresses[0].display_name == "刘职工"
    assert message["From"] == "noreply@market.example"
    text = message.get_content()
    assert "请按时取货" in text and "/orders" in text


def test_links_in_mail_are_absolute_when_the_site_address_is_known(
    app, world, mailbox, monkeypatch
):
    monkeypatch.setitem(app.config, "SERVER_NAME", "shop.example")
    monkeypatch.setitem(app.config, "PREFERRED_URL_SCHEME", "https")
    _notify(app, [world.employee, world.buyer], link="/orders")
    assert len(mailbox.messages) == 2  # one connection, the whole batch
    assert all("https://shop.example/orders" in m.get_content() for m in mailbox.messages)


def test_only_what_commits_is_mailed_when_a_savepoint_rolls_back(app, world, mailbox):
    with app.app_context():
        services.notify([world.buyer], "groupbuy.joined", "已参团", "", "/orders")
        with db.session.begin_nested() as savepoint:
            services.notify([world.employee], "groupbuy.reached", REACHED, "", "/orders")
            savepoint.rollback()
        db.session.commit()
    assert [n.user_id for n in _rows(app)] == [world.buyer]
    assert [e.rcpt_tos for e in mailbox.envelopes] == [["buyer@example.com"]]


def test_nothing_is_mailed_when_the_work_ends_without_a_commit(app, world, mailbox):
    # The request ends (the session is closed) after an error: a released savepoint inside it
    # committed nothing.
    with app.app_context():
        # (Written first: pysqlite begins its transaction at the first write, not at a SAVEPOINT.)
        services.notify([world.buyer], "groupbuy.reached", REACHED, "", "/orders")
        with db.session.begin_nested():
            services.notify([world.employee], "groupbuy.reached", REACHED, "", "/orders")
    assert _rows(app) == []
    assert mailbox.envelopes == []


def test_no_mail_server_means_no_mail(app, world, mailbox, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_SERVER", "")
    _notify(app, [world.employee])
    assert len(_rows(app)) == 1
    assert mailbox.envelopes == []


def test_a_mail_outage_is_logged_and_the_notifications_stay(app, world, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", _free_port())  # nothing listens there
    # Alembic's fileConfig (tests/test_migrations.py, in this process) disables existing loggers.
    monkeypatch.setattr(services.logger, "disabled", False)
    with caplog.at_level(logging.ERROR, logger="market.notifications"):
        _notify(app, [world.employee, world.buyer])
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Notification))
    assert count == 2
    assert any(
        record.levelno == logging.ERROR and "could not send 2 notification" in record.getMessage()
        for record in caplog.records
    )
