"""App-wide web pieces: template filters, the health check, the language switch, uploaded media."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from sqlalchemy import text

from market.accounts.permissions import Access, can, requires
from market.extensions import db
from market.money import fen_to_yuan_text, format_fen

bp = Blueprint("web", __name__)


@bp.get("/healthz")
@requires(Access.PUBLIC)
def healthz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any database failure means "not healthy", reported not raised
        current_app.logger.exception("health check failed")
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok"}


@bp.post("/lang")
@requires(Access.PUBLIC)
def set_language():
    lang = request.form.get("lang", "")
    if lang in current_app.config["LANGUAGES"]:
        session["lang"] = lang
    target = request.form.get("next") or ""
    # Only local paths: never an open redirect.
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("catalog.home")
    return redirect(target)


@bp.get("/media/<path:filename>")
@requires(Access.PUBLIC)
def media(filename: str):
    return send_from_directory(current_app.config["UPLOAD_DIR"], filename, max_age=86400 * 30)


MONTH_NAMES_EN = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


def format_months(months: list[int]) -> str:
    if not months:
        return _("全年")
    if str(get_locale()).startswith("en"):
        return ", ".join(MONTH_NAMES_EN[m - 1] for m in months)
    return "、".join(_("%(month)d月", month=m) for m in months)


def safe_next(default_endpoint: str = "catalog.home") -> str:
    target = request.args.get("next") or request.form.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for(default_endpoint)


def url_with_page(page: int) -> str:
    """The current page's URL with its query string kept and `page` replaced."""
    args = request.args.to_dict()
    args["page"] = str(page)
    return url_for(request.endpoint or "catalog.home", **(request.view_args or {}), **args)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.filters["money"] = format_fen
    app.jinja_env.filters["yuan"] = fen_to_yuan_text
    app.jinja_env.filters["localtime"] = lambda value, fmt="yyyy-MM-dd HH:mm": (
        format_datetime(value, fmt) if value else ""
    )
    app.jinja_env.filters["months"] = format_months
    app.jinja_env.globals["can"] = can
    app.jinja_env.globals["url_with_page"] = url_with_page
    app.jinja_env.globals["Access"] = Access
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())
    app.jinja_env.globals["media_url"] = lambda path: url_for("web.media", filename=path)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
