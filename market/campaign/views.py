"""Referral links: /r/<code> remembers the unit for 30 days (last click wins), shows the
storefront, and has the visit counted once its response is built."""

from __future__ import annotations

import logging

from flask import Blueprint, after_this_request, current_app, redirect, url_for

from market.campaign import services
from market.models import utcnow
from market.orders import referrals
from market.security.access import Access, requires
from market.security.throttle import limit

bp = Blueprint("campaign", __name__)
log = logging.getLogger(__name__)


def _count_visit_after_response(unit_id: int) -> None:
    """A GET writes nothing in its own transaction: the visit goes to the Celery task
    market.record_referral_visit once the response is built, which a worker runs in production
    and which runs at once, in a transaction of its own, in the embedded shop (eager)."""
    at = utcnow().isoformat()

    @after_this_request
    def send(response):
        from market.tasks import RECORD_REFERRAL_VISIT, celery_for

        app = current_app._get_current_object()  # type: ignore[attr-defined]  (kept by Celery)
        try:
            celery_for(app).tasks[RECORD_REFERRAL_VISIT].delay(unit_id, at)
        except Exception:  # a visit not counted must never fail the link
            log.exception("could not count a referral visit of unit %s", unit_id)
        return response


@bp.get("/r/<code>")
@requires(Access.PUBLIC)
@limit("LIMIT_REFERRAL")
def referral(code: str):
    unit = services.referral_unit(code)
    _count_visit_after_response(unit.id)
    return referrals.remember(redirect(url_for("catalog.home")), unit.id)
