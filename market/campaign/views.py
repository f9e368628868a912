"""Referral links: /r/<code> counts the visit, remembers the unit for 30 days (last click wins)
and shows the storefront."""

from __future__ import annotations

from flask import Blueprint, redirect, session, url_for

from market.accounts.permissions import Access, requires
from market.campaign import services
from market.models import utcnow

bp = Blueprint("campaign", __name__)


@bp.get("/r/<code>")
@requires(Access.PUBLIC)
def referral(code: str):
    unit = services.follow_referral(code)
    session["referral"] = {"unit_id": unit.id, "at": utcnow().isoformat()}
    session.permanent = True  # the session cookie then lasts PERMANENT_SESSION_LIFETIME (31 d)
    return redirect(url_for("catalog.home"))
