"""爱心团购: proposing, the co-op's acceptance, joining, changing, leaving, cancelling, closing by
itself, pickups.

Rules:
- A coordinator proposes a group-buy for SKUs of one co-op (PROPOSED, 待合作社确认): nothing is
  reserved and nobody sees or joins it. Only a manager of that co-op accepts its price tiers, caps
  and dates (an organizer or an admin may not agree to a co-op's price for it); acceptance opens
  it and reserves each cap from the co-op's stock at once, so the group-buy never promises what
  the co-op does not have. The co-op may decline instead, with a reason.
- A closing time is at most 30 days ahead, when proposed and when extended (see `extend` for the
  authorisation window of card group-buys).
- Joining is secured by a card authorisation at the highest price when the group-buy closes
  within six days, by a charge otherwise, or by nothing when the coordinator chose pay at pickup.
- Before its deadline the coordinator, the co-op or an organizer may cancel a proposed or open
  group-buy: every authorisation released, every charge refunded, every reservation returned.
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
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import joinedload, selectinload

from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.audit import services as audit
from market.catalog.models import Product, ProductStatus, Sku
from market.clock import today
from market.directory.models import Coop, Pairing, Unit, Village
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
from market.transactions import unit_of_work

AUTHORIZE_WITHIN = timedelta(days=6)  # card authorisations are held for up to about a week
MAX_OPEN_FOR = timedelta(days=30)  # a closing time is at most this far ahead
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


def coordinated_unit(user: User) -> Unit:
    """The unit the user coordinates; anyone else may not propose a group-buy."""
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


def _ensure_within_max_open(closes_at: datetime, now: datetime) -> None:
    latest = now + MAX_OPEN_FOR
    if closes_at > latest:
        raise DomainError(
            _("截止时间最晚为 30 天后（%(time)s）", time=_format_time(latest)), field="closes_at"
        )


@unit_of_work
def open_group_buy(coordinator: User, data: GroupBuyData) -> GroupBuy:
    """A coordinator proposes a group-buy for their unit (PROPOSED, 待合作社确认): closing in the
    future and at most 30 days ahead, on SKUs of one co-op, each cap within that co-op's stock
    now. Nothing is reserved and nobody can see or join it until the co-op accepts
    (`accept_group_buy`); the co-op's managers are told."""
    unit = coordinated_unit(coordinator)
    now = utcnow()
    if not data.title.strip():
        raise DomainError(_("请填写团购标题"), field="title")
    if data.closes_at <= now:
        raise DomainError(_("截止时间必须晚于现在"), field="closes_at")
    _ensure_within_max_open(data.closes_at, now)
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
        status=GroupBuyStatus.PROPOSED,
    )
    coop_ids = set()
    for item_data in data.items:
        sku = db.session.get(Sku, item_data.sku_id)
        if sku is None or not sku.active or sku.product.status != ProductStatus.LISTED:
            raise DomainError(_("有商品已下架，请重新选择"), field="items")
        coop_ids.add(sku.product.coop_id)
        name = _item_name(sku)
        if item_data.price_fen <= 0:
            raise DomainError(_("%(name)s 的团购价必须大于 0", name=name), field="items")
        if item_data.cap is not None and not 1 <= item_data.cap <= 1_000_000:
            raise DomainError(_("%(name)s 的上限必须大于 0", name=name), field="items")
        _check_tiers(item_data, name)
        # A first look only: the co-op's acceptance reserves the cap, and may still find the
        # stock gone by then.
        if item_data.cap is not None and item_data.cap > sku.stock:
            raise DomainError(
                _("%(name)s 库存只有 %(stock)d，上限不能超过库存", name=name, stock=sku.stock),
                field="items",
            )
        item = GroupBuyItem(sku=sku, price_fen=item_data.price_fen, cap=item_data.cap)
        item.tiers = [
            GroupBuyTier(min_total_quantity=t.min_total_quantity, price_fen=t.price_fen)
            for t in item_data.tiers
        ]
        group_buy.items.append(item)
    if len(coop_ids) != 1:
        raise DomainError(_("一个团购的商品须来自同一个合作社（一次合并发货）"), field="items")
    group_buy.coop_id = coop_ids.pop()
    db.session.add(group_buy)
    db.session.flush()
    notify(
        coop_manager_ids(group_buy.coop_id),
        "groupbuy.proposed",
        _l("%(unit)s 申请团购“%(title)s”", unit=unit.name, title=group_buy.title),
        _l("请在“团购配送”页面核对团购价、上限和时间后确认，或说明理由后拒绝。"),
        COOP_PAGE,
    )
    db.session.commit()
    return group_buy


