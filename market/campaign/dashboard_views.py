"""Campaign pages outside the organizer's office: a unit's own progress, a co-op's own sales, the
public campaign page, and each unit's referral QR code and printable poster."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market import pagecache
from market.accounts.permissions import Access, requires
from market.campaign import queries, services
from market.campaign.models import Campaign
from market.directory.models import Unit
from market.extensions import db
from market.security.inputs import int_arg

bp = Blueprint("dashboards", __name__)


def _chosen_campaign(allow_all: bool = False) -> Campaign | None:
    """?campaign=<id> if given (0 means every campaign where allowed), else the current one."""
    chosen = int_arg("campaign", low=0)
    if chosen == 0 and allow_all:
        return None
    if chosen:
        return db.get_or_404(Campaign, chosen)
    return queries.current_campaign(queries.shanghai_today())


# -- the public page -----------------------------------------------------------------------------
@bp.get("/campaign")
@requires(Access.PUBLIC)
@pagecache.cached_page
def public():
    campaign = queries.current_campaign(queries.shanghai_today())
    summary = (
        queries.public_summary(campaign, queries.shanghai_today()) if campaign is not None else None
    )
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
    progress = queries.unit_progress(campaign, unit.id) if campaign is not None else None
    return render_template(
        "campaign/unit_progress.html",
        unit=unit,
        progress=progress,
        campaigns=queries.campaigns(),
        referral_url=url_for("campaign.referral", code=unit.referral_code, _external=True),
    )


# -- a co-op manager's page ----------------------------------------------------------------------
@bp.get("/coop/sales")
@requires(Access.COOP_MANAGER)
def coop_sales():
    coops = current_user.managed_coops()
    campaign = _chosen_campaign(allow_all=True)
    sales = queries.coop_sales([c.id for c in coops], campaign)
    return render_template(
        "campaign/coop_sales.html",
        coops=coops,
        sales=sales,
        campaigns=queries.campaigns(),
    )


# -- referral QR codes and the poster ------------------------------------------------------------
def _referral_url(unit: Unit) -> str:
    return url_for("campaign.referral", code=unit.referral_code, _external=True)


def _named(unit: Unit, extension: str, disposition: str) -> str:
    """Content-Disposition naming the file after the unit ("<unit>-推广二维码.png"), RFC 5987
    encoded, with an ASCII name for clients that cannot read it."""
    name = quote(f"{unit.name}-{_('推广二维码')}.{extension}", safe="")
    return f"{disposition}; filename=\"unit-{unit.id}-qr.{extension}\"; filename*=UTF-8''{name}"


@bp.get("/units/<int:unit_id>/qr.png")
@requires(Access.COORDINATOR, Access.ORGANIZER)
def qr_png(unit_id: int):
    unit = services.unit_for_promotion(current_user, unit_id)
    return Response(
        services.qr_png(_referral_url(unit)),
        mimetype="image/png",
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": _named(unit, "png", "attachment"),
        },
    )


@bp.get("/units/<int:unit_id>/qr.svg")
@requires(Access.COORDINATOR, Access.ORGANIZER)
def qr_svg(unit_id: int):
    unit = services.unit_for_promotion(current_user, unit_id)
    return Response(
        services.qr_svg(_referral_url(unit)),
        mimetype="image/svg+xml",
        # Inline: the pages show it in an <img>; the download link saves it under this name.
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": _named(unit, "svg", "inline"),
        },
    )


@bp.get("/units/<int:unit_id>/poster")
@requires(Access.COORDINATOR, Access.ORGANIZER)
def poster(unit_id: int):
    today = queries.shanghai_today()
    made = services.poster(current_user, unit_id, today)
    return render_template(
        "campaign/poster.html",
        poster=made,
        referral_url=_referral_url(made.unit),
        campaign=queries.current_campaign(today),
    )
