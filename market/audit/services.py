"""Writing the audit log. `record` only adds to the session: the event commits or rolls back
with the action it describes."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from market.accounts.models import User
from market.audit.models import AuditEvent
from market.extensions import db


def role_of(actor: User | None, acting_as: str | None = None) -> str:
    if acting_as:
        return acting_as
    if actor is None:
        return "system"
    if actor.is_admin:
        return "admin"
    if getattr(actor, "is_finance", False):
        return "finance"
    if actor.is_organizer:
        return "organizer"
    if actor.managed_coops():
        return "coop"
    membership = actor.confirmed_unit_membership()
    return membership.role.value if membership else "user"


def _plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {
        key: value if isinstance(value, int | float | bool | None) else str(value)
        for key, value in values.items()
    }


def record(
    actor: User | None,
    action: str,
    obj: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    acting_as: str | None = None,
) -> AuditEvent:
    """Append one event for `action` on `obj` (a model with an id, or a (type, id) pair)."""
    if isinstance(obj, tuple):
        object_type, object_id = obj
    else:
        if obj.id is None:
            db.session.flush()
        object_type, object_id = type(obj).__name__, obj.id
    ip = ""
    if has_request_context():
        ip = (request.remote_addr or "")[:64]
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_role=role_of(actor, acting_as),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=_plain(before),
        after=_plain(after),
        ip=ip,
    )
    db.session.add(event)
    return event