def _item_name(sku: Sku) -> str:
    return f"{sku.product.name}（{sku.spec}）"


# -- the co-op's answer --------------------------------------------------------------------------
COOP_PAGE = "/coop/group-buys"


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


def _manages_coop(user: User, coop_id: int) -> bool:
    return coop_id in {coop.id for coop in user.managed_coops()}


def _coop_proposal(manager: User, group_buy_id: int) -> GroupBuy:
    """The group-buy, locked, for one of its own co-op's managers. Nobody else answers for the
    co-op: not another co-op, not an organizer, not an admin (the co-op agrees to its own
    price)."""
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, populate_existing=True)
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if not _manages_coop(manager, group_buy.coop_id):
        raise NotAllowed(_("只有该合作社的负责人可以确认或拒绝团购"))
    return group_buy


def _ensure_proposed(group_buy: GroupBuy) -> None:
    if group_buy.status != GroupBuyStatus.PROPOSED:
        raise Conflict(
            _("该团购当前为“%(status)s”，不能再确认或拒绝", status=group_buy.status_label)
        )


@unit_of_work
def accept_group_buy(manager: User, group_buy_id: int) -> GroupBuy:
    """The co-op agrees to the proposal's price tiers, caps and dates: the group-buy opens, and
    each cap is reserved from the SKU's stock now (one conditional UPDATE each; refused as a
    whole when the stock is short). Refused once the closing time has passed, or when a SKU is
    no longer listed. The coordinators are told."""
    group_buy = _coop_proposal(manager, group_buy_id)
    _ensure_proposed(group_buy)
    now = utcnow()
    if now >= group_buy.closes_at:
        raise DomainError(_("该团购的截止时间已过，不能再确认；请联络员重新发起"))
    for item in group_buy.items:
        if not item.sku.active or item.sku.product.status != ProductStatus.LISTED:
            raise DomainError(_("%(name)s 已下架，不能确认该团购", name=_item_name(item.sku)))
    for item in group_buy.items:
        if item.cap is None:
            continue  # uncapped: each participant's order takes its own stock
        if not orders.take_stock(item.sku_id, item.cap):
            stock = db.session.scalar(select(Sku.stock).where(Sku.id == item.sku_id))
            message = _(
                "%(name)s 库存只有 %(stock)d，不够预留上限 %(cap)d 件；请先补充库存",
                name=_item_name(item.sku),
                stock=stock,
                cap=item.cap,
            )
            raise DomainError(message)  # rolled back with the caps taken for earlier items
        item.reserved_stock = item.cap
    group_buy.move_to(GroupBuyStatus.OPEN)
    group_buy.accepted_at = now
    group_buy.accepted_by_id = manager.id
    audit.record(
        manager,
        "groupbuy.accepted",
        group_buy,
        before={"status": GroupBuyStatus.PROPOSED.value},
        after={
            "status": GroupBuyStatus.OPEN.value,
            "title": group_buy.title,
            "closes_at": group_buy.closes_at,
            "prices": _terms(group_buy),
        },
        acting_as="coop",
    )
    notify(
        coordinator_ids(group_buy),
        "groupbuy.accepted",
        _l("合作社已确认“%(title)s”", title=group_buy.title),
        _l("%(coop)s 已确认团购价、上限和时间，职工现在可以参团了。", coop=group_buy.coop.name),
        manage_link(group_buy),
    )
    db.session.commit()
    return group_buy


