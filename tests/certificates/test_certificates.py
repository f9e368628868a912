"""Issue 16, point 2: co-ops upload certificates, organizers verify or reject them (audited, the
co-op told), verified and unexpired ones show as badges on product cards and pages and go by
themselves the day after their last day (cached pages too), and the storefront filters by them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import time_machine
from flask import render_template
from sqlalchemy import select

from market import clock
from market.audit.models import AuditEvent
from market.catalog.models import Product
from market.certificates import queries
from market.certificates.models import Certificate, CertificateStatus
from market.extensions import db
from market.notifications.models import Notification
from tests.certificates.conftest import (
    badges,
    certificate_count,
    certificates_cell,
    last_certificate_id,
    png_file,
    upload,
    valid_until_of,
)


def text(response) -> str:
    return response.get_data(as_text=True)


def notifications_of(app, user_id: int) -> list[Notification]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )
        db.session.expunge_all()
        return rows


# -- uploading -------------------------------------------------------------------------------------
def test_a_co_op_uploads_a_certificate_which_waits_for_review(app, world, manager, organizer):
    response = upload(manager, world)
    assert response.status_code == 303
    page = text(manager.get("/coop/certificates"))
    assert "FX-2026-0001" in page and "待审核" in page and "原生态蜂蜜" in page
    certificate_id = last_certificate_id(app)
    with app.app_context():
        certificate = db.session.get(Certificate, certificate_id)
        assert certificate.status == CertificateStatus.PENDING
        assert [p.id for p in certificate.products] == [world.honey_product]
        stored = Path(app.config["PRIVATE_UPLOAD_DIR"]) / certificate.file_path
        assert certificate.file_path.startswith("certificates/") and stored.is_file()
    # In the organizers' queue, the scan to both, privately; not shown on the storefront yet.
    assert "FX-2026-0001" in text(organizer.get("/admin/certificates"))
    for who in (manager, organizer):
        scan = who.get(f"/certificates/{certificate_id}/file")
        assert scan.status_code == 200 and scan.data.startswith(b"%PDF-")
        assert scan.headers["Cache-Control"] == "private, no-store"
    assert not certificates_cell(text(manager.get(f"/products/{world.honey_product}")))
    # The organizers, who act next, are told.
    told = notifications_of(app, world.organizer)
    assert [(n.kind, n.link) for n in told] == [("certificate.submitted", "/admin/certificates")]
    assert "古丁南药合作社" in told[0].title and "FX-2026-0001" in told[0].body


def test_a_png_scan_is_taken(app, world, manager):
    assert upload(manager, world, file=png_file()).status_code == 303
    assert certificate_count(app) == 1


def test_a_file_that_is_no_pdf_or_picture_is_refused_by_its_content(app, world, manager):
    fake = (io.BytesIO(b"MZ\x90\x00 this is a program, not a scan"), "scan.pdf")
    response = upload(manager, world, file=fake)
    assert response.status_code == 400
    assert "只接受 PDF、JPEG 或 PNG" in text(response)
    assert certificate_count(app) == 0
    # An OFD (a ZIP with OFD.xml), fine for invoices, is no certificate scan either.
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("OFD.xml", "<ofd/>")
    response = upload(manager, world, file=(io.BytesIO(buffer.getvalue()), "scan.ofd"))
    assert response.status_code == 400 and certificate_count(app) == 0


def test_a_missing_scan_is_refused(app, world, manager):
    response = upload(manager, world, file=None)
    assert response.status_code == 400 and "请上传证书扫描件" in text(response)
    assert certificate_count(app) == 0


def test_bad_dates_are_form_errors_and_store_nothing(app, world, manager):
    yesterday = (clock.today() - timedelta(days=1)).isoformat()
    response = upload(manager, world, valid_until=yesterday)
    assert response.status_code == 400 and "证书已过有效期" in text(response)
    for bad in ("9999-12-31", "0001-01-01", "2026-02-30", "明年", ""):
        response = upload(manager, world, valid_until=bad)
        assert response.status_code == 400, bad
    assert certificate_count(app) == 0


def test_coverage_is_checked(app, world, manager):
    # Only a 食品经营许可 covers everything; another co-op's product cannot be named.
    response = upload(manager, world, covers_all_products="y", product_ids=None)
    assert response.status_code == 400 and "只有食品经营许可" in text(response)
    response = upload(manager, world, product_ids=None)
    assert response.status_code == 400 and "请选择证书覆盖的商品" in text(response)
    response = upload(manager, world, product_ids=[world.lychee])
    assert response.status_code == 400
    response = upload(manager, world, coop_id=world.other_coop)
    assert response.status_code == 400
    assert certificate_count(app) == 0


# -- verifying: the badges -------------------------------------------------------------------------
def test_a_verified_certificate_shows_on_the_card_and_the_product_page(
    app, client, world, verified
):
    cards = text(client.get("/category/honey"))
    assert any("富硒" in badge for badge in badges(cards))
    assert any("富硒" in badge for badge in badges(text(client.get("/"))))
    cell = certificates_cell(text(client.get(f"/products/{world.honey_product}")))
    day = valid_until_of(app, verified).isoformat()
    assert "富硒" in cell and "FX-2026-0001" in cell and "高州市农业农村局" in cell and day in cell
    # Only the products it covers.
    assert not certificates_cell(text(client.get(f"/products/{world.herb_product}")))


def test_verifying_tells_the_co_op_and_is_audited(app, world, verified):
    told = notifications_of(app, world.coop_manager)
    assert [n.kind for n in told] == ["certificate.verified"]
    assert "FX-2026-0001" in told[0].title and told[0].link == "/coop/certificates"
    with app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "certificate.verified")
        )
        assert event.actor_id == world.organizer and event.object_id == str(verified)
        assert event.before["status"] == "pending" and event.after["status"] == "verified"


def test_a_verified_certificate_is_final(app, world, manager, organizer, verified):
    again = organizer.post(f"/admin/certificates/{verified}/verify", follow_redirects=True)
    assert "不能改为" in text(again)
    edit = manager.post(
        f"/coop/certificates/{verified}/edit",
        data={
            "coop_id": world.coop,
            "kind": "organic",
            "number": "X",
            "issuer": "Y",
            "valid_until": clock.today().isoformat(),
            "product_ids": [world.honey_product],
        },
        content_type="multipart/form-data",
    )
    assert edit.status_code == 400
    with app.app_context():
        assert db.session.get(Certificate, verified).number == "FX-2026-0001"


def test_a_co_op_wide_licence_badges_every_product_of_the_co_op(
    app, client, world, manager, organizer
):
    response = upload(
        manager,
        world,
        kind="food_business_licence",
        number="JY144098100001",
        covers_all_products="y",
        product_ids=None,
    )
    assert response.status_code == 303
    organizer.post(f"/admin/certificates/{last_certificate_id(app)}/verify")
    for product_id in (world.honey_product, world.herb_product):
        assert "食品经营许可" in certificates_cell(text(client.get(f"/products/{product_id}")))
    assert not certificates_cell(text(client.get(f"/products/{world.lychee}")))


# -- rejecting -------------------------------------------------------------------------------------
def test_an_organizers_rejection_is_audited_and_shows_no_badge(
    app, client, world, manager, organizer
):
    upload(manager, world)
    certificate_id = last_certificate_id(app)
    response = organizer.post(
        f"/admin/certificates/{certificate_id}/reject", data={"reason": "编号与发证机关记录不符"}
    )
    assert response.status_code == 303
    with app.app_context():
        event = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "certificate.rejected")
        )
        assert event is not None
        assert event.actor_id == world.organizer and event.actor_role == "organizer"
        assert (event.object_type, event.object_id) == ("Certificate", str(certificate_id))
        assert event.before["status"] == "pending"
        assert event.after["status"] == "rejected"
        assert event.after["reason"] == "编号与发证机关记录不符"
        certificate = db.session.get(Certificate, certificate_id)
        assert certificate.status == CertificateStatus.REJECTED
        assert certificate.reviewed_by_id == world.organizer and certificate.reviewed_at
    assert not certificates_cell(text(client.get(f"/products/{world.honey_product}")))
    assert not badges(text(client.get("/category/honey")))
    told = notifications_of(app, world.coop_manager)
    assert [n.kind for n in told] == ["certificate.rejected"]
    assert "编号与发证机关记录不符" in told[0].body
    page = text(manager.get("/coop/certificates"))
    assert "已驳回" in page and "编号与发证机关记录不符" in page
    # The audit log page shows it to organizers.
    assert "驳回证书" in text(organizer.get("/admin/audit"))


def test_a_rejection_needs_a_reason(app, world, manager, organizer):
    upload(manager, world)
    certificate_id = last_certificate_id(app)
    organizer.post(f"/admin/certificates/{certificate_id}/reject", data={"reason": "  "})
    with app.app_context():
        assert db.session.get(Certificate, certificate_id).status == CertificateStatus.PENDING
        assert (
            db.session.scalar(select(AuditEvent).where(AuditEvent.action.like("certificate.%")))
            is None
        )


def test_a_rejected_certificate_corrected_goes_back_to_the_queue(app, world, manager, organizer):
    upload(manager, world)
    certificate_id = last_certificate_id(app)
    organizer.post(f"/admin/certificates/{certificate_id}/reject", data={"reason": "扫描件不清晰"})
    assert manager.get(f"/coop/certificates/{certificate_id}/edit").status_code == 200
    response = manager.post(
        f"/coop/certificates/{certificate_id}/edit",
        data={
            "coop_id": world.coop,
            "kind": "selenium_rich",
            "number": "FX-2026-0001A",
            "issuer": "高州市农业农村局",
            "valid_until": (clock.today() + timedelta(days=30)).isoformat(),
            "product_ids": [world.honey_product, world.herb_product],
            "file": png_file(),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    with app.app_context():
        certificate = db.session.get(Certificate, certificate_id)
        assert certificate.status == CertificateStatus.PENDING and certificate.reject_reason == ""
        assert certificate.number == "FX-2026-0001A" and certificate.file_path.endswith(".png")
        assert {p.id for p in certificate.products} == {world.honey_product, world.herb_product}
    assert "FX-2026-0001A" in text(organizer.get("/admin/certificates"))


# -- expiry ----------------------------------------------------------------------------------------
def _beijing(day, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=clock.SHANGHAI).astimezone(UTC)


def test_a_certificate_expires_and_its_badge_disappears(app, client, world, verified):
    """Shown on its last day (from the cache, too), gone the next day with nothing run: the
    cached anonymous product page and listing included."""
    last_day = valid_until_of(app, verified)
    product, listing = f"/products/{world.honey_product}", "/category/honey"
    with time_machine.travel(_beijing(last_day, 23), tick=False):
        assert "富硒" in certificates_cell(text(client.get(product)))
        again = client.get(product)
        assert again.headers["X-Cache"] == "hit" and "富硒" in certificates_cell(text(again))
        client.get(listing)
        cached = client.get(listing)
        assert cached.headers["X-Cache"] == "hit" and badges(text(cached))
    with time_machine.travel(_beijing(last_day + timedelta(days=1), 0), tick=False):
        assert not certificates_cell(text(client.get(product)))
        assert not badges(text(client.get(listing)))
        assert "?cert=selenium_rich" in text(client.get(listing))  # the chip is still offered
        assert "原生态蜂蜜" not in text(client.get("/products?cert=selenium_rich"))
        with app.app_context():
            assert queries.valid_for_product(world.honey_product) == []
            assert db.session.get(Certificate, verified).expired


# -- the storefront filter -------------------------------------------------------------------------
def test_the_storefront_filters_by_certificate_kind(app, client, world, verified):
    only = text(client.get("/products?cert=selenium_rich"))
    assert "原生态蜂蜜" in only and "藿香" not in only and "白糖罂荔枝" not in only
    assert 'aria-current="true">富硒' in only
    assert "原生态蜂蜜" not in text(client.get("/products?cert=organic"))
    in_category = text(client.get("/category/honey?cert=selenium_rich"))
    assert "原生态蜂蜜" in in_category
    assert "原生态蜂蜜" not in text(client.get("/category/herbs?cert=selenium_rich"))
    # With a search word, the filter and the word both hold; an unknown kind is ignored.
    assert "原生态蜂蜜" in text(client.get("/products?q=蜂蜜&cert=selenium_rich"))
    for junk in ("nonsense", "", "selenium_rich'--", "界" * 300):
        response = client.get("/products", query_string={"cert": junk})
        assert response.status_code == 200
        page = text(response)
        assert "原生态蜂蜜" in page and "白糖罂荔枝" in page


def test_a_pending_certificate_filters_nothing_in(app, client, world, manager):
    upload(manager, world)
    assert "原生态蜂蜜" not in text(client.get("/products?cert=selenium_rich"))


# -- who may ---------------------------------------------------------------------------------------
def test_only_the_co_op_and_organizers_see_a_certificate(app, client, client_as, world, manager):
    upload(manager, world)
    certificate_id = last_certificate_id(app)
    other = client_as("other_coop_manager")
    assert other.get(f"/certificates/{certificate_id}/file").status_code == 404
    assert other.get(f"/coop/certificates/{certificate_id}/edit").status_code == 404
    assert "FX-2026-0001" not in text(other.get("/coop/certificates"))
    buyer = client_as("buyer")
    for path in (
        "/coop/certificates",
        "/admin/certificates",
        f"/certificates/{certificate_id}/file",
    ):
        assert buyer.get(path).status_code == 403, path
        anonymous = client.get(path)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"], path
    # Only organizers decide.
    for who in (manager, other, buyer):
        assert who.post(f"/admin/certificates/{certificate_id}/verify").status_code == 403
        assert (
            who.post(
                f"/admin/certificates/{certificate_id}/reject", data={"reason": "x"}
            ).status_code
            == 403
        )
    assert client_as("organizer").post("/admin/certificates/99999/verify").status_code == 404
    with app.app_context():
        assert db.session.get(Certificate, certificate_id).status == CertificateStatus.PENDING


# -- the trace page's slot and the demo ------------------------------------------------------------
def test_the_trace_section_lists_the_products_valid_certificates(app, world, verified):
    with app.test_request_context():
        product = db.session.get(Product, world.honey_product)
        html = render_template("certificates/_trace_section.html", product=product)
        assert "富硒" in html and "FX-2026-0001" in html
        other = db.session.get(Product, world.lychee)
        assert "trace-certificates" not in render_template(
            "certificates/_trace_section.html", product=other
        )


def test_the_demo_has_verified_certificates_for_guding_products(app, client):
    from market.demo import default_data_dir, seed_demo

    with app.app_context():
        assert seed_demo(default_data_dir()) is True
        by_name = {
            p.name: p.id
            for p in db.session.scalars(
                select(Product).where(Product.name.in_(["高山红薯", "原生态蜂蜜"]))
            )
        }
    assert "富硒" in certificates_cell(text(client.get(f"/products/{by_name['高山红薯']}")))
    honey = certificates_cell(text(client.get(f"/products/{by_name['原生态蜂蜜']}")))
    assert "绿色食品" in honey and "食品经营许可" in honey and "示例" in honey
    # The catalog's 地理标志 lychee and longan: a verified certificate of their co-op each.
    with app.app_context():
        lychee = db.session.scalar(select(Product.id).where(Product.name == "白糖罂荔枝"))
        honey_of_lychee_village = db.session.scalar(
            select(Product.id).where(Product.name == "龙眼蜜")
        )
    assert "地理标志" in certificates_cell(text(client.get(f"/products/{lychee}")))
    assert "地理标志" not in certificates_cell(
        text(client.get(f"/products/{honey_of_lychee_village}"))
    )
