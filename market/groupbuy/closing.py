"""Closing a group-buy at its deadline: exactly once, however many closers run; each
participant charged the tier price reached, or released in full."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select, update

from market.errors import DomainError
from market.extensions import db
from market.groupbuy import presale
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationLine,
    ParticipationStatus,
    PaymentMode,
)
from market.groupbuy.queries import is_secured
from market.groupbuy.recipients import group_buy_link
from market.groupbuy.stock import give_back_reserved_stock, let_go_quantities
from market.models import utcnow
from market.notifications.services import notify
from market.orders.models import Order, OrderStatus
from market.payments import providers
from market.payments import services as payments
from market.payments.models import PaymentStatus

# -- closing -----------------------------------------------------------------------------------
# A closer holds a lease on the group-buy, renewed with every participant it settles. A lease
# not renewed for this long is taken over; so is one whose holder, on this same machine, no
# longer runs (killed): then the next run resumes at once.
LEASE = timedelta(seconds=30)
CLOSING_KEY_PREFIX = "gb"


@dataclass
class CloseReport:
    """What one `close_due_group_buys` run did: closed ids, and the closings it resumed with
    why (the previous holder's lease expired, or its process is gone)."""

    closed: list[int] = field(default_factory=list)
    resumed: list[tuple[int, str]] = field(default_factory=list)


def closer_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:80]


def _holder_is_gone(owner: str) -> bool:
    """True when the lease holder ran on this machine and its process no longer exists."""
    host, _sep, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _due(now: datetime) -> list[GroupBuy]:
    return list(
        db.session.scalars(
            select(GroupBuy).where(
                or_(
                    (GroupBuy.status == GroupBuyStatus.OPEN) & (GroupBuy.closes_at <= now),
                    GroupBuy.status == GroupBuyStatus.CLOSING,
                )
            )
        )
    )


def close_due_group_buys(now: datetime | None = None) -> int:
    """Close every open group-buy past its deadline (and resume stopped closings); how many."""
    return len(close_due(now).closed)


def close_due(now: datetime | None = None) -> CloseReport:
    """Close every open group-buy past its deadline, and resume every closing whose closer
    stopped (lease expired, or its process gone). Refuses before claiming anything when a
    card group-buy is due and the shop has no card keys."""
    now = now or utcnow()
    due = _due(now)
    if any(g.payment_mode == PaymentMode.CARD for g in due) and (
        "stripe" not in providers.available()
    ):
        db.session.rollback()
        raise DomainError("card payments need STRIPE_SECRET_KEY")
    ids = [g.id for g in due]
    db.session.rollback()
    report = CloseReport()
    for group_buy_id in ids:
        outcome = close_group_buy(group_buy_id, now, report=report)
        if outcome:
            report.closed.append(group_buy_id)
    return report