def _terms(group_buy: GroupBuy) -> str:
    """The agreed terms in one line, for the audit log."""
    parts = []
    for item in group_buy.items:
        tiers = ",".join(f"{t.min_total_quantity}:{t.price_fen}" for t in item.tiers)
        parts.append(f"sku {item.sku_id} {item.price_fen} cap {item.cap} tiers [{tiers}]")
    return "; ".join(parts)


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("请填写理由"), field="reason")
    if len(reason) > 200:
        raise DomainError(_("理由不能超过 200 字"), field="reason")
    return reason


@unit_of_work
def decline_group_buy(manager: User, group_buy_id: int, reason: str) -> GroupBuy:
    """The co-op says no to a proposal, with a reason the coordinators are told. Nothing was
    reserved, so nothing goes back."""
    reason = _clean_reason(reason)
    group_buy = _coop_proposal(manager, group_buy_id)
    _ensure_proposed(group_buy)
    group_buy.move_to(GroupBuyStatus.DECLINED)
    group_buy.declined_at = utcnow()
    group_buy.decline_reason = reason
    audit.record(
        manager,
        "groupbuy.declined",
        group_buy,
        before={"status": GroupBuyStatus.PROPOSED.value},
        after={"status": GroupBuyStatus.DECLINED.value, "reason": reason},
        acting_as="coop",
    )
    notify(
        coordinator_ids(group_buy),
        "groupbuy.declined",
        _l("合作社未接受“%(title)s”", title=group_buy.title),
        _l("%(coop)s 的理由：%(reason)s", coop=group_buy.coop.name, reason=reason),
        manage_link(group_buy),
    )
    db.session.commit()
    return group_buy


# -- seeing and joining ------------------------------------------------------------------------
def visible_to(group_buy: GroupBuy, user: User) -> bool:
    if group_buy.visibility == Visibility.LINK or user.is_admin:
        return True
    unit = user.unit if user.is_authenticated else None
    return unit is not None and unit.id == group_buy.unit_id


# Never opened: only the unit's coordinators, the co-op and the shop's staff know of it.
UNOPENED = (GroupBuyStatus.PROPOSED, GroupBuyStatus.DECLINED)


def _knows_unopened(group_buy: GroupBuy, user: User) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_admin or user.is_organizer or _manages_coop(user, group_buy.coop_id):
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
    if group_buy.status in UNOPENED and not _knows_unopened(group_buy, user):
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


def _ensure_open(group_buy: GroupBuy, now: datetime) -> None:
    if group_buy.status == GroupBuyStatus.PROPOSED:
        raise DomainError(_("团购尚待合作社确认"))
    if group_buy.status == GroupBuyStatus.DECLINED:
        raise DomainError(_("合作社未接受该团购"))
    if group_buy.status == GroupBuyStatus.CANCELLED:
        raise DomainError(_("团购已取消"))
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
            _l("“%(title)s”已达成团量", title=group_buy.title),
            _l("已达到成团量 %(n)d 件，截止后按达到的阶梯价结算。", n=group_buy.min_quantity),
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


