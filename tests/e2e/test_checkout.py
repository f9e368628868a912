"""A guest on a phone puts the products of two co-ops in the cart, registers at checkout (the
cart comes along), pays by test card on our payment page through localstripe's Stripe.js
stand-in, and sees the order paid with one shipment per co-op; then the co-op that sells the
honey ships its parcel and the buyer sees it shipped."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.steps import register_at_checkout, sign_in

pytestmark = pytest.mark.e2e

HONEY = "原生态蜂蜜"
HONEY_COOP = "高州市古丁南药种植专业合作社"  # managed by coop@example.com
LYCHEE = "白糖罂荔枝"
LYCHEE_TOWN = "根子镇"
COOP_MANAGER = "coop@example.com"

GOOD_CARD = "4242424242424242"
THREE_D_SECURE_CARD = "4000002760003184"

ORDER_PAY_URL = re.compile(r"/orders/(\d+)/pay$")


@pytest.fixture(scope="module")
def live_server(live_server_with_stripe: str) -> str:
    """In this module `mobile_page` and `e2e_open_page` browse the shop that takes cards."""
    return live_server_with_stripe


# -- steps -----------------------------------------------------------------------------------------
def add_to_cart(page: Page, search: str, product: str) -> str:
    """Find `product` by searching `search`, add its first spec to the cart; its co-op's name."""
    page.goto(f"/products?q={search}")
    page.locator("a.product-card").filter(has_text=product).first.click()
    expect(page.locator("#product-name")).to_have_text(product)
    form = page.locator("#add-to-cart")
    expect(form.locator("input[name=sku_id]").first).to_be_checked()
    expect(form.locator("input[name=quantity]")).to_have_value("1")
    form.get_by_role("button", name="加入购物车").click()
    expect(page.get_by_role("alert").filter(has_text="已加入购物车")).to_be_visible()
    coop = page.locator("dt", has_text="合作社").locator("xpath=following-sibling::dd[1]")
    return coop.inner_text().strip()


def place_order(page: Page, products: list[str]) -> str:
    """On the checkout page: deliver to a new address and submit. The new order's number."""
    expect(page.get_by_role("heading", name="确认订单")).to_be_visible()
    summary = page.locator("#checkout-form").locator("xpath=../..")
    for product in products:
        expect(summary).to_contain_text(product)  # the guest's cart was kept at registration
    form = page.locator("#checkout-form")
    expect(form.get_by_label("收货地址")).to_have_value("0")  # 使用新地址
    form.get_by_label("收货人").fill("周采购")
    form.get_by_label("手机号").fill("13800001234")
    form.get_by_label("省市区").fill("广东省茂名市高州市")
    form.get_by_label("详细地址").fill("人民路 1 号市场监管局")
    form.get_by_role("button", name=re.compile("提交订单")).click()
    expect(page).to_have_url(ORDER_PAY_URL)
    return ORDER_PAY_URL.search(page.url).group(1)


def pay_by_card(page: Page, number: str, card: str) -> None:
    """Choose 银行卡支付 and type the card into localstripe's stand-in card inputs."""
    page.locator("#pay-card").click()
    expect(page).to_have_url(re.compile(rf"/orders/{number}/pay/stripe$"))
    element = page.locator("#card-element")
    for placeholder, value in [
        ("number", card),
        ("exp_month", "12"),
        ("exp_year", "30"),
        ("cvc", "123"),
        ("postal_code", "52500"),
    ]:
        element.get_by_placeholder(placeholder, exact=True).fill(value)
    page.locator("#card-submit").click()


def expect_order_page(page: Page, number: str) -> None:
    expect(page).to_have_url(re.compile(rf"/orders/{number}$"))
    expect(page.get_by_role("heading", name=f"订单 {number}")).to_be_visible()


def shipment_of(page: Page, coop_name: str):
    return page.locator(".shipment").filter(has_text=coop_name)


