"""The declarative base and the few column types and mixins every domain shares."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import ColumnElement, DateTime, Enum, MetaData, TypeDecorator, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always hands back an aware UTC datetime (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now()
    )


def text_enum(cls: type[enum.Enum], name: str) -> Enum:
    """An enum stored as text with a CHECK constraint: no PostgreSQL ENUM types to migrate."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
    )


LIKE_ESCAPE = "\\"


def like_escape(text: str) -> str:
    """Text as a literal inside a LIKE pattern (with ESCAPE '\\'): its \\, % and _ match
    themselves, not "any characters"."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


def contains(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    """The search rule for text a person typed: the column contains it, case-insensitively,
    wildcards taken literally. Every LIKE on user text goes through here."""
    return column.ilike(f"%{like_escape(text)}%", escape=LIKE_ESCAPE)


def render_migration_item(type_: str, obj, autogen_context):
    """Alembic hook: write our UTCDateTime as a plain DateTime(timezone=True) in migrations, so
    revisions never import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


class StateMachine:
    """An explicit state machine on a model's `status` (DESIGN.md §4), the one way a status
    changes: `TRANSITIONS` says which moves are allowed (every status a key, a final one mapping
    to an empty set); an illegal one raises InvalidTransition in the user's words, built from
    `STATUS_LABELS` and `TRANSITION_MESSAGE` (with %(current)s and %(target)s).

    A model whose rows may widen the table (Order: 先货后款 by mode) overrides `allowed_moves`,
    never `move_to`. A conditional UPDATE that moves rows for concurrency (claiming a row for
    one worker) puts `Model.may_become(target)` in its WHERE, so it obeys the same table."""

    TRANSITIONS: ClassVar[dict]
    STATUS_LABELS: ClassVar[dict]
    TRANSITION_MESSAGE: ClassVar[str]

    def allowed_moves(self) -> set:
        """The statuses this row may move to now."""
        return self.TRANSITIONS[self.status]

    def may_move_to(self, status) -> bool:
        return status in self.allowed_moves()

    def move_to(self, status) -> None:
        from market.errors import InvalidTransition

        if not self.may_move_to(status):
            raise InvalidTransition(
                self.TRANSITION_MESSAGE
                % {
                    "current": self.STATUS_LABELS[self.status],
                    "target": self.STATUS_LABELS[status],
                }
            )
        self.status = status

    @classmethod
    def sources_of(cls, target) -> set:
        """The statuses the table lets move to `target`."""
        return {source for source, targets in cls.TRANSITIONS.items() if target in targets}

    @classmethod
    def may_become(cls, target) -> ColumnElement[bool]:
        """The WHERE of a conditional `UPDATE ... SET status = target`: the row's status is one
        the table lets move to `target` (the shared table; a row's own widening is not seen)."""
        sources = cls.sources_of(target)
        if not sources:
            raise ValueError(f"{cls.__name__}: nothing may move to {target}")
        return cls.status.in_(sorted(sources))

    @property
    def status_label(self) -> str:
        return str(self.STATUS_LABELS[self.status])