@unit_of_work
def join(user: User, group_buy_id: int, quantities: dict[int, int]) -> Participation:
    """A member (or anyone with the link, if so opened) joins once, within the caps, while the
    group-buy is open. Their order is made at the group-buy price; card payment follows."""
    group_buy = group_buy_for(user, group_buy_id, for_update=True)
    _ensure_open(group_buy, utcnow())
    wanted = _clean_quantities(group_buy, quantities)
    participation = participation_of(group_buy.id, user.id)
    if participation is not None and participation.status == ParticipationStatus.ACTIVE:
        raise Conflict(_("您已参团，可以修改数量或退出"))
    _hold_quantities(group_buy, wanted)
    order = _place_order(user, group_buy, wanted)
    if participation is None:
        participation = Participation(
            group_buy=group_buy, user_id=user.id, status=ParticipationStatus.ACTIVE
        )
        db.session.add(participation)
    else:
        participation.move_to(ParticipationStatus.ACTIVE)  # joins again after leaving
    participation.order_id = order.id
    _set_lines(participation, wanted)
    notify(
        [user.id],
        "groupbuy.joined",
        _l("已参加团购“%(title)s”", title=group_buy.title),
        _l("截止时间前可以修改数量或退出。"),
        group_buy_link(group_buy),
    )
    _notify_if_reached(group_buy)
    db.session.commit()
    return participation


def _active_participation(user: User, group_buy: GroupBuy) -> Participation:
    participation = participation_of(group_buy.id, user.id)
    if participation is None or participation.status != ParticipationStatus.ACTIVE:
        raise DomainError(_("您还没有参加这个团购"))
    return participation


@unit_of_work
def leave(user: User, group_buy_id: int) -> Participation:
    """Leave before the deadline: the authorisation is released or the charge refunded."""
    group_buy = group_buy_for(user, group_buy_id, for_update=True)
    _ensure_open(group_buy, utcnow())
    participation = _active_participation(user, group_buy)
    let_go_quantities(participation)
    if participation.order is not None:
        payments.release_order(participation.order, _("退出团购"))
    participation.move_to(ParticipationStatus.LEFT)
    db.session.commit()
    return participation


@unit_of_work
def change(user: User, group_buy_id: int, quantities: dict[int, int]) -> Participation:
    """Change quantities before the deadline: the old order is withdrawn and a new one made (a
    card is asked again for the new amount)."""
    group_buy = group_buy_for(user, group_buy_id, for_update=True)
    _ensure_open(group_buy, utcnow())
    wanted = _clean_quantities(group_buy, quantities)
    participation = _active_participation(user, group_buy)
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
    return participation


def manual_capture(group_buy: GroupBuy, now: datetime | None = None) -> bool:
    """Authorise now and capture at close when the close is near enough; else charge now."""
    return group_buy.closes_at - (now or utcnow()) <= AUTHORIZE_WITHIN


@unit_of_work
def start_card_payment(user: User, group_buy_id: int) -> Order:
    """Secure an active participation by card: an authorisation at the highest price (closes
    within six days) or a charge refunded in part or in full at close (a group-buy's order has
    no payment deadline)."""
    group_buy = group_buy_for(user, group_buy_id)
    if group_buy.payment_mode != PaymentMode.CARD:
        raise DomainError(_("该团购在取货时付款"))
    _ensure_open(group_buy, utcnow())
    participation = _active_participation(user, group_buy)
    order = orders.order_of_buyer(user, participation.order.number, for_update=True)
    payments.begin_payment(order, "stripe", manual_capture=manual_capture(group_buy))
    db.session.commit()
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


def authorisation_deadline(group_buy: GroupBuy) -> datetime | None:
    """The latest closing time the card authorisations of a card group-buy's active
    participants can wait for: AUTHORIZE_WITHIN (six days) after the earliest of them, or None
    when none is held (nor on its way).

    An authorisation is measured from when its payment was started (`Payment.created_at`, at or
    before the bank's authorisation: the safe side). A payment still pending counts too when it
    was started as an authorisation (the closing time was within six days then: the way
    `manual_capture` decided it; the closing time has not moved since, an extension being
    allowed once): its card, confirmed later, is only authorised."""
    if group_buy.payment_mode != PaymentMode.CARD:
        return None
    started = db.session.scalar(
        select(func.min(Payment.created_at))
        .join(Participation, Participation.order_id == Payment.order_id)
        .where(
            Participation.group_buy_id == group_buy.id,
            Participation.status == ParticipationStatus.ACTIVE,
            Payment.provider == "stripe",
            or_(
                Payment.status == PaymentStatus.AUTHORIZED,
                Payment.status.in_((PaymentStatus.PENDING, PaymentStatus.FAILED))
                & (Payment.created_at >= group_buy.closes_at - AUTHORIZE_WITHIN),
            ),
        )
    )
    return started + AUTHORIZE_WITHIN if started is not None else None


