"""Signed-in sessions that end when they should.

Signing in starts a `UserSession` with a fresh random key: the browser's cookies (the session
and, with 记住我, the remember-me cookie) carry "<user id>:<key>", the database only the key's
hash. Every request checks the key (`load`), so that signing out, changing or resetting the
password end every session of that person at once (`end_all`), and a session idle for longer
than SESSION_IDLE_MINUTES (REMEMBER_DAYS with 记住我) ends by itself. Starting a session also
empties the cookie session (keeping the guest's cart and language), so the CSRF token and
everything else an attacker could have planted before sign-in are new.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from flask import current_app, request, session
from flask_login import login_user, logout_user
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import joinedload

from market.accounts.models import CoopMembership, UnitMembership, User, UserSession
from market.extensions import db
from market.models import utcnow
from market.transactions import commit_keeping_loaded

# How stale `last_seen_at` may get before a request writes it again: one write a minute, not
# one per request.
TOUCH_EVERY = timedelta(seconds=60)
# What survives sign-in from the anonymous session: the guest's cart and chosen language.
KEPT_AT_SIGN_IN = ("cart_id", "lang")
# Other sign-ins that end with the sessions (the API's tokens, market/api/tokens.py): each is
# called as f(user_id, at=...) inside end_all's transaction.
ENDED_WITH_SESSIONS: list = []
# Figures every page of a signed-in person shows, read by the session's own query instead of a
# query of their own (issue 13: one round trip less per page): name -> f(user_id column) giving
# a scalar subquery. Registered at import by whoever owns the figure (the header's unread count,
# market/notifications/views.py); `load` puts the values in `user.loaded_with_session`.
LOADED_WITH_SESSION: dict[str, Callable[[Any], Any]] = {}


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def idle_limit(remember: bool) -> timedelta:
    config = current_app.config
    if remember:
        return timedelta(days=config["REMEMBER_DAYS"])
    return timedelta(minutes=config["SESSION_IDLE_MINUTES"])


def open_session(
    user_id: int, *, remember: bool = False, address: str = "", user_agent: str = ""
) -> str:
    """Record a new session of the person (committed) and return what its cookies carry."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        UserSession(
            user_id=user_id,
            key_hash=_hash(key),
            remember=remember,
            created_at=now,
            last_seen_at=now,
            address=address[:64],
            user_agent=user_agent[:200],
        )
    )
    db.session.commit()
    return f"{user_id}:{key}"


def start(user: User, *, remember: bool = False) -> None:
    """Sign `user` in on this browser with a new session."""
    cookie_id = open_session(
        user.id,
        remember=remember,
        address=request.remote_addr or "",
        user_agent=request.user_agent.string or "",
    )
    kept = {name: session[name] for name in KEPT_AT_SIGN_IN if name in session}
    session.clear()  # a new CSRF token; nothing planted before sign-in survives
    session.update(kept)
    user.signed_in_as = cookie_id
    login_user(user, remember=remember, duration=idle_limit(True) if remember else None)


def _open_session_query():
    return _session_query_with(tuple(LOADED_WITH_SESSION))


@cache
def _session_query_with(extras: tuple[str, ...]):
    """One round trip: the open session of a key hash, its person, the memberships every page's
    menu and permission checks read, and their unit and co-op (the header names the unit; the
    home page's group-buy section and the co-op pages start from them), and the `extras` of
    LOADED_WITH_SESSION. Built once (each request only binds the hash): building the statement
    and its loader options cost as much as running it."""
    user_options = joinedload(UserSession.user)
    figures = [LOADED_WITH_SESSION[name](UserSession.user_id).label(name) for name in extras]
    return (
        select(UserSession, *figures)
        .where(UserSession.key_hash == bindparam("key_hash"), UserSession.ended_at.is_(None))
        .options(
            user_options.joinedload(User.unit_memberships).joinedload(UnitMembership.unit),
            user_options.joinedload(User.coop_memberships).joinedload(CoopMembership.coop),
        )
    )


def load(cookie_id: str) -> User | None:
    """Flask-Login's user loader: the person of an open, recently used session, else None."""
    user_part, _sep, key = cookie_id.partition(":")
    if not user_part.isdigit() or not key or len(key) > 100:
        return None
    row = db.session.execute(_open_session_query(), {"key_hash": _hash(key)}).unique().one_or_none()
    if row is None:
        return None
    record = row[0]
    if not hmac.compare_digest(str(record.user_id), user_part):
        return None
    now = utcnow()
    if now - record.last_seen_at > idle_limit(record.remember):
        # Over, and it stays so: only this function moves `last_seen_at`, and never for an
        # idle session. Nothing is written on the way (a GET never writes); the daily job
        # records its end (`end_idle`).
        return None
    if now - record.last_seen_at > TOUCH_EVERY:
        record.last_seen_at = now
        commit_keeping_loaded()  # the person just read stays loaded for the request
    user = record.user
    if not user.is_active:
        return None
    user.signed_in_as = cookie_id
    user.loaded_with_session = dict(zip(row._fields[1:], row[1:], strict=True))
    return user


def end_all(user_id: int, *, at: datetime | None = None) -> int:
    """End every open session of a person (their cookies stop working everywhere). Part of the
    caller's transaction: the caller commits."""
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=at or utcnow())
        .execution_options(synchronize_session=False)
    )
    for end in ENDED_WITH_SESSIONS:
        end(user_id, at=at)
    return result.rowcount


def sign_out(user: User) -> None:
    """退出: every session of the person ends, on every device, and this browser forgets it."""
    end_all(user.id)
    db.session.commit()
    logout_user()
    session.clear()


def end_idle() -> int:
    """Record the end of every open session idle past its limit (already refused by `load`)."""
    config = current_app.config
    now = utcnow()
    short = now - timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    long = now - timedelta(days=config["REMEMBER_DAYS"])
    result = db.session.execute(
        update(UserSession)
        .where(
            UserSession.ended_at.is_(None),
            or_(
                UserSession.remember.is_(False) & (UserSession.last_seen_at < short),
                UserSession.remember.is_(True) & (UserSession.last_seen_at < long),
            ),
        )
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def purge(older_than_days: int = 35) -> int:
    """The daily job: sessions idle past their limit are recorded ended, and rows long ended or
    expired are dropped."""
    from sqlalchemy import delete

    end_idle()
    cutoff = utcnow() - timedelta(days=older_than_days)
    result = db.session.execute(
        delete(UserSession).where(
            or_(UserSession.ended_at < cutoff, UserSession.last_seen_at < cutoff)
        )
    )
    db.session.commit()
    return result.rowcount
