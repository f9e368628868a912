"""Notification mail from a worker is retried when the mail server is down; a notification is
shown in each reader's language and mailed in the recipient's."""

from __future__ import annotations

import logging

import pytest
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from market.accounts.models import User
from market.extensions import db
from market.notifications import services
from market.notifications.models import Notification
from market.tasks import MAIL_RETRIES, SEND_MAIL, make_celery
from tests.notifications.test_notifications import _free_port, mailbox  # noqa: F401  (fixture)

STATEMENT_ZH = "结算单 S-7 待确认"
STATEMENT_EN = "Settlement statement S-7 awaiting confirmation"


def _notify_statement(app, user_ids) -> None:
    with app.app_context():
        services.notify(
            user_ids,
            "settlement.issued",
            _l("结算单 %(number)s 待确认", number="S-7"),
            "",
            "/coop/settlements/7",
        )
        db.session.commit()


# -- mail from the worker, retried -------------------------------------------------------------
def test_the_mail_task_retries_a_mail_server_that_is_down_five_times(app):
    task = make_celery(app).tasks[SEND_MAIL]
    assert MAIL_RETRIES == 5 and task.max_retries == 5
    assert OSError in task.autoretry_for
    assert task.retry_backoff and task.retry_jitter


def test_the_workers_send_raises_when_the_server_is_unreachable_and_the_requests_logs(
    app, monkeypatch, caplog
):
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", _free_port())  # nobody listens there
    letter = {"name": "刘职工", "email": "employee@example.com", "subject": "s", "text": "t"}
    with app.app_context():
        with pytest.raises(OSError):  # the worker: the task retries
            services.send_queued([letter])
        mail = services._MailSettings.from_config(app.config)
        with caplog.at_level(logging.ERROR, logger="market.notifications.services"):
            services.send(mail, [services._Letter(**letter)])  # the request: logged only
    assert "could not send 1 notification e-mail" in caplog.text


def test_the_worker_sends_through_a_running_server(app, world, mailbox):  # noqa: F811
    letter = {"name": "刘职工", "email": "employee@example.com", "subject": "主题", "text": "正文"}
    with app.app_context():
        assert services.send_queued([letter]) == 1
    (message,) = mailbox.messages
    assert message["Subject"] == "主题"


# -- languages ---------------------------------------------------------------------------------
def test_a_notification_is_shown_in_the_readers_language(app, world, client_as):
    _notify_statement(app, [world.coop_manager])
    with app.app_context():
        # A row from before messages were kept: its stored text, in any language.
        db.session.add(
            Notification(user_id=world.coop_manager, kind="old", title="旧通知", body="旧正文")
        )
        db.session.commit()
        stored = db.session.scalar(select(Notification).where(Notification.kind != "old"))
        assert stored.title == STATEMENT_ZH  # the default language's text is kept too
    manager = client_as("coop_manager")
    page = manager.get("/notifications").get_data(as_text=True)
    assert STATEMENT_ZH in page and "旧通知" in page
    manager.post("/lang", data={"lang": "en"})
    page = manager.get("/notifications").get_data(as_text=True)
    assert STATEMENT_EN in page and STATEMENT_ZH not in page
    assert "旧通知" in page and "旧正文" in page


def test_mail_is_written_in_the_recipients_language(app, world, mailbox):  # noqa: F811
    with app.app_context():
        db.session.get(User, world.coop_manager).locale = "en"
        db.session.commit()
    _notify_statement(app, [world.coop_manager, world.other_coop_manager])
    subjects = {m["To"].addresses[0].addr_spec: m["Subject"] for m in mailbox.messages}
    assert subjects == {"coop@example.com": STATEMENT_EN, "other-coop@example.com": STATEMENT_ZH}


def test_the_actors_language_does_not_leak_into_what_others_are_told(app, world, client_as):
    # An English-speaking coordinator submits a purchase; the approver reads Chinese.
    from tests.orders.conftest import sku_of
    from tests.procurement.test_purchases import draft

    coordinator = client_as("coordinator")
    coordinator.post("/lang", data={"lang": "en"})
    purchase_id = draft(coordinator, (sku_of(app, world.honey_product), 2))
    assert coordinator.post(f"/unit/purchases/{purchase_id}/submit").status_code == 303
    with app.app_context():
        row = db.session.scalar(select(Notification).where(Notification.user_id == world.approver))
        assert row.title.startswith("采购单待审批")
    page = client_as("approver").get("/notifications").get_data(as_text=True)
    assert "采购单待审批" in page
