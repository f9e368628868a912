"""Passwords (issue 11, point 4): weak ones refused with the reason in Chinese, change needs the
current one, reset by a signed single-use 30-minute link by mail or by an organizer's one-time
code; any change or reset ends every session of the person."""

from __future__ import annotations

import os
import re
import time
import uuid
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import select, update

from market.accounts.models import PasswordReset, User
from market.audit.models import AuditEvent
from market.extensions import db
from market.models import utcnow
from market.tasks import make_celery
from tests.factories import PASSWORD
from tests.test_celery import _delete_queue, celery_worker

NEW = "lychee-honey-and-longan-66"


def _register(client, password, **fields):
    data = {"name": "吴新人", "email": "wu@example.com", "password": password, "confirm": password}
    return client.post("/register", data=data | fields)


def _error(response) -> str:
    found = re.findall(r'invalid-feedback d-block">([^<]*)<', response.get_data(as_text=True))
    return " ".join(found)


def _user_count(app) -> int:
    with app.app_context():
        return len(db.session.scalars(select(User)).all())


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "密码应为 10 到 200 位"),
        ("password", "密码应为 10 到 200 位"),
        ("1234567890", "常见密码"),
        ("password12", "常见密码"),
        ("qwertyuiop", "很容易被猜到"),
        ("abcdefghijk", "连续的字符"),
        ("wu@example.com", "姓名、邮箱或手机号"),
    ],
)
def test_registration_refuses_weak_passwords_saying_why(app, client, password, reason):
    response = _register(client, password)
    assert response.status_code == 400
    assert reason in _error(response)
    assert _user_count(app) == 0


def test_a_strong_password_is_accepted(app, client):
    assert _register(client, NEW).status_code == 302
    assert _user_count(app) == 1


def _sign_in(client, login="buyer@example.com", password=PASSWORD):
    return client.post("/login", data={"email": login, "password": password})


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(app, world):
    phone, laptop = app.test_client(), app.test_client()
    assert _sign_in(phone).status_code == 302
    assert _sign_in(laptop).status_code == 302
    wrong = phone.post(
        "/account/password", data={"current": "not-it-at-all", "password": NEW, "confirm": NEW}
    )
    assert wrong.status_code == 400
    assert "当前密码不正确" in _error(wrong)
    weak = phone.post(
        "/account/password",
        data={"current": PASSWORD, "password": "1234567890", "confirm": "1234567890"},
    )
    assert "常见密码" in _error(weak)
    done = phone.post(
        "/account/password", data={"current": PASSWORD, "password": NEW, "confirm": NEW}
    )
    assert done.status_code == 303
    # This browser stays signed in; the other one is signed out; only the new password works.
    assert phone.get("/account").status_code == 200
    assert laptop.get("/account").status_code == 302
    assert _sign_in(app.test_client()).status_code == 400
    assert _sign_in(app.test_client(), password=NEW).status_code == 302
    with app.app_context():
        assert db.session.scalar(
            select(AuditEvent.action).where(AuditEvent.action == "password.change")
        )


def _reset_link(mailbox) -> str:
    (message,) = mailbox.messages
    assert message["To"].addresses[0].addr_spec == "buyer@example.com"
    found = re.search(r"https?://\S+/password/reset/\S+", message.get_content())
    assert found, message.get_content()
    return found.group(0)


def test_a_mailed_reset_link_works_once_and_ends_every_session(app, client, world, mailbox):
    signed_in = app.test_client()
    assert _sign_in(signed_in).status_code == 302
    asked = client.post("/password/forgot", data={"account": "buyer@example.com"})
    assert asked.status_code == 200
    assert "申请已收到" in asked.get_data(as_text=True)
    link = _reset_link(mailbox)
    path = link[link.index("/password/reset/") :]
    assert client.get(path).status_code == 200
    done = client.post(path, data={"password": NEW, "confirm": NEW})
    assert done.status_code == 303
    assert signed_in.get("/account").status_code == 302
    assert _sign_in(app.test_client(), password=NEW).status_code == 302
    # Used once: the same link again is refused and changes nothing.
    again = client.post(
        path, data={"password": "another-long-one-77", "confirm": "another-long-one-77"}
    )
    assert again.status_code == 303
    assert "已使用过" in client.get("/password/forgot").get_data(as_text=True)
    assert _sign_in(app.test_client(), password="another-long-one-77").status_code == 400


def test_a_reset_link_expires_after_30_minutes(app, client, world, mailbox, monkeypatch):
    with monkeypatch.context() as past:
        # Asked 31 minutes ago: the link's signature carries that time.
        then = int(time.time()) - 31 * 60
        past.setattr(TimestampSigner, "get_timestamp", lambda self: then)
        client.post("/password/forgot", data={"account": "buyer@example.com"})
    link = _reset_link(mailbox)
    path = link[link.index("/password/reset/") :]
    response = client.post(path, data={"password": NEW, "confirm": NEW})
    assert response.status_code == 303
    assert "已过期" in client.get("/password/forgot").get_data(as_text=True)
    assert _sign_in(app.test_client()).status_code == 302  # the old password still works


def test_a_link_past_its_recorded_expiry_is_refused_too(app, client, world, mailbox):
    client.post("/password/forgot", data={"account": "buyer@example.com"})
    path = (link := _reset_link(mailbox))[link.index("/password/reset/") :]
    with app.app_context():
        db.session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    client.post(path, data={"password": NEW, "confirm": NEW})
    assert _sign_in(app.test_client()).status_code == 302


