"""爱心团购, an employee's part while it is open: joining, changing quantities, leaving, and
securing the participation by card.

Joining is secured by a card authorisation at the highest price when the group-buy closes
within six days (AUTHORIZE_WITHIN), by a charge otherwise, or by nothing when the coordinator
chose pay at pickup. Quantities stay within each item's cap (`market.groupbuy.stock`)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from market.accounts.models import User
from market.errors import Conflict, DomainError, NotFound
from market.extensions import db
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationLine,
    ParticipationStatus,
    PaymentMode,
)
from market.groupbuy.queries import group_buy_for, participation_of
from market.groupbuy.recipients import active_user_ids, group_buy_link
from market.groupbuy.stock import hold_quantities, let_go_quantities
from market.models import utcnow
from market.notifications.services import notify
from market.orders import carts
from market.orders import services as orders
from market.orders.models import DeliveryMethod, Order, OrderMode
from market.payments import services as payments
from market.transactions import unit_of_work

AUTHORIZE_WITHIN = timedelta(days=6)  # card authorisations are held for up to about a week
MAX_QUANTITY = carts.MAX_QUANTITY


def ensure_open(group_buy: GroupBuy, now: datetime) -> None:
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


def notify_if_reached(group_buy: GroupBuy) -> None:
    """Tell the participants, once, that the minimum is reached (flushes; the caller commits)."""
    db.session.flush()
    db.session.refresh(group_buy)
    for item in group_buy.items:
        db.session.refresh(item)
    if not group_buy.reached_notified and group_buy.total_quantity >= group_buy.min_quantity:
        group_buy.reached_notified = True
        notify(
            active_user_ids(group_buy.id),
            "groupbuy.reached",
            _l("“%(title)s”已达成团量", title=group_buy.title),
            _l("已达到成团量 %(n)d 件，截止后按达到的阶梯价结算。", n=group_buy.min_quantity),
            group_buy_link(group_buy),
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
    ensure_open(group_buy, utcnow())
    wanted = _clean_quantities(group_buy, quantities)
    participation = participation_of(group_buy.id, user.id)
    if participation is not None and participation.status == ParticipationStatus.ACTIVE:
        raise Conflict(_("您已参团，可以修改数量或退出"))
    hold_quantities(group_buy, wanted)
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
    notify_if_reached(group_buy)
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
    ensure_open(group_buy, utcnow())
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
    ensure_open(group_buy, utcnow())
    wanted = _clean_quantities(group_buy, quantities)
    participation = _active_participation(user, group_buy)
    let_go_quantities(participation)
    if participation.order is not None:
        payments.release_order(participation.order, _("修改团购数量"))
    db.session.flush()
    hold_quantities(group_buy, wanted)
    order = _place_order(user, group_buy, wanted)
    participation.order_id = order.id
    _set_lines(participation, wanted)
    notify_if_reached(group_buy)
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
    ensure_open(group_buy, utcnow())
    participation = _active_participation(user, group_buy)
    order = orders.order_of_buyer(user, participation.order.number, for_update=True)
    payments.begin_payment(order, "stripe", manual_capture=manual_capture(group_buy))
    db.session.commit()
    return order
