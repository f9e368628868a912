"""Read side of certificates: the badges a storefront page shows (verified, valid today), the
storefront filter, the co-op's own list and the organizers' queue."""

from __future__ import annotations

from collections.abc import Iterable

from flask import g
from flask_babel import gettext as _
from sqlalchemy import Select, and_, or_, select, union
from sqlalchemy.orm import joinedload, selectinload

from market.accounts.models import User
from market.catalog.models import Product
from market.certificates.models import (
    KIND_ORDER,
    Certificate,
    CertificateKind,
    CertificateStatus,
    certificate_products,
)
from market.clock import today
from market.directory.models import Coop
from market.errors import NotFound
from market.extensions import db
from market.security.inputs import clamp_page

PER_PAGE = 50


def _valid() -> list:
    """Verified and not past its last day (Beijing's today): read at every page, nothing runs."""
    return [Certificate.status == CertificateStatus.VERIFIED, Certificate.valid_until >= today()]


# -- the storefront --------------------------------------------------------------------------------
def valid_by_product(product_ids: Iterable[int]) -> dict[int, list[Certificate]]:
    """The valid certificates covering each product (named for it, or its co-op's certificate
    for all its products), one per kind (the one valid longest), in the kinds' order; one query
    however many products."""
    ids = sorted(set(product_ids))
    if not ids:
        return {}
    named = select(
        certificate_products.c.product_id.label("product_id"),
        certificate_products.c.certificate_id.label("certificate_id"),
    ).where(certificate_products.c.product_id.in_(ids))
    coop_wide = (
        select(Product.id.label("product_id"), Certificate.id.label("certificate_id"))
        .join(
            Certificate,
            and_(Certificate.coop_id == Product.coop_id, Certificate.covers_all_products),
        )
        .where(Product.id.in_(ids))
    )
    covered = union(named, coop_wide).subquery()
    rows = db.session.execute(
        select(covered.c.product_id, Certificate)
        .join(Certificate, Certificate.id == covered.c.certificate_id)
        .where(*_valid())
        .order_by(Certificate.valid_until.desc(), Certificate.id)
    )
    found: dict[int, dict[CertificateKind, Certificate]] = {i: {} for i in ids}
    for product_id, certificate in rows:
        found[product_id].setdefault(certificate.kind, certificate)
    return {
        product_id: sorted(kinds.values(), key=lambda c: KIND_ORDER[c.kind])
        for product_id, kinds in found.items()
    }


def valid_for_product(product_id: int) -> list[Certificate]:
    """The product's valid certificates (for its page and its batches' trace page)."""
    return valid_by_product([product_id])[product_id]


def badges_for(product: Product) -> list[Certificate]:
    """The badges of a product card or page (the template global `product_badges`), without a
    query per card: the first card of a request loads the badges of every product the request
    has loaded (its page's products are loaded before it is drawn), later cards read them."""
    memo: dict[int, list[Certificate]] = g.setdefault("certificate_badges", {})
    if product.id not in memo:
        loaded = {
            obj.id
            for obj in db.session.identity_map.values()
            if isinstance(obj, Product) and obj.id is not None and obj.id not in memo
        }
        memo.update(valid_by_product(loaded | {product.id}))
    return memo[product.id]


def product_ids_with(kind: CertificateKind) -> Select:
    """The products a valid certificate of `kind` covers, as a subquery (the storefront's
    ?cert= filter)."""
    named = (
        select(certificate_products.c.product_id)
        .join(Certificate, Certificate.id == certificate_products.c.certificate_id)
        .where(Certificate.kind == kind, *_valid())
    )
    coop_wide = select(Certificate.coop_id).where(
        Certificate.kind == kind, Certificate.covers_all_products, *_valid()
    )
    return select(Product.id).where(or_(Product.id.in_(named), Product.coop_id.in_(coop_wide)))


# -- the co-op -------------------------------------------------------------------------------------
def coop_certificates(user: User) -> list[Certificate]:
    """Every certificate of the co-ops the user manages, the newest first."""
    coop_ids = [coop.id for coop in user.managed_coops()]
    if not coop_ids:
        return []
    return list(
        db.session.scalars(
            select(Certificate)
            .where(Certificate.coop_id.in_(coop_ids))
            .options(selectinload(Certificate.products), joinedload(Certificate.coop))
            .order_by(Certificate.id.desc())
        )
    )


def own_certificate(user: User, certificate_id: int) -> Certificate:
    """One of the user's co-ops' certificates; any other (or none) is a 404."""
    certificate = db.session.get(Certificate, certificate_id)
    if certificate is None or certificate.coop_id not in {c.id for c in user.managed_coops()}:
        raise NotFound(_("找不到该证书"))
    return certificate


def visible_certificate(user: User, certificate_id: int) -> Certificate:
    """A certificate whose file the user may see: an organizer (or admin) any, a co-op manager
    their co-ops' own; any other is a 404."""
    if user.is_organizer or user.is_admin:
        certificate = db.session.get(Certificate, certificate_id)
        if certificate is None:
            raise NotFound(_("找不到该证书"))
        return certificate
    return own_certificate(user, certificate_id)


# -- the organizers --------------------------------------------------------------------------------
def review_queue(status: CertificateStatus, page: int):
    """Certificates in `status`: the pending ones the oldest first (the queue), the decided ones
    the newest first."""
    query = select(Certificate).where(Certificate.status == status)
    query = query.options(
        joinedload(Certificate.coop).joinedload(Coop.village),
        selectinload(Certificate.products),
        joinedload(Certificate.reviewed_by),
    )
    order = Certificate.id if status == CertificateStatus.PENDING else Certificate.id.desc()
    return db.paginate(
        query.order_by(order), page=clamp_page(page), per_page=PER_PAGE, error_out=False
    )
