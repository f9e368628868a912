"""产品定制 pages (on the procurement blueprint): the unit's requests and the quotes on them; the
co-ops' requests to quote on."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts.forms import ActionForm
from market.errors import DomainError
from market.procurement import custom
from market.procurement.blueprint import bp, own_unit
from market.procurement.forms import CustomRequestForm, QuoteForm
from market.procurement.models import RequestStatus
from market.security.access import Access, requires
from market.web import flash_form_errors, reraise_access_errors, run_action, show_error


# -- custom products: the unit ------------------------------------------------------------------
@bp.get("/unit/custom")
@requires(Access.COORDINATOR)
def custom_requests():
    unit = own_unit()
    return render_template(
        "procurement/custom_list.html", unit=unit, requests=custom.unit_requests(unit.id)
    )


def _request_data(form: CustomRequestForm) -> custom.RequestData:
    return custom.RequestData(
        title=form.title.data,
        description=form.description.data or "",
        quantity=form.quantity.data,
        budget_fen=form.budget.data,
        needed_by=form.needed_by.data,
        card_text=form.card_text.data or "",
        packaging=form.packaging.data or "",
        recipient=form.recipient.data or "",
        phone=form.phone.data or "",
        address=form.address.data or "",
    )


@bp.route("/unit/custom/new", methods=["GET", "POST"])
@requires(Access.COORDINATOR)
def new_custom_request():
    unit = own_unit()
    form = CustomRequestForm()
    if request.method == "GET":  # the unit's own address to start from, as on a purchase
        form.recipient.data = current_user.name
        form.phone.data = current_user.phone or unit.contact_phone
        form.address.data = f"{unit.name} {unit.address}".strip()
    if form.validate_on_submit():
        try:
            created = custom.create_request(
                current_user, _request_data(form), request.files.get(form.logo.name)
            )
        except DomainError as error:
            reraise_access_errors(error)
            if error.field == "images":  # the upload check names its own field
                form.logo.errors = [*form.logo.errors, str(error)]
            else:
                show_error(form, error)
        else:
            flash(_("定制需求已发布，结对村的合作社会先看到并报价"), "success")
            return redirect(url_for(".custom_request", request_id=created.id), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("procurement/custom_form.html", form=form), status


@bp.get("/unit/custom/<int:request_id>")
@requires(Access.COORDINATOR)
def custom_request(request_id: int):
    found = custom.request_for_unit(current_user, request_id)
    return render_template(
        "procurement/custom_detail.html",
        custom=found,
        action_form=ActionForm(),
        is_open=found.status == RequestStatus.OPEN,
    )


def _request_action(request_id: int, act, done: str):
    return run_action(act, done, url_for(".custom_request", request_id=request_id))


@bp.post("/unit/custom/<int:request_id>/open")
@requires(Access.COORDINATOR)
def open_custom_request(request_id: int):
    return _request_action(
        request_id,
        lambda: custom.open_to_all(current_user, request_id),
        _("已向所有合作社开放报价"),
    )


@bp.post("/unit/custom/<int:request_id>/quotes/<int:quote_id>/accept")
@requires(Access.COORDINATOR)
def accept_quote(request_id: int, quote_id: int):
    return _request_action(
        request_id,
        lambda: custom.accept_quote(current_user, request_id, quote_id),
        _("已选定报价并生成订单；其他报价未选中，已谢绝"),
    )


# -- custom products: the co-ops --------------------------------------------------------------
@bp.get("/coop/custom")
@requires(Access.COOP_MANAGER)
def coop_custom():
    return render_template(
        "procurement/coop_custom.html",
        entries=custom.open_requests_for(current_user),
        decided=custom.decided_quotes(current_user),
        form=QuoteForm(),
    )


@bp.post("/coop/custom/<int:request_id>/quote")
@requires(Access.COOP_MANAGER)
def submit_quote(request_id: int):
    form = QuoteForm()
    form.coop_id.choices = [(coop.id, coop.name) for coop in current_user.managed_coops()]
    if form.validate_on_submit():
        try:
            custom.submit_quote(
                current_user,
                request_id,
                form.coop_id.data,
                custom.QuoteData(
                    unit_price_fen=form.unit_price.data,
                    lead_time_days=form.lead_time_days.data,
                    note=form.note.data or "",
                ),
                request.files.get(form.sample.name),
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("报价已提交，单位选定后会生成订单"), "success")
    else:
        flash_form_errors(form)
    return redirect(url_for(".coop_custom"), 303)
