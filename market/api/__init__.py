"""The JSON API at /api/v1 (issue 15): flask-smorest blueprints over the same services and
`requires(...)` rules as the pages, described by an OpenAPI 3 document at /api/v1/openapi.json
with Swagger UI at /api/v1/docs.

- Bearer tokens only (market/api/tokens.py): a request under /api/ never reads the cookie
  session's sign-in, and needs no CSRF token (nothing a browser sends by itself signs it in).
- One error shape, {"error", "message", "fields"} (market/api/errors.py), in the language of
  the request's Accept-Language (else the person's own, else Chinese).
- A change that breaks a client is /api/v2, beside this one.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

from babel import Locale
from flask import Flask, g, request
from flask_login import AnonymousUserMixin

from market.api import errors
from market.api.blueprint import API_PREFIX, api, blueprint, blueprints

__all__ = ["API_PREFIX", "api", "blueprint", "init_app"]

BEARER = "bearerAuth"
LOCALES = {"zh": "zh_CN", "zh_CN": "zh_CN", "zh_Hans": "zh_CN", "en": "en"}


def _request_locale() -> str | None:
    header = request.headers.get("Accept-Language")
    if header:
        best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
        if best:
            return "en" if best.startswith("en") else "zh_CN"
    return None


def authenticate_bearer():
    """Before anything else under /api/: the person is the bearer token's, or nobody; the
    cookie session is never consulted. Then the language of the request."""
    if not request.path.startswith("/api/"):
        return None
    from market.api import tokens

    user = None
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        user = tokens.user_for_access_token(token.strip())
    g._login_user = user if user is not None else AnonymousUserMixin()
    locale = _request_locale() or (getattr(user, "locale", None) if user else None)
    if locale in LOCALES.values():
        # Flask-Babel caches the request's locale here; the site's selector reads the cookie
        # session, which the API does not use.
        g._flask_babel = SimpleNamespace(babel_locale=Locale.parse(locale))
    return None


def _no_store(response):
    if request.path.startswith("/api/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    from market.api import models, tokens  # noqa: F401  (the table is part of the metadata)
    from market.extensions import csrf, login_manager
    from market.security.access import Access  # noqa: F401  (views import it)
    from market.security.inputs import MAX_ID, IdConverter

    config = app.config
    config.setdefault("API_TITLE", "market API")
    config.setdefault("API_VERSION", "v1")
    config.setdefault("OPENAPI_VERSION", "3.0.3")
    config.setdefault("API_ACCESS_MINUTES", int(os.environ.get("API_ACCESS_MINUTES", "15")))
    config.setdefault("API_REFRESH_DAYS", int(os.environ.get("API_REFRESH_DAYS", "30")))
    config.setdefault(
        "API_SPEC_OPTIONS",
        {
            "info": {
                "description": (
                    "高州结对帮扶土特产商城 API. Money is integer fen with a formatted text; "
                    "times are ISO 8601 with offset; errors are "
                    '{"error", "message", "fields"}.'
                )
            },
            "servers": [{"url": "/"}],
            "security": [{BEARER: []}],
            "components": {
                "securitySchemes": {
                    BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "opaque"}
                }
            },
        },
    )
    api.init_app(app)
    api.register_converter(
        IdConverter, lambda converter: {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    )
    from market.api import (  # noqa: F401  (each module adds its blueprint)
        auth_views,
        buying_views,
        catalog_views,
        coop_views,
        groupbuy_views,
        me_views,
        order_views,
        presale_views,
        trace_views,
        unit_views,
    )

    for blp in blueprints:
        api.register_blueprint(blp)
        csrf.exempt(blp)
        login_manager.blueprint_login_views[blp.name] = None  # 401, not a redirect
    from market.api import docs

    app.register_blueprint(docs.bp)
    csrf.exempt(docs.bp)
    # First of all before_request hooks: no other hook may load the cookie session's user.
    app.before_request_funcs.setdefault(None, []).insert(0, authenticate_bearer)
    errors.take_over_app_handlers(app)
    app.after_request(_no_store)
    tokens.install()