def test_a_tampered_link_is_refused(app, client, world, mailbox):
    client.post("/password/forgot", data={"account": "buyer@example.com"})
    path = (link := _reset_link(mailbox))[link.index("/password/reset/") :]
    tampered = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert client.get(tampered).status_code == 303
    assert "无效" in client.get("/password/forgot").get_data(as_text=True)


def test_asking_for_an_unknown_account_answers_the_same_and_mails_nothing(
    app, client, world, mailbox
):
    known = client.post("/password/forgot", data={"account": "buyer@example.com"})
    unknown = client.post("/password/forgot", data={"account": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert _answer(known).replace("buyer@example.com", "X") == _answer(unknown).replace(
        "nobody@example.com", "X"
    )
    assert len(mailbox.messages) == 1


def _answer(response) -> str:
    page = response.get_data(as_text=True)
    return page[page.index("<main") : page.index("</main>")]


def _phone_only_user(app) -> int:
    with app.app_context():
        user = User(name="黎果农", phone="13800001111")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
        return user.id


def _code_from(response) -> str:
    found = re.search(r'id="reset-code">(\d{8})<', response.get_data(as_text=True))
    assert found, response.get_data(as_text=True)
    return found.group(1)


def test_a_phone_only_account_is_reset_with_an_organizers_one_time_code(
    app, client, client_as, world
):
    user_id = _phone_only_user(app)
    signed_in = app.test_client()
    assert _sign_in(signed_in, "13800001111").status_code == 302
    assert client.post("/password/forgot", data={"account": "13800001111"}).status_code == 200
    organizer = client_as("organizer")
    waiting = organizer.get("/admin/password-resets").get_data(as_text=True)
    assert "黎果农" in waiting and "13800001111" in waiting
    # Nobody but organizers sees the requests or issues codes.
    assert client_as("buyer").get("/admin/password-resets").status_code == 403
    assert client_as("buyer").post(f"/admin/users/{user_id}/reset-code").status_code == 403
    code = _code_from(organizer.post(f"/admin/users/{user_id}/reset-code"))
    assert "黎果农" not in organizer.get("/admin/password-resets").get_data(as_text=True)
    with app.app_context():  # only a hash is kept
        assert code not in str(db.session.scalars(select(PasswordReset.secret_hash)).all())
    data = {"account": "13800001111", "code": code, "password": NEW, "confirm": NEW}
    assert client.post("/password/code", data=data).status_code == 303
    assert signed_in.get("/account").status_code == 302
    assert _sign_in(app.test_client(), "13800001111", NEW).status_code == 302
    # Once only.
    again = client.post(
        "/password/code",
        data=data | {"password": "x-another-long-9", "confirm": "x-another-long-9"},
    )
    assert again.status_code == 400
    assert "重置码不正确或已过期" in _error(again)


def test_wrong_codes_void_the_code_after_five_tries(app, client, client_as, world):
    user_id = _phone_only_user(app)
    code = _code_from(client_as("organizer").post(f"/admin/users/{user_id}/reset-code"))
    wrong = "00000000" if code != "00000000" else "11111111"
    for _ in range(5):
        data = {"account": "13800001111", "code": wrong, "password": NEW, "confirm": NEW}
        assert client.post("/password/code", data=data).status_code == 400
    data = {"account": "13800001111", "code": code, "password": NEW, "confirm": NEW}
    assert client.post("/password/code", data=data).status_code == 400
    assert _sign_in(app.test_client(), "13800001111").status_code == 302


def test_an_issued_code_expires_after_30_minutes(app, client, client_as, world):
    user_id = _phone_only_user(app)
    code = _code_from(client_as("organizer").post(f"/admin/users/{user_id}/reset-code"))
    with app.app_context():
        db.session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    data = {"account": "13800001111", "code": code, "password": NEW, "confirm": NEW}
    assert client.post("/password/code", data=data).status_code == 400
    assert _sign_in(app.test_client(), "13800001111").status_code == 302


def test_without_a_mail_server_an_email_account_goes_to_the_organizers(
    app, client, client_as, world
):
    app.config["MAIL_SERVER"] = ""
    client.post("/password/forgot", data={"account": "buyer@example.com"})
    assert "周买家" in client_as("organizer").get("/admin/password-resets").get_data(as_text=True)


REDIS_URL = os.environ.get("REDIS_URL", "")


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis for a real worker")
def test_with_redis_the_reset_mail_goes_through_a_real_celery_worker(
    app, client, world, mailbox, monkeypatch, tmp_path
):
    queue = f"market-test-{uuid.uuid4().hex}"
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    monkeypatch.setitem(app.config, "CELERY_TASK_ALWAYS_EAGER", False)
    monkeypatch.setitem(app.config, "CELERY_QUEUE", queue)
    celery_app = make_celery(app)
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(app.config["MAIL_PORT"]),
    }
    for name in ("MARKET_IN_PROCESS_JOBS", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(name, None)
    log_path = tmp_path / "worker.log"
    try:
        # Queued by the web process after its commit, not sent by it.
        answer = client.post("/password/forgot", data={"account": "buyer@example.com"})
        assert answer.status_code == 200
        assert mailbox.messages == []
        with celery_worker(queue, env, log_path) as worker:
            deadline = time.monotonic() + 60
            while not mailbox.messages and time.monotonic() < deadline:
                assert worker.poll() is None, log_path.read_text()[-4000:]
                time.sleep(0.2)
        path = (link := _reset_link(mailbox))[link.index("/password/reset/") :]
        assert client.post(path, data={"password": NEW, "confirm": NEW}).status_code == 303
        assert _sign_in(app.test_client(), password=NEW).status_code == 302
    finally:
        app.extensions.pop("celery", None)
        _delete_queue(celery_app, queue)
        celery_app.close()
