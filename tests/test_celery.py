"""Celery runs the deadlines in production: beat sends them often enough, the tasks do the
services' work inside an app context, and a real worker on Redis does it against our database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu import Exchange, Queue
from sqlalchemy import select

from market import ROOT
from market.accounts.models import UserSession
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order, OrderStatus
from market.tasks import (
    BEAT_SCHEDULE,
    CLOSE_DUE_GROUP_BUYS,
    EXPIRE_UNPAID_ORDERS,
    PURGE_SESSIONS,
    RECONCILE_AGAINST_PROVIDER,
    make_celery,
)
from tests.orders.conftest import buy, sku_of, stock_of

REDIS_URL = os.environ.get("REDIS_URL", "")


def _seconds(schedule) -> float:
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if isinstance(schedule, int | float):
        return float(schedule)
    return schedule.run_every.total_seconds()  # a celery.schedules.schedule


def _overdue_order(app, client_as, world) -> tuple[str, int]:
    """An order for 4 of the honey's 50, placed through the checkout, now past its deadline."""
    honey = sku_of(app, world.honey_product)
    number = buy(client_as("buyer"), honey, 4)
    assert stock_of(app, honey) == 46
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    return number, honey


def _status_of(app, number: str) -> OrderStatus:
    with app.app_context():
        return db.session.scalar(select(Order.status).where(Order.number == number))


@pytest.fixture
def eager_celery(app, monkeypatch):
    # CI sets REDIS_URL for the whole suite; these tests run the tasks in-process regardless.
    monkeypatch.setitem(app.config, "CELERY_TASK_ALWAYS_EAGER", True)
    return make_celery(app)


def test_beat_sends_both_deadline_tasks_at_least_every_minute(eager_celery):
    schedule = eager_celery.conf.beat_schedule
    assert schedule == BEAT_SCHEDULE
    deadlines = {CLOSE_DUE_GROUP_BUYS, EXPIRE_UNPAID_ORDERS}
    by_task = {
        entry["task"]: _seconds(entry["schedule"])
        for entry in schedule.values()
        if entry["task"] in deadlines
    }
    assert set(by_task) == deadlines
    assert all(0 < seconds <= 60 for seconds in by_task.values())
    assert by_task[CLOSE_DUE_GROUP_BUYS] <= 30  # group-buys close within a minute of the deadline
    assert {CLOSE_DUE_GROUP_BUYS, EXPIRE_UNPAID_ORDERS} <= set(eager_celery.tasks)


def test_beat_reconciles_against_the_provider_once_a_day(eager_celery):
    (entry,) = [
        entry
        for entry in eager_celery.conf.beat_schedule.values()
        if entry["task"] == RECONCILE_AGAINST_PROVIDER
    ]
    daily = entry["schedule"]
    assert (daily.hour, daily.minute) == ({19}, {30})  # 03:30 in Beijing
    assert (len(daily.day_of_week), len(daily.day_of_month)) == (7, 31)  # every day
    assert RECONCILE_AGAINST_PROVIDER in eager_celery.tasks


def test_a_daily_task_purges_sessions_long_ended_or_idle(app, world, eager_celery):
    (entry,) = [e for e in eager_celery.conf.beat_schedule.values() if e["task"] == PURGE_SESSIONS]
    assert (entry["schedule"].hour, len(entry["schedule"].day_of_week)) == ({20}, 7)
    with app.app_context():
        now = utcnow()
        for ended, seen in [(now - timedelta(days=40), now - timedelta(days=40)), (None, now)]:
            db.session.add(
                UserSession(
                    user_id=world.buyer,
                    key_hash=uuid.uuid4().hex,
                    created_at=seen,
                    last_seen_at=seen,
                    ended_at=ended,
                )
            )
        db.session.commit()
    assert eager_celery.tasks[PURGE_SESSIONS].delay().get() == 1
    with app.app_context():
        assert db.session.scalars(select(UserSession.ended_at)).all() == [None]


def test_without_redis_tasks_run_eagerly(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "")
    monkeypatch.delitem(app.config, "CELERY_TASK_ALWAYS_EAGER")
    celery_app = make_celery(app)
    assert celery_app.conf.task_always_eager
    assert celery_app.conf.broker_url == "memory://"


def test_the_expire_task_expires_an_overdue_order_and_gives_the_stock_back(
    app, client_as, world, eager_celery
):
    number, honey = _overdue_order(app, client_as, world)
    task = eager_celery.tasks[EXPIRE_UNPAID_ORDERS]
    assert task.delay().get() == 1
    assert _status_of(app, number) == OrderStatus.EXPIRED
    assert stock_of(app, honey) == 50
    assert task.delay().get() == 0  # a second run changes nothing
    assert stock_of(app, honey) == 50


