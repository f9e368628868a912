"""我为果农办实事 in the browser. The organizer (at a desk) opens the campaign dashboard: the
charts draw (canvas, no console errors), the units table sorts by % of target, and the
assessment workbook downloads and agrees with the page. Then a buyer on a phone scans the unit's
QR code (its link, read off the coordinator's page), buys, pays by bank transfer, the organizer
confirms the money, and the unit's figure on the dashboard grows by the order's amount."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Page, expect
from sqlalchemy import select

from market import clock
from market.campaign import targets as campaign_targets
from market.campaign.read.filters import current_campaign
from market.directory.models import Unit
from market.extensions import db
from tests.e2e.conftest import LIVE_APPS
from tests.e2e.steps import (
    open_menu_link,
    pay_an_order,
    register_at_checkout,
    reload_until,
    sign_in,
)

pytestmark = pytest.mark.e2e

ORGANIZER = "organizer@example.com"
FINANCE = "finance@example.com"
COORDINATOR = "coordinator@example.com"  # 王联络 of 高州市市场监管局, paired with 古丁村
UNIT = "高州市市场监管局"
HONEY = "原生态蜂蜜"


# -- the world the journeys start from -------------------------------------------------------------
def _paid_order(email: str, product: str, quantity: int) -> None:
    """An order placed and paid (bank transfer confirmed by finance), so that the dashboard has
    something to draw."""
    pay_an_order(email, product, quantity)


@pytest.fixture(scope="module")
def running_campaign(live_server: str) -> int:
    """A campaign running today with a default target for every unit and a few paid orders."""
    today = clock.today()
    with LIVE_APPS[live_server].test_request_context():
        campaign = current_campaign(today)
        if campaign is None or not campaign.starts_on <= today <= campaign.ends_on:
            campaign = campaign_targets.save_campaign(
                campaign_targets.CampaignData(
                    name=f"{today.year}年我为果农办实事",
                    year=today.year,
                    starts_on=today - timedelta(days=30),
                    ends_on=today + timedelta(days=300),
                    paired_only=False,
                    laggard_threshold_pct=60,
                )
            )
        campaign_targets.set_default_target(campaign.id, 50_000, replace_existing=False)
        campaign_targets.set_target(
            campaign.id, db.session.scalar(select(Unit.id).where(Unit.name == UNIT)), 80_000
        )
        _paid_order("employee@example.com", HONEY, 2)  # a member of 高州市市场监管局
        _paid_order("approver@example.com", "白糖罂荔枝", 1)  # the same unit, another village
        _paid_order("buyer@example.com", HONEY, 1)  # nobody's: the village's only
        return campaign.id


# -- steps -----------------------------------------------------------------------------------------
def open_dashboard(page: Page, campaign_id: int) -> None:
    open_menu_link(page, "组织方", "活动与目标管理")
    page.locator(f"a[href='/admin/campaigns/{campaign_id}/dashboard']").first.click()
    expect(page.locator(".nav-tabs .nav-link.active")).to_have_text("看板")
    expect(page.locator("#units-table")).to_be_visible()


def yuan_text_to_fen(text: str) -> int:
    return int(Decimal(text.replace("¥", "").replace(",", "").strip()) * 100)


def unit_net_fen(page: Page, name: str) -> int:
    row = page.locator("#units-table tbody tr").filter(has_text=name)
    return int(row.locator("td").nth(3).get_attribute("data-sort"))


def referral_counts(page: Page) -> tuple[int, int]:
    """The visits and orders the unit's referral link brought, as the coordinator's page says."""
    figures = page.locator("#referral-figures")
    expect(figures).to_contain_text(re.compile(r"访问 \d+ 次\D*\d+ 笔"))
    visits, orders = re.search(r"访问 (\d+) 次\D*(\d+) 笔", figures.inner_text()).groups()
    return int(visits), int(orders)


def column_values(page: Page, index: int) -> list[float]:
    cells = page.locator(f"#units-table tbody tr td:nth-child({index + 1})")
    return [float(value) for value in cells.evaluate_all("cs => cs.map(c => c.dataset.sort)")]


# -- journeys --------------------------------------------------------------------------------------
def test_organizer_sees_the_charts_sorts_by_target_and_downloads_the_workbook(
    running_campaign: int,
    e2e_open_page: Callable[..., Page],
    e2e_console_errors: list[str],
    tmp_path,
) -> None:
    page = e2e_open_page(mobile=False)
    sign_in(page, ORGANIZER)
    open_dashboard(page, running_campaign)

    for chart in ("#chart-trend", "#chart-categories", "#chart-units"):
        expect(page.locator(f"{chart} canvas").first).to_be_attached()
    box = page.locator("#chart-units canvas").first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 300

    # Sort by % of target: the largest first, then the other way round.
    header = page.locator("#units-table thead th").nth(4)
    expect(header).to_contain_text("完成率")
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    shares = column_values(page, 4)
    assert shares == sorted(shares, reverse=True) and shares[0] > 0
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    assert column_values(page, 4) == sorted(shares)

    page_total = page.locator("#units-table tfoot td").nth(3).inner_text()
    page_unit_fen = unit_net_fen(page, UNIT)
    # The workbook is written in the background: its page shows the progress, then the link.
    page.locator("#export-xlsx").click()
    expect(page.locator("#export-job")).to_be_visible()
    expect(page.locator("#export-download")).to_be_visible(timeout=30_000)
    expect(page.locator("#export-progress")).to_have_attribute("aria-valuenow", "100")
    with page.expect_download() as download:
        page.locator("#export-download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".xlsx" and "我为果农办实事" in saved.name
    book = load_workbook(saved)
    assert book.sheetnames[:6] == ["单位", "村", "镇", "分类", "提醒约谈名单", "台账明细"]
    rows = list(book["单位"].iter_rows(values_only=True))
    header_row, *units, total = rows
    assert header_row[3] == "净销售额（元）" and total[1] == "合计"
    assert round(Decimal(str(total[3])) * 100) == yuan_text_to_fen(page_total)
    by_name = {row[1]: row for row in units}
    assert round(Decimal(str(by_name[UNIT][3])) * 100) == page_unit_fen

    assert e2e_console_errors == []


def test_a_buyer_who_scans_the_units_qr_code_buys_and_the_unit_figure_grows(
    running_campaign: int,
    e2e_open_page: Callable[..., Page],
    e2e_console_errors: list[str],
) -> None:
    # The coordinator's page shows the unit's QR code and the link it carries.
    coordinator = e2e_open_page(mobile=False)
    sign_in(coordinator, COORDINATOR)
    open_menu_link(coordinator, "单位工作台", "本单位帮扶进度")
    expect(coordinator.get_by_role("heading", name=f"{UNIT} · 帮扶进度")).to_be_visible()
    qr = coordinator.locator("#unit-qr")
    expect(qr).to_be_visible()
    # The picture is drawn once its file has arrived: wait for that, as the person does.
    coordinator.wait_for_function(
        "() => { const img = document.querySelector('#unit-qr');"
        " return img !== null && img.complete && img.naturalWidth > 0; }"
    )
    link = coordinator.locator("#referral-url").inner_text().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/r/[A-Z0-9]+", link)
    visits, referred = referral_counts(coordinator)

    organizer = e2e_open_page(mobile=False)
    sign_in(organizer, ORGANIZER)
    open_dashboard(organizer, running_campaign)
    before = unit_net_fen(organizer, UNIT)

    # The buyer scans the poster: the link opens the shop on the phone.
    buyer = e2e_open_page(mobile=True)
    buyer.goto(link)
    expect(buyer).to_have_url(re.compile(r"/$"))
    buyer.goto("/products?q=蜂蜜")
    buyer.locator("a.product-card").filter(has_text=HONEY).first.click()
    buyer.locator("#add-to-cart").get_by_role("button", name="加入购物车").click()
    expect(buyer.get_by_role("alert").filter(has_text="已加入购物车")).to_be_visible()
    buyer.goto("/cart")
    register_at_checkout(buyer, "扫码买家", "qr")
    form = buyer.locator("#checkout-form")
    form.get_by_label("收货人").fill("扫码买家")
    form.get_by_label("手机号").fill("13800005678")
    form.get_by_label("省市区").fill("广东省茂名市高州市")
    form.get_by_label("详细地址").fill("人民路 2 号")
    form.get_by_role("button", name=re.compile("提交订单")).click()
    expect(buyer).to_have_url(re.compile(r"/orders/\d+/pay$"))
    number = re.search(r"/orders/(\d+)/pay$", buyer.url).group(1)
    amount = yuan_text_to_fen(buyer.locator("#pay-amount").inner_text())
    buyer.locator("#pay-transfer").click()
    expect(buyer.get_by_role("heading", name="对公转账")).to_be_visible()

    # The money arrives; the organizer sees it awaited, and finance confirms it.
    organizer.goto("/admin/orders")
    row = organizer.locator("#orders-table tbody tr").filter(has_text=number)
    expect(row).to_contain_text("待财务确认到账")
    finance = e2e_open_page(mobile=False)
    sign_in(finance, FINANCE)
    finance.goto("/finance/receipts")
    row = finance.locator("tr").filter(has_text=number)
    row.get_by_label("银行流水号").fill("QR-E2E-1")
    row.get_by_label("到账日期").fill(clock.today().isoformat())
    row.get_by_role("button", name="确认到账").click()
    expect(finance.get_by_role("alert").filter(has_text="已确认收款")).to_be_visible()

    # The figures catch up with the money (the organizer and the coordinator reload until then,
    # rather than the test waiting a fixed time): the unit's net sales grow by the order's amount,
    # and the unit's link counts one more visit and one more order.
    open_dashboard(organizer, running_campaign)
    net_cell = organizer.locator("#units-table tbody tr").filter(has_text=UNIT).locator("td").nth(3)
    reload_until(
        organizer,
        lambda: expect(net_cell).to_have_attribute("data-sort", str(before + amount), timeout=2000),
    )
    figures = coordinator.locator("#referral-figures")
    expected = re.compile(rf"访问 {visits + 1} 次\D*\b{referred + 1} 笔")
    reload_until(coordinator, lambda: expect(figures).to_contain_text(expected, timeout=2000))

    assert e2e_console_errors == []


def test_the_public_campaign_page_reads_well_on_a_phone(
    running_campaign: int, mobile_page: Page, e2e_console_errors: list[str]
) -> None:
    mobile_page.goto("/campaign")
    expect(mobile_page.locator("#public-total")).to_contain_text("¥")
    expect(mobile_page.locator("#public-top-villages li").first).to_be_visible()
    expect(mobile_page.locator("#chart-trend canvas").first).to_be_attached()
    width = mobile_page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    assert e2e_console_errors == []
