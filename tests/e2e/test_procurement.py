"""以买代帮 in the browser: the coordinator of 高州市市场监管局 drafts a canteen purchase of
古丁村's products with the unit's invoice details and submits it; the approver approves it on a
phone; the co-op sees the order in its inbox; the coordinator pays by bank transfer; finance
confirms the transfer; the coordinator's purchase page shows the order paid."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.steps import open_menu_link, sign_in

pytestmark = pytest.mark.e2e

COORDINATOR = "coordinator@example.com"
APPROVER = "approver@example.com"
COOP_MANAGER = "coop@example.com"  # 高州市古丁南药种植专业合作社 of 古丁村
FINANCE = "finance@example.com"
UNIT = "高州市市场监管局"
TAX_ID = "11440981007071234X"
PURCHASE_URL = re.compile(r"/unit/purchases/(\d+)$")


def choose_line(form, row: int, product: str, quantity: int) -> None:
    """Pick `product` (of the paired village, offered first) in line `row` of the form."""
    select = form.get_by_label(f"商品 {row}", exact=True)
    option = select.locator("option", has_text=f"【结对村】古丁村 · {product}").first
    select.select_option(value=option.get_attribute("value"))
    form.get_by_label(f"商品 {row} 的数量").fill(str(quantity))


def draft_and_submit(page: Page) -> int:
    open_menu_link(page, "单位工作台", "以买代帮")
    expect(page.get_by_role("heading", name=re.compile("以买代帮"))).to_be_visible()
    page.get_by_role("link", name="新建采购单").click()
    form = page.locator("#purchase-form")
    expect(form.get_by_label("用途", exact=True)).to_have_value("canteen")  # 食堂采购
    expect(form.get_by_label("发票抬头")).to_have_value(UNIT)
    form.get_by_label("用途说明（可不填）").fill("机关食堂月度采购")
    choose_line(form, 1, "原生态蜂蜜", 30)
    choose_line(form, 2, "藿香", 40)
    form.get_by_label("收货人").fill("王联络")
    form.get_by_label("联系电话").fill("13800000003")
    form.get_by_label("收货地址").fill("高州市府前路 1 号 市场监管局机关食堂")
    form.get_by_label("税号（统一社会信用代码）").fill(TAX_ID)
    form.get_by_role("button", name="保存采购单").click()

    expect(page).to_have_url(PURCHASE_URL)
    purchase_id = int(PURCHASE_URL.search(page.url).group(1))
    expect(page.locator("#purchase-status")).to_have_text("草稿")
    expect(page.locator("#invoice-tax-id")).to_have_text(TAX_ID)
    lines = page.locator("#purchase-lines")
    expect(lines).to_contain_text("原生态蜂蜜")
    expect(lines).to_contain_text("藿香")
    page.get_by_role("button", name="提交审批").click()
    expect(page.get_by_role("alert").filter(has_text="已提交审批")).to_be_visible()
    expect(page.locator("#purchase-status")).to_have_text("待审批")
    expect(page.get_by_role("button", name="批准")).to_have_count(0)
    return purchase_id


def test_a_unit_purchase_from_draft_to_paid(
    e2e_open_page: Callable[..., Page], e2e_console_errors: list[str]
) -> None:
    coordinator = e2e_open_page(mobile=False)
    sign_in(coordinator, COORDINATOR)
    purchase_id = draft_and_submit(coordinator)
    url = f"/unit/purchases/{purchase_id}"

    # The approver, on a phone, approves (accepting the confirmation).
    approver = e2e_open_page()
    approver.on("dialog", lambda dialog: dialog.accept())
    sign_in(approver, APPROVER)
    approver.goto(url)
    expect(approver.locator("#purchase-status")).to_have_text("待审批")
    approver.get_by_role("button", name="批准").click()
    expect(approver.get_by_role("alert").filter(has_text="已批准")).to_be_visible()
    expect(approver.locator("#purchase-status")).to_have_text("已批准")
    orders = approver.locator("tr.purchase-order")
    expect(orders).to_have_count(1)  # both products are the one co-op's: one order
    number = orders.first.get_attribute("data-number")
    expect(orders.first.locator(".order-status")).to_have_text("待付款")
    expect(approver.locator("#purchase-timeline")).to_contain_text("批准，生成 1 张订单")

    # The co-op finds the order in its inbox, awaiting the unit's payment.
    coop = e2e_open_page()
    sign_in(coop, COOP_MANAGER)
    coop.goto("/coop/orders")
    coop.locator(".nav-tabs").get_by_role("link", name="待付款").click()
    parcel = coop.locator(".inbox-shipment").filter(has_text=number)
    expect(parcel).to_have_count(1)
    expect(parcel).to_contain_text("以买代帮")
    expect(parcel).to_contain_text("原生态蜂蜜")
    expect(parcel).to_contain_text("藿香")

    # The coordinator chooses to pay by bank transfer and gets the account and the reference.
    coordinator.goto(url)
    coordinator.get_by_role("button", name="对公转账付款").click()
    instructions = coordinator.locator("#transfer-instructions")
    expect(instructions).to_be_visible()
    expect(instructions).to_contain_text(number)

    # The co-op sees the money awaited, but only finance books it.
    coop.reload()
    expect(coop.locator(".inbox-shipment").filter(has_text=number)).to_contain_text(
        "待财务确认到账"
    )

    # Finance confirms the transfer arrived.
    organizer = e2e_open_page(mobile=False)
    sign_in(organizer, FINANCE)
    organizer.goto("/finance/receipts")
    row = organizer.locator("tr").filter(has_text=number)
    row.get_by_label("银行流水号").fill("GDNX-20240903-0001")
    row.get_by_label("到账日期").fill(date.today().isoformat())
    row.get_by_role("button", name="确认到账").click()
    expect(organizer.get_by_role("alert").filter(has_text="已确认收款")).to_be_visible()

    # The coordinator sees the order paid, and the step on the timeline.
    coordinator.reload()
    order_row = coordinator.locator("tr.purchase-order").filter(has_text=number)
    expect(order_row.locator(".order-status")).to_have_text("已付款")
    expect(coordinator.locator("#purchase-timeline")).to_contain_text(f"订单 {number}")
    expect(coordinator.locator("#transfer-instructions")).to_have_count(0)

    assert e2e_console_errors == []
