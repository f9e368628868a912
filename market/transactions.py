"""A service's unit of work: the one rule every public service function follows.

Each public service function owns one transaction: it validates, changes state and commits once
at its end (`db.session.commit()`, or one of the helpers below). The helpers it calls only
flush, and it never calls another public service that commits: where two services share a step,
the step is a flushing function both call. A service marked `@unit_of_work` leaves nothing
behind when it raises: what it changed is rolled back there, so that the page showing the refusal
reads what is committed and nothing later in the request commits half of it. Views never commit
nor roll back.

The exception is money talk with a provider (Stripe): where a provider call must be preceded by
a committed record of what is about to happen (so that a crash at any point leaves nothing a
rerun cannot finish), a service commits before and after that call; each such commit says why
in a comment (docs/ARCHITECTURE.md lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError

from market.errors import Conflict
from market.extensions import db

F = TypeVar("F", bound=Callable[..., Any])


def unit_of_work(service: F) -> F:
    """Mark a public service function: whatever it raises (a refusal, a provider's failure, a
    constraint) rolls back its uncommitted changes before the error goes on to the caller."""

    @wraps(service)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return service(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise

    return run  # type: ignore[return-value]


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
