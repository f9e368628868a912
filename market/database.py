"""The database connection pool: a pooled connection is checked before use only if it sat idle.

SQLAlchemy's `pool_pre_ping` sends a round trip to the server on every checkout, i.e. before
every request, to find connections the server dropped (a restart, an idle timeout, a network cut).
On a busy shop that is one statement in four of a signed-in page (issue 13: the checkout makes
28 round trips, 4 of them pings). A connection returned to the pool a moment ago is as alive as
one just pinged; one that sat idle for longer than `DATABASE_PING_AFTER_IDLE_SECONDS` is pinged
first, and a dead one is replaced before the request sees it (the pool retries the checkout).

What no ping can catch, a server that goes away while connections are in use, costs one failed
request per worker at most: SQLAlchemy recognises the disconnect error, drops that connection and
every other connection opened before it, and the next request connects anew. That request's
transaction was rolled back by the server, so nothing of it is left half-done (a money POST is
repeated with its idempotency key).
"""

from __future__ import annotations

import time

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

CHECKED_IN_AT = "market_checked_in_at"


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


def init_app(app) -> None:
    from market.extensions import db

    idle_seconds = app.config["DATABASE_PING_AFTER_IDLE_SECONDS"]
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name != "sqlite":  # a file: nothing on the way can drop it
                ping_after_idle(engine, idle_seconds)
