"""Steps several browser journeys share."""

from __future__ import annotations

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
