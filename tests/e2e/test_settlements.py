"""Co-ops get paid, in the browser. An employee buys 原生态蜂蜜 on a phone and pays by bank
transfer; finance confirms the transfer; the co-op ships; the employee confirms receipt; finance
issues the statements; the co-op confirms its statement on a phone; finance records the payout;
the co-op sees it paid. Then the co-op refunds part of the line: the employee sees it owed
(待退款), finance sends it, and the refund is a negative line on the co-op's next statement."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from market import clock
from market.extensions import db
from market.orders.models import Order, Shipment
from market.settlements.models import SettlementEntry
from tests.e2e.steps import sign_in

pytestmark = pytest.mark.e2e

EMPLOYEE = "employee@example.com"
FINANCE = "finance@example.com"
COOP_MANAGER = "coop@example.com"  # 高州市古丁南药种植专业合作社 of 古丁村
HONEY = "原生态蜂蜜"
ORDER_URL = re.compile(r"/orders/(\d+)(/pay)?$")


def buy_honey_by_transfer(page: Page) -> str:
    page.goto("/products?q=蜂蜜")
    page.locator("a.product-card").filter(has_text=HONEY).first.click()
    page.locator("#add-to-cart").get_by_role("button", name="加入购物车").click()
    expect(page.get_by_role("alert").filter(has_text="已加入购物车")).to_be_visible()
    page.goto("/checkout")
    form = page.locator("#checkout-form")
    if form.get_by_label("收货人").is_visible():
        form.get_by_label("收货人").fill("刘职工")
        form.get_by_label("手机号").fill("13800000005")
        form.get_by_label("省市区").fill("广东省茂名市高州市")
        form.get_by_label("详细地址").fill("府前路 1 号 市场监管局")
    form.get_by_role("button", name=re.compile("提交订单")).click()
    expect(page).to_have_url(ORDER_URL)
    number = ORDER_URL.search(page.url).group(1)
    page.goto(f"/orders/{number}/pay")
    page.locator("#pay-transfer").click()
    expect(page.locator("body")).to_contain_text(number)
    return number


def backdate(app: Flask, number: str, days: int) -> None:
    """The parcel arrived `days` ago and the money came in before that: move the order's
    settlement entries and its shipment back in time instead of waiting."""
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        shipment = order.shipments[0]
        db.session.execute(
            update(Shipment)
            .where(Shipment.id == shipment.id)
            .values(
                shipped_at=shipment.shipped_at - timedelta(days=days),
                delivered_at=shipment.delivered_at - timedelta(days=days),
            )
        )
        for entry in db.session.scalars(
            select(SettlementEntry).where(SettlementEntry.order_id == order.id)
        ):
            entry.at = entry.at - timedelta(days=days + 1)
        db.session.commit()


def issue_until(finance: Page, day) -> None:
    finance.goto("/finance/statements")
    form = finance.locator("#issue-form")
    form.get_by_label("结算截止日").fill(day.isoformat())
    form.get_by_role("button", name="出具结算单").click()
    expect(finance.get_by_role("alert").filter(has_text="结算单")).to_be_visible()


def test_a_co_op_is_paid_and_a_late_refund_goes_on_its_next_statement(
    e2e_open_page: Callable[..., Page], e2e_console_errors: list[str], live_app: Flask
) -> None:
    today = clock.today()
    employee = e2e_open_page()
    sign_in(employee, EMPLOYEE)
    number = buy_honey_by_transfer(employee)

    # Finance, at a desk, confirms the transfer with the bank's reference.
    finance = e2e_open_page(mobile=False)
    sign_in(finance, FINANCE)
    finance.goto("/finance/receipts")
    row = finance.locator("tr").filter(has_text=number)
    row.get_by_label("银行流水号").fill("NYYH-20261202-0001")
    row.get_by_label("到账日期").fill(today.isoformat())
    row.get_by_role("button", name="确认到账").click()
    expect(finance.get_by_role("alert").filter(has_text="已确认收款")).to_be_visible()

    # The co-op ships from its phone; the employee confirms receipt.
    coop = e2e_open_page()
    sign_in(coop, COOP_MANAGER)
    coop.goto("/coop/orders?tab=to_ship")
    parcel = coop.locator(".inbox-shipment").filter(has_text=number)
    parcel.get_by_label("快递公司").fill("中国邮政")
    parcel.get_by_label("运单号").fill("EMS-1202")
    parcel.get_by_role("button", name="发货").click()
    expect(coop.get_by_role("alert").first).to_be_visible()
    employee.goto(f"/orders/{number}")
    employee.get_by_role("button", name="确认收货").click()
    expect(employee.locator("#order-status")).to_have_text("已完成")
    backdate(live_app, number, days=2)

    # Finance issues the statements for the period that ended yesterday.
    issue_until(finance, today - timedelta(days=1))
    statement_row = finance.locator("#statements-table tr").filter(
        has_text="高州市古丁南药种植专业合作社"
    )
    expect(statement_row.first).to_contain_text("待确认")

    # The co-op reads its statement on the phone and confirms it.
    coop.goto("/coop/settlements")
    coop.locator("a", has_text=re.compile(r"^JS")).first.click()
    expect(coop.locator("#statement-lines")).to_contain_text(number)
    expect(coop.locator("#statement-lines")).to_contain_text(HONEY)
    payable = coop.locator("#statement-payable").inner_text()
    coop.on("dialog", lambda dialog: dialog.accept())
    coop.get_by_role("button", name="确认无误").click()
    expect(coop.locator("#statement-status")).to_contain_text("已确认")
    statement_url = coop.url

    # Finance records the payout with the bank's reference.
    finance.goto(statement_url.replace("/coop/settlements/", "/settlements/"))
    pay = finance.locator("#payout-form")
    pay.get_by_label("银行流水号").fill("NYYH-PAY-0001")
    pay.get_by_label("付款日期").fill(today.isoformat())
    pay.get_by_role("button", name=re.compile("登记付款")).click()
    expect(finance.get_by_role("alert").filter(has_text="付款")).to_be_visible()

    coop.reload()
    expect(coop.locator("#statement-status")).to_contain_text("已付款")
    expect(coop.locator("#payout-reference")).to_contain_text("NYYH-PAY-0001")
    expect(coop.locator("#statement-payout")).to_contain_text(payable)

    # A late refund: the co-op gives back ¥10 of the line.
    coop.goto("/coop/orders?tab=done")
    parcel = coop.locator(".inbox-shipment").filter(has_text=number)
    parcel.locator("summary", has_text="退款").click()
    parcel.get_by_label("退款金额（元）").fill("10")
    parcel.get_by_label("退款原因").fill("包装破损")
    parcel.get_by_role("button", name="退款").click()
    # A confirmation step shows the amount and reason before any money moves.
    expect(coop.locator("#refund-amount")).to_have_text("¥10.00")
    expect(coop.locator("#refund-reason")).to_have_text("包装破损")
    coop.locator("#refund-confirm-button").click()
    expect(coop.get_by_role("alert").filter(has_text="已退款 ¥10.00")).to_be_visible()

    employee.goto(f"/orders/{number}")
    expect(employee.locator("#order-refunds .refund-status")).to_have_text("待退款")
    finance.goto("/finance/refunds")
    refund = finance.locator("#refunds-table tr").filter(has_text=number)
    refund.get_by_label("银行流水号").fill("NYYH-REF-0001")
    refund.get_by_label("转出日期").fill(today.isoformat())
    refund.get_by_role("button", name="登记已退款").click()
    expect(finance.get_by_role("alert").first).to_be_visible()
    employee.reload()
    expect(employee.locator("#order-refunds .refund-status")).to_have_text("已退款")

    # Today's statement carries the refund as a negative line for the order (whatever else the
    # co-op sold meanwhile in the other journeys of this shop).
    issue_until(finance, today)
    coop.goto("/coop/settlements")
    coop.locator("a", has_text=re.compile(rf"^JS{today:%Y%m%d}")).first.click()
    line = coop.locator("#statement-lines tbody tr").filter(has_text=number)
    expect(line).to_have_count(1)
    expect(line.locator("td").nth(2)).to_have_text("¥0.00")  # nothing received this period
    expect(line.locator("td").nth(3)).to_have_text("¥10.00")  # the refund
    expect(line.locator("td").nth(5)).to_contain_text("10.00")  # payable: −¥10.00
    expect(line.locator("td").nth(5)).to_have_class(re.compile("text-danger"))

    assert e2e_console_errors == []
