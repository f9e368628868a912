"""爱心团购, the co-op's pages (on the groupbuy blueprint): accept or decline proposals, cancel,
pack and ship its one consolidated parcel; and the organizer's: every proposed and open
group-buy, each of which they may cancel."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.errors import DomainError
from market.groupbuy import changes, fulfilment, proposals, queries
from market.groupbuy.blueprint import bp
from market.groupbuy.forms import ReasonForm, ShipForm
from market.security.access import Access, requires
from market.web import flash_form_errors, reraise_access_errors, run_action, run_form, show_error


@bp.get("/coop/group-buys")
@requires(Access.COOP_MANAGER)
def coop_index():
    return render_template(
        "groupbuy/coop_index.html",
        lists=fulfilment.coop_group_buys(current_user),
        ship_form=ShipForm(),
    )


def _reason_action(act, done: str, back: str):
    """A small inline form with a reason (decline, cancel): its refusal or a missing reason as a
    flash message; someone else's group-buy stays a 403/404."""
    form = ReasonForm()
    run_form(form, lambda: act(form.reason.data), done)
    return redirect(back, 303)


@bp.post("/coop/group-buys/<int:group_buy_id>/accept")
@requires(Access.COOP_MANAGER)
def accept(group_buy_id: int):
    return run_action(
        lambda: proposals.accept_group_buy(current_user, group_buy_id),
        _("已确认团购，职工现在可以参团了"),
        url_for(".coop_index"),
    )


@bp.post("/coop/group-buys/<int:group_buy_id>/decline")
@requires(Access.COOP_MANAGER)
def decline(group_buy_id: int):
    return _reason_action(
        lambda reason: proposals.decline_group_buy(current_user, group_buy_id, reason),
        _("已拒绝该团购申请，联络员会收到理由"),
        url_for(".coop_index"),
    )


@bp.post("/coop/group-buys/<int:group_buy_id>/cancel")
@requires(Access.COOP_MANAGER)
def coop_cancel(group_buy_id: int):
    return _reason_action(
        lambda reason: changes.cancel_group_buy(current_user, group_buy_id, reason),
        _("团购已取消：参团者卡上冻结的金额已释放、不会扣款，已付的款项全额原路退回给他们"),
        url_for(".coop_index"),
    )


# -- the organizer ----------------------------------------------------------------------------
@bp.get("/admin/group-buys")
@requires(Access.ORGANIZER)
def admin_index():
    return render_template("groupbuy/admin_index.html", group_buys=queries.current_group_buys())


@bp.post("/admin/group-buys/<int:group_buy_id>/cancel")
@requires(Access.ORGANIZER)
def admin_cancel(group_buy_id: int):
    return _reason_action(
        lambda reason: changes.cancel_group_buy(current_user, group_buy_id, reason),
        _("团购已取消：参团者卡上冻结的金额已释放、不会扣款，已付的款项全额原路退回给他们"),
        url_for(".admin_index"),
    )


@bp.get("/coop/group-buys/<int:group_buy_id>/packing-list")
@requires(Access.COOP_MANAGER)
def packing_list(group_buy_id: int):
    group_buy = fulfilment.coop_group_buy(
        current_user, group_buy_id, options=fulfilment.PACKING_LIST_LOADS
    )
    lines = fulfilment.consolidated_lines(group_buy)
    return render_template(
        "groupbuy/packing_list.html",
        group_buy=group_buy,
        lines=lines,
        total_fen=sum(line.amount_fen for line in lines),
        ship_form=ShipForm(),
        batch_codes=fulfilment.batch_codes_by_sku(group_buy),
    )


@bp.post("/coop/group-buys/<int:group_buy_id>/ship")
@requires(Access.COOP_MANAGER)
def ship(group_buy_id: int):
    form = ShipForm()
    if form.validate_on_submit():
        try:
            fulfilment.ship_consolidated(
                current_user, group_buy_id, form.carrier.data, form.tracking_number.data or ""
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("已发货"), "success")
            return redirect(url_for(".coop_index"), 303)
    else:
        flash_form_errors(form)
    return redirect(url_for(".packing_list", group_buy_id=group_buy_id), 303)
