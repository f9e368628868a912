"""预售 pages: anyone sees the open presales and one presale; a signed-in buyer (or a unit's
coordinator, for the unit) reserves and goes on to the ordinary pay page; the co-op opens a
presale, stops its orders, announces the harvest and ends it."""

from __future__ import annotations

import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts.forms import ActionForm
from market.accounts.models import UnitRole
from market.catalog import elsewhere as catalog_elsewhere
from market.errors import DomainError
from market.orders import referrals
from market.orders import services as orders
from market.presales import harvest as harvests
from market.presales import queries, services
from market.presales.forms import ROLLOVER, HarvestForm, PresaleForm, ReserveForm
from market.security.access import Access, requires
from market.web import reraise_access_errors, run_action, show_error

bp = Blueprint("presales", __name__)


# -- everyone -----------------------------------------------------------------------------------
@bp.get("/presales")
@requires(Access.PUBLIC)
def index():
    product_id = request.args.get("product", type=int)
    if product_id is not None and not 0 < product_id < 2**31:
        product_id = None
    return render_template(
        "presales/index.html", presales=queries.open_presales(product_id), product_id=product_id
    )


def _reserve_form(addresses: list) -> ReserveForm:
    form = ReserveForm()
    form.address_id.choices = [(0, _("使用新地址"))] + [
        (a.id, f"{a.recipient} {a.phone} {a.one_line}") for a in addresses
    ]
    if request.method == "GET" and current_user.is_authenticated:
        form.idempotency_key.data = uuid.uuid4().hex
        form.address_id.data = addresses[0].id if addresses else 0
        form.recipient.data = current_user.name
        form.phone.data = current_user.phone or ""
    return form


def _detail_page(presale_id: int, form: ReserveForm | None, status: int = 200):
    presale = queries.presale(presale_id)
    signed_in = current_user.is_authenticated
    return render_template(
        "presales/detail.html",
        presale=presale,
        form=form,
        mine=queries.reservations_of(current_user, presale.id) if signed_in else [],
        coordinator=signed_in and current_user.has_unit_role(UnitRole.COORDINATOR),
    ), status


@bp.get("/presales/<int:presale_id>")
@requires(Access.PUBLIC)
def detail(presale_id: int):
    form = None
    if current_user.is_authenticated:
        form = _reserve_form(orders.addresses_of(current_user))
    return _detail_page(presale_id, form)


@bp.post("/presales/<int:presale_id>/reserve")
@requires(Access.SIGNED_IN)
def reserve(presale_id: int):
    presale = queries.presale(presale_id)  # 404 for none
    form = _reserve_form(orders.addresses_of(current_user))
    if not form.validate_on_submit():
        return _detail_page(presale_id, form, 400)
    try:
        order = services.reserve(
            current_user,
            presale_id,
            form.quantity.data,
            rollover_wanted=form.shortfall.data == ROLLOVER,
            for_unit=bool(form.for_unit.data),
            delivery=form.delivery_fields(),
            idempotency_key=form.idempotency_key.data,
            referral_unit_id=referrals.followed_unit_id(),
        )
    except DomainError as error:
        reraise_access_errors(error)
        show_error(form, error)
        return _detail_page(presale_id, form, 409 if isinstance(error, services.OverLimit) else 400)
    if presale.takes_deposit:
        flash(_("已预订，请付定金；采收后付尾款，按付定金先后发货"), "success")
    else:
        flash(_("已预订，请付款；付款后按付款先后在采收后发货"), "success")
    return redirect(url_for("payments.pay", number=order.number), 303)


# -- the co-op ----------------------------------------------------------------------------------
@bp.get("/coop/presales")
@requires(Access.COOP_MANAGER)
def coop_index():
    return render_template("presales/coop_index.html", presales=queries.coop_presales(current_user))


@bp.route("/coop/presales/new", methods=["GET", "POST"])
@requires(Access.COOP_MANAGER)
def new():
    form = PresaleForm()
    form.sku_id.choices = [
        (sku.id, f"{sku.product.name} · {sku.spec}") for sku in queries.coop_skus(current_user)
    ]
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            try:
                presale = services.open_presale(
                    current_user,
                    sku_id=form.sku_id.data,
                    harvest_from=form.harvest_from.data,
                    harvest_to=form.harvest_to.data,
                    price_fen=form.price.data,
                    limit_quantity=form.limit_quantity.data,
                    note=form.note.data or "",
                    payment_kind=form.payment_kind.data,
                    deposit_fen=form.deposit.data,
                )
            except DomainError as error:
                reraise_access_errors(error)
                show_error(form, error)
            else:
                flash(_("预售已开启"), "success")
                return redirect(url_for(".coop_detail", presale_id=presale.id), 303)
    return render_template("presales/new.html", form=form), status


@bp.get("/coop/presales/<int:presale_id>")
@requires(Access.COOP_MANAGER)
def coop_detail(presale_id: int):
    presale = services.presale_of_coop(current_user, presale_id)
    return render_template(
        "presales/coop_detail.html",
        presale=presale,
        queue=queries.queue(presale.id),
        harvest_form=HarvestForm(),
        action_form=ActionForm(),
    )


@bp.post("/coop/presales/<int:presale_id>/close")
@requires(Access.COOP_MANAGER)
def close(presale_id: int):
    back = url_for(".coop_detail", presale_id=presale_id)
    return run_action(
        lambda: services.close_presale(current_user, presale_id), _("已截止预订"), back
    )


@bp.post("/coop/presales/<int:presale_id>/finish")
@requires(Access.COOP_MANAGER)
def finish(presale_id: int):
    back = url_for(".coop_detail", presale_id=presale_id)
    return run_action(
        lambda: harvests.finish_presale(current_user, presale_id), _("预售已结束"), back
    )


@bp.post("/coop/presales/<int:presale_id>/harvest")
@requires(Access.COOP_MANAGER)
def harvest(presale_id: int):
    services.presale_of_coop(current_user, presale_id)  # 404 for another co-op's
    form = HarvestForm()
    back = url_for(".coop_detail", presale_id=presale_id)
    if not form.validate_on_submit():
        for message in form.quantity.errors or [_("请刷新页面后再提交")]:
            flash(message, "danger")
        return redirect(back, 303)
    try:
        outcome = harvests.announce_harvest(current_user, presale_id, form.quantity.data)
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
        return redirect(back, 303)
    if outcome.already:
        flash(_("收成已公布过，未作改动"), "info")
    else:
        flash(
            _(
                "已公布收成：%(served)d 单待发货，%(refunded)d 单全额退款，%(rolled)d 单顺延下一季",
                served=outcome.served,
                refunded=outcome.refunded,
                rolled=outcome.rolled_over,
            ),
            "success",
        )
    return redirect(back, 303)


def _product_page_links(product) -> list[tuple[str, str]]:
    """The product page (cached) links to its presales page: the product's id, no presale data."""
    return [(_("预售 · 预订下一季"), url_for("presales.index", product=product.id))]


catalog_elsewhere.register(_product_page_links)
