"""App-wide web pieces: template filters, the health check, the language switch, uploaded media."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_babel import format_datetime, get_locale
from flask_babel import gettext as _
from sqlalchemy import text
from wtforms import FieldList

from market.errors import DomainError
from market.extensions import db
from market.idempotency import form_token_field
from market.money import fen_to_yuan_text, format_fen
from market.security.access import Access, can, requires
from market.security.redirects import next_url
from market.uploads import ensure_derived_image

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
    return redirect(next_url())


@bp.get("/media/<path:filename>")
@requires(Access.PUBLIC)
def media(filename: str):
    ensure_derived_image(filename)  # pictures stored before their thumbnails existed
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


def flash_form_errors(form) -> None:
    """For small forms without a page of their own: every field error as a flash message."""
    for errors in form.errors.values():
        for message in errors:
            flash(message, "danger")


def reraise_access_errors(error: DomainError) -> None:
    """Views that turn refusals into flash messages still answer someone else's object (or a
    missing one) with 403/404."""
    if error.status_code in (403, 404):
        raise error


def _book(act: Callable[[], Any], done: str | Callable[[Any], str]) -> None:
    """Call one service and flash its outcome, or its refusal (the service rolled back);
    someone else's object (or a missing one) stays a 403/404."""
    try:
        result = act()
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
    else:
        flash(done(result) if callable(done) else done, "success")


def run_action(act: Callable[[], object], done: str, back: str):
    """A bare POST button (CSRF token only): call one service, flash its outcome or its
    refusal (someone else's object stays a 403/404), and go back."""
    from market.accounts.forms import ActionForm

    if ActionForm().validate_on_submit():
        _book(act, done)
    return redirect(back, 303)


def run_form(form, act: Callable[[], Any], done: str | Callable[[Any], str]) -> None:
    """A small form that one service acts on: its field errors, or the service's outcome or
    refusal, as flash messages (the caller redirects)."""
    if form.validate_on_submit():
        _book(act, done)
    else:
        flash_form_errors(form)


def show_error(form, error: DomainError, *, on_form: bool = False) -> None:
    """The one place a service's refusal becomes what the person sees (the service has rolled
    its work back): next to the form's field it names; else, with `on_form`, in the form's own
    list of errors (pages that show `form.form_errors` above the form, and a list of rows
    whose field is the list); else as a flash message. `form` is None for a bare button."""
    field = getattr(form, error.field, None) if form is not None and error.field else None
    if field is not None and not isinstance(field, FieldList) and hasattr(field, "errors"):
        field.errors = [*field.errors, str(error)]
    elif on_form and form is not None:
        form.form_errors.append(str(error))
    else:
        flash(str(error), "danger")


def edit_form_page(form, title: str, save: Callable[[], object], back: str, **context):
    """Shared POST/redirect/GET for a directory form: save on a valid POST, else show errors."""
    if form.validate_on_submit():
        try:
            save()
        except DomainError as error:
            show_error(form, error)
        else:
            flash(_("已保存"), "success")
            return redirect(url_for(back))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/form.html", form=form, title=title, back=back, **context), status


def back_or(default: str) -> str:
    """Where the form was posted from, if that is a page of ours; else `default`."""
    referrer = request.referrer or ""
    return referrer if referrer.startswith(request.host_url) else default


def url_with_page(page: int) -> str:
    """The current page's URL with its query string kept and `page` replaced."""
    args = request.args.to_dict()
    args["page"] = str(page)
    return url_for(request.endpoint or "catalog.home", **(request.view_args or {}), **args)


def content_security_policy() -> str:
    """Scripts and styles from our own origin only (no eval, no inline script), plus Stripe.js
    and its API when card payments are on; inline styles are allowed for Bootstrap; no framing."""
    stripe = ""
    if current_app.config.get("STRIPE_SECRET_KEY"):
        from urllib.parse import urlsplit

        js = urlsplit(current_app.config["STRIPE_JS_URL"])
        api = urlsplit(current_app.config["STRIPE_API_BASE"])
        stripe = f" {js.scheme}://{js.netloc} {api.scheme}://{api.netloc}"
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self'{stripe}",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self'{stripe}",
            f"frame-src 'self'{stripe}",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'self'",
        ]
    )


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
    app.jinja_env.globals["form_token_field"] = form_token_field
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())
    app.jinja_env.globals["media_url"] = lambda path: url_for("web.media", filename=path)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        return response
