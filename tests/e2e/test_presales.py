"""预售 on a phone: a buyer finds next season's 白糖罂荔枝 of 根子镇 (the demo presale) from the
product page, reserves two boxes choosing to roll over should the harvest fall short, and lands
on the ordinary pay page for the ¥20 定金 of each; the demo co-op opens a deposit presale of its
own from its menu."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from market.clock import today
from tests.e2e.steps import open_menu_link, sign_in

pytestmark = pytest.mark.e2e


def test_a_buyer_reserves_next_seasons_lychee_and_goes_on_to_pay(
    mobile_page: Page, e2e_console_errors: list[str]
):
    page = mobile_page
    sign_in(page, "buyer@example.com")
    page.goto("/presales")
    card = page.locator(".presale-card").filter(has_text="白糖罂荔枝")
    expect(card).to_contain_text("¥79.00")
    card.get_by_role("link").click()
    main = page.get_by_role("main")
    expect(main.get_by_role("heading", level=1)).to_contain_text("白糖罂荔枝")
    expect(main.locator("#presale-status")).to_have_text("预订中")
    expect(main.locator("#presale-deposit")).to_have_text("定金 ¥20.00/份 · 尾款 ¥59.00/份")
    # The product page leads here too.
    main.get_by_role("navigation").get_by_role("link", name="白糖罂荔枝").click()
    page.get_by_role("main").get_by_role("link", name="预售 · 预订下一季").click()
    expect(page).to_have_url(re.compile(r"/presales\?product=\d+$"))
    page.locator(".presale-card").filter(has_text="白糖罂荔枝").get_by_role("link").click()

    form = page.locator("#reserve-form")
    form.get_by_label("数量").fill("2")
    form.get_by_label("顺延到下一季").check()
    form.get_by_label("收货地址").select_option("0")
    form.get_by_label("收货人").fill("周买家")
    form.get_by_label("手机号").fill("13900000009")
    form.get_by_label("省市区").fill("广东省茂名市高州市")
    form.get_by_label("详细地址").fill("人民路 1 号")
    form.get_by_role("button", name="预订并付款").click()

    expect(page).to_have_url(re.compile(r"/orders/\d+/pay$"))
    expect(page.get_by_role("alert").filter(has_text="已预订，请付定金")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("¥40.00")  # 2 × ¥20 定金
    number = page.url.split("/")[-2]
    page.go_back()
    page.reload()
    mine = page.locator("#my-reservations")
    expect(mine).to_contain_text(number)
    expect(mine).to_contain_text("待付款")
    # It fits the phone: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert e2e_console_errors == []


def test_a_coop_opens_a_presale_from_its_menu(e2e_open_page, e2e_console_errors: list[str]):
    page = e2e_open_page(mobile=False)
    sign_in(page, "coop@example.com")
    open_menu_link(page, "合作社工作台", "我的预售")
    expect(page).to_have_url(re.compile(r"/coop/presales$"))
    page.get_by_role("link", name="开启预售").click()
    form = page.locator("#presale-form")
    form.get_by_label("商品规格").select_option(index=0)
    product = form.get_by_label("商品规格").locator("option:checked").inner_text()
    start = today() + timedelta(days=40)
    form.get_by_label("预计采收开始").fill(start.isoformat())
    form.get_by_label("预计采收结束").fill((start + timedelta(days=14)).isoformat())
    form.get_by_label("预售价（元/份）").fill("66")
    form.get_by_label("限量（份）").fill("20")
    form.get_by_label("定金预订：下单付定金，采收后付尾款").check()
    form.get_by_label("定金（元/份）").fill("10")
    form.get_by_role("button", name="开启预售").click()
    expect(page.get_by_role("alert").filter(has_text="预售已开启")).to_be_visible()
    main = page.get_by_role("main")
    expect(main.get_by_role("heading", level=1)).to_contain_text(product)
    expect(main.locator("#presale-status")).to_have_text("预订中")
    expect(main.locator("#presale-reserved")).to_have_text("0/20")
    expect(main.locator("#presale-payment-kind")).to_contain_text("定金 ¥10.00/份 · 尾款 ¥56.00/份")
    expect(main.get_by_role("button", name="公布收成")).to_be_visible()
    assert e2e_console_errors == []
