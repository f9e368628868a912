"""A notification: one message to one user, unread until they open it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from market.extensions import db
from market.models import TimestampMixin, UTCDateTime


class Notification(TimestampMixin, db.Model):
    __tablename__ = "notifications"
    # The header counts a user's unread ones on every page.
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # "groupbuy.joined", "groupbuy.reached", ...: named by the producer, not an enum here, so a
    # new kind of message needs no migration.
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(300), default="")  # a local path, e.g. /group-buys/3
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_read(self) -> bool:
        return self.read_at is not None
