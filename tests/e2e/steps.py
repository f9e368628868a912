"""Steps several browser journeys share."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

DEMO_PASSWORD = "demo-pass-2026"


def sign_in(page: Page, email: str) -> None:
    """Sign in with a demo account's email and the demo password, as a person would."""
    page.goto("/login")
    main = page.get_by_role("main")
    main.get_by_label("邮箱或手机号").fill(email)
    main.get_by_label("密码", exact=True).fill(DEMO_PASSWORD)
    main.get_by_role("button", name="登录").click()
    expect(page.get_by_role("alert").filter(has_text="欢迎回来")).to_be_visible()


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
    import uuid

    from sqlalchemy import select

    from market.accounts.models import User
    from market.campaign import queries
    from market.catalog.models import Product, Sku
    from market.extensions import db
    from market.orders import services as orders
    from market.orders.models import DeliveryMethod
    from market.payments import services as payments

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
    payments.confirm_transfer(finance, order.number, "E2E", queries.shanghai_today())
    return order
