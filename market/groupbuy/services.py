"""爱心团购: opening, joining, changing, leaving, closing by itself, pickups.

Rules:
- A coordinator opens a group-buy for SKUs of one co-op; a cap is reserved from the co-op's stock
  at once, so the group-buy never promises what the co-op does not have.
- Joining is secured by a card authorisation at the highest price when the group-buy closes
  within six days, by a charge otherwise, or by nothing when the coordinator chose pay at pickup.
- At the deadline it closes by itself, once, however many closers run: reached -> every
  participant pays exactly the tier price reached × quantity (capture less than authorised, or
  refund the difference); not reached -> every authorisation is released, every charge refunded
  in full, reserved stock returned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.orm import selectinload

from market.accounts.models import UnitRole, User
from market.audit import services as audit
from market.catalog.models import Product, ProductStatus, Sku
from market.directory.models import Pairing
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    GroupBuyTier,
    Participation,
    ParticipationLine,
    ParticipationStatus,
    PaymentMode,
    Visibility,
)
from market.models import utcnow
from market.notifications.services import notify
from market.orders import services as orders
from market.orders.models import DeliveryMethod, Order, OrderMode, OrderStatus
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus

AUTHORIZE_WITHIN = timedelta(days=6)  # card authorisations are held for up to about a week
STALE_CLOSING = timedelta(minutes=5)  # a closer that stopped halfway is taken over after this
MAX_QUANTITY = orders.MAX_QUANTITY


# -- opening ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TierData:
    min_total_quantity: int
    price_fen: int


@dataclass(frozen=True)
class ItemData:
    sku_id: int
    price_fen: int
    cap: int | None = None
    tiers: list[TierData] = field(default_factory=list)


@dataclass(frozen=True)
class GroupBuyData:
    title: str
    opens_at: datetime
    closes_at: datetime
    min_quantity: int
    payment_mode: PaymentMode
    visibility: Visibility
    pickup_address: str
    pickup_contact: str
    pickup_window: str
    items: list[ItemData]
    description: str = ""


def _coordinated_unit(user: User):
    membership = user.confirmed_unit_membership()
    if membership is None or membership.role != UnitRole.COORDINATOR:
        raise NotAllowed(_("只有单位联络员可以发起团购"))
    return membership.unit


def _check_tiers(item: ItemData, name: str) -> None:
    """Tiers rise in quantity and fall in price, all below the group-buy price."""
    previous_quantity, previous_price = 0, item.price_fen
    for tier in item.tiers:
        if tier.min_total_quantity <= previous_quantity:
            raise DomainError(_("%(name)s 的阶梯数量必须逐级增加", name=name), field="items")
        if tier.price_fen <= 0 or tier.price_fen >= previous_price:
            raise DomainError(_("%(name)s 的阶梯价格必须逐级降低", name=name), field="items")
        previous_quantity, previous_price = tier.min_total_quantity, tier.price_fen


def candidate_skus(user: User) -> list[tuple[Sku, bool]]:
    """Listed SKUs for a coordinator's form: the unit's paired villages' products first."""
    unit = _coordinated_unit(user)
    today = utcnow().date()
    paired_villages = set(
        db.session.scalars(
            select(Pairing.village_id).where(
                Pairing.unit_id == unit.id,
                Pairing.since <= today,
                or_(Pairing.until.is_(None), Pairing.until >= today),
            )
        )
    )
    skus = db.session.scalars(
        select(Sku)
        .join(Sku.product)
        .where(Sku.active, Product.status == ProductStatus.LISTED)
        .options(selectinload(Sku.product).selectinload(Product.coop))
        .order_by(Product.name, Sku.id)
    ).all()
    ranked = [(sku, sku.product.coop.village_id in paired_villages) for sku in skus]
    return sorted(ranked, key=lambda pair: not pair[1])


