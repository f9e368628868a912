"""A buyer on a phone opens the checkout showing 龙眼蜜 at ¥68.00; while the page is open the
co-op raises the price to ¥680.00; the buyer submits and is told "¥68.00 → ¥680.00" with the new
total, and no order was placed; the buyer confirms and the order is placed at ¥680.00, once."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import delete, select

from market.accounts.models import User
from market.catalog import services as catalog
from market.catalog.models import Product, Sku
from market.extensions import db
from market.orders.models import Cart, CartItem, Order
from tests.e2e.steps import sign_in

pytestmark = pytest.mark.e2e

BUYER = "buyer@example.com"
PRODUCT = "龙眼蜜"
SPEC = "500g 瓶装"
PAY_URL = re.compile(r"/orders/(\d+)/pay$")


def honey_sku(app: Flask) -> tuple[int, int]:
    """龙眼蜜's SKU id and price in the demo shop."""
    with app.app_context():
        sku = db.session.scalar(
            select(Sku).join(Product).where(Product.name == PRODUCT, Sku.spec == SPEC)
        )
        return sku.id, sku.price_fen


def buyer_orders(app: Flask) -> list[tuple[int, list[tuple[str, int, int]]]]:
    with app.app_context():
        buyer = db.session.scalar(select(User).where(User.email == BUYER))
        return [
            (
                o.total_fen,
                [(line.product_name, line.unit_price_fen, line.quantity) for line in o.lines],
            )
            for o in db.session.scalars(
                select(Order).where(Order.buyer_id == buyer.id).order_by(Order.id)
            )
        ]


def empty_cart(app: Flask) -> None:
    """Other journeys share the demo buyer: start from an empty cart."""
    with app.app_context():
        buyer = db.session.scalar(select(User).where(User.email == BUYER))
        cart_ids = select(Cart.id).where(Cart.user_id == buyer.id)
        db.session.execute(delete(CartItem).where(CartItem.cart_id.in_(cart_ids)))
        db.session.commit()


def set_price(app: Flask, sku_id: int, price_fen: int) -> None:
    """The co-op's price change, through the catalog service its SKU page calls (the demo's
    元坝村 co-op has no manager account, so an admin makes it, as support would)."""
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id))
        sku = db.session.get(Sku, sku_id)
        catalog.update_sku(
            admin, sku_id, spec=sku.spec, price_fen=price_fen, weight_g=sku.weight_g, active=True
        )


def test_a_price_raised_while_the_buyer_is_on_checkout_is_shown_before_the_order(
    mobile_page: Page, live_app: Flask, e2e_console_errors: list[str]
) -> None:
    page = mobile_page
    sku_id, price = honey_sku(live_app)
    assert price == 6800
    empty_cart(live_app)
    before = buyer_orders(live_app)
    sign_in(page, BUYER)

    page.goto(f"/products?q={PRODUCT}")
    page.locator("a.product-card").filter(has_text=PRODUCT).first.click()
    expect(page.locator("#product-name")).to_have_text(PRODUCT)
    page.locator("#add-to-cart").get_by_role("button", name="加入购物车").click()
    expect(page.get_by_role("alert").filter(has_text="已加入购物车")).to_be_visible()

    page.goto("/checkout")
    expect(page.get_by_role("heading", name="确认订单")).to_be_visible()
    line = page.locator(".checkout-line").filter(has_text=PRODUCT)
    expect(line).to_contain_text("¥68.00")
    expect(page.locator("#checkout-total")).to_have_text("¥68.00")
    form = page.locator("#checkout-form")
    form.get_by_label("收货地址").select_option("0")  # 使用新地址
    form.get_by_label("收货人").fill("赵买家")
    form.get_by_label("手机号").fill("13800000007")
    form.get_by_label("省市区").fill("广东省茂名市高州市")
    form.get_by_label("详细地址").fill("人民路 8 号")

    try:
        # The co-op raises the price tenfold while the page is open.
        set_price(live_app, sku_id, 68000)
        form.get_by_role("button", name=re.compile("提交订单")).click()

        warning = page.locator("#price-changes")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("价格有变动，订单尚未提交")
        expect(warning.locator(".price-change")).to_have_text(
            [f"{PRODUCT} {SPEC}：¥68.00 → ¥680.00"]
        )
        expect(page.locator("#new-total")).to_have_text("¥680.00")
        expect(line).to_contain_text("¥680.00")
        expect(page).to_have_url(re.compile(r"/checkout$"))
        assert buyer_orders(live_app) == before  # no order was placed

        # The form still holds what the buyer typed; submitting it again confirms ¥680.00.
        expect(form.get_by_label("详细地址")).to_have_value("人民路 8 号")
        confirm = form.get_by_role("button", name="确认新价格并提交订单 · ¥680.00")
        expect(confirm).to_be_visible()
        confirm.click()
        expect(page).to_have_url(PAY_URL)
        assert buyer_orders(live_app) == [*before, (68000, [(PRODUCT, 68000, 1)])]
    finally:
        set_price(live_app, sku_id, 6800)  # the demo shop is shared with other journeys
    # Chromium logs the refused submit's own status (409: not placed) as a failed resource; any
    # other console error is a fault.
    assert [e for e in e2e_console_errors if "status of 409" not in e] == []
    assert len(e2e_console_errors) <= 1
