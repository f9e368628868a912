"""Committing a service's unit of work."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from market.errors import Conflict
from market.extensions import db


def commit_unique(message: str, field: str | None = None) -> None:
    """Commit; a unique constraint hit by a concurrent writer becomes a readable Conflict."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(message, field=field) from None


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session holds, so that the rest of the request (the
    redirect to the order just placed, the signed-in user in the response's hooks) reads it from
    memory instead of reloading each object in a new transaction. Only for a unit of work that
    changed objects through the ORM, whose loaded state is then exactly what was committed: the
    caller expires whatever it changed behind the ORM's back (a Core UPDATE of stock, a bulk
    DELETE) before calling this."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
