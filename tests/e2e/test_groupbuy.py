"""爱心团购 in the browser: the unit's coordinator (at a desk) proposes a pay-at-pickup group-buy of
the paired village's honey closing in a few minutes; the co-op's manager (on a phone) accepts its
price, cap and dates; two employees on their phones find it on the home page and join; the
deadline passes (moved in the database, not waited for) and the closer runs; both see 已成团 ·
待发货 until the co-op ships and the coordinator marks the parcel arrived, then 待取货; the
coordinator's pickup list names them both, and one picks up."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import update

from market.extensions import db
from market.groupbuy.models import GroupBuy
from market.models import utcnow
from tests.e2e.steps import open_menu_link, sign_in

pytestmark = pytest.mark.e2e

COORDINATOR = "coordinator@example.com"  # 王联络 of 高州市市场监管局, paired with 古丁村
COOP_MANAGER = "coop@example.com"  # 黄社长 of 古丁村's co-op, whose honey it is
EMPLOYEES = [
    ("employee@example.com", "刘职工", "0005"),
    ("approver@example.com", "陈审批", "0004"),
]
HONEY_OPTION = "【结对村】古丁村 · 原生态蜂蜜 500g 瓶装 · ¥88.00"
HONEY = "原生态蜂蜜 500g 瓶装"
MANAGE_URL = re.compile(r"/unit/group-buys/(\d+)$")


def open_group_buy(page: Page, title: str) -> int:
    """The coordinator fills in the opening form; the new group-buy's id."""
    open_menu_link(page, "单位工作台", "发起和管理单位团购")
    page.get_by_role("link", name="发起团购").click()
    form = page.locator("#group-buy-form")
    form.get_by_label("团购标题").fill(title)
    # Beijing time, as the coordinator reads the clock; a few minutes ahead.
    closes = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(minutes=3)
    form.get_by_label("截止时间", exact=True).fill(closes.strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label("成团量（所有商品合计件数）").fill("4")
    expect(form.get_by_label("取货时付款")).to_be_checked()
    expect(form.get_by_label("仅本单位职工")).to_be_checked()
    form.get_by_label("取货地点").fill("市场监管局一楼大厅")
    form.get_by_label("取货时间").fill("周五 12:00-14:00")
    row = form.locator("#item-row-0")
    row.get_by_label("商品规格").select_option(label=HONEY_OPTION)
    row.get_by_label("团购价（元）").fill("80")
    row.locator("#items-0-tiers-0-min_total_quantity").fill("4")
    row.locator("#items-0-tiers-0-price").fill("75")
    form.get_by_role("button", name="发起团购").click()

    expect(page).to_have_url(MANAGE_URL)
    expect(page.get_by_role("alert").filter(has_text="团购已发起")).to_be_visible()
    expect(page.locator("#groupbuy-title")).to_have_text(title)
    expect(page.locator("#awaiting-coop")).to_contain_text("确认团购价、上限和时间")
    return int(MANAGE_URL.search(page.url).group(1))


def accept_as_coop(page: Page, group_buy_id: int, title: str) -> None:
    """The co-op's manager reads the request's terms on the co-op's page and accepts them."""
    page.goto("/coop/group-buys")  # 团购配送, behind the phone's menu button
    proposal = page.locator(f"#proposal-{group_buy_id}")
    expect(proposal).to_contain_text(title)
    expect(proposal).to_contain_text(f"{HONEY}：¥80.00，满 4 件 ¥75.00")
    page.once("dialog", lambda dialog: dialog.accept())
    proposal.get_by_role("button", name="确认开团").click()
    expect(page.get_by_role("alert").filter(has_text="已确认团购")).to_be_visible()
    expect(page.locator(f"#open-{group_buy_id}")).to_contain_text(title)


def ship_as_coop(page: Page, title: str) -> None:
    """The co-op sends its one consolidated parcel to the pickup point."""
    page.goto("/coop/group-buys")  # 团购配送, behind the phone's menu button
    card = page.locator("#coop-shipping .coop-group-buy").filter(has_text=title)
    card.get_by_label("快递公司").fill("顺丰速运")
    card.get_by_label("运单号").fill("SF100200300")
    card.get_by_role("button", name="发货").click()
    expect(page.get_by_role("alert").filter(has_text="已发货")).to_be_visible()


def join_from_home(page: Page, title: str, quantity: int) -> None:
    """An employee finds the group-buy on the home page and joins it."""
    page.goto("/")
    page.locator("#unit-group-buys").get_by_role("link").filter(has_text=title).click()
    expect(page.locator("#groupbuy-title")).to_have_text(title)
    expect(page.locator("#progress-min")).to_be_visible()
    expect(page.locator("#time-left")).to_contain_text(re.compile(r"剩余 \d+ 分钟"))
    expect(page.locator("#pickup-info")).to_contain_text("市场监管局一楼大厅")
    form = page.locator("#join-form")
    form.get_by_label(HONEY).fill(str(quantity))
    form.get_by_role("button", name="参团").click()
    expect(page.get_by_role("alert").filter(has_text="已参团")).to_be_visible()
    expect(page.locator("#my-status")).to_have_text("已参团")


def pass_the_deadline(app: Flask, group_buy_id: int) -> str:
    """The live server's app is in this process: move the deadline into the past in its
    database, then run the closer as cron would (`flask groupbuy close-due`)."""
    with app.app_context():
        db.session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_buy_id)
            .values(
                opens_at=utcnow() - timedelta(hours=1), closes_at=utcnow() - timedelta(seconds=1)
            )
        )
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["groupbuy", "close-due"])
    assert result.exit_code == 0, result.output
    return result.output


