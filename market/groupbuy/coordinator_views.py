"""爱心团购, the unit's coordinator's pages (on the groupbuy blueprint): propose a group-buy,
extend it once, lower its minimum, cancel it, mark the parcel arrived and tick off pickups."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts.forms import ActionForm
from market.catalog.models import Sku
from market.errors import DomainError
from market.groupbuy import changes, fulfilment, presale, proposals, queries
from market.groupbuy.blueprint import bp
from market.groupbuy.display import progress, time_left
from market.groupbuy.forms import (
    ExtendForm,
    GroupBuyForm,
    MinimumForm,
    ReasonForm,
    payment_mode_choices,
)
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    ParticipationStatus,
    PaymentMode,
    Visibility,
)
from market.models import utcnow
from market.money import format_fen
from market.payments import providers, transfers
from market.presales.models import Presale
from market.security.access import Access, requires
from market.web import reraise_access_errors, run_action, show_error


@bp.get("/unit/group-buys")
@requires(Access.COORDINATOR)
def unit_index():
    unit = current_user.unit
    group_buys = fulfilment.unit_group_buys(unit.id) if unit is not None else []
    return render_template("groupbuy/unit_index.html", group_buys=group_buys, unit=unit)


def _sku_label(sku: Sku, paired: bool) -> str:
    product = sku.product
    label = f"{product.coop.village.name} · {product.name} {sku.spec} · {format_fen(sku.price_fen)}"
    return _("【结对村】%(label)s", label=label) if paired else label


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _group_buy_data(form: GroupBuyForm, ordered: Presale | None) -> proposals.GroupBuyData:
    items = [
        proposals.ItemData(
            sku_id=row.sku_id.data,
            price_fen=row.price.data,
            cap=row.cap.data,
            tiers=[
                proposals.TierData(tier.form.min_total_quantity.data, tier.form.price.data)
                for tier in row.tiers
                if tier.form.min_total_quantity.data is not None
            ],
            presale_id=ordered.id if ordered and ordered.sku_id == row.sku_id.data else None,
        )
        for row in form.chosen_items()
    ]
    return proposals.GroupBuyData(
        title=form.title.data,
        description=form.description.data or "",
        opens_at=_local(form.opens_at.data) or utcnow(),
        closes_at=_local(form.closes_at.data),
        min_quantity=form.min_quantity.data,
        payment_mode=PaymentMode(form.payment_mode.data),
        visibility=Visibility(form.visibility.data),
        pickup_address=form.pickup_address.data,
        pickup_contact=form.pickup_contact.data or "",
        pickup_window=form.pickup_window.data or "",
        items=items,
    )


@bp.route("/unit/group-buys/new", methods=["GET", "POST"])
@requires(Access.COORDINATOR)
def new():
    form = GroupBuyForm()
    unit = proposals.coordinated_unit(current_user)
    # ?presale=<id>: a 预售团购 of that presale's SKU (404 unless it is open to group-buys).
    ordered = None
    if "presale" in request.args:
        ordered = presale.presale_to_order(request.args.get("presale", type=int))
        form.set_sku_choices([(ordered.sku_id, _sku_label(ordered.sku, False))])
    else:
        skus = queries.candidate_skus(unit)
        form.set_sku_choices([(sku.id, _sku_label(sku, paired)) for sku, paired in skus])
    # Card payments only where the shop takes cards; otherwise everyone pays at pickup.
    form.payment_mode.choices = payment_mode_choices("stripe" in providers.available())
    if request.method == "GET":
        form.pickup_address.data = f"{unit.name} {unit.address or ''}".strip()
        if ordered is not None:
            presale.fill_form(form, ordered)
    if form.validate_on_submit():
        try:
            group_buy = proposals.open_group_buy(current_user, _group_buy_data(form, ordered))
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
        else:
            flash(_("团购已发起，等待合作社确认团购价、上限和时间后职工才能参团"), "success")
            return redirect(url_for(".manage", group_buy_id=group_buy.id), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("groupbuy/new.html", form=form, presale=ordered), status


def _manage_page(
    group_buy: GroupBuy,
    extend_form: ExtendForm | None = None,
    minimum_form: MinimumForm | None = None,
    status: int = 200,
    cancel_form: ReasonForm | None = None,
):
    participations = [p for p in group_buy.participations if p.status != ParticipationStatus.LEFT]
    secured = queries.secured_by_participation(
        [p for p in participations if p.status == ParticipationStatus.ACTIVE]
    )
    return render_template(
        "groupbuy/manage.html",
        group_buy=group_buy,
        participations=participations,
        secured=secured,
        quantities=fulfilment.quantities_by_status(group_buy),
        extend_form=extend_form or ExtendForm(closes_at=group_buy.closes_at),
        latest_extension=changes.latest_extension(group_buy)
        if group_buy.status == GroupBuyStatus.OPEN
        else None,
        minimum_form=minimum_form or MinimumForm(),
        cancel_form=cancel_form or ReasonForm(),
        progress=progress(group_buy),
        time_left=time_left(group_buy.closes_at),
    ), status


@bp.get("/unit/group-buys/<int:group_buy_id>")
@requires(Access.COORDINATOR)
def manage(group_buy_id: int):
    return _manage_page(queries.own_group_buy(current_user, group_buy_id))


@bp.post("/unit/group-buys/<int:group_buy_id>/extend")
@requires(Access.COORDINATOR)
def extend(group_buy_id: int):
    form = ExtendForm()
    if form.validate_on_submit():
        try:
            changes.extend(current_user, group_buy_id, _local(form.closes_at.data))
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
        else:
            flash(_("已延期"), "success")
            return redirect(url_for(".manage", group_buy_id=group_buy_id), 303)
    group_buy = queries.own_group_buy(current_user, group_buy_id)
    return _manage_page(group_buy, extend_form=form, status=400)


@bp.post("/unit/group-buys/<int:group_buy_id>/minimum")
@requires(Access.COORDINATOR)
def lower_minimum(group_buy_id: int):
    form = MinimumForm()
    if form.validate_on_submit():
        try:
            changes.lower_minimum(current_user, group_buy_id, form.min_quantity.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
        else:
            flash(_("已调低成团量"), "success")
            return redirect(url_for(".manage", group_buy_id=group_buy_id), 303)
    group_buy = queries.own_group_buy(current_user, group_buy_id)
    return _manage_page(group_buy, minimum_form=form, status=400)


@bp.post("/unit/group-buys/<int:group_buy_id>/cancel")
@requires(Access.COORDINATOR)
def cancel(group_buy_id: int):
    form = ReasonForm()
    status = 400
    if form.validate_on_submit():
        try:
            changes.cancel_group_buy(current_user, group_buy_id, form.reason.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
            status = error.status_code  # 409: cancelled already, or closing
        else:
            flash(
                _("团购已取消：参团者卡上冻结的金额已释放、不会扣款，已付的款项全额原路退回给他们"),
                "success",
            )
            return redirect(url_for(".manage", group_buy_id=group_buy_id), 303)
    group_buy = queries.own_group_buy(current_user, group_buy_id)
    if not group_buy.cancellable:  # the form is gone from the page: say why on its own
        for message in (*form.form_errors, *form.reason.errors):
            flash(message, "danger")
    return _manage_page(group_buy, cancel_form=form, status=status)


@bp.post("/unit/group-buys/<int:group_buy_id>/arrived")
@requires(Access.COORDINATOR)
def mark_arrived(group_buy_id: int):
    return run_action(
        lambda: fulfilment.mark_arrived(current_user, group_buy_id),
        _("已标记到货，已通知参团职工取货"),
        url_for(".pickup_list", group_buy_id=group_buy_id),
    )


@bp.get("/unit/group-buys/<int:group_buy_id>/pickup-list")
@requires(Access.COORDINATOR)
def pickup_list(group_buy_id: int):
    group_buy = queries.own_group_buy(current_user, group_buy_id)
    return render_template(
        "groupbuy/pickup_list.html",
        group_buy=group_buy,
        participations=fulfilment.pickup_list(group_buy),
        cash_held_fen=transfers.cash_held_by(current_user.id),
    )


@bp.post("/unit/group-buys/<int:group_buy_id>/pickups/<int:participation_id>")
@requires(Access.COORDINATOR)
def mark_picked_up(group_buy_id: int, participation_id: int):
    if ActionForm().validate_on_submit():
        try:
            participation = fulfilment.mark_picked_up(current_user, group_buy_id, participation_id)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("%(name)s 已取货", name=participation.user.name), "success")
    return redirect(url_for(".pickup_list", group_buy_id=group_buy_id), 303)
