"""The migrations build the same schema as the models, on an empty SQLite file and, when
TEST_DATABASE_URL is set, on an empty PostgreSQL database."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from market import create_app
from market.extensions import db


def _upgrade_and_diff(url: str, tmp_path) -> list:
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x", "UPLOAD_DIR": str(tmp_path)}
    )
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert {"users", "units", "villages", "pairings", "products", "skus"} <= tables
    return diff


def test_sqlite_migrations_match_the_models(tmp_path):
    assert _upgrade_and_diff(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path) == []


@pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="PostgreSQL runs where TEST_DATABASE_URL is set"
)
def test_postgresql_migrations_match_the_models(tmp_path):
    base = make_url(os.environ["TEST_DATABASE_URL"]).set(drivername="postgresql+psycopg")
    name = f"market_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        assert _upgrade_and_diff(url, tmp_path) == []
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
