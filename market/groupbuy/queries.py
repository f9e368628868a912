"""Finding group-buys as someone may see them: an employee's (or a link holder's) view of one,
the coordinator's own, a unit's open ones, the organizer's list; who manages the co-op; whether a
participation is secured; the SKUs a unit's forms offer (a group-buy, a unit purchase).

A group-buy the co-op has not accepted (proposed or declined) exists only for the unit's
coordinators, the co-op and the shop's staff."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload, selectinload

from market.accounts.models import UnitRole, User
from market.catalog.models import Product, ProductStatus, Sku
from market.clock import today
from market.directory.models import Coop, Pairing, Unit, Village
from market.errors import NotAllowed, NotFound
from market.extensions import db
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    PaymentMode,
    Visibility,
)
from market.models import utcnow
from market.orders.models import Order, OrderStatus
from market.payments.models import Payment, PaymentStatus


def manages_coop(user: User, coop_id: int) -> bool:
    return coop_id in {coop.id for coop in user.managed_coops()}


def visible_to(group_buy: GroupBuy, user: User) -> bool:
    if group_buy.visibility == Visibility.LINK or user.is_admin:
        return True
    unit = user.unit if user.is_authenticated else None
    return unit is not None and unit.id == group_buy.unit_id


# Never opened: only the unit's coordinators, the co-op and the shop's staff know of it.
UNOPENED = (GroupBuyStatus.PROPOSED, GroupBuyStatus.DECLINED)


def oversees(user: User, group_buy: GroupBuy) -> bool:
    """Those answerable for a group-buy, who see it before it opens and may call it off: its
    unit's coordinator, a manager of its co-op, an organizer (or an admin)."""
    if not user.is_authenticated:
        return False
    if user.is_admin or user.is_organizer or manages_coop(user, group_buy.coop_id):
        return True
    unit = user.unit
    return (
        unit is not None
        and unit.id == group_buy.unit_id
        and user.has_unit_role(UnitRole.COORDINATOR)
    )


# What the group-buy's page shows: its unit, the co-op's village, the items with their tiers.
_SHOWN = (
    joinedload(GroupBuy.unit),
    joinedload(GroupBuy.coop).joinedload(Coop.village).joinedload(Village.town),
    selectinload(GroupBuy.items).options(
        selectinload(GroupBuyItem.tiers),
        joinedload(GroupBuyItem.sku).joinedload(Sku.product),
    ),
)


def group_buy_for(user: User, group_buy_id: int, *, for_update: bool = False) -> GroupBuy:
    """A group-buy as an employee (or a buyer with the link) may see it: one the co-op has not
    accepted does not exist for them."""
    group_buy = db.session.get(
        GroupBuy,
        group_buy_id,
        with_for_update=for_update,
        populate_existing=for_update,
        options=() if for_update else _SHOWN,
    )
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if group_buy.status in UNOPENED and not oversees(user, group_buy):
        raise NotFound(_("找不到该团购"))
    if not visible_to(group_buy, user):
        raise NotAllowed(_("该团购仅限 %(unit)s 的职工参加", unit=group_buy.unit.name))
    return group_buy


# What a group-buy's card shows of its items (the product's name, the tier prices): loaded in
# a few queries for any number of cards, not one per item.
GROUP_BUY_CARD_LOADS = (
    selectinload(GroupBuy.items).selectinload(GroupBuyItem.tiers),
    selectinload(GroupBuy.items).selectinload(GroupBuyItem.sku).selectinload(Sku.product),
)


def open_for_unit(unit_id: int, now: datetime | None = None) -> list[GroupBuy]:
    now = now or utcnow()
    return list(
        db.session.scalars(
            select(GroupBuy)
            .where(
                GroupBuy.unit_id == unit_id,
                GroupBuy.status == GroupBuyStatus.OPEN,
                GroupBuy.opens_at <= now,
                GroupBuy.closes_at > now,
            )
            .options(*GROUP_BUY_CARD_LOADS)
            .order_by(GroupBuy.closes_at)
        )
    )


