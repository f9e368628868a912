"""The database connection pool: a pooled connection is checked before use only if it sat idle,
and a request that only reads does not open a transaction on PostgreSQL.

SQLAlchemy's `pool_pre_ping` sends a round trip to the server on every checkout, i.e. before
every request, to find connections the server dropped (a restart, an idle timeout, a network cut).
On a busy shop that was one round trip in four of a signed-in page served from the cache, and
4 of an order's 32 (issue 13). A connection returned to the pool a moment ago is as alive as
one just pinged; one that sat idle for longer than `DATABASE_PING_AFTER_IDLE_SECONDS` is pinged
first, and a dead one is replaced before the request sees it (the pool retries the checkout).

What no ping can catch, a server that goes away while connections are in use, costs one failed
request per worker at most: SQLAlchemy recognises the disconnect error, drops that connection and
every other connection opened before it, and the next request connects anew. That request's
transaction was rolled back by the server, so nothing of it is left half-done (a money POST is
repeated with its idempotency key).

A GET or HEAD request only reads (tests/test_query_budget.py: no GET writes, but for the
session's `last_seen_at` once a minute), so on PostgreSQL it runs its statements in autocommit:
no BEGIN before the first statement and no ROLLBACK after the last, two of the three round trips
of a signed-in page served from the cache. At READ COMMITTED, PostgreSQL's default and the
shop's, every statement sees the data as of its own start in a transaction too, so a page reads
exactly what it read before. `READS_ONLY` is set by the first before_request hook of a
dispatched request (`mark_reading_requests`); code that pushes a request context of its own (a
test, a CLI command) gets the usual transaction.
"""

from __future__ import annotations

import time

from flask import Flask, g, has_request_context, request
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

CHECKED_IN_AT = "market_checked_in_at"
READS_ONLY = "database_reads_only"
READING_METHODS = frozenset({"GET", "HEAD"})
_autocommitting: dict[Engine, Engine] = {}


class Session(FlaskSession):
    """`db.session`: Flask-SQLAlchemy's, whose connections of a reading request are in
    autocommit on PostgreSQL (see above)."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        if (
            has_request_context()
            and g.get(READS_ONLY)
            and isinstance(engine, Engine)
            and engine.dialect.name == "postgresql"
        ):
            if engine not in _autocommitting:  # one per engine, sharing its pool
                _autocommitting[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
            return _autocommitting[engine]
        return engine


def _mark_reading_request() -> None:
    if request.method in READING_METHODS:
        g.setdefault(READS_ONLY, True)


def mark_reading_requests(app: Flask) -> None:
    """Called once every other hook is registered: this one runs first, before any statement."""
    app.before_request_funcs.setdefault(None, []).insert(0, _mark_reading_request)


def ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection of `engine` at checkout if it was idle `idle_seconds` or more."""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info[CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        since = record.info.get(CHECKED_IN_AT)
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out another (a new one if need be).
            raise exc.DisconnectionError(
                "the pooled connection was closed by the server"
            ) from error


def init_app(app: Flask) -> None:
    """After Flask-SQLAlchemy's init_app: the pings of its engines."""
    idle_seconds = app.config["DATABASE_PING_AFTER_IDLE_SECONDS"]
    with app.app_context():
        for engine in app.extensions["sqlalchemy"].engines.values():
            if engine.dialect.name != "sqlite":  # a file: nothing on the way can drop it
                ping_after_idle(engine, idle_seconds)
