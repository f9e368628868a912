"""Who is told: the people who act on a step, looked up where the step happens."""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app
from sqlalchemy import or_, select

from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.clock import today
from market.directory.models import Coop, Pairing
from market.extensions import db


def link_to(endpoint: str, **values) -> str:
    """The local path of a page ("/unit/purchases/3"), in a request or not (a Celery task has
    none), without the site's root: a notification's link is a path of the app."""
    adapter = current_app.url_map.bind("localhost", script_name="/")
    return adapter.build(endpoint, values)


def unit_role_ids(unit_id: int, role: UnitRole) -> list[int]:
    """The unit's confirmed members in `role` (its coordinators, its approvers)."""
    return list(
        db.session.scalars(
            select(UnitMembership.user_id)
            .join(User, User.id == UnitMembership.user_id)
            .where(
                UnitMembership.unit_id == unit_id,
                UnitMembership.role == role,
                UnitMembership.status == MembershipStatus.CONFIRMED,
                User.active,
            )
            .order_by(UnitMembership.user_id)
        )
    )


def unit_coordinator_ids(unit_id: int) -> list[int]:
    return unit_role_ids(unit_id, UnitRole.COORDINATOR)


def unit_approver_ids(unit_id: int) -> list[int]:
    return unit_role_ids(unit_id, UnitRole.APPROVER)


def coop_manager_ids(coop_ids: Iterable[int]) -> list[int]:
    """The managers (not the staff) of these co-ops."""
    coop_ids = set(coop_ids)
    if not coop_ids:
        return []
    return list(
        db.session.scalars(
            select(CoopMembership.user_id)
            .join(User, User.id == CoopMembership.user_id)
            .where(
                CoopMembership.coop_id.in_(coop_ids),
                CoopMembership.role == CoopRole.MANAGER,
                User.active,
            )
            .order_by(CoopMembership.user_id)
            .distinct()
        )
    )


def paired_coop_ids(unit_id: int) -> set[int]:
    """The co-ops of the villages the unit is paired with today: a custom request is theirs to
    see first (as market.procurement.custom.visible_to_coop decides)."""
    day = today()
    return set(
        db.session.scalars(
            select(Coop.id)
            .join(Pairing, Pairing.village_id == Coop.village_id)
            .where(
                Pairing.unit_id == unit_id,
                Pairing.since <= day,
                or_(Pairing.until.is_(None), Pairing.until >= day),
            )
        )
    )


def all_coop_ids() -> set[int]:
    return set(db.session.scalars(select(Coop.id)))
