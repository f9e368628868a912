"""What co-ops and organizers do with certificates. Each public function is one unit of work.

Rules:
- A co-op's manager uploads a certificate for one of their co-ops: its kind, number, issuer,
  last day of validity (today or later) and a scan (PDF, JPEG or PNG, checked by its content,
  kept private); it covers named products of that co-op, or, for a 食品经营许可, all of them.
- An organizer verifies a pending certificate or rejects it with a reason; each decision is in
  the audit log (before/after) and told to the co-op's managers.
- A pending or rejected certificate may be corrected by its co-op (a rejected one then goes back
  to the queue); a verified one is final (a renewed certificate is a new upload).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from market.accounts.models import User
from market.audit import services as audit
from market.catalog.models import Product
from market.certificates.models import (
    KIND_LABELS,
    MAY_COVER_ALL,
    Certificate,
    CertificateKind,
    CertificateStatus,
)
from market.certificates.queries import own_certificate
from market.clock import today
from market.directory.models import Coop
from market.errors import DomainError, NotFound
from market.extensions import db
from market.models import utcnow
from market.notifications import recipients
from market.notifications.services import notify
from market.transactions import unit_of_work
from market.uploads import (
    DocumentRejected,
    ImageRejected,
    inspect_document,
    inspect_image,
    store_private_document,
)

FOLDER = "certificates"
ACCEPTED_IMAGES = {"JPEG", "PNG"}
REASON_LENGTH = Certificate.__table__.c.reject_reason.type.length


@dataclass
class CertificateData:
    coop_id: int
    kind: CertificateKind | str
    number: str
    issuer: str
    valid_until: date | None
    covers_all_products: bool = False
    product_ids: list[int] = field(default_factory=list)


def _checked(data: CertificateData) -> CertificateData:
    try:
        kind = CertificateKind(data.kind)
    except ValueError:
        raise DomainError(_("请选择证书类型"), field="kind") from None
    number, issuer = (data.number or "").strip(), (data.issuer or "").strip()
    if not number:
        raise DomainError(_("请填写证书编号"), field="number")
    if not issuer:
        raise DomainError(_("请填写发证机关"), field="issuer")
    if data.valid_until is None:
        raise DomainError(_("请填写有效期"), field="valid_until")
    if data.valid_until < today():
        raise DomainError(_("证书已过有效期，不能上传"), field="valid_until")
    if data.covers_all_products and kind not in MAY_COVER_ALL:
        raise DomainError(
            _(
                "只有食品经营许可可以覆盖合作社的全部商品，%(kind)s 请选择具体商品",
                kind=KIND_LABELS[kind],
            ),
            field="covers_all_products",
        )
    if not data.covers_all_products and not data.product_ids:
        raise DomainError(_("请选择证书覆盖的商品"), field="product_ids")
    return CertificateData(
        coop_id=data.coop_id,
        kind=kind,
        number=number[:60],
        issuer=issuer[:100],
        valid_until=data.valid_until,
        covers_all_products=data.covers_all_products,
        product_ids=[] if data.covers_all_products else sorted(set(data.product_ids)),
    )


def _managed_coop(user: User, coop_id: int) -> int:
    if coop_id not in {coop.id for coop in user.managed_coops()}:
        raise NotFound(_("找不到该合作社"))
    return coop_id


def _products_of(coop_id: int, product_ids: list[int]) -> list[Product]:
    if not product_ids:
        return []
    products = list(
        db.session.scalars(
            select(Product).where(Product.id.in_(product_ids), Product.coop_id == coop_id)
        )
    )
    if len(products) != len(product_ids):
        raise DomainError(_("只能选择本合作社的商品"), field="product_ids")
    return products


def _stored_scan(upload: FileStorage) -> str:
    """The scan under PRIVATE_UPLOAD_DIR, accepted by what it contains: a PDF, a JPEG or a PNG
    (market/uploads.py reads it; OFD and WebP, fine for invoices, are no certificate scans)."""
    limit = current_app.config["MAX_INVOICE_BYTES"]
    data = upload.stream.read(limit + 1)
    if data and len(data) <= limit:
        refused = DocumentRejected(
            _("文件不是有效的证书扫描件（只接受 PDF、JPEG 或 PNG）"), field="file"
        )
        try:
            kind = inspect_document(data)
        except DocumentRejected:
            raise refused from None
        if kind == "ofd":
            raise refused
        if kind == "image":
            try:
                if inspect_image(data) not in ACCEPTED_IMAGES:
                    raise refused
            except ImageRejected:
                raise refused from None
    # The size and emptiness checks, and the storing, are the shared ones.
    return store_private_document(
        FileStorage(io.BytesIO(data), filename=upload.filename or "scan"), FOLDER
    )


def _has_file(upload: FileStorage | None) -> bool:
    return upload is not None and bool(upload.filename)


def _apply(certificate: Certificate, data: CertificateData, products: list[Product]) -> None:
    certificate.coop_id = data.coop_id
    certificate.kind = data.kind
    certificate.number = data.number
    certificate.issuer = data.issuer
    certificate.valid_until = data.valid_until
    certificate.covers_all_products = data.covers_all_products
    certificate.products = products


@unit_of_work
def upload_certificate(
    user: User, data: CertificateData, upload: FileStorage | None
) -> Certificate:
    """A co-op's manager uploads a certificate of their co-op; it waits for an organizer."""
    _managed_coop(user, data.coop_id)
    data = _checked(data)
    products = _products_of(data.coop_id, data.product_ids)
    if not _has_file(upload):
        raise DomainError(_("请上传证书扫描件"), field="file")
    certificate = Certificate(uploaded_by_id=user.id, status=CertificateStatus.PENDING)
    _apply(certificate, data, products)
    certificate.file_path = _stored_scan(upload)
    db.session.add(certificate)
    db.session.flush()
    _tell_organizers(certificate)
    db.session.commit()
    return certificate


