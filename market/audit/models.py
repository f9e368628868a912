"""AuditEvent: who did what to which object, the values before and after, from where and when.

Append-only. The ORM refuses to update or delete an event (see `guard_append_only`), and on
PostgreSQL a trigger refuses UPDATE and DELETE from any client; the attribution ledger gets the
same guard (market/campaign/models.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, JSON, ForeignKey, Index, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from market.accounts.models import User
from market.extensions import db
from market.models import UTCDateTime, utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_object", "object_type", "object_id"),
        Index("ix_audit_events_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # The role the person acted in (finance, organizer, coop, coordinator, admin, system ...).
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str] = mapped_column(String(40))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    ip: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    actor: Mapped[User | None] = relationship()


# PostgreSQL refuses UPDATE and DELETE on append-only tables, whoever asks. TRUNCATE (used to
# empty the test database between tests) is a different statement and is not refused. The same
# SQL is in the migration that creates the trigger (revisions never import application code).
REFUSE_CHANGE_FUNCTION = """
CREATE OR REPLACE FUNCTION market_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql
"""


def append_only_trigger(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION market_refuse_change()"
    )


def protect_table(table) -> None:
    """Attach the trigger when the table is created through the metadata (tests, create_all)."""
    event.listen(
        table, "after_create", DDL(REFUSE_CHANGE_FUNCTION).execute_if(dialect="postgresql")
    )
    event.listen(
        table, "after_create", DDL(append_only_trigger(table.name)).execute_if(dialect="postgresql")
    )


protect_table(AuditEvent.__table__)


class AppendOnlyViolation(RuntimeError):
    pass


APPEND_ONLY: list[type] = [AuditEvent]


def register_append_only(model: type) -> type:
    if model not in APPEND_ONLY:
        APPEND_ONLY.append(model)
    return model


@event.listens_for(Session, "before_flush")
def guard_append_only(session: Session, _flush_context, _instances) -> None:
    """Through the ORM an append-only row may be added, never changed or deleted."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, tuple(APPEND_ONLY)) and (
            obj in session.deleted or session.is_modified(obj, include_collections=False)
        ):
            raise AppendOnlyViolation(f"{type(obj).__name__} is append-only")
