"""Referral links: /r/<code> counts the visit, remembers the unit for 30 days (last click wins)
and shows the storefront."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for

from market.accounts.permissions import Access, requires
from market.campaign import referrals, services
from market.security.throttle import limit

bp = Blueprint("campaign", __name__)


@bp.get("/r/<code>")
@requires(Access.PUBLIC)
@limit("LIMIT_REFERRAL")
def referral(code: str):
    unit = services.follow_referral(code)
    return referrals.remember(redirect(url_for("catalog.home")), unit.id)