def current_group_buys(limit: int = 200) -> list[GroupBuy]:
    """The organizer's view: every proposed or open group-buy, the soonest deadline first."""
    return list(
        db.session.scalars(
            select(GroupBuy)
            .where(GroupBuy.status.in_((GroupBuyStatus.PROPOSED, GroupBuyStatus.OPEN)))
            .options(
                selectinload(GroupBuy.unit),
                selectinload(GroupBuy.coop),
                selectinload(GroupBuy.items),
            )
            .order_by(GroupBuy.closes_at, GroupBuy.id)
            .limit(limit)
        )
    )


def participation_of(group_buy_id: int, user_id: int) -> Participation | None:
    return db.session.scalar(
        select(Participation)
        .where(Participation.group_buy_id == group_buy_id, Participation.user_id == user_id)
        .options(selectinload(Participation.lines), joinedload(Participation.order))
    )


def is_secured(participation: Participation) -> bool:
    if participation.group_buy.payment_mode == PaymentMode.PICKUP:
        return True
    order = participation.order
    if order is None:
        return False
    return order.status == OrderStatus.PAID or any(
        p.status == PaymentStatus.AUTHORIZED
        for p in db.session.scalars(select(Payment).where(Payment.order_id == order.id))
    )


def secured_by_participation(participations: list[Participation]) -> dict[int, bool]:
    """`is_secured` of many participations, with one look at their orders' payments."""
    order_ids = [
        p.order_id
        for p in participations
        if p.order_id is not None and p.group_buy.payment_mode != PaymentMode.PICKUP
    ]
    authorized = (
        set(
            db.session.scalars(
                select(Payment.order_id).where(
                    Payment.order_id.in_(order_ids), Payment.status == PaymentStatus.AUTHORIZED
                )
            )
        )
        if order_ids
        else set()
    )
    return {
        p.id: p.group_buy.payment_mode == PaymentMode.PICKUP
        or (
            p.order is not None and (p.order.status == OrderStatus.PAID or p.order_id in authorized)
        )
        for p in participations
    }


# The coordinator's pages list every participant with their lines and order (the pickup list
# its lines' prices), the items with their tiers, and the co-op's village.
_MANAGED = (
    selectinload(GroupBuy.coop).joinedload(Coop.village).joinedload(Village.town),
    selectinload(GroupBuy.participations).options(
        joinedload(Participation.user),
        joinedload(Participation.order).selectinload(Order.lines),
        selectinload(Participation.lines),
    ),
    selectinload(GroupBuy.items).options(
        selectinload(GroupBuyItem.tiers),
        joinedload(GroupBuyItem.sku).joinedload(Sku.product),
    ),
)


def own_group_buy(coordinator: User, group_buy_id: int) -> GroupBuy:
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, options=_MANAGED)
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    unit = coordinator.unit
    if not coordinator.is_admin and (
        unit is None
        or unit.id != group_buy.unit_id
        or not coordinator.has_unit_role(UnitRole.COORDINATOR)
    ):
        raise NotAllowed(_("只能管理本单位的团购"))
    return group_buy


def candidate_skus(unit: Unit) -> list[tuple[Sku, bool]]:
    """Listed SKUs for a unit's forms (a group-buy, a unit purchase), each with whether its
    village is paired with the unit today: the paired villages' products first."""
    day = today()
    paired_villages = set(
        db.session.scalars(
            select(Pairing.village_id).where(
                Pairing.unit_id == unit.id,
                Pairing.since <= day,
                or_(Pairing.until.is_(None), Pairing.until >= day),
            )
        )
    )
    skus = db.session.scalars(
        select(Sku)
        .join(Sku.product)
        .where(Sku.active, Product.status == ProductStatus.LISTED)
        .options(selectinload(Sku.product).selectinload(Product.coop).joinedload(Coop.village))
        .order_by(Product.name, Sku.id)
    ).all()
    ranked = [(sku, sku.product.coop.village_id in paired_villages) for sku in skus]
    return sorted(ranked, key=lambda pair: not pair[1])
