"""After a group-buy succeeds: the co-op's one consolidated parcel, its arrival at the pickup
point, and the coordinator's pickups. Participants are told 可以取货了 only when the coordinator
has marked the parcel arrived, and pickups are ticked off only from then on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload, selectinload

from market.accounts.models import User
from market.batches import services as batches
from market.batches.models import Batch
from market.catalog.models import Sku
from market.directory.models import Coop, Village
from market.errors import DomainError, NotAllowed, NotFound
from market.extensions import db
from market.groupbuy import presale
from market.groupbuy.closing import sold_by_item, tier_prices
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
)
from market.groupbuy.queries import own_group_buy
from market.groupbuy.recipients import group_buy_link
from market.models import utcnow
from market.notifications.services import notify
from market.orders.models import OrderLine, OrderStatus, ShipmentStatus
from market.payments import services as payments
from market.transactions import unit_of_work


# -- after success: the consolidated parcel and the pickups --------------------------------------
@dataclass(frozen=True)
class ConsolidatedLine:
    item: GroupBuyItem
    quantity: int
    unit_price_fen: int

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


def consolidated_lines(group_buy: GroupBuy) -> list[ConsolidatedLine]:
    """What the co-op packs in its one parcel: the sum of every ready participation."""
    sold = sold_by_item(group_buy.id)
    prices = tier_prices(group_buy, group_buy.reached_quantity or 0)
    return [
        ConsolidatedLine(item, sold[item.id], prices[item.id])
        for item in group_buy.items
        if sold.get(item.id)
    ]


def batch_codes_by_sku(group_buy: GroupBuy) -> dict[int, list[str]]:
    """The batch codes each SKU of the consolidated parcel went from (once it shipped)."""
    rows = db.session.execute(
        select(OrderLine.sku_id, Batch.code)
        .join(Batch, Batch.id == OrderLine.batch_id)
        .join(Participation, Participation.order_id == OrderLine.order_id)
        .where(Participation.group_buy_id == group_buy.id)
        .distinct()
        .order_by(Batch.code)
    )
    codes: dict[int, list[str]] = defaultdict(list)
    for sku_id, code in rows:
        codes[sku_id].append(code)
    return dict(codes)


def pickup_list(group_buy: GroupBuy) -> list[Participation]:
    """Who comes to pick up, from the group-buy's participations (loaded with their lines and
    orders by `own_group_buy`)."""
    waiting = (ParticipationStatus.READY, ParticipationStatus.PICKED_UP)
    return sorted((p for p in group_buy.participations if p.status in waiting), key=lambda p: p.id)


@unit_of_work
def mark_picked_up(coordinator: User, group_buy_id: int, participation_id: int) -> Participation:
    """The coordinator ticks off a pickup, once the consolidated parcel has arrived;
    pay-at-pickup money is recorded then."""
    group_buy = own_group_buy(coordinator, group_buy_id)
    participation = db.session.get(Participation, participation_id, with_for_update=True)
    if participation is None or participation.group_buy_id != group_buy.id:
        raise NotFound(_("找不到该参团记录"))
    if participation.status != ParticipationStatus.READY:
        raise DomainError(_("该参团记录当前不能取货"))
    if not group_buy.pickups_started:
        raise DomainError(_("合作社的包裹到达取货点后才能确认取货"))
    order = participation.order
    if order.status == OrderStatus.PENDING_PAYMENT:
        payments.record_paid_at_pickup(coordinator, order)
    for shipment in order.shipments:
        if shipment.status == ShipmentStatus.TO_SHIP:
            shipment.move_to(ShipmentStatus.SHIPPED)
            shipment.shipped_at = utcnow()
        if shipment.status == ShipmentStatus.SHIPPED:
            shipment.move_to(ShipmentStatus.DELIVERED)
            shipment.delivered_at = utcnow()
    order.move_to(OrderStatus.COMPLETED)
    order.closed_at = utcnow()
    participation.move_to(ParticipationStatus.PICKED_UP)
    participation.picked_up_at = utcnow()
    db.session.commit()
    return participation


@dataclass(frozen=True)
class CoopGroupBuys:
    """A co-op's group-buy page: requests to answer, the open ones, the parcels to send."""

    proposed: list[GroupBuy]
    open: list[GroupBuy]
    succeeded: list[GroupBuy]


def coop_group_buys(user: User) -> CoopGroupBuys:
    coop_ids = [c.id for c in user.managed_coops()]
    now = utcnow()
    shown = db.session.scalars(
        select(GroupBuy)
        .where(
            GroupBuy.coop_id.in_(coop_ids),
            or_(
                # A request whose closing time passed unanswered can no longer be accepted.
                (GroupBuy.status == GroupBuyStatus.PROPOSED) & (GroupBuy.closes_at > now),
                GroupBuy.status.in_((GroupBuyStatus.OPEN, GroupBuyStatus.SUCCEEDED)),
            ),
        )
        .options(
            selectinload(GroupBuy.unit),
            selectinload(GroupBuy.items).selectinload(GroupBuyItem.tiers),
            selectinload(GroupBuy.items).selectinload(GroupBuyItem.sku).selectinload(Sku.product),
        )
        .order_by(GroupBuy.closes_at)
    ).all()
    by_status = defaultdict(list)
    for group_buy in shown:
        by_status[group_buy.status].append(group_buy)
    succeeded = sorted(
        by_status[GroupBuyStatus.SUCCEEDED],
        key=lambda g: g.closed_at or g.closes_at,
        reverse=True,
    )
    return CoopGroupBuys(
        by_status[GroupBuyStatus.PROPOSED], by_status[GroupBuyStatus.OPEN], succeeded
    )