def test_the_close_task_closes_an_overdue_group_buy(app, world, eager_celery):
    from market.accounts.models import User
    from market.catalog.models import Sku
    from market.groupbuy import joining, proposals
    from market.groupbuy.models import GroupBuy, GroupBuyStatus, PaymentMode, Visibility
    from market.models import utcnow

    with app.test_request_context():
        coordinator = db.session.get(User, world.coordinator)
        sku = db.session.scalar(select(Sku).where(Sku.product_id == world.honey_product))
        opened = proposals.open_group_buy(
            coordinator,
            proposals.GroupBuyData(
                title="蜂蜜团",
                opens_at=utcnow(),
                closes_at=utcnow() + timedelta(hours=1),
                min_quantity=1,
                payment_mode=PaymentMode.PICKUP,
                visibility=Visibility.MEMBERS,
                pickup_address="一楼",
                pickup_contact="李",
                pickup_window="周五",
                items=[proposals.ItemData(sku_id=sku.id, price_fen=8000)],
            ),
        )
        proposals.accept_group_buy(db.session.get(User, world.coop_manager), opened.id)
        joining.join(db.session.get(User, world.employee), opened.id, {opened.items[0].id: 2})
        opened.opens_at = utcnow() - timedelta(hours=2)
        opened.closes_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        group_buy_id = opened.id
    assert eager_celery.tasks[CLOSE_DUE_GROUP_BUYS].delay().get() == 1
    assert eager_celery.tasks[CLOSE_DUE_GROUP_BUYS].delay().get() == 0
    with app.app_context():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.SUCCEEDED


def test_the_worker_app_is_built_on_first_access_not_on_import(app):
    # In a fresh interpreter: a web process importing market.tasks must not build a Flask app.
    probe = (
        "import market.tasks as t\n"
        "assert t._worker_app is None, 'built on import'\n"
        "found = t.app\n"
        "assert found is t.celery is t._worker_app\n"
        "assert found.conf.task_always_eager and 'market.expire_unpaid_orders' in found.tasks\n"
        "print(found.flask_app.config['SQLALCHEMY_DATABASE_URI'])\n"
    )
    env = {**os.environ, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": ""}
    env.pop("MARKET_IN_PROCESS_JOBS", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == app.config["SQLALCHEMY_DATABASE_URI"]


def _wait_for(result, worker: subprocess.Popen, log_path, timeout: float = 60.0) -> object:
    """The task's result, waiting on the worker; fails early, with its log, if the worker died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return result.get(timeout=2)
        except CeleryTimeoutError:
            exited = worker.poll()
            if exited is not None or time.monotonic() > deadline:
                state = f"exited with {exited}" if exited is not None else "did not answer in time"
                pytest.fail(f"the worker {state}; its log:\n{log_path.read_text()[-4000:]}")


@contextmanager
def celery_worker(queue: str, env: dict, log_path) -> Iterator[subprocess.Popen]:
    """A real worker process taking `queue` only (a worker of another run or checkout on the
    same Redis cannot take the task), its output in `log_path`; stopped afterwards."""
    command = [sys.executable, "-m", "celery", "-A", "market.tasks", "worker", "--pool=solo"]
    command += ["--concurrency=1", "--loglevel=INFO", "--without-mingle", "--without-gossip"]
    command += ["--hostname", f"{queue}@%h", "-Q", queue]
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _delete_queue(celery_app, name: str) -> None:
    """Remove the test's queue and its binding from Redis (a declare makes kombu know it)."""
    with celery_app.connection_for_write() as connection:
        queue = Queue(name, Exchange(name), routing_key=name, channel=connection.default_channel)
        queue.declare()
        queue.delete()


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis for a real worker")
def test_a_real_worker_on_redis_expires_the_order_in_our_database(
    app, client_as, world, monkeypatch, tmp_path
):
    number, honey = _overdue_order(app, client_as, world)
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    monkeypatch.setitem(app.config, "CELERY_TASK_ALWAYS_EAGER", False)
    celery_app = make_celery(app)
    # Our own queue: a worker of another run or checkout on the same Redis cannot take the task.
    queue = f"market-test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": app.config["SECRET_KEY"],
    }
    env.pop("MARKET_IN_PROCESS_JOBS", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log_path = tmp_path / "worker.log"
    result = None
    try:
        with celery_worker(queue, env, log_path) as worker:
            result = celery_app.tasks[EXPIRE_UNPAID_ORDERS].apply_async(queue=queue)
            assert _wait_for(result, worker, log_path) == 1
    finally:
        if result is not None:
            result.forget()
        _delete_queue(celery_app, queue)
        celery_app.close()
    assert f"{EXPIRE_UNPAID_ORDERS}[{result.id}] succeeded" in log_path.read_text()
    assert _status_of(app, number) == OrderStatus.EXPIRED
    assert stock_of(app, honey) == 50
