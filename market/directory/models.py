"""The directory: who is paired with whom, and since when."""

from __future__ import annotations

import secrets
from datetime import date

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.extensions import db
from market.models import TimestampMixin


def new_code(length: int = 8) -> str:
    # Unambiguous upper-case letters and digits: easy to read out and type on a phone.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


class Town(db.Model):
    __tablename__ = "towns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)

    villages: Mapped[list[Village]] = relationship(back_populates="town", order_by="Village.name")

    def __repr__(self) -> str:
        return f"<Town {self.name}>"


class Village(TimestampMixin, db.Model):
    __tablename__ = "villages"
    __table_args__ = (UniqueConstraint("town_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    # 典型村: a model village of the provincial "typical village" programme.
    is_typical: Mapped[bool] = mapped_column(Boolean, default=False)
    story: Mapped[str] = mapped_column(Text, default="")
    photo_path: Mapped[str | None] = mapped_column(String(200))
    photo_thumb_path: Mapped[str | None] = mapped_column(String(200))

    town: Mapped[Town] = relationship(back_populates="villages")
    coops: Mapped[list[Coop]] = relationship(back_populates="village", order_by="Coop.name")
    pairings: Mapped[list[Pairing]] = relationship(back_populates="village")

    @property
    def full_name(self) -> str:
        return f"{self.town.name}{self.name}"

    def current_units(self, on: date) -> list[Unit]:
        return [p.unit for p in self.pairings if p.active_on(on)]


class Coop(TimestampMixin, db.Model):
    """合作社 or 家庭农场: the seller. Products belong to a co-op, a co-op to a village."""

    __tablename__ = "coops"
    __table_args__ = (UniqueConstraint("village_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    intro: Mapped[str] = mapped_column(Text, default="")
    contact_phone: Mapped[str] = mapped_column(String(30), default="")
    # Where settlements are paid: bank and account, kept for the finance office.
    settlement_account: Mapped[str] = mapped_column(String(200), default="")
    approved: Mapped[bool] = mapped_column(Boolean, default=False)

    village: Mapped[Village] = relationship(back_populates="coops")


class Unit(TimestampMixin, db.Model):
    """市直单位: a city-level government unit paired with villages."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    contact_phone: Mapped[str] = mapped_column(String(30), default="")
    # Shown on referral links and QR posters; counts buyers who came through the unit.
    referral_code: Mapped[str] = mapped_column(String(16), unique=True, default=new_code)
    # Given to employees so they can ask to join the unit.
    invite_code: Mapped[str] = mapped_column(String(16), unique=True, default=new_code)

    pairings: Mapped[list[Pairing]] = relationship(back_populates="unit")

    def current_villages(self, on: date) -> list[Village]:
        return [p.village for p in self.pairings if p.active_on(on)]


class Pairing(TimestampMixin, db.Model):
    """结对共建: a unit helps a village from `since` until `until` (inclusive; open when None)."""

    __tablename__ = "pairings"
    __table_args__ = (
        UniqueConstraint("unit_id", "village_id", "since"),
        CheckConstraint("until IS NULL OR until >= since", name="until_after_since"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    since: Mapped[date] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(300), default="")

    unit: Mapped[Unit] = relationship(back_populates="pairings")
    village: Mapped[Village] = relationship(back_populates="pairings")

    def active_on(self, day: date) -> bool:
        return self.since <= day and (self.until is None or day <= self.until)

    def overlaps(self, since: date, until: date | None) -> bool:
        starts_before_other_ends = until is None or self.since <= until
        ends_after_other_starts = self.until is None or since <= self.until
        return starts_before_other_ends and ends_after_other_starts