def latest_extension(group_buy: GroupBuy, now: datetime | None = None) -> datetime:
    """The latest closing time an extension may set now (see `extend`)."""
    latest = (now or utcnow()) + MAX_OPEN_FOR
    held_until = authorisation_deadline(group_buy)
    return min(latest, held_until) if held_until is not None else latest


@unit_of_work
def extend(coordinator: User, group_buy_id: int, closes_at: datetime) -> GroupBuy:
    """Once, before the deadline, to a later time that is at most 30 days from now and, for a
    card group-buy whose participants hold card authorisations, within the authorisation
    window: at most six days (AUTHORIZE_WITHIN) after the earliest authorisation among its
    active participants, so that no hold lapses before it is captured at close. Anything later
    is refused with the latest allowed time; participants who join after the extension are
    charged (and refunded the difference) whenever the new close is more than six days off.
    Audited with the deadline before and after; participants and the co-op are told."""
    group_buy = own_group_buy(coordinator, group_buy_id)
    now = utcnow()
    _ensure_open(group_buy, now)
    if group_buy.extended:
        raise DomainError(_("团购只能延期一次"), field="closes_at")
    if closes_at <= group_buy.closes_at:
        raise DomainError(_("新的截止时间必须晚于原截止时间"), field="closes_at")
    _ensure_within_max_open(closes_at, now)
    held_until = authorisation_deadline(group_buy)
    if held_until is not None and closes_at > held_until:
        if held_until <= group_buy.closes_at:
            raise DomainError(
                _(
                    "已有参团者的银行卡授权最多保留到 %(time)s，不能再延期",
                    time=_format_time(held_until),
                ),
                field="closes_at",
            )
        raise DomainError(
            _(
                "已有参团者的银行卡授权只保留 6 天，最晚可延期至 %(time)s",
                time=_format_time(held_until),
            ),
            field="closes_at",
        )
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
        _l("“%(title)s”已延期", title=group_buy.title),
        _l("截止时间延至 %(time)s。", time=_format_time(closes_at)),
        group_buy_link(group_buy),
    )
    notify(
        coop_manager_ids(group_buy.coop_id),
        "groupbuy.changed",
        _l("“%(title)s”已延期", title=group_buy.title),
        _l("截止时间延至 %(time)s。", time=_format_time(closes_at)),
        COOP_PAGE,
    )
    db.session.commit()
    return group_buy


@unit_of_work
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
        _l("“%(title)s”调低了成团量", title=group_buy.title),
        _l("成团量调整为 %(n)d 件。", n=min_quantity),
        group_buy_link(group_buy),
    )
    _notify_if_reached(group_buy)
    db.session.commit()
    return group_buy


# -- cancelling --------------------------------------------------------------------------------
def give_back_reserved_stock(group_buy: GroupBuy, sold: dict[int, int]) -> None:
    """What a group-buy reserved and did not sell goes back to the SKUs: a capped item keeps
    `sold[item.id]` for the consolidated parcel, everything else returns (one UPDATE per item,
    adding to the stock, never read-then-write). Shared by cancelling (nothing sold) and the
    closer's last step. Flushes nothing itself; the caller commits."""
    for item in group_buy.items:
        keep = sold.get(item.id, 0) if item.cap is not None else 0
        give_back = item.reserved_stock - keep
        if give_back > 0:
            db.session.execute(
                update(Sku)
                .where(Sku.id == item.sku_id)
                .values(stock=Sku.stock + give_back)
                .execution_options(synchronize_session=False)
            )
            item.reserved_stock = keep


