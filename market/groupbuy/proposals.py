"""爱心团购, proposing and the co-op's answer.

- A coordinator proposes a group-buy for SKUs of one co-op (PROPOSED, 待合作社确认): nothing is
  reserved and nobody sees or joins it. Only a manager of that co-op accepts its price tiers, caps
  and dates (an organizer or an admin may not agree to a co-op's price for it); acceptance opens
  it and reserves each cap from the co-op's stock at once, so the group-buy never promises what
  the co-op does not have. The co-op may decline instead, with a reason.
- A closing time is at most 30 days ahead, when proposed and when extended (see
  `market.groupbuy.changes.extend` for the authorisation window of card group-buys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from market.accounts.models import UnitRole, User
from market.audit import services as audit
from market.catalog.models import ProductStatus, Sku
from market.directory.models import Unit
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.groupbuy import presale
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    GroupBuyTier,
    PaymentMode,
    Visibility,
)
from market.groupbuy.queries import manages_coop
from market.groupbuy.recipients import (
    COOP_PAGE,
    coop_manager_ids,
    coordinator_ids,
    format_time,
    manage_link,
)
from market.models import utcnow
from market.notifications.services import notify
from market.orders import services as orders
from market.transactions import unit_of_work

MAX_OPEN_FOR = timedelta(days=30)  # a closing time is at most this far ahead


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
    presale_id: int | None = None  # 预售团购: the presale it orders (groupbuy/presale.py)


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


def ensure_within_max_open(closes_at: datetime, now: datetime) -> None:
    latest = now + MAX_OPEN_FOR
    if closes_at > latest:
        raise DomainError(
            _("截止时间最晚为 30 天后（%(time)s）", time=format_time(latest)), field="closes_at"
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
    ensure_within_max_open(data.closes_at, now)
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
        if item_data.presale_id is not None:
            presale.check_item(
                item_data.presale_id,
                sku.id,
                item_data.cap,
                items=len(data.items),
                payment_mode=data.payment_mode,
                closes_at=data.closes_at,
            )
        # A first look only: the co-op's acceptance reserves the cap, and may still find the
        # stock gone by then.
        elif item_data.cap is not None and item_data.cap > sku.stock:
            raise DomainError(
                _("%(name)s 库存只有 %(stock)d，上限不能超过库存", name=name, stock=sku.stock),
                field="items",
            )
        item = GroupBuyItem(
            sku=sku,
            price_fen=item_data.price_fen,
            cap=item_data.cap,
            presale_id=item_data.presale_id,
        )
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


def _coop_proposal(manager: User, group_buy_id: int) -> GroupBuy:
    """The group-buy, locked, for one of its own co-op's managers. Nobody else answers for the
    co-op: not another co-op, not an organizer, not an admin (the co-op agrees to its own
    price)."""
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, populate_existing=True)
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if not manages_coop(manager, group_buy.coop_id):
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
        if item.presale_id is not None:
            presale.claim(item)  # from the presale's limit, never today's stock
            continue
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


def clean_reason(reason: str) -> str:
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
    reason = clean_reason(reason)
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
