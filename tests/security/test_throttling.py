"""Rate limits nobody can turn against others (issue 11, points 1 and 2).

Sign-in counts per (account, address) with growing windows, atomically, so 30 concurrent guesses
get at most 5 evaluated; the refusal says how long to wait; a success clears the count. Behind
a trusted proxy the client's own address is the key, so one address's failures lock neither
another address nor another account, and without TRUSTED_PROXIES a client's X-Forwarded-For is
not believed. Sign-in, registration and referral links are limited per address too. An unknown
account costs as much time as a known one.

Each "client at an address" is a test client whose requests carry that REMOTE_ADDR (what the
server socket reports) and, behind a proxy, the X-Forwarded-For that the proxy adds.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis
from flask import Flask
from limits.storage import memory as memory_storage
from sqlalchemy import func, select

from market import create_app
from market.accounts.models import User, UserSession
from market.campaign.models import ReferralVisit
from market.directory.models import Unit
from market.extensions import db
from market.security import throttle
from market.security.throttle import limiter
from tests.factories import PASSWORD

ACCOUNT = "buyer@example.com"
OTHER_ACCOUNT = "employee@example.com"
WRONG = "not-the-password-1"
ACCOUNT_LIMIT = 5  # the first window of LIMIT_SIGN_IN_ACCOUNT
WAIT = re.compile(r"请 (\d+) (秒|分钟|小时)后再试")
PROXY = "127.0.0.1"  # the reverse proxy, as the shop's socket sees it


def attempt(client, email: str = ACCOUNT, password: str = WRONG, *, address=None, forwarded=None):
    return client.post(
        "/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address or PROXY},
        headers={"X-Forwarded-For": forwarded} if forwarded else {},
    )


def outcome(response) -> str:
    """What the person sees: evaluated (the form says the password is wrong), refused (wait),
    or signed in."""
    body = response.get_data(as_text=True)
    if response.status_code == 400 and "账号或密码不正确" in body:
        return "evaluated"
    if response.status_code == 429:
        return "refused"
    if response.status_code == 302:
        return "signed in"
    raise AssertionError(f"unexpected answer {response.status_code}: {body[:300]}")


def assert_says_how_long_to_wait(response) -> int:
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    body = response.get_data(as_text=True)
    found = WAIT.search(body)
    assert found, body[:500]
    number, unit = int(found.group(1)), found.group(2)
    seconds = {"秒": 1, "分钟": 60, "小时": 3600}[unit]
    # The words and the header tell the same wait (give or take the second between them).
    assert (number - 1) * seconds - 2 < retry_after <= number * seconds + 1, (number, unit)
    return retry_after


def session_address(app: Flask, email: str) -> str:
    """The client address recorded for the person's latest session."""
    with app.app_context():
        return db.session.scalar(
            select(UserSession.address)
            .join(User, User.id == UserSession.user_id)
            .where(User.email == email)
            .order_by(UserSession.id.desc())
            .limit(1)
        )


