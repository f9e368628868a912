"""Whom a group-buy's news goes to, the page each message links to, and how a message says a
time: shared by every step of a group-buy's life (proposals, joining, changes, closing)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
)
from market.extensions import db
from market.groupbuy.models import GroupBuy, Participation, ParticipationStatus

COOP_PAGE = "/coop/group-buys"


def group_buy_link(group_buy: GroupBuy) -> str:
    return f"/group-buys/{group_buy.id}"


def manage_link(group_buy: GroupBuy) -> str:
    return f"/unit/group-buys/{group_buy.id}"


def coop_manager_ids(coop_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(CoopMembership.user_id).where(
                CoopMembership.coop_id == coop_id, CoopMembership.role == CoopRole.MANAGER
            )
        )
    )


def coordinator_ids(group_buy: GroupBuy) -> list[int]:
    """Who opened it, and the unit's other confirmed coordinators."""
    others = db.session.scalars(
        select(UnitMembership.user_id).where(
            UnitMembership.unit_id == group_buy.unit_id,
            UnitMembership.role == UnitRole.COORDINATOR,
            UnitMembership.status == MembershipStatus.CONFIRMED,
        )
    )
    return [group_buy.created_by_id, *others]


def active_user_ids(group_buy_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(Participation.user_id).where(
                Participation.group_buy_id == group_buy_id,
                Participation.status == ParticipationStatus.ACTIVE,
            )
        )
    )


def format_time(moment: datetime) -> str:
    from flask_babel import format_datetime

    return format_datetime(moment, "yyyy-MM-dd HH:mm")
