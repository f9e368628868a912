"""爱心团购 pages: the blueprint, what every group-buy page shows (time left, progress, the home
page's section), and the employees' pages: see, join, change, leave and pay.

The coordinator's pages are in `coordinator_views`, the co-op's and the organizer's in
`coop_views`: they register their routes on this blueprint (imported last, below)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import market.groupbuy.models  # noqa: F401  (the models are part of the app's metadata)
from market.accounts.forms import ActionForm
from market.errors import DomainError
from market.extensions import db
from market.groupbuy import joining, queries
from market.groupbuy.forms import QuantitiesForm, quantities_form
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.models import utcnow
from market.money import format_fen
from market.security.access import Access, requires
from market.web import reraise_access_errors, run_action, show_error

bp = Blueprint("groupbuy", __name__)


# -- what every group-buy page shows: time left and progress --------------------------------------
def time_left(closes_at: datetime, now: datetime | None = None) -> str:
    """'剩余 2 天 5 小时' (whole units, rounded down), worked out on the server: no script."""
    seconds = int((closes_at - (now or utcnow())).total_seconds())
    if seconds <= 0:
        return _("已截止")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return _("剩余 %(days)d 天 %(hours)d 小时", days=days, hours=hours)
    if hours:
        return _("剩余 %(hours)d 小时 %(minutes)d 分钟", hours=hours, minutes=minutes)
    return _("剩余 %(minutes)d 分钟", minutes=max(minutes, 1))


@dataclass(frozen=True)
class Progress:
    total: int  # joined so far; once closed, what was reached
    minimum: int
    next_tier: str | None  # "还差 3 件到下一档 ¥80.00"

    @property
    def percent(self) -> int:
        return min(100, self.total * 100 // self.minimum) if self.minimum else 100

    @property
    def to_minimum(self) -> int:
        return max(self.minimum - self.total, 0)


def _next_tier_text(group_buy: GroupBuy, total: int) -> str | None:
    thresholds = sorted(
        {
            tier.min_total_quantity
            for item in group_buy.items
            for tier in item.tiers
            if tier.min_total_quantity > total
        }
    )
    if not thresholds or group_buy.status != GroupBuyStatus.OPEN:
        return None
    threshold = thresholds[0]
    drops = [
        (item, item.price_at(threshold))
        for item in group_buy.items
        if item.price_at(threshold) < item.price_at(total)
    ]
    if len(group_buy.items) == 1:
        return _(
            "还差 %(n)d 件到下一档 %(price)s", n=threshold - total, price=format_fen(drops[0][1])
        )
    prices = "、".join(f"{item.sku.product.name} {format_fen(price)}" for item, price in drops)
    return _("还差 %(n)d 件到下一档：%(prices)s", n=threshold - total, prices=prices)


def progress(group_buy: GroupBuy) -> Progress:
    total = (
        group_buy.reached_quantity
        if group_buy.reached_quantity is not None
        else group_buy.total_quantity
    )
    return Progress(total, group_buy.min_quantity, _next_tier_text(group_buy, total))


def _unit_group_buys() -> list[GroupBuy]:
    """The home page's section: the open group-buys of the signed-in employee's unit."""
    unit = current_user.unit if current_user.is_authenticated else None
    return queries.open_for_unit(unit.id) if unit is not None else []


@bp.app_context_processor
def group_buy_context() -> dict:
    # A function, not a list: only the page that shows the section pays for the query. The home
    # page (catalog, a lower layer) includes groupbuy/_home_section.html when this exists.
    return {"unit_group_buys": _unit_group_buys}


# Globals rather than context: the macros in groupbuy/_macros.html are imported without context.
bp.add_app_template_global(progress, "group_buy_progress")
bp.add_app_template_global(time_left, "group_buy_time_left")


# -- employees ------------------------------------------------------------------------------------
def _my_participations(user_id: int) -> list[Participation]:
    return list(
        db.session.scalars(
            select(Participation)
            .where(
                Participation.user_id == user_id,
                Participation.status != ParticipationStatus.LEFT,
            )
            .options(selectinload(Participation.lines))
            .order_by(Participation.id.desc())
            .limit(50)
        )
    )


def _group_buy_cards(group_buy_ids: list[int]) -> list[GroupBuy]:
    """The group-buys of these ids, in this order, loaded for their cards."""
    if not group_buy_ids:
        return []
    found = db.session.scalars(
        select(GroupBuy)
        .where(GroupBuy.id.in_(group_buy_ids))
        .options(*queries.GROUP_BUY_CARD_LOADS)
    )
    by_id = {g.id: g for g in found}
    return [by_id[i] for i in group_buy_ids if i in by_id]


@bp.get("/group-buys")
@requires(Access.SIGNED_IN)
def index():
    unit = current_user.unit
    open_here = queries.open_for_unit(unit.id) if unit is not None else []
    mine = {p.group_buy_id: p for p in _my_participations(current_user.id)}
    shown = {g.id for g in open_here}
    # Only the group-buys not already on the page are loaded again (with their items' cards).
    joined_elsewhere = _group_buy_cards([i for i in mine if i not in shown])
    return render_template(
        "groupbuy/index.html", open_here=open_here, joined=joined_elsewhere, mine=mine, unit=unit
    )


def _detail_page(group_buy: GroupBuy, form: QuantitiesForm | None = None, status: int = 200):
    participation = queries.participation_of(group_buy.id, current_user.id)
    active = participation is not None and participation.status == ParticipationStatus.ACTIVE
    if form is None:
        current = {line.item_id: line.quantity for line in participation.lines} if active else None
        form = quantities_form(group_buy.items, current)
    needs_payment = (
        active
        and group_buy.payment_mode == PaymentMode.CARD
        and not queries.is_secured(participation)
    )
    return render_template(
        "groupbuy/detail.html",
        group_buy=group_buy,
        participation=participation,
        active=active,
        needs_payment=needs_payment,
        form=form,
        action_form=ActionForm(),
        progress=progress(group_buy),
        time_left=time_left(group_buy.closes_at),
        not_started=group_buy.status == GroupBuyStatus.OPEN and utcnow() < group_buy.opens_at,
    ), status


@bp.get("/group-buys/<int:group_buy_id>")
@requires(Access.SIGNED_IN)
def detail(group_buy_id: int):
    # Someone outside a members-only group-buy's unit gets the 403 page with the reason.
    return _detail_page(queries.group_buy_for(current_user, group_buy_id))


def _into_card_flow(group_buy_id: int):
    """Card group-buys: start (or resume) the card payment, then our card page, which comes back
    to the group-buy when done."""
    try:
        order = joining.start_card_payment(current_user, group_buy_id)
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
        return redirect(url_for(".detail", group_buy_id=group_buy_id), 303)
    back = url_for(".detail", group_buy_id=group_buy_id)
    return redirect(
        url_for("payments.method", number=order.number, provider="stripe", next=back), 303
    )


def _quantities_post(group_buy_id: int, save, done: str):
    """Join or change: the same quantities form, the same outcomes."""
    group_buy = queries.group_buy_for(current_user, group_buy_id)
    form = quantities_form(group_buy.items)
    if not form.validate_on_submit():
        return _detail_page(group_buy, form, 400)
    try:
        save(current_user, group_buy.id, form.quantities())
    except DomainError as error:
        reraise_access_errors(error)
        show_error(form, error, on_form=True)
        return _detail_page(group_buy, form, 400)
    flash(done, "success")
    if group_buy.payment_mode == PaymentMode.CARD:
        # Joining a card group-buy is only secured once the card goes through: straight on.
        return _into_card_flow(group_buy.id)
    return redirect(url_for(".detail", group_buy_id=group_buy.id), 303)


@bp.post("/group-buys/<int:group_buy_id>/join")
@requires(Access.SIGNED_IN)
def join(group_buy_id: int):
    return _quantities_post(group_buy_id, joining.join, _("已参团"))


@bp.post("/group-buys/<int:group_buy_id>/change")
@requires(Access.SIGNED_IN)
def change(group_buy_id: int):
    return _quantities_post(group_buy_id, joining.change, _("已修改参团数量"))


@bp.post("/group-buys/<int:group_buy_id>/leave")
@requires(Access.SIGNED_IN)
def leave(group_buy_id: int):
    return run_action(
        lambda: joining.leave(current_user, group_buy_id),
        _("已退出团购，已付款项将原路退回"),
        url_for(".detail", group_buy_id=group_buy_id),
    )


@bp.post("/group-buys/<int:group_buy_id>/pay")
@requires(Access.SIGNED_IN)
def pay(group_buy_id: int):
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".detail", group_buy_id=group_buy_id), 303)
    return _into_card_flow(group_buy_id)


# The coordinator's, the co-op's and the organizer's pages, on this blueprint (imported last: they
# use `bp`).
from market.groupbuy import coop_views, coordinator_views  # noqa: E402, F401