def test_coordinator_opens_two_employees_join_it_closes_and_they_pick_up(
    e2e_open_page: Callable[..., Page],
    live_app: Flask,
    e2e_console_errors: list[str],
) -> None:
    title = f"中秋蜂蜜团购 {uuid.uuid4().hex[:6]}"
    coordinator = e2e_open_page(mobile=False)
    sign_in(coordinator, COORDINATOR)
    group_buy_id = open_group_buy(coordinator, title)
    expect(coordinator.locator("#progress-min")).to_be_visible()
    coop = e2e_open_page()
    sign_in(coop, COOP_MANAGER)
    accept_as_coop(coop, group_buy_id, title)

    phones = []
    for number, (email, _name, _last4) in enumerate(EMPLOYEES):
        phone = e2e_open_page()
        sign_in(phone, email)
        join_from_home(phone, title, 2)
        phones.append(phone)
        if number == 0:
            expect(phone.locator("#progress-min-text")).to_have_text("还差 2 件成团")
            expect(phone.locator("#next-tier")).to_have_text("还差 2 件到下一档 ¥75.00")
    expect(phones[-1].locator("#progress-min-text")).to_have_text("已达成团量")

    coordinator.reload()
    participants = coordinator.locator("#participants tbody tr")
    expect(participants).to_have_count(2)
    for _email, name, _last4 in EMPLOYEES:
        expect(participants.filter(has_text=name)).to_contain_text("已参团")

    assert "closed 1 group-buys" in pass_the_deadline(live_app, group_buy_id)

    for phone in phones:
        phone.reload()
        expect(phone.locator("#my-status")).to_have_text("已成团 · 待发货")
        expect(phone.locator("#pickup-later")).to_be_visible()
        expect(phone.locator("#join-form")).to_have_count(0)

    # Nothing to tick off before the parcel is there: the co-op ships, the coordinator sees it
    # arrive and marks it, and only then are the employees told to come.
    coordinator.reload()
    coordinator.locator("#pickup-list-link").click()
    expect(coordinator.get_by_role("heading", name=re.compile("取货单"))).to_be_visible()
    expect(coordinator.locator("#parcel-status")).to_contain_text("等待合作社发货")
    expect(coordinator.get_by_role("button", name="确认取货")).to_have_count(0)
    ship_as_coop(coop, title)
    coordinator.reload()
    coordinator.once("dialog", lambda dialog: dialog.accept())
    coordinator.locator("#arrived-button").click()
    expect(coordinator.get_by_role("alert").filter(has_text="已标记到货")).to_be_visible()

    for phone in phones:
        phone.reload()
        expect(phone.locator("#my-status")).to_have_text("待取货")
        expect(phone.locator("#my-participation")).to_contain_text("请到 市场监管局一楼大厅 取货")

    rows = coordinator.locator("#pickup-table .pickup-row")
    expect(rows).to_have_count(2)
    for _email, name, last4 in EMPLOYEES:
        row = rows.filter(has_text=name)
        expect(row.locator(".pickup-phone")).to_have_text(last4)
        expect(row).to_contain_text(f"{HONEY} × 2")
        expect(row).to_contain_text("取货时收 ¥150.00")  # the tier reached: 2 × ¥75.00

    # 刘职工 comes to the desk and pays; the coordinator confirms the money and the handover.
    first = rows.filter(has_text=EMPLOYEES[0][1])
    coordinator.once("dialog", lambda dialog: dialog.accept())
    first.get_by_role("button", name="确认取货").click()
    expect(coordinator.get_by_role("alert").filter(has_text="刘职工 已取货")).to_be_visible()
    expect(first.locator(".pickup-status")).to_have_text("已取货")
    expect(first).to_contain_text("已付 ¥150.00")
    expect(rows.filter(has_text=EMPLOYEES[1][1])).to_contain_text("取货时收 ¥150.00")

    phones[0].reload()
    expect(phones[0].locator("#my-status")).to_have_text("已取货")
    phones[1].reload()
    expect(phones[1].locator("#my-status")).to_have_text("待取货")

    assert e2e_console_errors == []