# -- journeys --------------------------------------------------------------------------------------
def test_guest_buys_from_two_coops_pays_by_card_and_a_coop_ships(
    mobile_page: Page,
    e2e_open_page: Callable[..., Page],
    e2e_console_errors: list[str],
) -> None:
    page = mobile_page
    honey_coop = add_to_cart(page, "蜂蜜", HONEY)
    assert honey_coop == HONEY_COOP
    lychee_coop = add_to_cart(page, "荔枝", LYCHEE)
    assert lychee_coop != honey_coop
    expect(page.locator("dd").filter(has_text=LYCHEE_TOWN)).to_be_visible()  # 产地

    page.goto("/cart")
    groups = page.locator(".cart-group")
    expect(groups).to_have_count(2)
    expect(groups.filter(has_text=honey_coop)).to_contain_text(HONEY)
    expect(groups.filter(has_text=lychee_coop)).to_contain_text(LYCHEE)

    register_at_checkout(page, "周采购")
    number = place_order(page, [HONEY, LYCHEE])
    pay_by_card(page, number, GOOD_CARD)

    expect_order_page(page, number)
    expect(page.locator("#order-status")).to_have_text("已付款")
    shipments = page.locator(".shipment")
    expect(shipments).to_have_count(2)
    expect(shipments.locator(".shipment-status")).to_have_text(["待发货", "待发货"])
    expect(shipment_of(page, honey_coop)).to_contain_text(HONEY)
    expect(shipment_of(page, lychee_coop)).to_contain_text(LYCHEE)

    # The honey co-op's manager, on their own phone, ships their parcel of this order.
    coop_page = e2e_open_page()
    sign_in(coop_page, COOP_MANAGER)

    coop_page.goto("/coop/orders")
    # The tab says how many parcels wait: this order's one.
    expect(coop_page.locator(".nav-tabs .nav-link.active")).to_have_text(
        re.compile(r"^待发货\s*1$")
    )
    parcel = coop_page.locator(".inbox-shipment").filter(has_text=number)
    expect(parcel).to_have_count(1)
    expect(parcel).to_contain_text(HONEY)
    expect(parcel).not_to_contain_text(LYCHEE)  # the other co-op's line is not theirs to see
    parcel.get_by_label("快递公司").fill("顺丰速运")
    parcel.get_by_label("运单号").fill("SF1234567890")
    parcel.get_by_role("button", name="发货").click()

    expect(coop_page).to_have_url(re.compile(r"/coop/orders\?tab=shipped$"))
    expect(coop_page.locator(".nav-tabs .nav-link.active")).to_have_text(
        re.compile(r"^已发货\s*1$")
    )
    expect(coop_page.locator("#tab-to_ship .tab-count")).to_have_count(0)  # none left to ship
    shipped = coop_page.locator(".inbox-shipment").filter(has_text=number)
    expect(shipped).to_contain_text("已发货")
    expect(shipped).to_contain_text("顺丰速运 SF1234567890")

    # The buyer looks again: one parcel on its way, the other still to be shipped.
    page.reload()
    expect(page.locator("#order-status")).to_have_text("已付款")
    expect(shipments).to_have_count(2)
    expect(shipment_of(page, honey_coop).locator(".shipment-status")).to_have_text("已发货")
    expect(shipment_of(page, honey_coop)).to_contain_text("顺丰速运 SF1234567890")
    expect(shipment_of(page, lychee_coop).locator(".shipment-status")).to_have_text("待发货")

    assert e2e_console_errors == []


def test_card_with_3d_secure_is_authenticated_and_the_order_paid(
    mobile_page: Page, e2e_console_errors: list[str]
) -> None:
    page = mobile_page
    lychee_coop = add_to_cart(page, "荔枝", LYCHEE)
    page.goto("/cart")
    expect(page.locator(".cart-group")).to_have_count(1)

    register_at_checkout(page, "周采购")
    number = place_order(page, [LYCHEE])
    pay_by_card(page, number, THREE_D_SECURE_CARD)

    # localstripe's stand-in for the bank's 3-D Secure window.
    page.get_by_role("button", name="Complete authentication").click()

    expect_order_page(page, number)
    expect(page.locator("#order-status")).to_have_text("已付款")
    shipments = page.locator(".shipment")
    expect(shipments).to_have_count(1)
    expect(shipment_of(page, lychee_coop).locator(".shipment-status")).to_have_text("待发货")

    assert e2e_console_errors == []