def concurrently(app: Flask, count: int, **kwargs) -> list:
    """`count` sign-in tries at once, each from its own browser, released together."""
    barrier = threading.Barrier(count)
    answers: list = [None] * count

    def one(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=30)
            answers[index] = attempt(client, **kwargs)
        except BaseException as error:  # reported below, with the others' answers
            answers[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    errors = [a for a in answers if isinstance(a, BaseException) or a is None]
    assert not errors, errors[:3]
    return answers


def assert_at_most_the_limit_evaluated(answers: list) -> None:
    outcomes = [outcome(answer) for answer in answers]
    evaluated = outcomes.count("evaluated")
    assert 1 <= evaluated <= ACCOUNT_LIMIT, outcomes
    assert outcomes.count("refused") == len(answers) - evaluated, outcomes
    for answer in answers:
        if outcome(answer) == "refused":
            assert_says_how_long_to_wait(answer)


# -- per (account, address) ----------------------------------------------------------------------
def test_thirty_concurrent_wrong_passwords_get_at_most_five_evaluated(app: Flask, world):
    assert app.config["LIMIT_SIGN_IN_ACCOUNT"].startswith(f"{ACCOUNT_LIMIT}/minute")
    answers = concurrently(app, 30)
    assert_at_most_the_limit_evaluated(answers)
    # While refused, even the right password is not checked from there.
    assert outcome(attempt(app.test_client(), password=PASSWORD)) == "refused"

    limiter.reset()  # the windows have passed
    assert outcome(attempt(app.test_client(), password=PASSWORD)) == "signed in"


def test_a_success_clears_the_failures(app: Flask, world):
    client = app.test_client()
    for _ in range(ACCOUNT_LIMIT - 1):
        assert outcome(attempt(client)) == "evaluated"
    assert outcome(attempt(app.test_client(), password=PASSWORD)) == "signed in"
    # Counting starts again: the limit's worth of tries, then a wait.
    for _ in range(ACCOUNT_LIMIT):
        assert outcome(attempt(client)) == "evaluated"
    refused = attempt(client)
    assert outcome(refused) == "refused"
    assert_says_how_long_to_wait(refused)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_the_wait_grows_with_the_tries_and_is_told_as_it_is(app: Flask, world, monkeypatch):
    """5 a minute, 10 in 15 minutes, 20 an hour: each refusal names its own wait, and tries
    refused in a burst count in no longer window (a burst waits a minute, not an hour)."""
    now = [time.time()]
    clock = SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr(memory_storage, "time", clock)  # the limiter's clock
    monkeypatch.setattr(throttle, "time", clock)  # and the wait it tells
    for _ in range(ACCOUNT_LIMIT):
        assert outcome(attempt(app.test_client())) == "evaluated"
    burst = [assert_says_how_long_to_wait(attempt(app.test_client())) for _ in range(10)]
    assert all(wait <= 60 for wait in burst), burst
    now[0] += 61  # a minute later the next five are evaluated: ten in 15 minutes
    for _ in range(ACCOUNT_LIMIT):
        assert outcome(attempt(app.test_client())) == "evaluated"
    refused = attempt(app.test_client())
    assert 13 * 60 < assert_says_how_long_to_wait(refused) <= 15 * 60
    assert "14 分钟" in refused.get_data(as_text=True)


def test_failures_from_one_address_do_not_lock_the_account_elsewhere(app: Flask, world):
    for _ in range(ACCOUNT_LIMIT):
        assert outcome(attempt(app.test_client(), address="10.0.0.66")) == "evaluated"
    assert outcome(attempt(app.test_client(), address="10.0.0.66")) == "refused"
    # The owner, at home, signs in; another account from the guesser's address is still checked.
    owner = attempt(app.test_client(), password=PASSWORD, address="10.0.0.7")
    assert outcome(owner) == "signed in"
    assert outcome(attempt(app.test_client(), OTHER_ACCOUNT, address="10.0.0.66")) == "evaluated"
    assert outcome(attempt(app.test_client(), OTHER_ACCOUNT, PASSWORD, address="10.0.0.66")) == (
        "signed in"
    )


def test_an_unknown_account_is_limited_and_answered_like_a_known_one(app: Flask, world):
    for _ in range(ACCOUNT_LIMIT):
        assert outcome(attempt(app.test_client(), "nobody@example.com")) == "evaluated"
    assert outcome(attempt(app.test_client(), "nobody@example.com")) == "refused"


def test_an_unknown_account_takes_as_long_as_a_known_one(app: Flask, world):
    """A behaviour check, not a benchmark: the unknown account used to take 20× less time."""
    # The world's people carry a cheap hash of the test password (tests/factories.py); this
    # account gets the shop's own, as every real account has.
    with app.app_context():
        db.session.scalar(select(User).where(User.email == ACCOUNT)).set_password(PASSWORD)
        db.session.commit()

    # The CPU time of this thread (the test client runs the request in it), not the wall clock:
    # what must match is the work done, and another process busy on the same cores (the suite
    # runs one worker per core) stretches wall-clock samples at random.
    def timed(email: str) -> float:
        limiter.reset()
        client = app.test_client()
        start = time.thread_time()
        answer = attempt(client, email)
        elapsed = time.thread_time() - start
        assert outcome(answer) == "evaluated"
        return elapsed

    timed(ACCOUNT), timed("nobody@example.com")  # warm: the dummy hash is made once
    known, unknown = [], []
    for _ in range(5):
        known.append(timed(ACCOUNT))
        unknown.append(timed("nobody@example.com"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 <= ratio <= 2, (known, unknown)


# -- behind a reverse proxy ----------------------------------------------------------------------
def another_app(app: Flask, **overrides) -> Flask:
    """A second app on the test database, configured as in production behind a proxy."""
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": app.config["SECRET_KEY"],
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "UPLOAD_DIR": app.config["UPLOAD_DIR"],
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
            "CELERY_TASK_ALWAYS_EAGER": True,
            **overrides,
        }
    )


def dispose(other: Flask, app: Flask) -> None:
    with other.app_context():
        db.session.remove()
        db.engine.dispose()
    # The limiter is one object for the process, and its storage is the last app's: hand it
    # back to the test app's memory storage (never leave it on a shared Redis).
    limiter.init_app(app)


@pytest.fixture
def proxy_app(app: Flask) -> Iterator[Flask]:
    behind = another_app(app, TRUSTED_PROXIES=1)
    yield behind
    dispose(behind, app)


def test_behind_a_proxy_one_address_locks_neither_other_addresses_nor_other_accounts(
    proxy_app: Flask, world
):
    guesser = "203.0.113.5"
    for _ in range(ACCOUNT_LIMIT):
        assert outcome(attempt(proxy_app.test_client(), forwarded=guesser)) == "evaluated"
    assert outcome(attempt(proxy_app.test_client(), forwarded=guesser)) == "refused"

    # Everyone comes from the proxy's socket address; the client's own address decides.
    owner = attempt(proxy_app.test_client(), password=PASSWORD, forwarded="198.51.100.7")
    assert outcome(owner) == "signed in"
    assert session_address(proxy_app, ACCOUNT) == "198.51.100.7"
    other = proxy_app.test_client()
    assert outcome(attempt(other, OTHER_ACCOUNT, forwarded=guesser)) == "evaluated"
    assert outcome(attempt(other, OTHER_ACCOUNT, PASSWORD, forwarded=guesser)) == "signed in"
    assert session_address(proxy_app, OTHER_ACCOUNT) == guesser


def test_behind_a_proxy_a_client_cannot_choose_its_address(proxy_app: Flask, world):
    # The proxy appends the address it saw; whatever the client wrote before it is not believed.
    for n in range(ACCOUNT_LIMIT):
        chain = f"192.0.2.{n + 1}, 203.0.113.5"
        assert outcome(attempt(proxy_app.test_client(), forwarded=chain)) == "evaluated"
    refused = attempt(proxy_app.test_client(), forwarded="192.0.2.99, 203.0.113.5")
    assert outcome(refused) == "refused"


def test_behind_a_proxy_the_address_limit_counts_each_client(proxy_app: Flask, world, monkeypatch):
    monkeypatch.setitem(proxy_app.config, "LIMIT_SIGN_IN_ADDRESS", "3/minute")
    for n in range(3):  # three accounts tried from one address: the route limit is per address
        answer = attempt(proxy_app.test_client(), f"guess{n}@example.com", forwarded="203.0.113.5")
        assert outcome(answer) == "evaluated"
    refused = attempt(proxy_app.test_client(), OTHER_ACCOUNT, PASSWORD, forwarded="203.0.113.5")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    elsewhere = attempt(proxy_app.test_client(), OTHER_ACCOUNT, PASSWORD, forwarded="198.51.100.7")
    assert outcome(elsewhere) == "signed in"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app: Flask, world, monkeypatch):
    assert app.config["TRUSTED_PROXIES"] == 0
    for n in range(ACCOUNT_LIMIT):
        answer = attempt(app.test_client(), address="10.0.0.66", forwarded=f"192.0.2.{n + 1}")
        assert outcome(answer) == "evaluated"
    # A new X-Forwarded-For does not make a new address.
    dodge = attempt(
        app.test_client(), password=PASSWORD, address="10.0.0.66", forwarded="192.0.2.9"
    )
    assert outcome(dodge) == "refused"
    signed = attempt(
        app.test_client(), OTHER_ACCOUNT, PASSWORD, address="10.0.0.67", forwarded="1.2.3.4"
    )
    assert outcome(signed) == "signed in"
    assert session_address(app, OTHER_ACCOUNT) == "10.0.0.67"

    monkeypatch.setitem(app.config, "LIMIT_SIGN_IN_ADDRESS", "3/minute")
    limiter.reset()
    for n in range(3):
        attempt(
            app.test_client(),
            f"guess{n}@example.com",
            address="10.0.0.68",
            forwarded=f"192.0.2.{n}",
        )
    spoofed = attempt(app.test_client(), address="10.0.0.68", forwarded="198.51.100.200")
    assert spoofed.status_code == 429


