"""Steps several browser journeys share."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from playwright.sync_api import Page, expect

from market.demo import DEMO_PASSWORD

NEW_PASSWORD = "e2e-pass-2026"  # of the accounts the journeys register


def sign_in(page: Page, email: str) -> None:
    """Sign in with a demo account's email and the demo password, as a person would. The one
    way every journey signs in."""
    page.goto("/login")
    main = page.get_by_role("main")
    main.get_by_label("邮箱或手机号").fill(email)
    main.get_by_label("密码", exact=True).fill(DEMO_PASSWORD)
    main.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert").filter(has_text="欢迎回来")).to_be_visible()


def register_at_checkout(page: Page, name: str, email_prefix: str = "buyer") -> str:
    """From the cart: checkout asks to sign in; register a new account instead and come back to
    checkout (the cart comes along). The new account's email."""
    main = page.get_by_role("main")
    main.get_by_role("link", name="去结算").click()
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fcheckout$"))
    main.get_by_role("link", name="注册", exact=True).click()
    expect(page.get_by_role("heading", name="注册")).to_be_visible()

    email = f"{email_prefix}-{uuid.uuid4().hex[:10]}@example.com"
    main.get_by_label("姓名").fill(name)
    main.get_by_label("邮箱", exact=True).fill(email)
    main.get_by_label("密码", exact=True).fill(NEW_PASSWORD)
    main.get_by_label("确认密码").fill(NEW_PASSWORD)
    main.get_by_role("button", name="注册").click()
    expect(page).to_have_url(re.compile(r"/checkout$"))
    return email


def open_menu_link(page: Page, menu: str | None, link: str) -> None:
    """Follow a header menu link as a person would: unfold the menu if the screen folds it, open
    the dropdown `menu` (e.g. 单位工作台; None for a link on the bar itself), click `link`."""
    toggler = page.locator("nav.navbar .navbar-toggler")
    nav = page.locator("#mainnav")
    if toggler.is_visible() and "show" not in (nav.get_attribute("class") or ""):
        toggler.click()
    if menu is not None:
        nav.get_by_role("button", name=menu).click()
    nav.get_by_role("link", name=link).click()


def reload_until(page: Page, check: Callable[[], None], *, attempts: int = 10) -> None:
    """What a person does when a figure has not caught up yet: reload the page and look again.
    `check` is a Playwright expectation with a short timeout (it retries within the page); the
    last attempt's failure is the test's."""
    for _ in range(attempts - 1):
        try:
            check()
            return
        except AssertionError:
            page.reload()
    check()


def pay_an_order(email: str, product: str, quantity: int):
    """Behind the pages, inside an app context of a live app: the demo person orders `quantity`
    of the first product whose name starts with `product`, by the services the pages use, and
    finance confirms the bank transfer. Returns the paid order."""
    from sqlalchemy import select

    from market import clock
    from market.accounts.models import User
    from market.catalog.models import Product, Sku
    from market.extensions import db
    from market.orders import services as orders
    from market.orders.models import DeliveryMethod
    from market.payments import services as payments
    from market.payments import transfers

    buyer = db.session.scalar(select(User).where(User.email == email))
    finance = db.session.scalar(select(User).where(User.email == "finance@example.com"))
    sku_id = db.session.scalar(
        select(Sku.id).join(Sku.product).where(Product.name.startswith(product)).limit(1)
    )
    order = orders.build_order(
        buyer,
        [orders.WantedLine(sku_id, quantity)],
        orders.Delivery(DeliveryMethod.DELIVERY, buyer.name, "13800009999", "广东省高州市"),
        f"e2e-{uuid.uuid4().hex}",
    )
    db.session.commit()
    payments.start_payment(buyer, order.number, "offline")
    transfers.confirm_transfer(finance, order.number, "E2E", clock.today())
    return order
