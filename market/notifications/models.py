"""A notification: one message to one user, unread until they open it."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext
from sqlalchemy import JSON, ForeignKey, Index, String, Text
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
    # {"title": [msgid, {name: value}], "body": [...]}: the message as written, so each reader
    # sees it in their own language. Rows from before it (or text not from a msgid, such as a
    # reason someone typed) have none and show `title`/`body`, the text in the default language.
    params: Mapped[dict | None] = mapped_column(JSON)

    @property
    def is_read(self) -> bool:
        return self.read_at is not None

    @property
    def shown_title(self) -> str:
        """The title in the current locale."""
        return _render((self.params or {}).get("title")) or self.title

    @property
    def shown_body(self) -> str:
        return _render((self.params or {}).get("body")) or self.body


def _render(message: list | None) -> str | None:
    if not message:
        return None
    msgid, variables = message
    try:
        return gettext(msgid, **variables)
    except (KeyError, TypeError, ValueError):  # a translation naming other placeholders
        return None  # the stored text, then
