"""先货后款 in the browser: a unit purchase is approved; the co-op ships it before payment and the
unit sees the payment term; the unit asks for an invoice; the co-op uploads the e-invoice, which
the unit downloads; finance lists the order as unpaid on credit; the unit pays by transfer after
delivery and finance confirms it: the order is paid."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.steps import sign_in
from tests.e2e.test_procurement import (
    APPROVER,
    COOP_MANAGER,
    COORDINATOR,
    FINANCE,
    PURCHASE_URL,
    TAX_ID,
    choose_line,
)

pytestmark = pytest.mark.e2e


def small_pdf() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (255, 255, 255)).save(buffer, format="PDF")
    return buffer.getvalue()


def draft_and_submit(page: Page) -> int:
    """The coordinator drafts a welfare purchase of 古丁村's honey and submits it."""
    page.goto("/unit/purchases/new")
    form = page.locator("#purchase-form")
    choose_line(form, 1, "原生态蜂蜜", 6)
    form.get_by_label("税号（统一社会信用代码）").fill(TAX_ID)
    form.get_by_role("button", name="保存采购单").click()
    expect(page).to_have_url(PURCHASE_URL)
    page.get_by_role("button", name="提交审批").click()
    expect(page.locator("#purchase-status")).to_have_text("待审批")
    return int(PURCHASE_URL.search(page.url).group(1))


def test_a_unit_purchase_shipped_before_payment_invoiced_and_paid_after_delivery(
    e2e_open_page: Callable[..., Page], e2e_console_errors: list[str]
) -> None:
    coordinator = e2e_open_page(mobile=False)
    sign_in(coordinator, COORDINATOR)
    purchase_id = draft_and_submit(coordinator)
    url = f"/unit/purchases/{purchase_id}"

    approver = e2e_open_page()
    approver.on("dialog", lambda dialog: dialog.accept())
    sign_in(approver, APPROVER)
    approver.goto(url)
    approver.get_by_role("button", name="批准").click()
    expect(approver.get_by_role("alert").filter(has_text="已批准")).to_be_visible()
    number = approver.locator("tr.purchase-order").first.get_attribute("data-number")

    # The co-op ships before the unit has paid (先货后款).
    coop = e2e_open_page()
    sign_in(coop, COOP_MANAGER)
    coop.goto("/coop/orders?tab=awaiting")
    parcel = coop.locator(".inbox-shipment").filter(has_text=number)
    expect(parcel).to_contain_text("单位订单可先货后款")
    parcel.get_by_label("快递公司").fill("顺丰速运")
    parcel.get_by_label("运单号").fill("SF1234567890")
    parcel.get_by_role("button", name="先货后款发货").click()
    expect(coop.get_by_role("alert").filter(has_text="已发货")).to_be_visible()

    # The unit sees the order shipped, unpaid, with its due date.
    coordinator.goto(url)
    row = coordinator.locator("tr.purchase-order").filter(has_text=number)
    expect(row.locator(".order-status")).to_have_text("先货后款 · 待付款")
    expect(row.locator(".payment-due")).to_contain_text(re.compile(r"付款期限 \d{4}-\d{2}-\d{2}"))

    # The unit asks for the invoice; the purchase's 抬头 and 税号 are already filled in.
    row.get_by_role("link", name="发票").click()
    form = coordinator.locator("#invoice-form")
    expect(form.get_by_label("发票抬头")).to_have_value("高州市市场监管局")
    form.get_by_label("寄送地址或接收邮箱").fill("caiwu@scjgj.example.com")
    form.get_by_role("button", name="申请发票").click()
    expect(coordinator.get_by_role("alert").filter(has_text="已申请发票")).to_be_visible()
    expect(coordinator.locator("#invoice-status")).to_have_text("发票未开")

    # The co-op finds it under 发票未开 and uploads the e-invoice.
    coop.goto("/coop/orders")
    coop.locator(".nav-tabs").get_by_role("link", name="发票未开").click()
    request = coop.locator(".inbox-shipment").filter(has_text=number).locator(".invoice-issue")
    request.get_by_label("发票号码").fill("44000012")
    pdf = small_pdf()
    request.get_by_label("电子发票（PDF、OFD 或图片）").set_input_files(
        files=[{"name": "发票.pdf", "mimeType": "application/pdf", "buffer": pdf}]
    )
    request.get_by_role("button", name="登记开票").click()
    expect(coop.get_by_role("alert").filter(has_text="发票已登记开具")).to_be_visible()

    # The unit downloads it; it is never cached.
    coordinator.reload()
    expect(coordinator.locator("#invoice-number")).to_have_text("44000012")
    with coordinator.expect_download() as download:
        coordinator.locator("#invoice-download").click()
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == pdf
    response = coordinator.request.get(
        coordinator.locator("#invoice-download").get_attribute("href")
    )
    assert response.headers["cache-control"] == "private, no-store"

    # Finance lists the order as shipped on credit, not yet overdue.
    finance = e2e_open_page(mobile=False)
    sign_in(finance, FINANCE)
    finance.goto("/finance")
    finance.locator("#finance-nav").get_by_role("link", name="先货后款").click()
    finance.get_by_role("link", name="全部未付").click()
    expect(finance.locator("tr.overdue-order").filter(has_text=number)).to_contain_text("发票已开")

    # The unit pays by transfer after delivery; finance confirms it.
    coordinator.goto(url)
    coordinator.get_by_role("button", name="对公转账付款").click()
    expect(coordinator.locator("#transfer-instructions")).to_contain_text(number)
    finance.goto("/finance/receipts")
    receipt = finance.locator("tr").filter(has_text=number)
    expect(receipt).to_contain_text("付款期限")
    receipt.get_by_label("银行流水号").fill("GDNX-20241001-0042")
    receipt.get_by_label("到账日期").fill(date.today().isoformat())
    receipt.get_by_role("button", name="确认到账").click()
    expect(finance.get_by_role("alert").filter(has_text="已确认收款")).to_be_visible()

    coordinator.reload()
    order_row = coordinator.locator("tr.purchase-order").filter(has_text=number)
    expect(order_row.locator(".order-status")).to_have_text("已付款")
    assert e2e_console_errors == []
