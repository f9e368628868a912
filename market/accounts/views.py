"""Sign-in, sign-up, my account, a coordinator's members page, and the organizer's user admin."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm import contains_eager, selectinload

from market.accounts import services, sessions
from market.accounts.forms import (
    ActionForm,
    AppointCoopForm,
    AppointUnitForm,
    FlagsForm,
    JoinUnitForm,
    LoginForm,
    RegisterForm,
)
from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.directory.models import Coop, Unit, Village
from market.errors import DomainError
from market.extensions import db, login_manager
from market.models import contains
from market.security.access import Access, requires
from market.security.inputs import int_arg, page_arg
from market.security.redirects import next_url
from market.security.throttle import TooManyAttempts, client_address, limit
from market.web import show_error

bp = Blueprint("accounts", __name__)

login_manager.login_view = "accounts.login"
login_manager.login_message = _l("请先登录")
login_manager.login_message_category = "warning"


login_manager.user_loader(sessions.load)


@bp.route("/login", methods=["GET", "POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_SIGN_IN_ADDRESS", methods=["POST"])
def login():
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data, client_address())
        except TooManyAttempts as error:
            show_error(None, error)
            response = make_response(render_template("accounts/login.html", form=form), 429)
            response.headers["Retry-After"] = str(error.retry_after)
            return response
        except DomainError as error:
            show_error(form, error)
        else:
            sessions.start(user, remember=form.remember.data)
            flash(_("欢迎回来，%(name)s", name=user.name), "success")
            return redirect(next_url())
    status = 400 if form.errors else 200
    return render_template("accounts/login.html", form=form), status


@bp.post("/logout")
@requires(Access.SIGNED_IN)
def logout():
    form = ActionForm()
    if form.validate_on_submit():
        sessions.sign_out(current_user)
        flash(_("已退出登录"), "info")
    return redirect(url_for("catalog.home"))


@bp.route("/register", methods=["GET", "POST"])
@requires(Access.PUBLIC)
@limit("LIMIT_REGISTER", methods=["POST"])
def register():
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = services.register(
                name=form.name.data,
                email=form.email.data,
                phone=form.phone.data,
                password=form.password.data,
            )
        except DomainError as error:
            show_error(form, error)
        else:
            sessions.start(user)
            flash(_("注册成功"), "success")
            return redirect(next_url())
    status = 400 if form.errors else 200
    return render_template("accounts/register.html", form=form), status


@bp.get("/account")
@requires(Access.SIGNED_IN)
def account():
    return render_template(
        "accounts/account.html",
        membership=current_user.open_unit_membership(),
        join_form=JoinUnitForm(),
    )


@bp.post("/account/unit")
@requires(Access.SIGNED_IN)
def join_unit():
    form = JoinUnitForm()
    if form.validate_on_submit():
        try:
            membership = services.join_unit(current_user, form.invite_code.data)
        except DomainError as error:
            show_error(form, error)
        else:
            flash(
                _("已申请加入 %(unit)s，等待单位联络员确认", unit=membership.unit.name), "success"
            )
            return redirect(url_for(".account"))
    membership = current_user.open_unit_membership()
    return render_template("accounts/account.html", membership=membership, join_form=form), 400


# -- a coordinator's members page --------------------------------------------------------------
@bp.get("/unit/members")
@requires(Access.COORDINATOR)
def unit_members():
    unit = current_user.unit
    if current_user.is_admin and int_arg("unit"):
        unit = db.session.get(Unit, int_arg("unit"))
    if unit is None:
        abort(404)  # an admin without a unit of their own names one with ?unit=
    memberships = db.session.scalars(
        select(UnitMembership)
        .where(
            UnitMembership.unit_id == unit.id,
            UnitMembership.status.in_([MembershipStatus.PENDING, MembershipStatus.CONFIRMED]),
        )
        .options(selectinload(UnitMembership.user))
        .order_by(UnitMembership.status.desc(), UnitMembership.created_at)
    ).all()
    pending = [m for m in memberships if m.status == MembershipStatus.PENDING]
    confirmed = [m for m in memberships if m.status == MembershipStatus.CONFIRMED]
    return render_template(
        "accounts/unit_members.html",
        unit=unit,
        pending=pending,
        confirmed=confirmed,
        action_form=ActionForm(),
    )


@bp.post("/unit/members/<int:membership_id>/<any(confirm, reject, remove):decision>")
@requires(Access.COORDINATOR)
def decide_member(membership_id: int, decision: str):
    if ActionForm().validate_on_submit():
        if decision == "remove":
            membership = services.end_membership(current_user, membership_id)
            flash(_("已移除 %(name)s", name=membership.user.name), "info")
        else:
            membership = services.decide_membership(
                current_user, membership_id, confirm=decision == "confirm"
            )
            message = _("已确认 %(name)s") if decision == "confirm" else _("已拒绝 %(name)s")
            flash(message % {"name": membership.user.name}, "success")
    return redirect(url_for(".unit_members"))


# -- organizer: people and their roles ---------------------------------------------------------
@bp.get("/admin/users")
@requires(Access.ORGANIZER)
def admin_users():
    q = request.args.get("q", "").strip()
    # Each row shows the person's unit and whether they run a co-op.
    query = (
        select(User)
        .options(
            selectinload(User.unit_memberships).joinedload(UnitMembership.unit),
            selectinload(User.coop_memberships).joinedload(CoopMembership.coop),
        )
        .order_by(User.id)
    )
    if q:
        query = query.where(
            or_(contains(User.name, q), contains(User.email, q), contains(User.phone, q))
        )
    page = db.paginate(query, page=page_arg(), per_page=50, error_out=False)
    return render_template("admin/users.html", page=page, q=q)


def _appointment_forms():
    unit_form = AppointUnitForm(prefix="unit")
    unit_form.unit_id.choices = [
        (u.id, u.name) for u in db.session.scalars(select(Unit).order_by(Unit.name))
    ]
    coop_form = AppointCoopForm(prefix="coop")
    coop_form.coop_id.choices = [
        (c.id, f"{c.village.name} · {c.name}")
        for c in db.session.scalars(
            select(Coop)
            .join(Coop.village)
            .options(contains_eager(Coop.village))
            .order_by(Village.name, Coop.name)
        )
    ]
    return unit_form, coop_form


@bp.get("/admin/users/<int:user_id>")
@requires(Access.ORGANIZER)
def admin_user(user_id: int):
    user = db.first_or_404(
        select(User)
        .where(User.id == user_id)
        .options(
            selectinload(User.unit_memberships).joinedload(UnitMembership.unit),
            selectinload(User.coop_memberships).joinedload(CoopMembership.coop),
        )
    )
    unit_form, coop_form = _appointment_forms()
    flags_form = FlagsForm(prefix="flags", obj=user)
    return render_template(
        "admin/user.html",
        user=user,
        unit_form=unit_form,
        coop_form=coop_form,
        flags_form=flags_form,
    )


@bp.post("/admin/users/<int:user_id>/unit")
@requires(Access.ORGANIZER)
def appoint_unit(user_id: int):
    unit_form, _coop_form = _appointment_forms()
    if unit_form.validate_on_submit():
        services.appoint_unit_role(
            user_id, unit_form.unit_id.data, UnitRole(unit_form.role.data), current_user
        )
        flash(_("已更新单位角色"), "success")
    else:
        flash(_("请选择单位和角色"), "danger")
    return redirect(url_for(".admin_user", user_id=user_id))


@bp.post("/admin/users/<int:user_id>/coop")
@requires(Access.ORGANIZER)
def appoint_coop(user_id: int):
    _unit_form, coop_form = _appointment_forms()
    if coop_form.validate_on_submit():
        role = CoopRole(coop_form.role.data) if coop_form.role.data else None
        services.appoint_coop_role(user_id, coop_form.coop_id.data, role, current_user)
        flash(_("已更新合作社角色"), "success")
    else:
        flash(_("请选择合作社"), "danger")
    return redirect(url_for(".admin_user", user_id=user_id))


@bp.post("/admin/users/<int:user_id>/flags")
@requires(Access.ORGANIZER)
def set_flags(user_id: int):
    form = FlagsForm(prefix="flags")
    if form.validate_on_submit():
        services.set_flags(
            current_user,
            user_id,
            is_organizer=form.is_organizer.data,
            is_admin=form.is_admin.data,
            is_finance=form.is_finance.data,
        )
        flash(_("已更新身份"), "success")
    return redirect(url_for(".admin_user", user_id=user_id))
