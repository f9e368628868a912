"""Issuing, checking, rotating and revoking the API's bearer tokens.

Rules: an access token lives API_ACCESS_MINUTES (15), its refresh token API_REFRESH_DAYS (30);
a refresh retires the pair it came with and issues a new one, so each refresh token works once;
a retired refresh token presented again means it was copied: every token of that person is
revoked. Signing out (POST /api/v1/tokens/revoke or 退出 on the site) and a password change or
reset revoke every token of the person, like the site's sessions.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from market.accounts.models import User
from market.errors import DomainError
from market.extensions import db
from market.models import utcnow

from .models import ApiToken

ACCESS_PREFIX = "mka_"
REFRESH_PREFIX = "mkr_"
MAX_TOKEN_LENGTH = 100


class InvalidToken(DomainError):
    status_code = 401


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    user: User


def _lifetimes() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return (
        timedelta(minutes=config["API_ACCESS_MINUTES"]),
        timedelta(days=config["API_REFRESH_DAYS"]),
    )


def _new_pair(user: User, method: str) -> IssuedTokens:
    """Add a new pair for `user` (flushes only)."""
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    access_life, refresh_life = _lifetimes()
    row = ApiToken(
        user_id=user.id,
        access_hash=_hash(access),
        refresh_hash=_hash(refresh),
        created_at=now,
        access_expires_at=now + access_life,
        refresh_expires_at=now + refresh_life,
        method=method,
    )
    db.session.add(row)
    db.session.flush()
    return IssuedTokens(access, refresh, row.access_expires_at, row.refresh_expires_at, user)


def issue(user: User, method: str = "password") -> IssuedTokens:
    """A new pair of tokens for a person who has just proved who they are (committed)."""
    if not user.is_active:
        raise InvalidToken(_("该账号已停用"))
    tokens = _new_pair(user, method)
    db.session.commit()
    return tokens


def user_for_access_token(token: str) -> User | None:
    """The person an unexpired, unrevoked access token belongs to, else None."""
    if not token.startswith(ACCESS_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    row = db.session.scalar(
        select(ApiToken).where(ApiToken.access_hash == _hash(token), ApiToken.revoked_at.is_(None))
    )
    if row is None or row.access_expires_at <= utcnow():
        return None
    user = row.user
    return user if user.is_active else None


def refresh(refresh_token: str) -> IssuedTokens:
    """Rotate: the pair of this refresh token is retired and a new pair issued. A retired
    token used again revokes every token of its person (someone copied it)."""
    invalid = InvalidToken(_("登录已过期，请重新登录"))
    if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > MAX_TOKEN_LENGTH:
        raise invalid
    row = db.session.scalar(
        select(ApiToken).where(ApiToken.refresh_hash == _hash(refresh_token)).with_for_update()
    )
    if row is None:
        raise invalid
    now = utcnow()
    if row.revoked_at is not None:
        revoke_all(row.user_id, at=now)
        db.session.commit()
        raise invalid
    if row.refresh_expires_at <= now or not row.user.is_active:
        row.revoked_at = now
        db.session.commit()
        raise invalid
    row.revoked_at = now
    tokens = _new_pair(row.user, row.method)
    db.session.commit()
    return tokens


def revoke_all(user_id: int, *, at: datetime | None = None) -> int:
    """Every open token of a person stops working. Part of the caller's transaction."""
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=at or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def sign_out(user: User) -> None:
    """退出 through the API: like the site's, every session and token of the person ends."""
    from market.accounts import sessions

    sessions.end_all(user.id)  # ends the API's tokens too (see install)
    db.session.commit()


def install() -> None:
    """Tokens end wherever the site ends sessions (sign-out, password change or reset)."""
    from market.accounts import sessions

    if revoke_all not in sessions.ENDED_WITH_SESSIONS:
        sessions.ENDED_WITH_SESSIONS.append(revoke_all)
