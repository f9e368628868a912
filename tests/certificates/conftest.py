"""Certificates through the real pages: the co-op manager uploads, an organizer decides."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from market import clock
from market.certificates.models import Certificate
from market.extensions import db
from tests import factories

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def pdf_file(name: str = "scan.pdf"):
    return (io.BytesIO(PDF), name)


def png_file(name: str = "scan.png"):
    return (io.BytesIO(factories.image_bytes("PNG")), name)


def form(world, **changes) -> dict:
    """An upload of a 富硒 certificate for 原生态蜂蜜, valid for a year."""
    data = {
        "coop_id": world.coop,
        "kind": "selenium_rich",
        "number": "FX-2026-0001",
        "issuer": "高州市农业农村局",
        "valid_until": (clock.today() + timedelta(days=365)).isoformat(),
        "product_ids": [world.honey_product],
        "file": pdf_file(),
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def upload(manager, world, **changes):
    return manager.post(
        "/coop/certificates", data=form(world, **changes), content_type="multipart/form-data"
    )


def last_certificate_id(app) -> int | None:
    with app.app_context():
        return db.session.scalar(select(func.max(Certificate.id)))


def certificate_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Certificate)) or 0


def badges(page: str) -> list[str]:
    """The certificate badges of the product cards on a page."""
    return re.findall(r'<div class="cert-badges[^"]*">(.*?)</div>', page, flags=re.S)


def certificates_cell(page: str) -> str:
    match = re.search(r'id="product-certificates">(.*?)</dd>', page, flags=re.S)
    return match.group(1) if match else ""


@pytest.fixture
def manager(client_as):
    return client_as("coop_manager")


@pytest.fixture
def organizer(client_as):
    return client_as("organizer")


@pytest.fixture
def verified(app, world, manager, organizer) -> int:
    """A verified 富硒 certificate of 原生态蜂蜜, valid for a year: its id."""
    assert upload(manager, world).status_code == 303
    certificate_id = last_certificate_id(app)
    response = organizer.post(f"/admin/certificates/{certificate_id}/verify")
    assert response.status_code == 303
    return certificate_id


def valid_until_of(app, certificate_id: int) -> date:
    with app.app_context():
        return db.session.get(Certificate, certificate_id).valid_until
