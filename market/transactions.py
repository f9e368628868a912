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
