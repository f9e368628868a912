"""Sign-up, sign-in (rate-limited), joining a unit, and the organizer's appointments."""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from market.accounts import passwords
from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.audit import services as audit
from market.directory.models import Coop, Unit
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.notifications import recipients
from market.notifications.services import notify
from market.security import throttle
from market.transactions import commit_unique, unit_of_work

PHONE = re.compile(r"^1\d{10}$")  # mainland mobile numbers


def normalise_login(identifier: str) -> str:
    return identifier.strip().lower().replace(" ", "")


def find_user(identifier: str) -> User | None:
    key = normalise_login(identifier)
    if not key:
        return None
    return db.session.scalar(select(User).where(or_(User.email == key, User.phone == key)))


@unit_of_work
def register(*, name: str, email: str | None, phone: str | None, password: str) -> User:
    """A person signs up with an email or a mobile number (or both) and a password."""
    email = normalise_login(email or "") or None
    phone = normalise_login(phone or "") or None
    if not email and not phone:
        raise DomainError(_("请填写邮箱或手机号"), field="email")
    if phone and not PHONE.match(phone):
        raise DomainError(_("手机号应为 11 位数字"), field="phone")
    passwords.check_strength(password, [name, email or "", phone or ""])
    # Compare only what was given: `phone == None` would match everyone without a phone.
    given = [User.email == email] if email else []
    given += [User.phone == phone] if phone else []
    taken = db.session.scalar(select(func.count()).select_from(User).where(or_(*given)))
    if taken:
        raise Conflict(_("该邮箱或手机号已注册"), field="email")
    user = User(name=name.strip(), email=email, phone=phone)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # taken meanwhile
        db.session.rollback()
        raise Conflict(_("该邮箱或手机号已注册"), field="email") from None
    notify(
        [user.id],
        "account.join_unit",
        _l("欢迎！请加入您的单位"),
        _l("在“我的账户”页填写单位联络员给您的邀请码，联络员确认后即可参加本单位的团购。"),
        recipients.link_to("accounts.account"),
    )
    commit_unique(_("该邮箱或手机号已注册"), field="email")
    return user


def authenticate(identifier: str, password: str, address: str) -> User:
    """Check a password. Each try counts first, atomically, against the (account, address)
    windows of LIMIT_SIGN_IN_ACCOUNT, so a guesser waits longer and longer and concurrent tries
    cannot slip past; a success clears them. An unknown account costs a hash check too."""
    account = normalise_login(identifier)
    throttle.consume("LIMIT_SIGN_IN_ACCOUNT", account, address)
    user = find_user(account)
    if not passwords.verify(user, password) or user is None or not user.active:
        raise DomainError(_("账号或密码不正确"), field="password")
    throttle.forget("LIMIT_SIGN_IN_ACCOUNT", account, address)
    return user


# -- units -------------------------------------------------------------------------------------
@unit_of_work
def join_unit(user: User, invite_code: str) -> UnitMembership:
    """An employee asks to join a unit with its invite code; a coordinator confirms later.
    A person belongs to one unit at a time."""
    code = invite_code.strip().upper()
    unit = db.session.scalar(select(Unit).where(Unit.invite_code == code)) if code else None
    if unit is None:
        raise DomainError(_("邀请码不存在，请向单位联络员确认"), field="invite_code")
    current = user.open_unit_membership()
    if current is not None:
        if current.unit_id == unit.id:
            raise Conflict(_("您已申请加入或已加入该单位"))
        raise Conflict(_("您已属于 %(unit)s，一人只能加入一个单位", unit=current.unit.name))
    membership = UnitMembership(user=user, unit=unit, role=UnitRole.MEMBER)
    db.session.add(membership)
    notify(
        recipients.unit_coordinator_ids(unit.id),
        "membership.requested",
        _l("%(name)s 申请加入%(unit)s", name=user.name, unit=unit.name),
        _l("请在“单位成员”页确认或拒绝。"),
        recipients.link_to("accounts.unit_members"),
    )
    db.session.commit()
    return membership


def _membership_of_my_unit(coordinator: User, membership_id: int) -> UnitMembership:
    membership = db.session.get(UnitMembership, membership_id)
    if membership is None:
        raise NotFound(_("找不到该申请"))
    mine = coordinator.confirmed_unit_membership()
    allowed = coordinator.is_admin or (
        mine is not None
        and mine.role == UnitRole.COORDINATOR
        and mine.unit_id == membership.unit_id
    )
    if not allowed:
        raise NotAllowed(_("只能处理本单位的成员"))
    return membership


