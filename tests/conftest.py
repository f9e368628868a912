"""Test fixtures: the real app on a real database (SQLite, and PostgreSQL when TEST_DATABASE_URL
is set), emptied between tests; a small world of units, villages, co-ops and people; a client
signed in per role."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from flask import Flask
from sqlalchemy import text

from market import create_app
from market.extensions import db
from tests import factories

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def _database_url(backend: str, tmp_path_factory) -> str:
    if backend == "postgresql":
        url = os.environ["TEST_DATABASE_URL"]
        return url.replace("postgresql://", "postgresql+psycopg://", 1) if "+" not in url else url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def base_app(backend: str, tmp_path_factory) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": _database_url(backend, tmp_path_factory),
            "UPLOAD_DIR": str(tmp_path_factory.mktemp("uploads")),
            # Most tests post forms directly; tests/test_security.py turns CSRF back on.
            "WTF_CSRF_ENABLED": False,
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    with app.app_context():
        db.drop_all()
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
    yield base_app
    with base_app.app_context():
        _empty_all_tables()


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
    """client_as("coop") -> a test client signed in as that person of the world."""

    def make(role: str):
        return factories.signed_in_client(app, getattr(world, role))

    return make


@pytest.fixture(scope="session")
def shared_data():
    """The real pairings and products named in public reporting (a copy ships in the package)."""
    from market.demo import default_data_dir

    return default_data_dir()
