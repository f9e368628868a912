"""The unit whose link (/r/<code>) a visitor followed last: a signed cookie of its own that lasts
REFERRAL_DAYS, so the session cookie stays one that ends with the browser.

The campaign's link page sets it (market.campaign.views) and an order placed within the days
records it (DESIGN.md §6, rule 3): it lives with the orders, below the campaign."""

from __future__ import annotations

from flask import Response, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "referral"
REFERRAL_DAYS = 30


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="market.referral")


def remember(response: Response, unit_id: int) -> Response:
    config = current_app.config
    response.set_cookie(
        COOKIE,
        _serializer().dumps(unit_id),
        max_age=REFERRAL_DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=config.get("SESSION_COOKIE_SECURE", False),
    )
    return response


def followed_unit_id() -> int | None:
    """The unit of the last link followed within REFERRAL_DAYS (last click wins), if any."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        unit_id = _serializer().loads(value, max_age=REFERRAL_DAYS * 86400)
    except BadSignature:
        return None
    return unit_id if isinstance(unit_id, int) and unit_id > 0 else None