@unit_of_work
def decide_membership(coordinator: User, membership_id: int, *, confirm: bool) -> UnitMembership:
    """A coordinator confirms or rejects a pending request to join their own unit."""
    membership = _membership_of_my_unit(coordinator, membership_id)
    if confirm:
        membership.move_to(MembershipStatus.CONFIRMED)
        membership.confirmed_at = utcnow()
        membership.confirmed_by_id = coordinator.id
    else:
        membership.move_to(MembershipStatus.REJECTED)
    unit = membership.unit
    if confirm:
        title = _l("您已加入%(unit)s", unit=unit.name)
        body = _l("单位联络员已确认您的申请，现在可以参加本单位的团购。")
    else:
        title = _l("加入%(unit)s的申请未通过", unit=unit.name)
        body = _l("如有疑问请联系单位联络员，或用正确的邀请码重新申请。")
    notify(
        [membership.user_id],
        "membership.confirmed" if confirm else "membership.rejected",
        title,
        body,
        recipients.link_to("accounts.account"),
    )
    db.session.commit()
    return membership


@unit_of_work
def end_membership(coordinator: User, membership_id: int) -> UnitMembership:
    """A coordinator removes someone who has left the unit (not themself)."""
    membership = _membership_of_my_unit(coordinator, membership_id)
    if membership.user_id == coordinator.id:
        raise DomainError(_("不能移除自己"))
    membership.move_to(MembershipStatus.ENDED)
    membership.ended_at = utcnow()
    db.session.commit()
    return membership


@unit_of_work
def appoint_unit_role(
    user_id: int, unit_id: int, role: UnitRole, actor: User | None = None
) -> UnitMembership:
    """The organizer makes someone a unit's coordinator, approver or plain member. Someone
    belonging to another unit is moved: the old membership ends."""
    user = _user(user_id)
    unit = db.session.get(Unit, unit_id)
    if unit is None:
        raise NotFound(_("找不到该单位"))
    current = user.open_unit_membership()
    before = (
        {"unit_id": current.unit_id, "role": current.role, "status": current.status}
        if current is not None
        else None
    )
    if current is not None and current.unit_id == unit.id:
        membership = current
        if membership.status == MembershipStatus.PENDING:
            membership.move_to(MembershipStatus.CONFIRMED)
            membership.confirmed_at = utcnow()
    else:
        if current is not None:
            if current.status == MembershipStatus.PENDING:
                current.move_to(MembershipStatus.REJECTED)
            else:
                current.move_to(MembershipStatus.ENDED)
                current.ended_at = utcnow()
        membership = UnitMembership(
            user=user, unit=unit, status=MembershipStatus.CONFIRMED, confirmed_at=utcnow()
        )
        db.session.add(membership)
    membership.role = role
    audit.record(
        actor,
        "role.unit",
        user,
        before=before,
        after={"unit_id": unit.id, "role": role, "status": membership.status},
    )
    db.session.commit()
    return membership


@unit_of_work
def appoint_coop_role(
    user_id: int, coop_id: int, role: CoopRole | None, actor: User | None = None
) -> None:
    """The organizer appoints a co-op's manager or staff; `None` removes the person."""
    user = _user(user_id)
    coop = db.session.get(Coop, coop_id)
    if coop is None:
        raise NotFound(_("找不到该合作社"))
    membership = db.session.scalar(
        select(CoopMembership).where(
            CoopMembership.user_id == user.id, CoopMembership.coop_id == coop.id
        )
    )
    before = {"coop_id": coop.id, "role": membership.role if membership else None}
    if role is None:
        if membership is not None:
            db.session.delete(membership)
    elif membership is None:
        db.session.add(CoopMembership(user=user, coop=coop, role=role))
    else:
        membership.role = role
    after = {"coop_id": coop.id, "role": role}
    if after != before:
        audit.record(actor, "role.coop", user, before=before, after=after)
    db.session.commit()


def _flags(user: User) -> dict[str, bool]:
    return {
        "is_organizer": user.is_organizer,
        "is_admin": user.is_admin,
        "is_finance": user.is_finance,
    }


@unit_of_work
def set_flags(
    actor: User, user_id: int, *, is_organizer: bool, is_admin: bool, is_finance: bool | None = None
) -> User:
    """Organizers grant the organizer and finance (财务) flags; only an admin grants or removes
    admin. Each change is audited."""
    user = _user(user_id)
    if is_admin != user.is_admin and not actor.is_admin:
        raise NotAllowed(_("只有管理员可以设置管理员"))
    if user.id == actor.id and not is_organizer and not actor.is_admin:
        raise DomainError(_("不能取消自己的组织方身份"))
    before = _flags(user)
    user.is_organizer = is_organizer
    user.is_admin = is_admin
    if is_finance is not None:
        user.is_finance = is_finance
    if _flags(user) != before:
        audit.record(actor, "role.flags", user, before=before, after=_flags(user))
    db.session.commit()
    return user


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("找不到该用户"))
    return user
