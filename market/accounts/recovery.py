"""Changing and resetting a password. Either ends every session of the person
(market/accounts/sessions.py) and voids any other reset in flight.

A reset goes one of two ways (`channel_for`): a signed, single-use link good for
PASSWORD_RESET_MINUTES, mailed after the commit (through Celery when REDIS_URL is set); or, for
an account without e-mail (or a shop without a mail server), a request that organizers see: one
of them checks who is asking (by phone) and issues a one-time code, shown to them once, that
the person types in with a new password. An SMS gateway would be a third channel that sends
that code itself; nothing else would change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from market.accounts import passwords, sessions
from market.accounts.models import PasswordReset, ResetChannel, User
from market.accounts.services import find_user, normalise_login
from market.audit import services as audit
from market.errors import DomainError, NotFound
from market.extensions import db
from market.models import utcnow
from market.security import throttle
from market.transactions import unit_of_work

CODE_DIGITS = 8
MAX_CODE_TRIES = 5


class ResetRefused(DomainError):
    status_code = 400


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _lifetime() -> timedelta:
    return timedelta(minutes=current_app.config["PASSWORD_RESET_MINUTES"])


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="market.password-reset")


def _personal(user: User) -> list[str]:
    return [user.name, user.email or "", user.phone or ""]


def _set_password(user: User, new_password: str, actor: User | None, action: str) -> None:
    """The new password, every session ended, every other reset voided, one audit event. The
    caller commits."""
    passwords.check_strength(new_password, _personal(user))
    now = utcnow()
    user.set_password(new_password)
    sessions.end_all(user.id, at=now)
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(actor, action, user)


# -- change --------------------------------------------------------------------------------------
@unit_of_work
def change_password(user: User, current_password: str, new_password: str) -> None:
    """修改密码: needs the current password (guesses are rate-limited like sign-in)."""
    throttle.consume("LIMIT_PASSWORD_CHECK", "change", str(user.id))
    if not user.check_password(current_password):
        raise DomainError(_("当前密码不正确"), field="current")
    if current_password == new_password:
        raise DomainError(_("新密码不能与当前密码相同"), field="password")
    _set_password(user, new_password, user, "password.change")
    db.session.commit()
    throttle.forget("LIMIT_PASSWORD_CHECK", "change", str(user.id))


# -- asking for a reset ----------------------------------------------------------------------
def channel_for(user: User) -> ResetChannel:
    if user.email and current_app.config.get("MAIL_SERVER"):
        return ResetChannel.MAIL
    return ResetChannel.ORGANIZER


@unit_of_work
def request_reset(identifier: str) -> ResetChannel | None:
    """忘记密码. Says nothing about whether the account exists: the page answers the same
    either way. Returns the channel used (None when there is no such account)."""
    account = normalise_login(identifier)
    throttle.consume("LIMIT_PASSWORD_RESET_ACCOUNT", account)
    user = find_user(account)
    if user is None or not user.active:
        passwords.verify(None, identifier)  # the same time as for a real account
        return None
    channel = channel_for(user)
    now = utcnow()
    reset = PasswordReset(user_id=user.id, channel=channel, created_at=now)
    if channel is ResetChannel.MAIL:
        nonce = secrets.token_urlsafe(24)
        reset.secret_hash = _hash(nonce)
        reset.expires_at = now + _lifetime()
        db.session.add(reset)
        db.session.flush()
        token = _serializer().dumps({"r": reset.id, "n": nonce})
        _mail_link(user, url_for("passwords.reset_with_link", token=token, _external=True))
    else:
        db.session.add(reset)
        db.session.flush()
        _tell_organizers(user)
    audit.record(None, "password.reset_requested", user, after={"channel": channel})
    db.session.commit()
    return channel


def _mail_link(user: User, link: str) -> None:
    from market.notifications.services import mail_after_commit

    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    mail_after_commit(
        user.name,
        user.email or "",
        _("重置您的密码"),
        _(
            "%(name)s，您好：\n\n"
            "请在 %(minutes)d 分钟内打开下面的链接设置新密码（只能使用一次）：\n%(link)s\n\n"
            "如果不是您本人操作，请忽略此邮件，您的密码不会改变。",
            name=user.name,
            minutes=minutes,
            link=link,
        ),
    )


def _tell_organizers(user: User) -> None:
    from market.notifications.services import notify

    organizers = db.session.scalars(
        select(User.id).where(User.is_organizer.is_(True), User.active.is_(True))
    ).all()
    notify(
        organizers,
        "password_reset",
        _l("%(name)s 申请重置密码", name=user.name),
        _l("请电话核实本人后，在“重置密码”页面为其生成重置码。"),
        url_for("passwords.admin_requests"),
    )


# -- the link -------------------------------------------------------------------------------------
def _reset_of_link(token: str) -> tuple[PasswordReset, str]:
    try:
        data = _serializer().loads(token, max_age=int(_lifetime().total_seconds()))
    except SignatureExpired:
        raise ResetRefused(_("重置链接已过期，请重新申请")) from None
    except BadSignature:
        raise ResetRefused(_("重置链接无效，请重新申请")) from None
    if not isinstance(data, dict) or not isinstance(data.get("r"), int):
        raise ResetRefused(_("重置链接无效，请重新申请"))
    reset = db.session.get(PasswordReset, data["r"], with_for_update=True)
    nonce = data.get("n")
    if (
        reset is None
        or reset.channel is not ResetChannel.MAIL
        or not isinstance(nonce, str)
        or not hmac.compare_digest(reset.secret_hash or "", _hash(nonce))
    ):
        raise ResetRefused(_("重置链接无效，请重新申请"))
    return reset, nonce


def _check_open(reset: PasswordReset) -> None:
    if reset.used_at is not None:
        raise ResetRefused(_("重置链接已使用过，请重新申请"))
    if reset.expires_at is None or utcnow() > reset.expires_at:
        raise ResetRefused(_("重置链接已过期，请重新申请"))


def check_link(token: str) -> User:
    """Whether the link may still be used (the form is shown only then)."""
    reset, _nonce = _reset_of_link(token)
    _check_open(reset)
    return reset.user


@unit_of_work
def reset_with_link(token: str, new_password: str) -> User:
    reset, _nonce = _reset_of_link(token)
    _check_open(reset)
    user = reset.user
    _set_password(user, new_password, user, "password.reset")
    reset.used_at = utcnow()
    db.session.commit()
    return user


# -- the organizer's code -------------------------------------------------------------------
def open_requests() -> list[PasswordReset]:
    """Requests waiting for an organizer: asked for, no code issued yet, not void."""
    return list(
        db.session.scalars(
            select(PasswordReset)
            .options(joinedload(PasswordReset.user))  # the page names who is asking
            .where(
                PasswordReset.channel == ResetChannel.ORGANIZER,
                PasswordReset.used_at.is_(None),
                PasswordReset.secret_hash.is_(None),
            )
            .order_by(PasswordReset.created_at)
        )
    )


@unit_of_work
def issue_code(organizer: User, user_id: int) -> str:
    """An organizer who has checked who is asking issues a one-time code for them. The code is
    returned once, to be told to the person; only its hash is kept."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_("找不到该用户"))
    now = utcnow()
    # Any earlier code or request of the person is void: the new code is the only one.
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    db.session.add(
        PasswordReset(
            user_id=user.id,
            channel=ResetChannel.ORGANIZER,
            secret_hash=_hash(code),
            created_at=now,
            expires_at=now + _lifetime(),
            issued_by_id=organizer.id,
        )
    )
    audit.record(organizer, "password.code_issued", user)
    db.session.commit()
    return code


@unit_of_work
def reset_with_code(identifier: str, code: str, new_password: str) -> User:
    """The person types the organizer's code: good once, for PASSWORD_RESET_MINUTES, and void
    after MAX_CODE_TRIES wrong tries."""
    refused = ResetRefused(_("重置码不正确或已过期，请联系活动组织方重新获取"), field="code")
    user = find_user(identifier)
    if user is None:
        passwords.verify(None, code)
        raise refused
    reset = db.session.scalar(
        select(PasswordReset)
        .where(
            PasswordReset.user_id == user.id,
            PasswordReset.channel == ResetChannel.ORGANIZER,
            PasswordReset.used_at.is_(None),
            PasswordReset.secret_hash.is_not(None),
        )
        .order_by(PasswordReset.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    if reset is None or reset.expires_at is None or utcnow() > reset.expires_at:
        raise refused
    if not hmac.compare_digest(reset.secret_hash or "", _hash(code.strip())):
        reset.failed_tries += 1
        if reset.failed_tries >= MAX_CODE_TRIES:
            reset.used_at = utcnow()
        db.session.commit()
        raise refused
    _set_password(user, new_password, user, "password.reset")
    reset.used_at = utcnow()
    db.session.commit()
    return user