def open_group_buy(coordinator: User, data: GroupBuyData) -> GroupBuy:
    """A coordinator opens a group-buy for their unit. Caps are reserved from stock now."""
    unit = _coordinated_unit(coordinator)
    now = utcnow()
    if not data.title.strip():
        raise DomainError(_("请填写团购标题"), field="title")
    if data.closes_at <= now:
        raise DomainError(_("截止时间必须晚于现在"), field="closes_at")
    if data.closes_at <= data.opens_at:
        raise DomainError(_("截止时间必须晚于开始时间"), field="closes_at")
    if not 1 <= data.min_quantity <= 1_000_000:
        raise DomainError(_("成团量必须大于 0"), field="min_quantity")
    if not data.pickup_address.strip():
        raise DomainError(_("请填写取货地点"), field="pickup_address")
    if not data.items:
        raise DomainError(_("请至少选择一个商品规格"), field="items")
    if len({item.sku_id for item in data.items}) != len(data.items):
        raise DomainError(_("同一规格不能重复添加"), field="items")
    group_buy = GroupBuy(
        unit_id=unit.id,
        created_by_id=coordinator.id,
        title=data.title.strip(),
        description=data.description.strip(),
        opens_at=max(data.opens_at, now - timedelta(minutes=1)),
        closes_at=data.closes_at,
        min_quantity=data.min_quantity,
        payment_mode=data.payment_mode,
        visibility=data.visibility,
        pickup_address=data.pickup_address.strip(),
        pickup_contact=data.pickup_contact.strip(),
        pickup_window=data.pickup_window.strip(),
    )
    coop_ids = set()
    for item_data in data.items:
        sku = db.session.get(Sku, item_data.sku_id)
        if sku is None or not sku.active or sku.product.status != ProductStatus.LISTED:
            raise DomainError(_("有商品已下架，请重新选择"), field="items")
        coop_ids.add(sku.product.coop_id)
        name = f"{sku.product.name}（{sku.spec}）"
        if item_data.price_fen <= 0:
            raise DomainError(_("%(name)s 的团购价必须大于 0", name=name), field="items")
        if item_data.cap is not None and not 1 <= item_data.cap <= 1_000_000:
            raise DomainError(_("%(name)s 的上限必须大于 0", name=name), field="items")
        _check_tiers(item_data, name)
        item = GroupBuyItem(sku=sku, price_fen=item_data.price_fen, cap=item_data.cap)
        item.tiers = [
            GroupBuyTier(min_total_quantity=t.min_total_quantity, price_fen=t.price_fen)
            for t in item_data.tiers
        ]
        if item_data.cap is not None:
            if not orders.take_stock(sku.id, item_data.cap):
                db.session.rollback()
                raise DomainError(
                    _("%(name)s 库存只有 %(stock)d，上限不能超过库存", name=name, stock=sku.stock),
                    field="items",
                )
            item.reserved_stock = item_data.cap
        group_buy.items.append(item)
    if len(coop_ids) != 1:
        db.session.rollback()
        raise DomainError(_("一个团购的商品须来自同一个合作社（一次合并发货）"), field="items")
    group_buy.coop_id = coop_ids.pop()
    db.session.add(group_buy)
    db.session.commit()
    return group_buy


# -- seeing and joining ------------------------------------------------------------------------
def visible_to(group_buy: GroupBuy, user: User) -> bool:
    if group_buy.visibility == Visibility.LINK or user.is_admin:
        return True
    unit = user.unit if user.is_authenticated else None
    return unit is not None and unit.id == group_buy.unit_id


def group_buy_for(user: User, group_buy_id: int, *, for_update: bool = False) -> GroupBuy:
    group_buy = db.session.get(
        GroupBuy, group_buy_id, with_for_update=for_update, populate_existing=for_update
    )
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if not visible_to(group_buy, user):
        raise NotAllowed(_("该团购仅限 %(unit)s 的职工参加", unit=group_buy.unit.name))
    return group_buy


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
            .options(selectinload(GroupBuy.items).selectinload(GroupBuyItem.tiers))
            .order_by(GroupBuy.closes_at)
        )
    )


def participation_of(group_buy_id: int, user_id: int) -> Participation | None:
    return db.session.scalar(
        select(Participation).where(
            Participation.group_buy_id == group_buy_id, Participation.user_id == user_id
        )
    )


def _ensure_open(group_buy: GroupBuy, now: datetime) -> None:
    if group_buy.status != GroupBuyStatus.OPEN or now >= group_buy.closes_at:
        raise DomainError(_("团购已截止"))
    if now < group_buy.opens_at:
        raise DomainError(_("团购尚未开始"))


def _hold_quantities(group_buy: GroupBuy, quantities: dict[int, int]) -> None:
    """Count the quantities in, never past an item's cap (one conditional UPDATE each)."""
    items = {item.id: item for item in group_buy.items}
    for item_id, quantity in quantities.items():
        item = items[item_id]
        held = db.session.execute(
            update(GroupBuyItem)
            .where(
                GroupBuyItem.id == item_id,
                or_(
                    GroupBuyItem.cap.is_(None),
                    GroupBuyItem.joined_quantity + quantity <= GroupBuyItem.cap,
                ),
            )
            .values(joined_quantity=GroupBuyItem.joined_quantity + quantity)
            .execution_options(synchronize_session=False)
        )
        if held.rowcount != 1:
            db.session.refresh(item)
            left = (item.cap or 0) - item.joined_quantity
            raise DomainError(
                _(
                    "超出团购上限：%(name)s 还剩 %(left)d 件",
                    name=item.sku.product.name,
                    left=max(left, 0),
                ),
                field="quantity",
            )


