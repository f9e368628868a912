"""Demo certificates of 古丁村's co-op, verified by the demo organizer: 富硒 for its
高山红薯, 绿色食品 for its 原生态蜂蜜, and its 食品经营许可 over everything it sells; one more
waits in the organizers' queue. The lychee and longan co-ops hold a 地理标志 certificate for the
products the catalog marks so. Numbers and issuers say 示例: they are examples, not real
certificates. Each has a small generated PDF as its scan (a private document, as an upload
would be)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from market.accounts.models import User
from market.catalog.models import Product
from market.certificates.models import Certificate, CertificateKind, CertificateStatus
from market.clock import today
from market.demo.documents import store_demo_pdf
from market.demo.sources import load_catalog
from market.directory.models import Coop
from market.extensions import db
from market.models import utcnow

# (kind, product names or None for all the co-op's products, number, issuer, verified)
DEMO_CERTIFICATES = [
    (
        CertificateKind.SELENIUM_RICH,
        ["高山红薯"],
        "示例FX-2026-0318",
        "高州市农业农村局（示例）",
        True,
    ),
    (
        CertificateKind.GREEN_FOOD,
        ["原生态蜂蜜"],
        "示例LB-44-2605-1126",
        "中国绿色食品发展中心（示例）",
        True,
    ),
    (
        CertificateKind.FOOD_BUSINESS_LICENCE,
        None,
        "示例JY14409810012345",
        "高州市市场监督管理局（示例）",
        True,
    ),
    (CertificateKind.ORGANIC, ["益智"], "示例OG-2026-0077", "某有机产品认证中心（示例）", False),
]


GI_ISSUER = "国家知识产权局（示例）"


def _scan(number: str) -> str:
    return store_demo_pdf(f"Demo certificate {number}", "certificates")


def seed_certificates(coop_name: str, organizer_email: str) -> list[Certificate]:
    """Flushes; seed_demo commits."""
    coop = db.session.scalar(select(Coop).where(Coop.name == coop_name))
    organizer = db.session.scalar(select(User).where(User.email == organizer_email))
    if coop is None or organizer is None:
        return []
    products = {
        p.name: p for p in db.session.scalars(select(Product).where(Product.coop_id == coop.id))
    }
    valid_until = date(today().year + 2, 12, 31)
    made = []
    for kind, names, number, issuer, verified in DEMO_CERTIFICATES:
        covered = [products[name] for name in names or () if name in products]
        if names and not covered:
            continue
        certificate = Certificate(
            coop_id=coop.id,
            kind=kind,
            number=number,
            issuer=issuer,
            valid_until=valid_until,
            covers_all_products=names is None,
            products=covered,
            file_path=_scan(number),
            status=CertificateStatus.PENDING,
        )
        if verified:
            _verified_by(certificate, organizer)
        db.session.add(certificate)
        made.append(certificate)
    db.session.flush()
    return made


def _verified_by(certificate: Certificate, organizer: User) -> None:
    certificate.move_to(CertificateStatus.VERIFIED)
    certificate.reviewed_by_id = organizer.id
    certificate.reviewed_at = utcnow()


def seed_geographical_indications(organizer_email: str) -> list[Certificate]:
    """A verified 地理标志 certificate for each co-op of the catalog's GI products (高州荔枝 and
    龙眼), covering those products. Flushes; seed_demo commits."""
    organizer = db.session.scalar(select(User).where(User.email == organizer_email))
    names = {seed.name for seed in load_catalog() if seed.geographical_indication}
    if organizer is None or not names:
        return []
    by_coop: dict[int, list[Product]] = {}
    for product in db.session.scalars(
        select(Product).where(Product.name.in_(names)).order_by(Product.id)
    ):
        by_coop.setdefault(product.coop_id, []).append(product)
    made = []
    for coop_id, products in by_coop.items():
        number = f"示例GI-{coop_id:04d}"
        certificate = Certificate(
            coop_id=coop_id,
            kind=CertificateKind.GEOGRAPHICAL_INDICATION,
            number=number,
            issuer=GI_ISSUER,
            valid_until=date(today().year + 5, 12, 31),
            covers_all_products=False,
            products=products,
            file_path=_scan(number),
            status=CertificateStatus.PENDING,
        )
        _verified_by(certificate, organizer)
        db.session.add(certificate)
        made.append(certificate)
    db.session.flush()
    return made
