"""A certificate of a co-op (证书), the products it covers, and its review: pending -> verified |
rejected; a rejected one is corrected by its co-op and goes back to pending."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Enum,
    ForeignKey,
    Index,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.accounts.models import User
from market.catalog.models import Product
from market.clock import today
from market.directory.models import Coop
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum, utcnow


class CertificateKind(enum.StrEnum):
    GEOGRAPHICAL_INDICATION = "geographical_indication"
    GREEN_FOOD = "green_food"
    ORGANIC = "organic"
    SELENIUM_RICH = "selenium_rich"
    FOOD_BUSINESS_LICENCE = "food_business_licence"
    OTHER = "other"


# In the order the badges are shown.
KIND_LABELS = {
    CertificateKind.GEOGRAPHICAL_INDICATION: _l("地理标志"),
    CertificateKind.GREEN_FOOD: _l("绿色食品"),
    CertificateKind.ORGANIC: _l("有机"),
    CertificateKind.SELENIUM_RICH: _l("富硒"),
    CertificateKind.FOOD_BUSINESS_LICENCE: _l("食品经营许可"),
    CertificateKind.OTHER: _l("其他"),
}
KIND_ORDER = {kind: position for position, kind in enumerate(KIND_LABELS)}
# A licence is the co-op's, not one product's: it may cover everything the co-op sells, now and
# later. Every other kind names the products it was granted for.
MAY_COVER_ALL = frozenset({CertificateKind.FOOD_BUSINESS_LICENCE})


class CertificateStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


CERTIFICATE_STATUS_LABELS = {
    CertificateStatus.PENDING: _l("待审核"),
    CertificateStatus.VERIFIED: _l("已核验"),
    CertificateStatus.REJECTED: _l("已驳回"),
}

certificate_products = Table(
    "certificate_products",
    db.metadata,
    Column(
        "certificate_id",
        ForeignKey("certificates.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_certificate_products_product_id", "product_id"),
)


class Certificate(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "certificates"
    __table_args__ = (
        Index("ix_certificates_status_kind", "status", "kind"),
        Index("ix_certificates_coop_id", "coop_id"),
    )

    # A verified certificate stays as it was verified: a changed one is a new upload. A rejected
    # one is corrected and goes back to the queue.
    TRANSITIONS: ClassVar[dict[CertificateStatus, set[CertificateStatus]]] = {
        CertificateStatus.PENDING: {CertificateStatus.VERIFIED, CertificateStatus.REJECTED},
        CertificateStatus.REJECTED: {CertificateStatus.PENDING},
        CertificateStatus.VERIFIED: set(),
    }
    STATUS_LABELS = CERTIFICATE_STATUS_LABELS
    TRANSITION_MESSAGE = _l("证书当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    # The kinds' names are longer than text_enum's 20 characters.
    kind: Mapped[CertificateKind] = mapped_column(
        Enum(
            CertificateKind,
            name="certificate_kind",
            native_enum=False,
            create_constraint=True,
            length=30,
            values_callable=lambda members: [m.value for m in members],
        )
    )
    number: Mapped[str] = mapped_column(String(60))
    issuer: Mapped[str] = mapped_column(String(100))
    valid_until: Mapped[date] = mapped_column(Date)
    covers_all_products: Mapped[bool] = mapped_column(Boolean, default=False)
    # A private document (PDF, JPEG or PNG) under PRIVATE_UPLOAD_DIR/certificates.
    file_path: Mapped[str] = mapped_column(String(200))
    status: Mapped[CertificateStatus] = mapped_column(
        text_enum(CertificateStatus, "certificate_status"), default=CertificateStatus.PENDING
    )
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reject_reason: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    coop: Mapped[Coop] = relationship()
    products: Mapped[list[Product]] = relationship(
        secondary=certificate_products, order_by=Product.id
    )
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id])

    @property
    def kind_label(self) -> str:
        return str(KIND_LABELS[self.kind])

    @property
    def expired(self) -> bool:
        """Past its last day of validity (Beijing's today): shown nowhere any more."""
        return self.valid_until < today()

    @property
    def shown(self) -> bool:
        """Whether the storefront shows it: verified and still valid today."""
        return self.status == CertificateStatus.VERIFIED and not self.expired
