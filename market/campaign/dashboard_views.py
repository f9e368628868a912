"""Campaign pages outside the organizer's office: a unit's own progress, a co-op's own sales, the
public campaign page, and each unit's referral QR code and printable poster."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market import clock, pagecache
from market.campaign import services
from market.campaign.models import Campaign
from market.campaign.read.coop_sales import sales_of
from market.campaign.read.filters import all_campaigns, current_campaign
from market.campaign.read.public import public_summary
from market.campaign.read.unit_progress import progress_of
from market.directory.models import Unit
from market.extensions import db
from market.security.access import Access, requires
from market.security.inputs import int_arg

bp = Blueprint("dashboards", __name__)


def _chosen_campaign(allow_all: bool = False) -> Campaign | None:
    """?campaign=<id> if given (0 means every campaign where allowed), else the current one."""
    chosen = int_arg("campaign", low=0)
    if chosen == 0 and allow_all:
        return None
    if chosen:
        return db.get_or_404(Campaign, chosen)
    return current_campaign(clock.today())


# -- the public page -----------------------------------------------------------------------------
@bp.get("/campaign")
@requires(Access.PUBLIC)
@pagecache.cached_page
def public():
    campaign = current_campaign(clock.today())
    summary = public_summary(campaign, clock.today()) if campaign is not None else None
    # The ledger's figures, the villages' and products' names.
    deps = [pagecache.CAMPAIGN, pagecache.DIRECTORY, pagecache.CATALOG]
    return pagecache.render("campaign/public.html", deps, summary=summary)


# -- a unit coordinator's page -------------------------------------------------------------------
def _own_unit() -> Unit:
    unit = current_user.unit
    if current_user.is_admin and int_arg("unit"):
        unit = db.session.get(Unit, int_arg("unit"))
    if unit is None:
        abort(404)  # an admin without a unit of their own names one with ?unit=
    return unit


@bp.get("/unit/campaign")
@requires(Access.COORDINATOR)
def unit_progress():
    unit = _own_unit()
    campaign = _chosen_campaign()
    progress = progress_of(campaign, unit.id) if campaign is not None else None
    return render_template(
        "campaign/unit_progress.html",
        unit=unit,
        progress=progress,
        campaigns=all_campaigns(),
        referral_url=url_for("campaign.referral", code=unit.referral_code, _external=True),
    )


# -- a co-op manager's page ----------------------------------------------------------------------
@bp.get("/coop/sales")
@requires(Access.COOP_MANAGER)
def coop_sales():
    coops = current_user.managed_coops()
    campaign = _chosen_campaign(allow_all=True)
    sales = sales_of([c.id for c in coops], campaign)
    return render_template(
        "campaign/coop_sales.html",
        coops=coops,
        sales=sales,
        campaigns=all_campaigns(),
    )


# -- referral QR codes and the poster ------------------------------------------------------------
def _referral_url(unit: Unit) -> str:
    return url_for("campaign.referral", code=unit.referral_code, _external=True)


def _named(unit: Unit, extension: str, disposition: str) -> str:
    """Content-Disposition naming the file after the unit ("<unit>-推广二维码.png"), RFC 5987
    encoded, with an ASCII name for clients that cannot read it."""
    name = quote(f"{unit.name}-{_('推广二维码')}.{extension}", safe="")
    return f"{disposition}; filename=\"unit-{unit.id}-qr.{extension}\"; filename*=UTF-8''{name}"


def _qr_code(unit_id: int, draw, mimetype: str, extension: str, disposition: str) -> Response:
    """A unit's referral QR code, drawn by `draw(url)`, named after the unit."""
    unit = services.unit_for_promotion(current_user, unit_id)
    return Response(
        draw(_referral_url(unit)),
        mimetype=mimetype,
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": _named(unit, extension, disposition),
        },
    )


@bp.get("/units/<int:unit_id>/qr.png")
@requires(Access.COORDINATOR, Access.ORGANIZER)
def qr_png(unit_id: int):
    return _qr_code(unit_id, services.qr_png, "image/png", "png", "attachment")


@bp.get("/units/<int:unit_id>/qr.svg")
@requires(Access.COORDINATOR, Access.ORGANIZER)
def qr_svg(unit_id: int):
    # Inline: the pages show it in an <img>; the download link saves it under this name.
    return _qr_code(unit_id, services.qr_svg, "image/svg+xml", "svg", "inline")


@bp.get("/units/<int:unit_id>/poster")
@requires(Access.COORDINATOR, Access.ORGANIZER)
def poster(unit_id: int):
    today = clock.today()
    made = services.poster(current_user, unit_id, today)
    return render_template(
        "campaign/poster.html",
        poster=made,
        referral_url=_referral_url(made.unit),
        campaign=current_campaign(today),
    )