def let_go_quantities(participation: Participation) -> None:
    for line in participation.lines:
        db.session.execute(
            update(GroupBuyItem)
            .where(GroupBuyItem.id == line.item_id)
            .values(joined_quantity=GroupBuyItem.joined_quantity - line.quantity)
            .execution_options(synchronize_session=False)
        )


def _clean_quantities(group_buy: GroupBuy, quantities: dict[int, int]) -> dict[int, int]:
    item_ids = {item.id for item in group_buy.items}
    wanted = {item_id: q for item_id, q in quantities.items() if q}
    if not wanted:
        raise DomainError(_("请至少选择 1 件"), field="quantity")
    for item_id, quantity in wanted.items():
        if item_id not in item_ids:
            raise NotFound(_("该团购没有这个规格"))
        if not 1 <= quantity <= MAX_QUANTITY:
            raise DomainError(_("数量应在 1 到 %(n)d 之间", n=MAX_QUANTITY), field="quantity")
    return wanted


def _place_order(user: User, group_buy: GroupBuy, quantities: dict[int, int]) -> Order:
    items = {item.id: item for item in group_buy.items}
    wanted = [orders.WantedLine(items[i].sku_id, q) for i, q in quantities.items()]
    return orders.build_order(
        user,
        wanted,
        orders.Delivery(
            DeliveryMethod.PICKUP,
            user.name,
            user.phone or "",
            f"{group_buy.pickup_address}（{group_buy.title}）",
        ),
        f"groupbuy-{group_buy.id}-{user.id}-{uuid.uuid4().hex[:12]}",
        mode=OrderMode.GROUP_BUY,
        unit_id=group_buy.unit_id,
        prices={items[i].sku_id: items[i].price_fen for i in quantities},
        take_stock_for={items[i].sku_id for i in quantities if items[i].cap is None},
        expires=False,
    )


def group_buy_link(group_buy: GroupBuy) -> str:
    return f"/group-buys/{group_buy.id}"


def _notify_if_reached(group_buy: GroupBuy) -> None:
    db.session.flush()
    db.session.refresh(group_buy)
    for item in group_buy.items:
        db.session.refresh(item)
    if not group_buy.reached_notified and group_buy.total_quantity >= group_buy.min_quantity:
        group_buy.reached_notified = True
        notify(
            _active_user_ids(group_buy.id),
            "groupbuy.reached",
            _("“%(title)s”已达成团量", title=group_buy.title),
            _("已达到成团量 %(n)d 件，截止后按达到的阶梯价结算。", n=group_buy.min_quantity),
            group_buy_link(group_buy),
        )


def _active_user_ids(group_buy_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(Participation.user_id).where(
                Participation.group_buy_id == group_buy_id,
                Participation.status == ParticipationStatus.ACTIVE,
            )
        )
    )


def _set_lines(participation: Participation, wanted: dict[int, int]) -> None:
    """Make the participation's lines say `wanted`, updating the lines of items kept in place:
    replacing the list would INSERT the new line before DELETEing the old one of the same item
    (the unit of work's order), against UNIQUE(participation_id, item_id)."""
    kept = {line.item_id: line for line in participation.lines}
    for item_id, line in kept.items():
        if item_id not in wanted:
            participation.lines.remove(line)
    for item_id, quantity in wanted.items():
        if item_id in kept:
            kept[item_id].quantity = quantity
        else:
            participation.lines.append(ParticipationLine(item_id=item_id, quantity=quantity))


def join(user: User, group_buy_id: int, quantities: dict[int, int]) -> Participation:
    """A member (or anyone with the link, if so opened) joins once, within the caps, while the
    group-buy is open. Their order is made at the group-buy price; card payment follows."""
    group_buy = group_buy_for(user, group_buy_id, for_update=True)
    _ensure_open(group_buy, utcnow())
    wanted = _clean_quantities(group_buy, quantities)
    participation = participation_of(group_buy.id, user.id)
    if participation is not None and participation.status == ParticipationStatus.ACTIVE:
        raise Conflict(_("您已参团，可以修改数量或退出"))
    try:
        _hold_quantities(group_buy, wanted)
        order = _place_order(user, group_buy, wanted)
        if participation is None:
            participation = Participation(group_buy=group_buy, user_id=user.id)
            db.session.add(participation)
        participation.status = ParticipationStatus.ACTIVE
        participation.order_id = order.id
        _set_lines(participation, wanted)
        notify(
            [user.id],
            "groupbuy.joined",
            _("已参加团购“%(title)s”", title=group_buy.title),
            _("截止时间前可以修改数量或退出。"),
            group_buy_link(group_buy),
        )
        _notify_if_reached(group_buy)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return participation


