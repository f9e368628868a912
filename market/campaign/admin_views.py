"""The organizer's campaign pages: campaigns and unit targets, the dashboard, the laggard list,
the exports for the annual assessment, and the reconciliation of the ledger with the money."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from market import clock
from market.accounts.forms import ActionForm
from market.campaign import exports, reminders, services, targets
from market.campaign.forms import (
    CampaignForm,
    DashboardFilterForm,
    DefaultTargetForm,
    LaggardForm,
    TargetForm,
    TargetImportForm,
)
from market.campaign.models import Campaign
from market.campaign.read.dashboard import dashboard_of
from market.campaign.read.filters import Filters, all_campaigns, clamp_to_campaign, towns
from market.campaign.read.laggards import laggards_on
from market.campaign.read.ledger_lines import ledger_extent
from market.campaign.reconciliation import money_reconcile
from market.errors import DomainError, RowErrors
from market.extensions import db
from market.orders.models import ORDER_MODE_LABELS
from market.payments.reconciliation import last_provider_reconciliation
from market.security.access import Access, requires
from market.security.inputs import parse_day, read_import
from market.web import edit_form_page, flash_form_errors, show_error

bp = Blueprint("campaign_admin", __name__, url_prefix="/admin")


# -- campaigns -----------------------------------------------------------------------------------
@bp.get("/campaigns")
@requires(Access.ORGANIZER)
def campaigns():
    return render_template(
        "campaign/campaigns.html",
        campaigns=all_campaigns(),
        today=clock.today(),
    )


def _campaign_data(form: CampaignForm) -> targets.CampaignData:
    return targets.CampaignData(
        name=form.name.data,
        year=form.year.data,
        starts_on=form.starts_on.data,
        ends_on=form.ends_on.data,
        paired_only=form.paired_only.data,
        laggard_threshold_pct=form.laggard_threshold_pct.data,
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_campaign():
    form = CampaignForm()
    if request.method == "GET":
        form.year.data = clock.today().year
    return edit_form_page(
        form,
        _l("新建活动"),
        lambda: targets.save_campaign(_campaign_data(form)),
        ".campaigns",
    )


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_campaign(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    form = CampaignForm(obj=campaign)
    return edit_form_page(
        form,
        _l("编辑活动"),
        lambda: targets.save_campaign(_campaign_data(form), campaign),
        ".campaigns",
    )


# -- targets -------------------------------------------------------------------------------------
def _targets_page(campaign_id: int, status: int = 200, **forms):
    campaign, rows = targets.targets_page(campaign_id)
    target_form = forms.get("target_form") or TargetForm()
    target_form.unit_id.choices = [(unit_id, name) for unit_id, name, _amount in rows]
    return render_template(
        "campaign/targets.html",
        campaign=campaign,
        rows=rows,
        target_form=target_form,
        default_form=forms.get("default_form") or DefaultTargetForm(),
        import_form=forms.get("import_form") or TargetImportForm(),
        with_target=sum(1 for _u, _n, amount in rows if amount is not None),
        total_fen=sum(amount or 0 for _u, _n, amount in rows),
    ), status


@bp.get("/campaigns/<int:campaign_id>/targets")
@requires(Access.ORGANIZER)
def targets_view(campaign_id: int):
    return _targets_page(campaign_id)


@bp.post("/campaigns/<int:campaign_id>/targets")
@requires(Access.ORGANIZER)
def set_target(campaign_id: int):
    form = TargetForm()
    form.unit_id.choices = [(form.unit_id.data, "")] if form.unit_id.data else []
    if not form.validate_on_submit():
        return _targets_page(campaign_id, 400, target_form=form)
    try:
        targets.set_target(campaign_id, form.unit_id.data, form.amount.data, actor=current_user)
    except DomainError as error:
        show_error(form, error)
        return _targets_page(campaign_id, error.status_code, target_form=form)
    flash(_("已保存目标") if form.amount.data is not None else _("已取消该单位的目标"), "success")
    return redirect(url_for(".targets_view", campaign_id=campaign_id), 303)


@bp.post("/campaigns/<int:campaign_id>/targets/default")
@requires(Access.ORGANIZER)
def default_target(campaign_id: int):
    form = DefaultTargetForm()
    if not form.validate_on_submit():
        return _targets_page(campaign_id, 400, default_form=form)
    try:
        changed = targets.set_default_target(
            campaign_id, form.amount.data, form.replace_existing.data, actor=current_user
        )
    except DomainError as error:
        show_error(form, error)
        return _targets_page(campaign_id, error.status_code, default_form=form)
    flash(_("已为 %(n)d 个单位设定目标", n=changed), "success")
    return redirect(url_for(".targets_view", campaign_id=campaign_id), 303)


@bp.post("/campaigns/<int:campaign_id>/targets/import")
@requires(Access.ORGANIZER)
def import_targets(campaign_id: int):
    form = TargetImportForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _targets_page(campaign_id, 400, import_form=form)
    try:
        result = targets.import_targets(
            campaign_id, read_import(form.sheet.data), actor=current_user
        )
    except RowErrors as error:
        campaign = targets.get_campaign(campaign_id)
        return render_template("campaign/target_errors.html", campaign=campaign, error=error), 400
    flash(
        _(
            "导入完成：新增目标 %(created)d 个，修改 %(updated)d 个，未变 %(same)d 个",
            created=result.created,
            updated=result.updated,
            same=result.unchanged,
        ),
        "success",
    )
    return redirect(url_for(".targets_view", campaign_id=campaign_id), 303)


# -- the dashboard -------------------------------------------------------------------------------
def _filters(campaign: Campaign) -> tuple[Filters, DashboardFilterForm]:
    form = DashboardFilterForm(request.args)
    form.mode.choices = [("", _("全部方式"))] + [
        (mode.value, str(label)) for mode, label in ORDER_MODE_LABELS.items()
    ]
    form.town.choices = [(0, _("全部镇（街道）")), *towns()]
    form.validate()
    mode = form.mode.data if form.mode.data in dict(form.mode.choices) else None
    town = form.town.data if form.town.data in dict(form.town.choices) else None
    filters = Filters(
        campaign_id=campaign.id,
        start=form.start.data if not form.start.errors else None,
        end=form.end.data if not form.end.errors else None,
        mode=mode or None,
        town_id=town or None,
    )
    return filters, form


@bp.get("/campaigns/<int:campaign_id>/dashboard")
@requires(Access.ORGANIZER)
def dashboard(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    filters, form = _filters(campaign)
    board = dashboard_of(campaign, filters, clock.today())
    return render_template("campaign/dashboard.html", board=board, form=form)


# -- laggards ------------------------------------------------------------------------------------
def _on(campaign: Campaign) -> tuple[date, LaggardForm]:
    form = LaggardForm(request.args)
    form.validate()
    chosen = form.on.data if form.on.data and not form.on.errors else None
    on = chosen or clamp_to_campaign(campaign, clock.today())
    form.on.data = on
    return on, form


@bp.get("/campaigns/<int:campaign_id>/laggards")
@requires(Access.ORGANIZER)
def laggards(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    on, form = _on(campaign)
    return render_template("campaign/laggards.html", result=laggards_on(campaign, on), form=form)


@bp.post("/campaigns/<int:campaign_id>/laggards/<int:unit_id>/remind")
@requires(Access.ORGANIZER)
def remind_laggard(campaign_id: int, unit_id: int):
    """One click on the laggard list: the unit's coordinators are told (reminders.py)."""
    db.get_or_404(Campaign, campaign_id)
    on = parse_day(request.form.get("on")) or clock.today()
    if ActionForm().validate_on_submit():
        try:
            told = reminders.remind_laggard(current_user, campaign_id, unit_id, on)
        except DomainError as error:
            flash(error.message, "danger")
        else:
            flash(_("已提醒该单位的 %(n)d 位联络员", n=told), "success")
    return redirect(url_for(".laggards", campaign_id=campaign_id, on=on.isoformat()), 303)


