"""PostgreSQL connections (market/database.py): pooled ones are pinged only after sitting idle (a
connection the server dropped while it sat in the pool is replaced before a request uses it, one
in use a moment ago costs no round trip), and a reading request opens no transaction."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, event, exc, text

from market.accounts.models import User
from market.database import ping_after_idle
from market.extensions import db
from tests import factories
from tests.orders.conftest import sku_of

pytestmark = pytest.mark.postgres_only


def _backend_pid(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(engine, pid: int) -> None:
    with engine.connect() as connection:  # a second pooled connection, so not the one killed
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()


@pytest.fixture
def engine(app):
    with app.app_context():
        url = db.engine.url
    engine = create_engine(url, pool_size=2)
    yield engine
    engine.dispose()


def _hold_two(engine) -> None:
    """Open two connections at once, so that the pool keeps two and hands out the older first."""
    first, second = engine.connect(), engine.connect()
    first.close()
    second.close()


def test_a_connection_dropped_while_idle_is_replaced_before_use(engine):
    ping_after_idle(engine, idle_seconds=0.05)
    _hold_two(engine)
    pid = _backend_pid(engine)
    _terminate(engine, pid)
    time.sleep(0.1)  # both pooled connections are now "idle"

    # Every checkout finds a live connection: the dropped one is pinged, discarded and replaced.
    pids = {_backend_pid(engine) for _ in range(3)}
    assert pid not in pids


def test_a_connection_used_a_moment_ago_is_not_pinged(engine):
    ping_after_idle(engine, idle_seconds=60)
    _hold_two(engine)
    pid = _backend_pid(engine)
    _terminate(engine, pid)

    # Not pinged (it was in use a moment ago): the request that meets the dead connection fails,
    # the pool drops it and every connection opened before it, and the next request works.
    seen = []
    for _ in range(3):
        try:
            seen.append(_backend_pid(engine))
        except (exc.OperationalError, exc.PendingRollbackError):  # the dead connection
            seen.append(None)
    assert seen[0] is None
    assert None not in seen[1:] and pid not in seen[1:]


def test_the_shop_pings_after_idle_not_on_every_checkout(app):
    with app.app_context():
        assert db.engine.pool._pre_ping is False
    assert app.config["DATABASE_PING_AFTER_IDLE_SECONDS"] == 10


def _autocommit_of_each_statement(app, request) -> list[bool]:
    """Whether the connection was in autocommit for each statement `request()` made."""
    seen: list[bool] = []

    def record(conn, cursor, statement, *args):
        seen.append(conn.connection.dbapi_connection.autocommit)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        request()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_reading_request_opens_no_transaction_and_a_writing_one_does(app, world):
    """GET pages run their statements in autocommit (no BEGIN, no ROLLBACK: two round trips
    less); a POST runs in one transaction, all or nothing."""
    buyer = factories.signed_in_client(app, world.buyer)
    honey = sku_of(app, world.honey_product)

    page = _autocommit_of_each_statement(app, lambda: buyer.get("/orders"))
    assert page and all(page)
    post = _autocommit_of_each_statement(
        app, lambda: buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    )
    assert post and not any(post)
    assert "原生态蜂蜜" in buyer.get("/cart").get_data(as_text=True)


def test_a_request_context_of_its_own_keeps_its_transaction(app, world):
    """Only a dispatched GET reads in autocommit: code that pushes a request context itself (a
    test, a command) writes in a transaction it can still roll back."""
    with app.test_request_context("/"):
        user = db.session.get(User, world.buyer)
        user.name = "改了又撤回"
        db.session.flush()
        db.session.rollback()
    with app.app_context():
        assert db.session.get(User, world.buyer).name != "改了又撤回"