def may_cancel(user: User, group_buy: GroupBuy) -> bool:
    """The unit's coordinator, a manager of the group-buy's co-op, an organizer (or an admin)."""
    if user.is_admin or user.is_organizer or _manages_coop(user, group_buy.coop_id):
        return True
    unit = user.unit
    return (
        unit is not None
        and unit.id == group_buy.unit_id
        and user.has_unit_role(UnitRole.COORDINATOR)
    )


@unit_of_work
def cancel_group_buy(actor: User, group_buy_id: int, reason: str) -> GroupBuy:
    """Call off a proposed or open group-buy before its deadline, with a reason: the unit's
    coordinator, a manager of its co-op or an organizer may. Every active participant's order
    is released (authorisations cancelled at the provider, charges refunded in full, stock their
    orders took given back), every participation RELEASED, the caps' reserved stock returned;
    participants, the unit's coordinators and the co-op's managers are told.

    Once only: the group-buy's row is locked, so a second cancel (or the closer, whose claim
    needs OPEN) waits and then finds it cancelled and changes nothing. After the deadline the
    outcome belongs to the closer and cancelling is refused. All in one transaction: if a
    provider call fails, nothing is recorded and a retry repeats it (cancelling a cancelled
    authorisation only reads its state)."""
    reason = _clean_reason(reason)
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, populate_existing=True)
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if not may_cancel(actor, group_buy):
        raise NotAllowed(_("只有本单位联络员、该合作社或活动组织方可以取消该团购"))
    if group_buy.status == GroupBuyStatus.CANCELLED:
        raise Conflict(_("该团购已取消，无需再次取消"))
    if group_buy.status not in (GroupBuyStatus.PROPOSED, GroupBuyStatus.OPEN):
        raise Conflict(_("该团购当前为“%(status)s”，不能取消", status=group_buy.status_label))
    now = utcnow()
    if group_buy.status == GroupBuyStatus.OPEN and now >= group_buy.closes_at:
        raise DomainError(_("团购已截止，正在结算，不能取消"))
    before = group_buy.status
    released = []
    for participation in db.session.scalars(
        select(Participation)
        .where(
            Participation.group_buy_id == group_buy.id,
            Participation.status == ParticipationStatus.ACTIVE,
        )
        .order_by(Participation.id)
        .with_for_update()
    ):
        let_go_quantities(participation)
        if participation.order is not None:
            payments.release_order(participation.order, _("团购已取消：%(reason)s", reason=reason))
        participation.move_to(ParticipationStatus.RELEASED)
        released.append(participation.user_id)
    give_back_reserved_stock(group_buy, {})
    group_buy.move_to(GroupBuyStatus.CANCELLED)
    group_buy.cancelled_at = now
    group_buy.cancelled_by_id = actor.id
    group_buy.cancel_reason = reason
    audit.record(
        actor,
        "groupbuy.cancelled",
        group_buy,
        before={"status": before.value},
        after={
            "status": GroupBuyStatus.CANCELLED.value,
            "reason": reason,
            "released": len(released),
        },
    )
    title = _l("“%(title)s”已取消", title=group_buy.title)
    body = _l(
        "%(who)s 取消了团购，理由：%(reason)s。已付款项全额退回，银行卡授权已撤销。",
        who=actor.name,
        reason=reason,
    )
    notify(released, "groupbuy.cancelled", title, body, group_buy_link(group_buy))
    notify(coordinator_ids(group_buy), "groupbuy.cancelled", title, body, manage_link(group_buy))
    notify(coop_manager_ids(group_buy.coop_id), "groupbuy.cancelled", title, body, COOP_PAGE)
    db.session.commit()
    return group_buy


def _format_time(moment: datetime) -> str:
    from flask_babel import format_datetime

    return format_datetime(moment, "yyyy-MM-dd HH:mm")