# -- exports -------------------------------------------------------------------------------------
def _attachment(name: str) -> str:
    # An ASCII fallback for old clients, the real (Chinese) name per RFC 6266 / RFC 5987.
    fallback = "export." + name.rsplit(".", 1)[-1]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def _csv_response(stream, name: str) -> Response:
    return Response(
        stream_with_context(stream),
        mimetype="text/csv",
        headers={"Content-Disposition": _attachment(name), "Cache-Control": "no-store"},
    )


# Up to this many ledger lines the old GET links still download at once (a few seconds); past it
# they offer the background export (market.exports), so that no request runs long.
SYNC_EXPORT_MAX_ROWS = 20_000


def _too_large_for_a_request(campaign: Campaign, filters: Filters, kind: str):
    rows, _last = ledger_extent(filters)
    limit = current_app.config.get("EXPORT_SYNC_MAX_ROWS", SYNC_EXPORT_MAX_ROWS)
    if rows <= limit:
        return None
    args = dict(filters.as_args())
    if kind == "campaign_xlsx" and request.args.get("on"):
        args["on"] = request.args["on"][:10]
    return render_template("exports/offer.html", campaign=campaign, rows=rows, kind=kind, args=args)


@bp.get("/campaigns/<int:campaign_id>/export.xlsx")
@requires(Access.ORGANIZER)
def export_xlsx(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    filters, _form = _filters(campaign)
    on, _on_form = _on(campaign)
    offer = _too_large_for_a_request(campaign, filters, "campaign_xlsx")
    if offer is not None:
        return offer
    handle, name = exports.workbook(campaign, filters, on, clock.today())
    response = send_file(
        handle, mimetype=exports.XLSX_MIMETYPE, as_attachment=True, download_name=name, max_age=0
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/campaigns/<int:campaign_id>/units.csv")
@requires(Access.ORGANIZER)
def units_csv(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    filters, _form = _filters(campaign)
    return _csv_response(*exports.units_csv(campaign, filters))


@bp.get("/campaigns/<int:campaign_id>/ledger.csv")
@requires(Access.ORGANIZER)
def ledger_csv(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    filters, _form = _filters(campaign)
    offer = _too_large_for_a_request(campaign, filters, "ledger_csv")
    if offer is not None:
        return offer
    return _csv_response(*exports.ledger_csv(campaign, filters))


@bp.get("/campaigns/<int:campaign_id>/laggards.csv")
@requires(Access.ORGANIZER)
def laggards_csv(campaign_id: int):
    campaign = db.get_or_404(Campaign, campaign_id)
    on, _form = _on(campaign)
    return _csv_response(*exports.laggards_csv(campaign, on))


# -- reconciliation ------------------------------------------------------------------------------
@bp.get("/reconciliation")
@requires(Access.ORGANIZER)
def reconciliation():
    return render_template(
        "campaign/reconciliation.html",
        result=services.reconciliation(),
        money=money_reconcile(),
        provider=last_provider_reconciliation(),
    )