# -- per address ---------------------------------------------------------------------------------
def test_sign_in_is_limited_per_address(app: Flask, world, monkeypatch):
    monkeypatch.setitem(app.config, "LIMIT_SIGN_IN_ADDRESS", "3/minute")
    for n in range(3):
        assert outcome(attempt(app.test_client(), f"guess{n}@example.com", address="10.1.1.1")) == (
            "evaluated"
        )
    refused = attempt(app.test_client(), OTHER_ACCOUNT, PASSWORD, address="10.1.1.1")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "操作太频繁" in refused.get_data(as_text=True)
    assert outcome(attempt(app.test_client(), OTHER_ACCOUNT, PASSWORD, address="10.1.1.2")) == (
        "signed in"
    )
    # Only posting the form counts: the sign-in page itself still opens.
    page = app.test_client().get("/login", environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert page.status_code == 200


def register(client, n: int, address: str):
    return client.post(
        "/register",
        data={
            "name": f"新用户{n}",
            "email": f"new{n}@example.com",
            "password": "lychee-orchard-47-river",
            "confirm": "lychee-orchard-47-river",
        },
        environ_base={"REMOTE_ADDR": address},
    )


def users(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def test_registration_is_limited_per_address(app: Flask, monkeypatch):
    monkeypatch.setitem(app.config, "LIMIT_REGISTER", "2/hour")
    assert register(app.test_client(), 1, "10.2.2.1").status_code == 302
    assert register(app.test_client(), 2, "10.2.2.1").status_code == 302
    refused = register(app.test_client(), 3, "10.2.2.1")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert users(app) == 2
    assert register(app.test_client(), 3, "10.2.2.2").status_code == 302
    assert users(app) == 3


def test_referral_links_are_limited_per_address(app: Flask, world: SimpleNamespace, monkeypatch):
    monkeypatch.setitem(app.config, "LIMIT_REFERRAL", "3/minute")
    with app.app_context():
        code = db.session.get(Unit, world.unit).referral_code
    visitor = app.test_client()
    for _ in range(3):
        response = visitor.get(f"/r/{code}", environ_base={"REMOTE_ADDR": "10.3.3.1"})
        assert response.status_code == 302
    refused = visitor.get(f"/r/{code}", environ_base={"REMOTE_ADDR": "10.3.3.1"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    other = app.test_client().get(f"/r/{code}", environ_base={"REMOTE_ADDR": "10.3.3.2"})
    assert other.status_code == 302
    with app.app_context():
        visits = db.session.scalar(select(func.count()).select_from(ReferralVisit))
    assert visits == 4  # the refused visit was not counted for the unit


# -- with Redis, as in production ----------------------------------------------------------------
@pytest.fixture
def redis_app(app: Flask) -> Iterator[Flask]:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")
    shared = another_app(
        app, RATELIMIT_STORAGE_URI=url, RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex[:12]}"
    )
    yield shared
    dispose(shared, app)


def test_with_redis_thirty_concurrent_wrong_passwords_get_at_most_five_evaluated(
    redis_app: Flask, world
):
    assert limiter.storage.__class__.__name__.lower().startswith("redis")
    # An address of this run alone: other runs may share the Redis server.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    try:
        answers = concurrently(redis_app, 30, address=address)
        assert_at_most_the_limit_evaluated(answers)
    finally:
        with redis_app.test_request_context():
            throttle.forget("LIMIT_SIGN_IN_ACCOUNT", ACCOUNT, address)
        # The route's counts of this address too (limiter.reset() would empty the whole server).
        server = redis.Redis.from_url(os.environ["REDIS_URL"])
        for key in server.scan_iter(f"LIMITS:*/{address}/*"):
            server.delete(key)
        server.close()


def test_behind_a_proxy_mail_links_name_the_public_https_address(
    app: Flask, proxy_app: Flask, world, mailbox, monkeypatch
):
    # The mailbox fixture points the suite's app at the SMTP server; this app too.
    monkeypatch.setitem(proxy_app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(proxy_app.config, "MAIL_PORT", app.config["MAIL_PORT"])
    proxy_app.test_client().post(
        "/password/forgot",
        data={"account": ACCOUNT},
        headers={
            "X-Forwarded-For": "198.51.100.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "shop.example.gov.cn",
        },
    )
    (message,) = mailbox.messages
    assert "https://shop.example.gov.cn/password/reset/" in message.get_content()


def test_without_trusted_proxies_forwarded_scheme_and_host_are_ignored(app: Flask, world, mailbox):
    app.test_client().post(
        "/password/forgot",
        data={"account": ACCOUNT},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.invalid"},
    )
    (message,) = mailbox.messages
    assert "evil.invalid" not in message.get_content()
    assert "http://localhost/password/reset/" in message.get_content()