# What the packing list prints: the co-op and its village, the unit, each item's product.
PACKING_LIST_LOADS = (
    joinedload(GroupBuy.coop).joinedload(Coop.village).joinedload(Village.town),
    joinedload(GroupBuy.unit),
    selectinload(GroupBuy.items).selectinload(GroupBuyItem.tiers),
    selectinload(GroupBuy.items).selectinload(GroupBuyItem.sku).selectinload(Sku.product),
)


def coop_group_buy(user: User, group_buy_id: int, *, options=()) -> GroupBuy:
    group_buy = db.session.get(GroupBuy, group_buy_id, options=options)
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if not user.is_admin and group_buy.coop_id not in {c.id for c in user.managed_coops()}:
        raise NotAllowed(_("这不是您合作社的团购"))
    return group_buy


@unit_of_work
def ship_consolidated(
    user: User, group_buy_id: int, carrier: str, tracking_number: str
) -> GroupBuy:
    """The co-op sends its one parcel to the pickup point; every participant's line is given
    its batch then (the oldest open batch of its SKU)."""
    group_buy = coop_group_buy(user, group_buy_id)
    if group_buy.status != GroupBuyStatus.SUCCEEDED:
        raise DomainError(_("只有成团的团购需要发货"))
    if group_buy.shipped_at is not None:
        raise DomainError(_("该团购已发货"))
    presale.ensure_harvested(group_buy)
    if not carrier.strip():
        raise DomainError(_("请填写快递公司"), field="carrier")
    group_buy.shipped_at = utcnow()
    group_buy.carrier = carrier.strip()[:40]
    group_buy.tracking_number = tracking_number.strip()[:60]
    # Each participant's lines name the batch (批次) they go from: the oldest open one.
    batches.allocate_lines(
        [
            line
            for participation in group_buy.participations
            if participation.status == ParticipationStatus.READY and participation.order
            for line in participation.order.lines
        ],
        {},
    )
    notify(
        [group_buy.created_by_id],
        "groupbuy.shipped",
        _l("“%(title)s”的包裹已发出", title=group_buy.title),
        _l(
            "%(carrier)s %(number)s。包裹到达后请在取货单上标记“已到货”，参团职工会收到取货通知。",
            carrier=group_buy.carrier,
            number=group_buy.tracking_number,
        ),
        f"/unit/group-buys/{group_buy.id}/pickup-list",
    )
    db.session.commit()
    return group_buy


@unit_of_work
def mark_arrived(coordinator: User, group_buy_id: int) -> GroupBuy:
    """The coordinator confirms the co-op's consolidated parcel reached the pickup point: only
    after the co-op shipped it, once. Every ready participant is told 可以取货了 then."""
    group_buy = own_group_buy(coordinator, group_buy_id)
    if group_buy.status != GroupBuyStatus.SUCCEEDED:
        raise DomainError(_("只有成团的团购有包裹到货"))
    if group_buy.shipped_at is None:
        raise DomainError(_("合作社还没有发货，不能标记到货"))
    if group_buy.arrived_at is not None:
        raise DomainError(_("已标记到货"))
    group_buy.arrived_at = utcnow()
    notify_ready_for_pickup(group_buy)
    db.session.commit()
    return group_buy


def notify_ready_for_pickup(group_buy: GroupBuy) -> None:
    """可以取货了, to every participant ready to pick up. Sent when the parcel has arrived (not at
    close: there is nothing to pick up before the co-op ships). Flushes only."""
    ready = db.session.scalars(
        select(Participation.user_id).where(
            Participation.group_buy_id == group_buy.id,
            Participation.status == ParticipationStatus.READY,
        )
    )
    notify(
        list(ready),
        "groupbuy.ready_for_pickup",
        _l("“%(title)s”可以取货了", title=group_buy.title),
        _l(
            "取货地点：%(place)s；时间：%(window)s",
            place=group_buy.pickup_address,
            window=group_buy.pickup_window,
        ),
        group_buy_link(group_buy),
    )


def unit_group_buys(unit_id: int) -> list[GroupBuy]:
    return list(
        db.session.scalars(
            select(GroupBuy)
            .where(GroupBuy.unit_id == unit_id)
            # The list shows each one's progress: its items' tiers and quantities.
            .options(
                selectinload(GroupBuy.items).options(
                    selectinload(GroupBuyItem.tiers),
                    selectinload(GroupBuyItem.sku).selectinload(Sku.product),
                )
            )
            .order_by(GroupBuy.id.desc())
        )
    )


def quantities_by_status(group_buy: GroupBuy) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for participation in group_buy.participations:
        counts[participation.status.value] += participation.quantity
    return dict(counts)
