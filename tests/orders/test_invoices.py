"""Invoices (发票) for a unit's orders: the unit asks with 抬头, 税号 and address (kept as data);
the co-op or finance uploads the e-invoice (PDF, OFD or picture, checked by content, kept
private) or marks it issued with its number; the unit downloads it, never cached; the order
lists filter 发票未开."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from market.extensions import db
from market.orders.models import Invoice, InvoiceStatus
from tests import factories
from tests.orders.conftest import sku_of
from tests.procurement.test_purchases import TAX_ID, approved, orders_of


def real_pdf() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (255, 255, 255)).save(buffer, format="PDF")
    return buffer.getvalue()


def ofd() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "OFD.xml", '<?xml version="1.0"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"/>'
        )
        archive.writestr("Doc_0/Document.xml", "<ofd:Document/>")
    return buffer.getvalue()


@pytest.fixture
def order_number(app, client_as, world) -> str:
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 2))
    [order] = orders_of(app, purchase_id)
    return order.number


def request_invoice(client, number: str, **overrides):
    data = {"title": "高州市市场监管局", "tax_id": TAX_ID, "address": "fapiao@example.com"}
    data.update(overrides)
    return client.post(f"/unit/orders/{number}/invoice", data=data)


def invoice_of(app, number: str) -> Invoice | None:
    from market.orders.models import Order

    with app.app_context():
        invoice = db.session.scalar(
            select(Invoice).join(Order, Order.id == Invoice.order_id).where(Order.number == number)
        )
        db.session.expunge_all()
        return invoice


def issue(client, invoice_id: int, number: str = "", file: tuple[bytes, str] | None = None):
    data: dict = {"number": number}
    if file is not None:
        data["file"] = (io.BytesIO(file[0]), file[1])
    return client.post(
        f"/invoices/{invoice_id}/issue", data=data, content_type="multipart/form-data"
    )


def test_the_unit_requests_an_invoice_kept_as_data(app, client_as, order_number):
    coordinator = client_as("coordinator")
    form = coordinator.get(f"/unit/orders/{order_number}/invoice").get_data(as_text=True)
    assert TAX_ID in form and "高州市市场监管局" in form  # from the purchase
    response = request_invoice(coordinator, order_number)
    assert response.status_code == 303
    invoice = invoice_of(app, order_number)
    assert (invoice.title, invoice.tax_id, invoice.address) == (
        "高州市市场监管局",
        TAX_ID,
        "fapiao@example.com",
    )
    assert invoice.status == InvoiceStatus.REQUESTED
    page = client_as("approver").get(f"/unit/orders/{order_number}/invoice").get_data(as_text=True)
    assert "发票未开" in page
    # A tax id that is not one is refused by the form.
    bad = request_invoice(coordinator, order_number, tax_id="123")
    assert bad.status_code == 400 and "税号应为 15 到 20 位字母或数字" in bad.get_data(as_text=True)


def test_the_co_op_uploads_a_pdf_and_the_unit_downloads_it_never_cached(
    app, client_as, order_number
):
    request_invoice(client_as("coordinator"), order_number)
    invoice = invoice_of(app, order_number)
    pdf = real_pdf()
    response = issue(client_as("coop_manager"), invoice.id, "04400001", (pdf, "发票.pdf"))
    assert response.status_code == 303
    issued = invoice_of(app, order_number)
    assert issued.status == InvoiceStatus.ISSUED and issued.number == "04400001"
    assert issued.file_path.startswith("invoices/") and issued.file_path.endswith(".pdf")
    stored = Path(app.config["PRIVATE_UPLOAD_DIR"]) / issued.file_path
    assert stored.read_bytes() == pdf
    # Not under the public upload folder, not at /media.
    assert client_as("coordinator").get(f"/media/{issued.file_path}").status_code == 404

    page = client_as("approver").get(f"/unit/orders/{order_number}/invoice").get_data(as_text=True)
    assert "下载电子发票" in page and "04400001" in page
    download = client_as("approver").get(f"/unit/orders/{order_number}/invoice/file")
    assert download.status_code == 200 and download.data == pdf
    assert download.headers["Cache-Control"] == "private, no-store"
    assert download.mimetype == "application/pdf"
    assert "attachment" in download.headers["Content-Disposition"]
    # Another unit, or a plain member, does not get it.
    assert (
        client_as("other_coordinator").get(f"/unit/orders/{order_number}/invoice/file").status_code
        == 404
    )
    assert client_as("employee").get(f"/unit/orders/{order_number}/invoice/file").status_code == 403
    assert client_as("other_coop_manager").get(f"/invoices/{invoice.id}/file").status_code == 404
    assert client_as("finance").get(f"/invoices/{invoice.id}/file").data == pdf


@pytest.mark.parametrize(
    "content, name",
    [
        (b"<html><script>alert(1)</script></html>", "发票.pdf"),  # a "PDF" that is not one
        (b"%PDF-1.7\n1 0 obj <<>> endobj\n", "cut.pdf"),  # a PDF that stops half-way
        (b"PK\x03\x04 not really a zip", "发票.ofd"),
    ],
)
def test_a_file_that_is_not_an_e_invoice_is_refused(app, client_as, order_number, content, name):
    request_invoice(client_as("coordinator"), order_number)
    invoice = invoice_of(app, order_number)
    co_op = client_as("coop_manager")
    response = issue(co_op, invoice.id, "", (content, name))
    assert response.status_code == 303
    after = invoice_of(app, order_number)
    assert after.status == InvoiceStatus.REQUESTED and after.file_path is None
    page = co_op.get(response.headers["Location"]).get_data(as_text=True)
    assert "电子发票" in page and ("不是有效" in page or "不完整" in page)


def test_ofd_and_picture_invoices_are_accepted_and_size_is_limited(app, client_as, world):
    numbers = [
        orders_of(app, approved(client_as, (sku_of(app, world.honey_product), 1)))[0].number
        for _ in range(3)
    ]
    coordinator, co_op = client_as("coordinator"), client_as("coop_manager")
    for number in numbers:
        request_invoice(coordinator, number)
    first, second, third = (invoice_of(app, n) for n in numbers)
    issue(co_op, first.id, "", (ofd(), "发票.ofd"))
    assert invoice_of(app, numbers[0]).file_path.endswith(".ofd")
    issue(co_op, second.id, "", (factories.image_bytes("PNG"), "发票.png"))
    assert invoice_of(app, numbers[1]).file_path.endswith(".png")
    app.config["MAX_INVOICE_BYTES"] = 1024
    try:
        response = issue(co_op, third.id, "", (real_pdf() + b" " * 2048, "big.pdf"))
    finally:
        app.config["MAX_INVOICE_BYTES"] = 10 * 1024 * 1024
    assert response.status_code == 303
    assert invoice_of(app, numbers[2]).status == InvoiceStatus.REQUESTED


def test_finance_marks_it_issued_with_its_number_once(app, client_as, order_number):
    request_invoice(client_as("coordinator"), order_number)
    invoice = invoice_of(app, order_number)
    finance = client_as("finance")
    assert "高州市市场监管局" in finance.get("/finance/invoices").get_data(as_text=True)
    issue(finance, invoice.id, "")  # neither number nor file: refused
    assert invoice_of(app, order_number).status == InvoiceStatus.REQUESTED
    issue(finance, invoice.id, "44001234")
    issued = invoice_of(app, order_number)
    assert issued.status == InvoiceStatus.ISSUED and issued.number == "44001234"
    assert issued.file_path is None
    page = client_as("coordinator").get(f"/unit/orders/{order_number}/invoice")
    assert "44001234" in page.get_data(as_text=True)
    second = finance.post(
        f"/invoices/{invoice.id}/issue", data={"number": "44009999"}, follow_redirects=True
    )
    assert "发票已开具" in second.get_data(as_text=True)
    assert invoice_of(app, order_number).number == "44001234"
    # The unit can no longer change what was issued.
    changed = request_invoice(client_as("coordinator"), order_number, title="别的抬头")
    assert invoice_of(app, order_number).title == "高州市市场监管局"
    assert changed.status_code == 400 and "发票已开具，不能再修改" in changed.get_data(as_text=True)
    # Another co-op (not supplying the order) may not issue it.
    assert issue(client_as("other_coop_manager"), invoice.id, "1").status_code == 404


def test_the_order_lists_filter_invoices_outstanding(app, client_as, world):
    first, second = (
        orders_of(app, approved(client_as, (sku_of(app, world.honey_product), 1)))[0].number
        for _ in range(2)
    )
    request_invoice(client_as("coordinator"), first)
    request_invoice(client_as("coordinator"), second)
    issue(client_as("finance"), invoice_of(app, second).id, "44000002")

    organizer = client_as("organizer")
    everything = organizer.get("/admin/orders").get_data(as_text=True)
    assert f"<td>{first}</td>" in everything and f"<td>{second}</td>" in everything
    outstanding = organizer.get("/admin/orders?invoice=outstanding").get_data(as_text=True)
    assert f"<td>{first}</td>" in outstanding and f"<td>{second}</td>" not in outstanding
    assert "发票未开" in outstanding

    inbox = client_as("coop_manager").get("/coop/orders?tab=invoice").get_data(as_text=True)
    assert first in inbox and second not in inbox
    assert (
        client_as("other_coop_manager")
        .get("/coop/orders?tab=invoice")
        .get_data(as_text=True)
        .count("invoice-issue")
        == 0
    )
