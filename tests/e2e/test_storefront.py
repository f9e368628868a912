"""A buyer on a phone finds the villages' honey: search from the storefront, open a product, see
its Chinese name and its price."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

CJK = re.compile(r"[\u4e00-\u9fff]")
PRICE = re.compile(r"¥\d{1,3}(,\d{3})*\.\d{2}")
# Fonts that have the common Chinese characters; fonts-wqy-microhei is the one CI installs.
CJK_FONT = re.compile(r"WenQuanYi|CJK|Source Han|Droid Sans Fallback|AR PL", re.I)


def test_buyer_searches_honey_and_opens_a_product(
    mobile_page: Page, e2e_console_errors: list[str]
) -> None:
    page = mobile_page
    page.goto("/")
    expect(page).to_have_title(CJK)
    expect(page.locator("h1")).to_have_text(CJK)

    # On a phone the navbar search is folded into the menu: the visible box is the hero's.
    search = page.get_by_role("searchbox", name="搜索")
    search.fill("蜂蜜")
    search.press("Enter")

    expect(page).to_have_url(re.compile(r"/products\?q=%E8%9C%82%E8%9C%9C"))
    expect(page.locator("h1")).to_contain_text("蜂蜜")
    honey = page.locator("a.product-card").filter(has_text="蜂蜜")
    expect(honey.first).to_be_visible()

    honey.first.click()

    expect(page).to_have_url(re.compile(r"/products/\d+$"))
    name = page.locator("#product-name")
    expect(name).to_be_visible()
    expect(name).to_contain_text("蜂蜜")
    expect(page.locator("#product-price")).to_have_text(PRICE)
    expect(page).to_have_title(re.compile("蜂蜜"))

    assert e2e_console_errors == []


def test_chinese_text_is_drawn_with_a_cjk_font(mobile_page: Page) -> None:
    """Without a CJK font chromium draws boxes (tofu) that no DOM assertion notices; ask the
    renderer which platform font actually drew the glyphs of the heading."""
    page = mobile_page
    page.goto("/")
    expect(page.locator("h1")).to_have_text(CJK)

    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    heading = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "h1"})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": heading})["fonts"]

    used = [font["familyName"] for font in fonts if font["glyphCount"] > 0]
    assert any(CJK_FONT.search(family) for family in used), (
        f"the heading was drawn with {used}; install fonts-wqy-microhei"
    )