def _active_participation(user: User, group_buy: GroupBuy) -> Participation:
    participation = participation_of(group_buy.id, user.id)
    if participation is None or participation.status != ParticipationStatus.ACTIVE:
        raise DomainError(_("您还没有参加这个团购"))
    return participation


def leave(user: User, group_buy_id: int) -> Participation:
    """Leave before the deadline: the authorisation is released or the charge refunded."""
    group_buy = group_buy_for(user, group_buy_id, for_update=True)
    _ensure_open(group_buy, utcnow())
    participation = _active_participation(user, group_buy)
    let_go_quantities(participation)
    if participation.order is not None:
        payments.release_order(participation.order, _("退出团购"))
    participation.status = ParticipationStatus.LEFT
    db.session.commit()
    return participation


def change(user: User, group_buy_id: int, quantities: dict[int, int]) -> Participation:
    """Change quantities before the deadline: the old order is withdrawn and a new one made (a
    card is asked again for the new amount)."""
    group_buy = group_buy_for(user, group_buy_id, for_update=True)
    _ensure_open(group_buy, utcnow())
    wanted = _clean_quantities(group_buy, quantities)
    participation = _active_participation(user, group_buy)
    try:
        let_go_quantities(participation)
        if participation.order is not None:
            payments.release_order(participation.order, _("修改团购数量"))
        db.session.flush()
        _hold_quantities(group_buy, wanted)
        order = _place_order(user, group_buy, wanted)
        participation.order_id = order.id
        _set_lines(participation, wanted)
        _notify_if_reached(group_buy)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return participation


def manual_capture(group_buy: GroupBuy, now: datetime | None = None) -> bool:
    """Authorise now and capture at close when the close is near enough; else charge now."""
    return group_buy.closes_at - (now or utcnow()) <= AUTHORIZE_WITHIN


def start_card_payment(user: User, group_buy_id: int) -> Order:
    """Secure an active participation by card: an authorisation at the highest price (closes
    within six days) or a charge refunded in part or in full at close."""
    group_buy = group_buy_for(user, group_buy_id)
    if group_buy.payment_mode != PaymentMode.CARD:
        raise DomainError(_("该团购在取货时付款"))
    _ensure_open(group_buy, utcnow())
    participation = _active_participation(user, group_buy)
    order = participation.order
    payments.start_payment(user, order.number, "stripe", manual_capture=manual_capture(group_buy))
    return order


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


# -- the coordinator's changes before the deadline ---------------------------------------------
def own_group_buy(coordinator: User, group_buy_id: int) -> GroupBuy:
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True)
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


def extend(coordinator: User, group_buy_id: int, closes_at: datetime) -> GroupBuy:
    """Once, before the deadline, to a later time. Audited with the deadline before and after."""
    group_buy = own_group_buy(coordinator, group_buy_id)
    _ensure_open(group_buy, utcnow())
    if group_buy.extended:
        raise DomainError(_("团购只能延期一次"), field="closes_at")
    if closes_at <= group_buy.closes_at:
        raise DomainError(_("新的截止时间必须晚于原截止时间"), field="closes_at")
    before = group_buy.closes_at
    group_buy.closes_at = closes_at
    group_buy.extended = True
    audit.record(
        coordinator,
        "groupbuy.extended",
        group_buy,
        before={"closes_at": before},
        after={"closes_at": closes_at, "title": group_buy.title},
        acting_as=None if coordinator.is_admin else "coordinator",
    )
    notify(
        _active_user_ids(group_buy.id),
        "groupbuy.changed",
        _("“%(title)s”已延期", title=group_buy.title),
        _("截止时间延至 %(time)s。", time=_format_time(closes_at)),
        group_buy_link(group_buy),
    )
    db.session.commit()
    return group_buy


def lower_minimum(coordinator: User, group_buy_id: int, min_quantity: int) -> GroupBuy:
    """Before the deadline the minimum may only go down."""
    group_buy = own_group_buy(coordinator, group_buy_id)
    _ensure_open(group_buy, utcnow())
    if not 1 <= min_quantity < group_buy.min_quantity:
        raise DomainError(_("新的成团量必须小于原成团量且大于 0"), field="min_quantity")
    group_buy.min_quantity = min_quantity
    notify(
        _active_user_ids(group_buy.id),
        "groupbuy.changed",
        _("“%(title)s”调低了成团量", title=group_buy.title),
        _("成团量调整为 %(n)d 件。", n=min_quantity),
        group_buy_link(group_buy),
    )
    _notify_if_reached(group_buy)
    db.session.commit()
    return group_buy


def _format_time(moment: datetime) -> str:
    from flask_babel import format_datetime

    return format_datetime(moment, "yyyy-MM-dd HH:mm")
