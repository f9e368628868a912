"""Test fixtures: the real app on a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL
is set), emptied between tests; a small world of units, villages, co-ops and people; a client
signed in per role through the real sign-in form (`client_as`); the money movements the payments
hook reported (`movements`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from market import create_app
from market.extensions import cache, db
from market.payments import hook
from market.security.throttle import limiter
from tests import factories


def _own_redis_database_per_worker() -> None:
    """Under pytest-xdist (`make test` runs one worker per core) each worker talks to a Redis
    database of its own: the tests that start a real Celery worker would otherwise let one
    worker's Celery take the other's tasks, which point at the other's database. Runs at import,
    before the test modules read REDIS_URL."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    url = os.environ.get("REDIS_URL", "")
    if not worker.startswith("gw") or not url:
        return
    parts = urlsplit(url)
    number = parts.path.strip("/")
    index = int(number) if number.isdigit() else 0
    path = f"/{(index + int(worker[2:])) % 16}"
    os.environ["REDIS_URL"] = urlunsplit(parts._replace(path=path))


_own_redis_database_per_worker()

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def _server_url():
    return make_url(os.environ["TEST_DATABASE_URL"]).set(drivername="postgresql+psycopg")


@contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    """A database of this run's own on the TEST_DATABASE_URL server, dropped afterwards, so that
    two runs on one machine (a developer's and CI's) never empty each other's tables."""
    server = _server_url()
    name = f"{server.database or 'test'}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _database(backend: str, tmp_path_factory) -> Iterator[str]:
    if backend == "postgresql":
        with _fresh_postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


def pytest_collection_modifyitems(config, items) -> None:
    """`@pytest.mark.postgres_only`: the test runs on the PostgreSQL backend alone. Its other
    backends' runs are deselected; without TEST_DATABASE_URL it is skipped, saying why."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on = callspec.params.get("backend") if callspec is not None else None
        if item.get_closest_marker("postgres_only") is not None and on != "postgresql":
            if "postgresql" in BACKENDS:
                dropped.append(item)
                continue
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set TEST_DATABASE_URL"))
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def base_app(backend: str, tmp_path_factory) -> Iterator[Flask]:
    with _database(backend, tmp_path_factory) as url:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test-secret",
                "SQLALCHEMY_DATABASE_URI": url,
                "UPLOAD_DIR": str(tmp_path_factory.mktemp("uploads")),
                # Most tests post forms directly; tests/test_security.py turns CSRF back on.
                "WTF_CSRF_ENABLED": False,
                # Rate limits count in memory, emptied after each test (tests/security
                # covers Redis); CI's REDIS_URL must not make tasks wait for a worker.
                "RATELIMIT_STORAGE_URI": "memory://",
                "CELERY_TASK_ALWAYS_EAGER": True,
                # The page cache in this process's memory, emptied after each test.
                "CACHE_TYPE": "SimpleCache",
            }
        )
        with app.app_context():
            db.create_all()
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _empty_all_tables() -> None:
    tables = db.metadata.sorted_tables
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(t.name for t in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(tables):
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(base_app: Flask) -> Iterator[Flask]:
    """The app; every table is empty again after the test.

    No app context stays pushed during a test: each request then gets its own context, session
    and `g`, as in production. Tests open `with app.app_context():` to look at the data.
    """
    base_app.config["WTF_CSRF_ENABLED"] = False
    # The limiter is one object per process and counts where the last app made told it: this
    # app's memory store, emptied afterwards (never a shared Redis).
    limiter.init_app(base_app)
    yield base_app
    with base_app.app_context():
        _empty_all_tables()
        cache.clear()
    limiter.reset()
    # A test that built a Celery app of its own (a real worker's broker, a memory broker with no
    # worker) leaves it in app.extensions, where market.tasks.celery_for would hand it to every
    # later test: the next one gets the eager one made from the app's config again.
    base_app.extensions.pop("celery", None)


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def world(app: Flask) -> SimpleNamespace:
    """The ids of a small world (see factories.make_world)."""
    with app.app_context():
        made = factories.make_world()
    app.config["TEST_WORLD"] = made  # for helpers that build on it
    return made


@pytest.fixture
def client_as(app: Flask, world: SimpleNamespace):
    """client_as("coop_manager") -> a new test client signed in, through the real sign-in form
    (factories.sign_in), as that person of the world; client_as(user_id) as anyone else (with
    `password=` when theirs is not factories.PASSWORD; `remember=True` ticks 记住我)."""

    def make(user_or_role: str | int, password: str = factories.PASSWORD, *, remember=False):
        user_id = getattr(world, user_or_role) if isinstance(user_or_role, str) else user_or_role
        return factories.signed_in_client(app, user_id, password, remember=remember)

    return make


@pytest.fixture
def movements() -> Iterator[list[hook.MoneyMovement]]:
    """Every money movement the payments hook reported during the test (market/payments/hook.py:
    money received or refunded, as the attribution ledger and the settlements hear it)."""
    seen: list[hook.MoneyMovement] = []
    listener = hook.subscribe(seen.append)
    yield seen
    hook.unsubscribe(listener)


@pytest.fixture(scope="session")
def shared_data():
    """The real pairings and products named in public reporting (a copy ships in the package)."""
    from market.demo import default_data_dir

    return default_data_dir()