@unit_of_work
def correct_certificate(
    user: User, certificate_id: int, data: CertificateData, upload: FileStorage | None
) -> Certificate:
    """The co-op corrects a pending or rejected certificate (a new scan is optional); a rejected
    one goes back to the organizers' queue."""
    certificate = own_certificate(user, certificate_id)
    db.session.refresh(certificate, with_for_update=True)
    if certificate.status == CertificateStatus.VERIFIED:
        raise DomainError(_("已核验的证书不能修改；证书更新后请重新上传"))
    _managed_coop(user, data.coop_id)
    data = _checked(data)
    products = _products_of(data.coop_id, data.product_ids)
    _apply(certificate, data, products)
    if _has_file(upload):
        certificate.file_path = _stored_scan(upload)
    if certificate.status == CertificateStatus.REJECTED:
        certificate.move_to(CertificateStatus.PENDING)
        certificate.reject_reason = ""
        _tell_organizers(certificate)
    db.session.commit()
    return certificate


def _pending(certificate_id: int) -> Certificate:
    certificate = db.session.get(
        Certificate, certificate_id, with_for_update=True, populate_existing=True
    )
    if certificate is None:
        raise NotFound(_("找不到该证书"))
    return certificate


def _tell_organizers(certificate: Certificate) -> None:
    """The organizers act next: a certificate waits in their queue."""
    organizer_ids = db.session.scalars(
        select(User.id).where(User.is_organizer, User.active).order_by(User.id)
    )
    coop_name = db.session.get(Coop, certificate.coop_id).name
    notify(
        list(organizer_ids),
        "certificate.submitted",
        _l("%(coop)s 提交了证书待核验", coop=coop_name),
        _l(
            "%(kind)s证书 %(number)s，有效期至 %(day)s。",
            kind=certificate.kind_label,
            number=certificate.number,
            day=certificate.valid_until.isoformat(),
        ),
        recipients.link_to("certificates.review"),
    )


def _tell_coop(certificate: Certificate, kind: str, title, body) -> None:
    notify(
        recipients.coop_manager_ids([certificate.coop_id]),
        kind,
        title,
        body,
        recipients.link_to("certificates.coop_index"),
    )


def _snapshot(certificate: Certificate) -> dict:
    return {
        "status": certificate.status,
        "kind": certificate.kind,
        "number": certificate.number,
        "valid_until": certificate.valid_until.isoformat(),
    }


@unit_of_work
def verify_certificate(organizer: User, certificate_id: int) -> Certificate:
    """An organizer has checked the scan against the issuer: the badge shows from now until
    the certificate's last day."""
    certificate = _pending(certificate_id)
    before = _snapshot(certificate)
    certificate.move_to(CertificateStatus.VERIFIED)
    certificate.reviewed_by_id = organizer.id
    certificate.reviewed_at = utcnow()
    audit.record(
        organizer, "certificate.verified", certificate, before=before, after=_snapshot(certificate)
    )
    _tell_coop(
        certificate,
        "certificate.verified",
        _l(
            "%(kind)s证书 %(number)s 已核验", kind=certificate.kind_label, number=certificate.number
        ),
        _l(
            "证书已通过核验，有效期至 %(day)s，期间在所覆盖商品上展示。",
            day=certificate.valid_until.isoformat(),
        ),
    )
    db.session.commit()
    return certificate


@unit_of_work
def reject_certificate(organizer: User, certificate_id: int, reason: str) -> Certificate:
    """An organizer refuses a pending certificate, saying why; the co-op may correct it."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("请填写驳回理由"), field="reason")
    certificate = _pending(certificate_id)
    before = _snapshot(certificate)
    certificate.move_to(CertificateStatus.REJECTED)
    certificate.reviewed_by_id = organizer.id
    certificate.reviewed_at = utcnow()
    certificate.reject_reason = reason[:REASON_LENGTH]
    audit.record(
        organizer,
        "certificate.rejected",
        certificate,
        before=before,
        after={**_snapshot(certificate), "reason": certificate.reject_reason},
    )
    _tell_coop(
        certificate,
        "certificate.rejected",
        _l(
            "%(kind)s证书 %(number)s 被驳回", kind=certificate.kind_label, number=certificate.number
        ),
        _l("驳回理由：%(reason)s。请修改后重新提交。", reason=certificate.reject_reason),
    )
    db.session.commit()
    return certificate
