"""The pages of background exports: start one (POST, from the dashboard or the laggard list),
watch its progress (the page polls a small JSON status), download the file, retry a failed one.
Organizers use them; a job is seen only by whoever asked for it (and admins)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts.forms import ActionForm
from market.campaign.models import Campaign
from market.errors import DomainError
from market.exports import kinds, services
from market.exports.models import ExportJob, ExportKind, ExportStatus
from market.extensions import db
from market.idempotency import one_effect_per_form
from market.security.access import Access, requires
from market.uploads import send_private
from market.web import flash_form_errors, reraise_access_errors, show_error

bp = Blueprint("exports", __name__)


def _campaign_parameters(campaign: Campaign) -> dict:
    # The dashboard's own reading of its filters (start, end, mode, town) and the laggard
    # list's day, from the query string the button posts to.
    from market.campaign.admin_views import _filters, _on

    filters, _form = _filters(campaign)
    on, _on_form = _on(campaign)
    return kinds.parameters_of(filters, on)


def _kind(value: str) -> ExportKind:
    # A plain string in the URL (any path segment builds and routes), an unknown kind a 404.
    try:
        return ExportKind(value)
    except ValueError:
        abort(404)


@bp.post("/admin/campaigns/<int:campaign_id>/exports/<kind>")
@requires(Access.ORGANIZER)
@one_effect_per_form
def start(campaign_id: int, kind: str):
    export_kind = _kind(kind)
    campaign = db.get_or_404(Campaign, campaign_id)
    form = ActionForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("campaign_admin.dashboard", campaign_id=campaign.id), 303)
    job = services.request_export(current_user, export_kind, _campaign_parameters(campaign))
    return redirect(url_for(".job", job_id=job.id), 303)


@bp.get("/exports")
@requires(Access.ORGANIZER)
def index():
    return render_template("exports/index.html", jobs=services.jobs_of(current_user))


def _campaign_of(job: ExportJob) -> Campaign | None:
    return kinds.campaign_of(job.parameters)


@bp.get("/exports/<int:job_id>")
@requires(Access.ORGANIZER)
def job(job_id: int):
    found = services.job_status(current_user, job_id)
    return render_template("exports/job.html", job=found, campaign=_campaign_of(found))


@bp.get("/exports/<int:job_id>/status")
@requires(Access.ORGANIZER)
def status(job_id: int):
    found = services.job_status(current_user, job_id)
    body = {
        "id": found.id,
        "status": found.status.value,
        "label": found.status_label,
        "rows_done": found.rows_done,
        "rows_total": found.rows_total,
        "percent": found.percent,
        "rows_text": _("%(done)d / %(total)d 行", done=found.rows_done, total=found.rows_total),
        "error": found.error,
        "download_url": (
            url_for(".download", job_id=found.id) if found.status is ExportStatus.DONE else None
        ),
    }
    return body, 200, {"Cache-Control": "no-store"}


def _attachment(name: str) -> str:
    # An ASCII fallback for old clients, the real (Chinese) name per RFC 6266 / RFC 5987.
    fallback = "export." + name.rsplit(".", 1)[-1]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


@bp.get("/exports/<int:job_id>/download")
@requires(Access.ORGANIZER)
def download(job_id: int):
    found = services.owned_job(current_user, job_id)
    if found.status is not ExportStatus.DONE:
        abort(404)
    response = send_private(found.file_path)
    response.headers["Content-Disposition"] = _attachment(found.file_name)
    return response


@bp.post("/exports/<int:job_id>/retry")
@requires(Access.ORGANIZER)
@one_effect_per_form
def retry(job_id: int):
    form = ActionForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for(".job", job_id=job_id), 303)
    try:
        job_retried = services.retry_export(current_user, job_id)
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
        return redirect(url_for(".job", job_id=job_id), 303)
    flash(_("已重新开始导出"), "success")
    return redirect(url_for(".job", job_id=job_retried.id), 303)
