"""API sign-in: one row per issued pair of tokens (a short-lived access token and the refresh
token that replaces it). Only sha256 hashes of the tokens are stored; a refresh retires its row
and issues a new one (rotation); signing out or changing the password revokes every row of the
person (market/accounts/sessions.py ends them with the sessions)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.extensions import db
from market.models import UTCDateTime


class ApiToken(db.Model):
    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_open", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refresh_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when refreshed (rotated), revoked by the client, or ended with the person's sessions.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # How it was signed in: "password" or "wechat".
    method: Mapped[str] = mapped_column(String(20), default="password")

    user: Mapped[User] = relationship()
