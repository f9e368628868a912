"""爱心团购, the employees' pages: see, join, change, leave and pay (on the blueprint of
market/groupbuy/blueprint.py)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from market.accounts.forms import ActionForm
from market.errors import DomainError
from market.extensions import db
from market.groupbuy import joining, queries
from market.groupbuy.blueprint import bp
from market.groupbuy.display import progress, time_left
from market.groupbuy.forms import QuantitiesForm, quantities_form
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.models import utcnow
from market.security.access import Access, requires
from market.web import reraise_access_errors, run_action, show_error


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
