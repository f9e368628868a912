"""Password pages: change (signed in), forgot and reset (by mailed link or organizer's code),
and the organizers' list of reset requests."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts import recovery, sessions
from market.accounts.forms import (
    ActionForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    ResetPasswordForm,
    ResetWithCodeForm,
)
from market.accounts.models import ResetChannel, User
from market.errors import DomainError
from market.extensions import db
from market.security.access import Access, requires
from market.security.throttle import limit
from market.web import show_error

bp = Blueprint("passwords", __name__)


def _page(template: str, form, **context):
    status = 400 if form.errors else 200
    return render_template(template, form=form, **context), status


@bp.route("/account/password", methods=["GET", "POST"])
@requires(Access.SIGNED_IN)
def change():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            recovery.change_password(current_user, form.current.data, form.password.data)
        except DomainError as error:
            show_error(form, error)
        else:
            # Every session has ended, this one too: sign this browser in again, afresh.
            sessions.start(db.session.get(User, current_user.id))
            flash(_("密码已修改，其他设备上的登录已退出"), "success")
            return redirect(url_for("accounts.account"), 303)
    return _page("accounts/password_change.html", form)


@bp.route("/password/forgot", methods=["GET", "POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_PASSWORD_RESET_ADDRESS", methods=["POST"])
def forgot():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            channel = recovery.request_reset(form.account.data)
        except DomainError as error:
            show_error(form, error)
        else:
            # The same answer whether or not the account exists.
            return render_template(
                "accounts/password_requested.html",
                by_mail=channel is ResetChannel.MAIL,
                account=form.account.data,
            )
    return _page("accounts/password_forgot.html", form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_PASSWORD_RESET_ADDRESS", methods=["POST"])
def reset_with_link(token: str):
    try:
        user = recovery.check_link(token)
    except recovery.ResetRefused as error:
        show_error(None, error)
        return redirect(url_for(".forgot"), 303)
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            recovery.reset_with_link(token, form.password.data)
        except DomainError as error:
            show_error(form, error)
        else:
            flash(_("密码已重设，请用新密码登录"), "success")
            return redirect(url_for("accounts.login"), 303)
    return _page("accounts/password_reset.html", form, user=user)


@bp.route("/password/code", methods=["GET", "POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_PASSWORD_RESET_ADDRESS", methods=["POST"])
def reset_with_code():
    form = ResetWithCodeForm()
    if form.validate_on_submit():
        try:
            recovery.reset_with_code(form.account.data, form.code.data, form.password.data)
        except DomainError as error:
            show_error(form, error)
        else:
            flash(_("密码已重设，请用新密码登录"), "success")
            return redirect(url_for("accounts.login"), 303)
    return _page("accounts/password_code.html", form)


# -- organizers --------------------------------------------------------------------------------
@bp.get("/admin/password-resets")
@requires(Access.ORGANIZER)
def admin_requests():
    return render_template(
        "admin/password_resets.html", requests=recovery.open_requests(), action_form=ActionForm()
    )


@bp.post("/admin/users/<int:user_id>/reset-code")
@requires(Access.ORGANIZER)
def issue_code(user_id: int):
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".admin_requests"), 303)
    code = recovery.issue_code(current_user, user_id)  # no such person: 404
    user = db.session.get(User, user_id)
    # Shown once, on this answer only (never stored in clear, never cached).
    return render_template("admin/password_code.html", user=user, code=code)
