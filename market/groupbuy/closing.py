"""Closing a group-buy at its deadline: exactly once, however many closers run; each
participant charged the tier price reached, or released in full."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from market.catalog.models import Sku
from market.extensions import db
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationLine,
    ParticipationStatus,
    PaymentMode,
)
from market.groupbuy.services import (
    STALE_CLOSING,
    group_buy_link,
    is_secured,
    let_go_quantities,
)
from market.models import utcnow
from market.notifications.services import notify
from market.orders.models import Order, OrderStatus
from market.payments import services as payments
from market.payments.models import PaymentStatus


# -- closing -----------------------------------------------------------------------------------
def close_due_group_buys(now: datetime | None = None) -> int:
    """Close every open group-buy past its deadline (and finish any closing that stopped
    halfway). Returns how many this call closed."""
    now = now or utcnow()
    due = db.session.scalars(
        select(GroupBuy.id).where(
            or_(
                (GroupBuy.status == GroupBuyStatus.OPEN) & (GroupBuy.closes_at <= now),
                (GroupBuy.status == GroupBuyStatus.CLOSING)
                & (GroupBuy.closing_started_at <= now - STALE_CLOSING),
            )
        )
    ).all()
    db.session.rollback()
    return sum(1 for group_buy_id in due if close_group_buy(group_buy_id, now))


def _claim(group_buy_id: int, now: datetime) -> bool:
    """Exactly one closer wins: a conditional UPDATE, committed before any money moves."""
    claimed = db.session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group_buy_id,
            GroupBuy.status == GroupBuyStatus.OPEN,
            GroupBuy.closes_at <= now,
        )
        .values(status=GroupBuyStatus.CLOSING, closing_started_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:  # take over a closing that stopped halfway long ago
        claimed = db.session.execute(
            update(GroupBuy)
            .where(
                GroupBuy.id == group_buy_id,
                GroupBuy.status == GroupBuyStatus.CLOSING,
                GroupBuy.closing_started_at <= now - STALE_CLOSING,
            )
            .values(closing_started_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
    if claimed:
        db.session.execute(
            update(Participation)
            .where(
                Participation.group_buy_id == group_buy_id,
                Participation.status == ParticipationStatus.ACTIVE,
            )
            .values(status=ParticipationStatus.SETTLING)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()
    return bool(claimed)


def _settling(group_buy_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(Participation.id)
            .where(
                Participation.group_buy_id == group_buy_id,
                Participation.status == ParticipationStatus.SETTLING,
            )
            .order_by(Participation.id)
        )
    )


def _release(participation: Participation, reason: str) -> None:
    if participation.order is not None:
        payments.release_order(participation.order, reason)
    participation.status = ParticipationStatus.RELEASED


def _take(group_buy_id: int, participation_id: int, now: datetime) -> bool:
    """Claim one settling participant for this closer, inside the transaction that will move
    its money, and show the closing is alive: a second closer (one that took over a closing it
    thought stale) skips what this one already settled."""
    taken = db.session.execute(
        update(Participation)
        .where(
            Participation.id == participation_id,
            Participation.status == ParticipationStatus.SETTLING,
        )
        .values(status=ParticipationStatus.SETTLING)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.execute(
        update(GroupBuy)
        .where(GroupBuy.id == group_buy_id, GroupBuy.status == GroupBuyStatus.CLOSING)
        .values(closing_started_at=max(now, utcnow()))
        .execution_options(synchronize_session=False)
    )
    return taken == 1


def tier_prices(group_buy: GroupBuy, total: int) -> dict[int, int]:
    """Item id -> the price every participant pays at this total."""
    return {item.id: item.price_at(total) for item in group_buy.items}


def _charge(participation: Participation, prices: dict[int, int]) -> bool:
    """Make the participant pay exactly price × quantity for each line. False when the money
    could not be taken (an authorisation that lapsed or was cancelled)."""
    order = db.session.get(Order, participation.order_id, populate_existing=True)
    by_sku = {item.sku_id: prices[item.id] for item in participation.group_buy.items}
    if order.status == OrderStatus.PAID:
        # Charged the full group-buy price at joining: refund what the tier saves.
        parts = [
            (line, (line.unit_price_fen - by_sku[line.sku_id]) * line.quantity)
            for line in order.lines
        ]
        payments.refund_difference(order, parts, _("团购达到阶梯价，退还差价"))
        return True
    for line in order.lines:
        line.unit_price_fen = by_sku[line.sku_id]
        line.amount_fen = line.unit_price_fen * line.quantity
    order.total_fen = sum(line.amount_fen for line in order.lines)
    db.session.flush()
    if participation.group_buy.payment_mode == PaymentMode.CARD:
        payment = payments.capture_order(order)
        return payment.status == PaymentStatus.SUCCEEDED
    return True


def close_group_buy(group_buy_id: int, now: datetime | None = None) -> bool:
    """Close one group-buy; False if another closer has it (or it is not due)."""
    now = now or utcnow()
    if not _claim(group_buy_id, now):
        return False
    group_buy = db.session.get(GroupBuy, group_buy_id, populate_existing=True)

    # 1. A card participation whose card never went through does not count.
    for participation_id in _settling(group_buy.id):
        participation = db.session.get(Participation, participation_id, populate_existing=True)
        if group_buy.payment_mode == PaymentMode.CARD and not is_secured(participation):
            if _take(group_buy.id, participation_id, now):
                let_go_quantities(participation)
                _release(participation, _("未完成付款"))
            db.session.commit()

    # 2. Reached or not, on the quantities of the secured participations.
    db.session.refresh(group_buy)
    counted = (ParticipationStatus.SETTLING, ParticipationStatus.READY)
    total = db.session.scalar(
        select(func.coalesce(func.sum(ParticipationLine.quantity), 0))
        .join(ParticipationLine.participation)
        .where(Participation.group_buy_id == group_buy.id, Participation.status.in_(counted))
    )
    reached = total >= group_buy.min_quantity
    prices = tier_prices(group_buy, total)

    # 3. Each participant on their own, so that a failure halfway leaves nothing half-charged.
    for participation_id in _settling(group_buy.id):
        try:
            if not _take(group_buy.id, participation_id, now):
                db.session.rollback()
                continue
            participation = db.session.get(Participation, participation_id, populate_existing=True)
            if reached and _charge(participation, prices):
                participation.status = ParticipationStatus.READY
            elif reached:
                _release(participation, _("授权已失效，未能扣款"))
            else:
                _release(participation, _("团购未成团，全额退款"))
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise

    # 4. The group-buy's outcome, unsold reserved stock back, everyone told — once.
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, populate_existing=True)
    if group_buy.status != GroupBuyStatus.CLOSING:
        db.session.rollback()
        return False  # another closer finished it
    group_buy.move_to(GroupBuyStatus.SUCCEEDED if reached else GroupBuyStatus.FAILED)
    group_buy.closed_at = now
    group_buy.reached_quantity = total
    sold = sold_by_item(group_buy.id) if reached else {}
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
    _tell_everyone(group_buy, reached)
    db.session.commit()
    return True


def sold_by_item(group_buy_id: int) -> dict[int, int]:
    rows = db.session.execute(
        select(ParticipationLine.item_id, func.sum(ParticipationLine.quantity))
        .join(ParticipationLine.participation)
        .where(
            Participation.group_buy_id == group_buy_id,
            Participation.status.in_((ParticipationStatus.READY, ParticipationStatus.PICKED_UP)),
        )
        .group_by(ParticipationLine.item_id)
    )
    return {item_id: quantity for item_id, quantity in rows}


def _tell_everyone(group_buy: GroupBuy, reached: bool) -> None:
    def with_status(status: ParticipationStatus) -> list[int]:
        return list(
            db.session.scalars(
                select(Participation.user_id).where(
                    Participation.group_buy_id == group_buy.id, Participation.status == status
                )
            )
        )

    ready, released = (
        with_status(ParticipationStatus.READY),
        with_status(ParticipationStatus.RELEASED),
    )
    people = ready + released
    if reached:
        notify(
            ready,
            "groupbuy.succeeded",
            _("“%(title)s”团购成功", title=group_buy.title),
            _("共 %(n)d 件，已按阶梯价结算。", n=group_buy.reached_quantity),
            group_buy_link(group_buy),
        )
        notify(
            ready,
            "groupbuy.ready_for_pickup",
            _("“%(title)s”可以取货了", title=group_buy.title),
            _(
                "取货地点：%(place)s；时间：%(window)s",
                place=group_buy.pickup_address,
                window=group_buy.pickup_window,
            ),
            group_buy_link(group_buy),
        )
        notify(
            released,
            "groupbuy.failed",
            _("“%(title)s”：您的参团未能结算", title=group_buy.title),
            _("付款未完成或授权已失效，款项已全额退回或释放。"),
            group_buy_link(group_buy),
        )
    else:
        notify(
            people,
            "groupbuy.failed",
            _("“%(title)s”未成团", title=group_buy.title),
            _("未达到成团量，已付款项全额退回或释放。"),
            group_buy_link(group_buy),
        )
