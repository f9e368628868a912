"""爱心团购, changes before the deadline: the coordinator extends the closing time once or lowers
the minimum; the coordinator, the co-op or an organizer calls a proposed or open group-buy off
(every authorisation released, every charge refunded, every reservation returned).

At the deadline the outcome belongs to the closer (`market.groupbuy.closing`)."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from market.accounts.models import User
from market.audit import services as audit
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.groupbuy.joining import AUTHORIZE_WITHIN, ensure_open, notify_if_reached
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.groupbuy.proposals import MAX_OPEN_FOR, clean_reason, ensure_within_max_open
from market.groupbuy.queries import oversees, own_group_buy
from market.groupbuy.recipients import (
    COOP_PAGE,
    active_user_ids,
    coop_manager_ids,
    coordinator_ids,
    format_time,
    group_buy_link,
    manage_link,
)
from market.groupbuy.stock import give_back_reserved_stock, let_go_quantities
from market.models import utcnow
from market.notifications.services import notify
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus
from market.transactions import unit_of_work


def authorisation_deadline(group_buy: GroupBuy) -> datetime | None:
    """The latest closing time the card authorisations of a card group-buy's active
    participants can wait for: AUTHORIZE_WITHIN (six days) after the earliest of them, or None
    when none is held (nor on its way).

    An authorisation is measured from when its payment was started (`Payment.created_at`, at or
    before the bank's authorisation: the safe side). A payment still pending counts too when it
    was started as an authorisation (the closing time was within six days then: the way
    `joining.manual_capture` decided it; the closing time has not moved since, an extension being
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
    ensure_open(group_buy, now)
    if group_buy.extended:
        raise DomainError(_("团购只能延期一次"), field="closes_at")
    if closes_at <= group_buy.closes_at:
        raise DomainError(_("新的截止时间必须晚于原截止时间"), field="closes_at")
    ensure_within_max_open(closes_at, now)
    held_until = authorisation_deadline(group_buy)
    if held_until is not None and closes_at > held_until:
        if held_until <= group_buy.closes_at:
            raise DomainError(
                _(
                    "已有参团者的银行卡授权最多保留到 %(time)s，不能再延期",
                    time=format_time(held_until),
                ),
                field="closes_at",
            )
        raise DomainError(
            _(
                "已有参团者的银行卡授权只保留 6 天，最晚可延期至 %(time)s",
                time=format_time(held_until),
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
        active_user_ids(group_buy.id),
        "groupbuy.changed",
        _l("“%(title)s”已延期", title=group_buy.title),
        _l("截止时间延至 %(time)s。", time=format_time(closes_at)),
        group_buy_link(group_buy),
    )
    notify(
        coop_manager_ids(group_buy.coop_id),
        "groupbuy.changed",
        _l("“%(title)s”已延期", title=group_buy.title),
        _l("截止时间延至 %(time)s。", time=format_time(closes_at)),
        COOP_PAGE,
    )
    db.session.commit()
    return group_buy


@unit_of_work
def lower_minimum(coordinator: User, group_buy_id: int, min_quantity: int) -> GroupBuy:
    """Before the deadline the minimum may only go down."""
    group_buy = own_group_buy(coordinator, group_buy_id)
    ensure_open(group_buy, utcnow())
    if not 1 <= min_quantity < group_buy.min_quantity:
        raise DomainError(_("新的成团量必须小于原成团量且大于 0"), field="min_quantity")
    group_buy.min_quantity = min_quantity
    notify(
        active_user_ids(group_buy.id),
        "groupbuy.changed",
        _l("“%(title)s”调低了成团量", title=group_buy.title),
        _l("成团量调整为 %(n)d 件。", n=min_quantity),
        group_buy_link(group_buy),
    )
    notify_if_reached(group_buy)
    db.session.commit()
    return group_buy


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
    reason = clean_reason(reason)
    group_buy = db.session.get(GroupBuy, group_buy_id, with_for_update=True, populate_existing=True)
    if group_buy is None:
        raise NotFound(_("找不到该团购"))
    if not oversees(actor, group_buy):
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
