"""People and what they may do: unit memberships (with a confirmation step) and co-op roles."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from market.directory.models import Coop, Unit
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum
from market.security.access import Access


class UnitRole(enum.StrEnum):
    MEMBER = "member"
    COORDINATOR = "coordinator"
    APPROVER = "approver"


class MembershipStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    ENDED = "ended"


MEMBERSHIP_STATUS_LABELS = {
    MembershipStatus.PENDING: _l("待联络员确认"),
    MembershipStatus.CONFIRMED: _l("已确认"),
    MembershipStatus.REJECTED: _l("已驳回"),
    MembershipStatus.ENDED: _l("已结束"),
}


class CoopRole(enum.StrEnum):
    MANAGER = "manager"
    STAFF = "staff"


class User(UserMixin, TimestampMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Either may be missing, not both (checked by the registration service).
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    password_hash: Mapped[str] = mapped_column(String(256))
    is_organizer: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # 财务 of the service centre: confirms money in, sends offline refunds, pays co-ops.
    is_finance: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(10))

    unit_memberships: Mapped[list[UnitMembership]] = relationship(
        back_populates="user", foreign_keys="UnitMembership.user_id"
    )
    coop_memberships: Mapped[list[CoopMembership]] = relationship(back_populates="user")

    # "<id>:<session key>" while signed in on this request (market/accounts/sessions.py); the
    # cookies carry it, so a bare id (or an ended session's key) signs nobody in.
    signed_in_as = None
    # What the session's query also read for this request (sessions.LOADED_WITH_SESSION).
    loaded_with_session = None  # a dict of name -> value while signed in on this request

    def get_id(self) -> str:
        return self.signed_in_as or ""

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def login_name(self) -> str:
        return self.email or self.phone or ""

    @property
    def phone_last4(self) -> str:
        return (self.phone or "")[-4:]

    # -- roles ------------------------------------------------------------------------------
    def confirmed_unit_membership(self) -> UnitMembership | None:
        for membership in self.unit_memberships:
            if membership.status == MembershipStatus.CONFIRMED:
                return membership
        return None

    def open_unit_membership(self) -> UnitMembership | None:
        """The pending or confirmed membership; a user belongs to one unit at a time."""
        for membership in self.unit_memberships:
            if membership.status in (MembershipStatus.PENDING, MembershipStatus.CONFIRMED):
                return membership
        return None

    @property
    def unit(self) -> Unit | None:
        membership = self.confirmed_unit_membership()
        return membership.unit if membership else None

    def has_unit_role(self, *roles: UnitRole) -> bool:
        membership = self.confirmed_unit_membership()
        return membership is not None and membership.role in roles

    def managed_coops(self) -> list[Coop]:
        return [m.coop for m in self.coop_memberships if m.role == CoopRole.MANAGER]

    def may(self, access: Access) -> bool:
        """Whether this person holds `access` (market.security.access asks): an admin holds
        every one, and anyone signed in holds SIGNED_IN."""
        if access is Access.PUBLIC or self.is_admin or access is Access.SIGNED_IN:
            return True
        match access:
            case Access.EMPLOYEE:
                return self.confirmed_unit_membership() is not None
            case Access.COORDINATOR:
                return self.has_unit_role(UnitRole.COORDINATOR)
            case Access.APPROVER:
                return self.has_unit_role(UnitRole.APPROVER)
            case Access.COOP_MANAGER:
                return bool(self.managed_coops())
            case Access.ORGANIZER:
                return self.is_organizer
            case Access.FINANCE:
                return self.is_finance
        return False

    def coop_ids(self) -> set[int]:
        return {m.coop_id for m in self.coop_memberships}


class UnitMembership(StateMachine, TimestampMixin, db.Model):
    """An employee of a unit. Joining with the invite code makes it pending; a coordinator
    confirms it. The role says what the person may do for the unit."""

    __tablename__ = "unit_memberships"
    __table_args__ = (Index("ix_unit_memberships_unit_status", "unit_id", "status"),)

    TRANSITIONS: ClassVar[dict[MembershipStatus, set[MembershipStatus]]] = {
        MembershipStatus.PENDING: {MembershipStatus.CONFIRMED, MembershipStatus.REJECTED},
        MembershipStatus.CONFIRMED: {MembershipStatus.ENDED},
        MembershipStatus.REJECTED: set(),
        MembershipStatus.ENDED: set(),
    }
    STATUS_LABELS = MEMBERSHIP_STATUS_LABELS
    TRANSITION_MESSAGE = _l("该成员当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    role: Mapped[UnitRole] = mapped_column(
        text_enum(UnitRole, "unit_role"), default=UnitRole.MEMBER
    )
    status: Mapped[MembershipStatus] = mapped_column(
        text_enum(MembershipStatus, "membership_status"), default=MembershipStatus.PENDING
    )
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="unit_memberships", foreign_keys=[user_id])
    unit: Mapped[Unit] = relationship()


class CoopMembership(TimestampMixin, db.Model):
    __tablename__ = "coop_memberships"
    __table_args__ = (UniqueConstraint("user_id", "coop_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"), index=True)
    role: Mapped[CoopRole] = mapped_column(
        text_enum(CoopRole, "coop_role"), default=CoopRole.MANAGER
    )

    user: Mapped[User] = relationship(back_populates="coop_memberships")
    coop: Mapped[Coop] = relationship()


class UserSession(db.Model):
    """One signed-in browser. The cookie holds a random key whose hash is kept here, so that
    signing out, a password change or reset ends every session of the person at once, and an
    idle one ends by itself (market/accounts/sessions.py)."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_open", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")

    user: Mapped[User] = relationship()


class ResetChannel(enum.StrEnum):
    MAIL = "mail"  # a link sent to the account's e-mail
    ORGANIZER = "organizer"  # phone-only: an organizer checks who is asking and gives a code


class PasswordReset(db.Model):
    """A request to set a new password: a signed link by mail, or a code an organizer hands
    out. Good once, for PASSWORD_RESET_MINUTES; only hashes of the secrets are kept."""

    __tablename__ = "password_resets"
    __table_args__ = (Index("ix_password_resets_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    channel: Mapped[ResetChannel] = mapped_column(text_enum(ResetChannel, "reset_channel"))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the link is sent or the organizer issues the code.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_tries: Mapped[int] = mapped_column(default=0)

    user: Mapped[User] = relationship(foreign_keys=[user_id])