def _claim(group_buy_id: int, now: datetime, owner: str) -> str | None:
    """Take the group-buy's closing: a conditional UPDATE committed before any money moves,
    so exactly one closer holds it. Returns "" for a fresh claim, the reason for a takeover,
    or None when someone else holds a live lease (or it is not due)."""
    claimed = db.session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group_buy_id,
            GroupBuy.may_become(GroupBuyStatus.CLOSING),  # open, per the table
            GroupBuy.closes_at <= now,
        )
        .values(status=GroupBuyStatus.CLOSING, closing_started_at=utcnow(), closing_owner=owner)
        .execution_options(synchronize_session=False)
    ).rowcount
    reason = ""
    if not claimed:
        current = db.session.execute(
            select(GroupBuy.closing_owner, GroupBuy.closing_started_at).where(
                GroupBuy.id == group_buy_id, GroupBuy.status == GroupBuyStatus.CLOSING
            )
        ).first()
        if current is None:
            db.session.rollback()
            return None
        previous, renewed = current
        if renewed is not None and renewed <= utcnow() - LEASE:
            reason = f"lease of {previous or '?'} expired"
        elif previous and _holder_is_gone(previous):
            reason = f"closer {previous} is gone"
        else:
            db.session.rollback()
            return None
        claimed = db.session.execute(
            update(GroupBuy)
            .where(
                GroupBuy.id == group_buy_id,
                GroupBuy.status == GroupBuyStatus.CLOSING,
                GroupBuy.closing_owner == previous,
                GroupBuy.closing_started_at == renewed,
            )
            .values(closing_started_at=utcnow(), closing_owner=owner)
            .execution_options(synchronize_session=False)
        ).rowcount
    if claimed:
        active = select(Participation.order_id).where(
            Participation.group_buy_id == group_buy_id,
            Participation.status.in_((ParticipationStatus.ACTIVE, ParticipationStatus.SETTLING)),
            Participation.order_id.is_not(None),
        )
        payments.hold_for_closing(list(db.session.scalars(active)))
        db.session.execute(
            update(Participation)
            .where(
                Participation.group_buy_id == group_buy_id,
                Participation.may_become(ParticipationStatus.SETTLING),  # active, per the table
            )
            .values(status=ParticipationStatus.SETTLING)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()  # money talk: the claim is committed before any provider call
    return reason if claimed else None


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


def _key(participation: Participation, step: str) -> str:
    """The provider's idempotency key of one step of one participant's settlement."""
    return f"{CLOSING_KEY_PREFIX}-{participation.group_buy_id}-{participation.id}-{step}"


def _release(participation: Participation, reason: str) -> None:
    if participation.order is not None:
        payments.release_order(participation.order, reason, key=_key(participation, "release"))
        payments.let_go(participation.order_id)
    participation.move_to(ParticipationStatus.RELEASED)


class LeaseLost(Exception):
    """Another closer took the group-buy over: this one stops without touching anything."""


def _take(group_buy_id: int, participation_id: int, owner: str, statuses=None) -> bool:
    """Renew the lease (or learn it was lost) and claim one participant for this closer,
    inside the transaction that will move its money."""
    renewed = db.session.execute(
        update(GroupBuy)
        .where(
            GroupBuy.id == group_buy_id,
            GroupBuy.status == GroupBuyStatus.CLOSING,
            GroupBuy.closing_owner == owner,
        )
        .values(closing_started_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not renewed:
        db.session.rollback()
        raise LeaseLost(group_buy_id)
    taken = db.session.execute(
        update(Participation)
        .where(
            Participation.id == participation_id,
            Participation.status.in_(statuses or (ParticipationStatus.SETTLING,)),
        )
        .values(status=Participation.status)
        .execution_options(synchronize_session=False)
    ).rowcount
    return taken == 1


def tier_prices(group_buy: GroupBuy, total: int) -> dict[int, int]:
    """Item id -> the price every participant pays at this total."""
    return {item.id: item.price_at(total) for item in group_buy.items}


def _charge(participation: Participation, prices: dict[int, int]) -> bool:
    """Make the participant pay exactly price × quantity for each line, once: the capture and
    the tier refund carry this participant's idempotency keys, and what is recorded is what the
    provider says it took. False when the money could not be taken."""
    order = db.session.get(Order, participation.order_id, populate_existing=True)
    by_sku = {item.sku_id: prices[item.id] for item in participation.group_buy.items}
    if order.status == OrderStatus.PAID:
        # Charged the full group-buy price at joining: refund what the tier saves.
        parts = [
            (line, (line.unit_price_fen - by_sku[line.sku_id]) * line.quantity)
            for line in order.lines
        ]
        payments.refund_difference(
            order, parts, _("团购达到阶梯价，退还差价"), key=_key(participation, "tier-refund")
        )
        return True
    for line in order.lines:
        line.unit_price_fen = by_sku[line.sku_id]
        line.amount_fen = line.unit_price_fen * line.quantity
    order.total_fen = sum(line.amount_fen for line in order.lines)
    db.session.flush()
    if participation.group_buy.payment_mode == PaymentMode.CARD:
        payment = payments.capture_order(order, key=_key(participation, "capture"))
        return payment.status == PaymentStatus.SUCCEEDED
    return True


def _still_capturable(participation: Participation) -> bool:
    """Before the tier is decided: can this authorised card still be captured? (A lapsed or
    cancelled authorisation is found now, so that it never changes the tier afterwards.)"""
    order = participation.order
    if order is None or order.status != OrderStatus.PENDING_PAYMENT:
        return True  # charged at joining, or captured by an earlier run: it counts
    return payments.authorisation_holds(order)


def _decide(group_buy: GroupBuy) -> tuple[int, bool, dict[int, int]]:
    """The quantity, whether the minimum is met and the tier prices: decided once, from the
    participants whose money is secured, and kept for a resumed closing."""
    if group_buy.decided_quantity is None:
        counted = (ParticipationStatus.SETTLING, ParticipationStatus.READY)
        total = db.session.scalar(
            select(func.coalesce(func.sum(ParticipationLine.quantity), 0))
            .join(ParticipationLine.participation)
            .where(Participation.group_buy_id == group_buy.id, Participation.status.in_(counted))
        )
        group_buy.decided_quantity = total
        for item in group_buy.items:
            item.settled_price_fen = item.price_at(total)
        db.session.commit()  # money talk: decided once, before any capture; a rerun keeps it
    total = group_buy.decided_quantity
    prices = {item.id: item.settled_price_fen for item in group_buy.items}
    return total, total >= group_buy.min_quantity, prices


def close_group_buy(
    group_buy_id: int, now: datetime | None = None, *, report: CloseReport | None = None
) -> bool:
    """Close one group-buy; False if another closer holds it (or it is not due).

    The rule on tiers and the minimum: first every card participant whose payment never went
    through is released, and every authorisation is checked at the provider, so that a lapsed
    or cancelled one is released before anything is decided. The remaining quantity then
    decides, once, whether the minimum is met and which tier price everyone pays; a resumed
    closing keeps that decision. Each participant is settled in its own transaction with
    idempotency keys, so a closer killed at any point leaves nothing a rerun cannot finish.
    A capture that still fails after that check (the authorisation lapsed in between) releases
    that participant; the others keep the decided price (nobody is charged twice or more than
    decided), and if the quantity left no longer meets the minimum, everyone is refunded in
    full and the group-buy fails."""
    now = now or utcnow()
    owner = closer_identity()
    reason = _claim(group_buy_id, now, owner)
    if reason is None:
        return False
    try:
        return _close_claimed(group_buy_id, now, owner, reason, report)
    except LeaseLost:
        return False


def _close_claimed(
    group_buy_id: int, now: datetime, owner: str, reason: str, report: CloseReport | None
) -> bool:
    group_buy = db.session.get(GroupBuy, group_buy_id, populate_existing=True)
    if reason and report is not None:
        left = len(_settling(group_buy_id))
        report.resumed.append((group_buy_id, f"{reason}; {left} participants left to settle"))
    card = group_buy.payment_mode == PaymentMode.CARD

    # 1. Before deciding: a card whose payment never went through, or whose authorisation no
    #    longer holds, does not count.
    if group_buy.decided_quantity is None and card:
        for participation_id in _settling(group_buy.id):
            participation = db.session.get(Participation, participation_id, populate_existing=True)
            if not _take(group_buy.id, participation_id, owner):
                db.session.rollback()
                continue
            if not is_secured(participation):
                let_go_quantities(participation)
                _release(participation, _("未完成付款"))
            elif not _still_capturable(participation):
                let_go_quantities(participation)
                _release(participation, _("授权已失效，未能扣款"))
            db.session.commit()  # money talk: each release is kept once its provider call is made

    # 2. Reached or not, and the tier: decided once.
    db.session.refresh(group_buy)
    total, reached, prices = _decide(group_buy)

    # 3. Each participant on their own, so that a failure halfway leaves nothing half-charged.
    for participation_id in _settling(group_buy.id):
        if not _take(group_buy.id, participation_id, owner):
            db.session.rollback()
            continue
        participation = db.session.get(Participation, participation_id, populate_existing=True)
        if reached and _charge(participation, prices):
            participation.move_to(ParticipationStatus.READY)
            if participation.order_id is not None:
                payments.let_go(participation.order_id)
        elif reached:
            let_go_quantities(participation)
            _release(participation, _("授权已失效，未能扣款"))
        else:
            _release(participation, _("团购未成团，全额退款"))
        db.session.commit()  # money talk: each participant settled on its own (idempotency keys)

    # 3b. Captures that failed after the check may have left too little: then nobody pays.
    if reached and _ready_quantity(group_buy.id) < group_buy.min_quantity:
        reached = False
        for participation_id in _with_status(group_buy.id, ParticipationStatus.READY):
            if not _take(group_buy.id, participation_id, owner, (ParticipationStatus.READY,)):
                db.session.rollback()
                continue
            participation = db.session.get(Participation, participation_id, populate_existing=True)
            _release(participation, _("扣款失败后未达成团量，全额退款"))
            db.session.commit()  # money talk: each refund is kept once its provider call is made

    # 4. The group-buy's outcome, unsold reserved stock back, everyone told — once.
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, populate_existing=True)
    if group_buy.status != GroupBuyStatus.CLOSING or group_buy.closing_owner != owner:
        db.session.rollback()
        return False  # another closer finished it, or took it over
    group_buy.move_to(GroupBuyStatus.SUCCEEDED if reached else GroupBuyStatus.FAILED)
    group_buy.closed_at = now
    group_buy.reached_quantity = _ready_quantity(group_buy.id) if reached else total
    give_back_reserved_stock(group_buy, sold_by_item(group_buy.id) if reached else {})
    if reached:
        presale.reserve_participants(group_buy)
    _tell_everyone(group_buy, reached)
    db.session.commit()
    return True


def _with_status(group_buy_id: int, status: ParticipationStatus) -> list[int]:
    return list(
        db.session.scalars(
            select(Participation.id)
            .where(Participation.group_buy_id == group_buy_id, Participation.status == status)
            .order_by(Participation.id)
        )
    )


def _ready_quantity(group_buy_id: int) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(ParticipationLine.quantity), 0))
        .join(ParticipationLine.participation)
        .where(
            Participation.group_buy_id == group_buy_id,
            Participation.status.in_((ParticipationStatus.READY, ParticipationStatus.PICKED_UP)),
        )
    )


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
            _l("“%(title)s”团购成功", title=group_buy.title),
            _l("共 %(n)d 件，已按阶梯价结算。", n=group_buy.reached_quantity),
            group_buy_link(group_buy),
        )
        # "可以取货了" waits for the parcel: fulfilment.notify_ready_for_pickup, on its arrival.
        notify(
            released,
            "groupbuy.failed",
            _l("“%(title)s”：您的参团未能结算", title=group_buy.title),
            _l(
                "付款未完成或银行卡授权已失效：没有从您的卡上扣款，卡上冻结的金额已释放；"
                "已付的款项全额原路退回给您。"
            ),
            group_buy_link(group_buy),
        )
    else:
        notify(
            people,
            "groupbuy.failed",
            _l("“%(title)s”未成团", title=group_buy.title),
            _l(
                "未达到成团量：您银行卡上为本团购冻结的金额已释放，不会扣款；"
                "已付的款项全额原路退回给您。"
            ),
            group_buy_link(group_buy),
        )
