"""爱心团购 through the pages: a coordinator opens one, employees join, change and leave, it closes
at the deadline, the coordinator ticks off pickups and the co-op ships one parcel; who may see
what; and every bad input answered with a message, never a 500."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select, update

from market.accounts.models import User
from market.extensions import db
from market.groupbuy import proposals, queries
from market.groupbuy.display import time_left
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    Participation,
    ParticipationStatus,
    PaymentMode,
    Visibility,
)
from market.models import utcnow
from market.orders.models import Order, OrderStatus
from market.payments.models import Payment, PaymentStatus
from tests.groupbuy.conftest import accept_as_coop
from tests.orders.conftest import sku_of
from tests.payments import conftest as payments_fixtures

SHANGHAI = ZoneInfo("Asia/Shanghai")
HONEY_FEN = 8800

# Card payments through a localstripe of this module's own (tests/payments/conftest.py).
localstripe_url = payments_fixtures.localstripe_url
stripe_app = payments_fixtures.stripe_app
card_token = payments_fixtures.card_token
GOOD_CARD = payments_fixtures.GOOD_CARD


# -- helpers ---------------------------------------------------------------------------------------
def local_input(moment: datetime) -> str:
    """What an <input type=datetime-local> sends for `moment`, in Beijing time."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def form_data(honey_sku: int, **overrides) -> dict:
    data = {
        "title": "中秋蜂蜜团购",
        "description": "古丁村的原生态蜂蜜，单位统一取货。",
        "opens_at": "",
        "closes_at": local_input(utcnow() + timedelta(days=2)),
        "min_quantity": "4",
        "payment_mode": "pickup",
        "visibility": "members",
        "pickup_address": "市场监管局一楼大厅",
        "pickup_contact": "李联络 13800000001",
        "pickup_window": "截止后第 3 天 12:00-14:00",
        "items-0-sku_id": str(honey_sku),
        "items-0-price": "80",
        "items-0-cap": "",
        "items-0-tiers-0-min_total_quantity": "4",
        "items-0-tiers-0-price": "75",
        "items-1-sku_id": "0",
        "items-2-sku_id": "0",
    }
    data.update(overrides)
    return data


def open_group_buy(app: Flask, world: SimpleNamespace, **overrides) -> int:
    """A pay-at-pickup, members-only honey group-buy proposed and accepted by the co-op through
    the services (for speed)."""
    honey_sku = sku_of(app, world.honey_product)
    item = proposals.ItemData(
        sku_id=honey_sku,
        price_fen=overrides.pop("price_fen", 8000),
        cap=overrides.pop("cap", None),
        tiers=overrides.pop("tiers", [proposals.TierData(4, 7500)]),
    )
    fields = dict(
        title="中秋蜂蜜团购",
        opens_at=utcnow(),
        closes_at=utcnow() + timedelta(days=2),
        min_quantity=4,
        payment_mode=PaymentMode.PICKUP,
        visibility=Visibility.MEMBERS,
        pickup_address="市场监管局一楼大厅",
        pickup_contact="李联络",
        pickup_window="周五中午",
        items=[item],
    )
    fields.update(overrides)
    with app.test_request_context():
        coordinator = db.session.get(User, world.coordinator)
        group_buy_id = proposals.open_group_buy(coordinator, proposals.GroupBuyData(**fields)).id
    accept_as_coop(app, group_buy_id)
    return group_buy_id


def accept_on_coop_page(client, group_buy_id: int) -> None:
    """The co-op's manager finds the request on the co-op's page and accepts it."""
    assert f"/coop/group-buys/{group_buy_id}/accept" in text(client.get("/coop/group-buys"))
    response = client.post(f"/coop/group-buys/{group_buy_id}/accept")
    assert response.status_code == 303
    assert "已确认团购" in text(client.get(response.headers["Location"]))


def ship_and_arrive(app: Flask, client_as, group_buy_id: int) -> None:
    """The co-op ships the consolidated parcel and the coordinator marks it arrived."""
    coop = client_as("coop_manager")
    shipped = coop.post(f"/coop/group-buys/{group_buy_id}/ship", data={"carrier": "顺丰速运"})
    assert shipped.status_code == 303
    arrived = client_as("coordinator").post(f"/unit/group-buys/{group_buy_id}/arrived")
    assert arrived.status_code == 303


def item_id(app: Flask, group_buy_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(GroupBuyItem.id).where(GroupBuyItem.group_buy_id == group_buy_id)
        )


def pass_deadline(app: Flask, group_buy_id: int) -> None:
    """The deadline passes: move the group-buy's times back instead of waiting."""
    with app.app_context():
        db.session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_buy_id)
            .values(
                opens_at=utcnow() - timedelta(days=3), closes_at=utcnow() - timedelta(minutes=1)
            )
        )
        db.session.commit()


def close_due(app: Flask) -> str:
    result = app.test_cli_runner().invoke(args=["groupbuy", "close-due"])
    assert result.exit_code == 0, result.output
    return result.output


def participation(app: Flask, group_buy_id: int, user_id: int) -> Participation | None:
    with app.app_context():
        found = queries.participation_of(group_buy_id, user_id)
        if found is not None:
            db.session.expunge(found)
        return found


def joined_quantity(app: Flask, group_buy_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(GroupBuyItem.joined_quantity).where(GroupBuyItem.group_buy_id == group_buy_id)
        )


def my_status(page: str) -> str:
    match = re.search(r'id="my-status">([^<]+)<', page)
    assert match, "the page shows my participation"
    return match.group(1)


def text(response) -> str:
    return response.get_data(as_text=True)


# -- the whole story -------------------------------------------------------------------------------
def test_opened_by_form_joined_by_two_closed_at_the_deadline_and_picked_up(app, world, client_as):
    coordinator = client_as("coordinator")
    honey_sku = sku_of(app, world.honey_product)

    page = text(coordinator.get("/unit/group-buys/new"))
    assert "发起团购" in page
    assert "【结对村】古丁村 · 原生态蜂蜜 500g · ¥88.00" in page  # the paired village first
    assert page.index("原生态蜂蜜") < page.index("白糖罂荔枝")
    assert 'value="card"' not in page  # the shop takes no cards here: pay at pickup only

    response = coordinator.post("/unit/group-buys/new", data=form_data(honey_sku))
    assert response.status_code == 303, text(response)[-1500:]
    manage_url = response.headers["Location"]
    group_buy_id = int(manage_url.rsplit("/", 1)[1])
    assert "团购已发起" in text(coordinator.get(manage_url))
    with app.app_context():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.payment_mode == PaymentMode.PICKUP
        assert group_buy.closes_at - utcnow() > timedelta(days=1, hours=23)  # Beijing time read
        assert [(t.min_total_quantity, t.price_fen) for t in group_buy.items[0].tiers] == [
            (4, 7500)
        ]

    employee, approver = client_as("employee"), client_as("approver")
    # Proposed: nobody sees it until the co-op agrees to its price, caps and dates.
    assert "中秋蜂蜜团购" not in text(employee.get("/group-buys"))
    assert employee.get(f"/group-buys/{group_buy_id}").status_code == 404
    assert "等待 古丁南药合作社 确认" in text(coordinator.get(manage_url))
    accept_on_coop_page(client_as("coop_manager"), group_buy_id)

    home = text(employee.get("/"))
    assert "本单位团购" in home and "中秋蜂蜜团购" in home
    listing = text(employee.get("/group-buys"))
    assert "中秋蜂蜜团购" in listing and "还差 4 件成团" in listing

    detail_url = f"/group-buys/{group_buy_id}"
    detail = text(employee.get(detail_url))
    assert 'id="progress-min"' in detail
    assert "还差 4 件成团" in detail
    assert "还差 4 件到下一档 ¥75.00" in detail
    assert "剩余 1 天 23 小时" in detail
    assert "市场监管局一楼大厅" in detail and "截止后第 3 天 12:00-14:00" in detail
    assert "古丁村" in detail and "原生态蜂蜜" in detail

    item = item_id(app, group_buy_id)
    response = employee.post(f"{detail_url}/join", data={f"item_{item}": "2"})
    assert response.status_code == 303
    assert response.headers["Location"] == detail_url
    detail = text(employee.get(detail_url))
    assert my_status(detail) == "已参团"
    assert "还差 2 件成团" in detail
    assert approver.post(f"{detail_url}/join", data={f"item_{item}": "2"}).status_code == 303
    assert "已达成团量" in text(approver.get(detail_url))

    pass_deadline(app, group_buy_id)
    assert "closed 1 group-buys" in close_due(app)
    assert "closed 0 group-buys" in close_due(app)  # closing twice changes nothing

    for client in (employee, approver):
        page = text(client.get(detail_url))
        assert my_status(page) == "已成团 · 待发货"  # nothing to pick up before the parcel
        assert "已成团" in page and 'id="pickup-later"' in page
    pickup_url = f"/unit/group-buys/{group_buy_id}/pickup-list"
    early = participation(app, group_buy_id, world.employee)
    assert "确认取货</button>" not in text(coordinator.get(pickup_url))
    refused = coordinator.post(f"/unit/group-buys/{group_buy_id}/pickups/{early.id}")
    assert refused.status_code == 303
    assert "包裹到达取货点后才能确认取货" in text(coordinator.get(pickup_url))

    ship_and_arrive(app, client_as, group_buy_id)
    for client in (employee, approver):
        page = text(client.get(detail_url))
        assert my_status(page) == "待取货"
        assert 'id="pickup-now"' in page
    assert "待取货" in text(employee.get("/group-buys"))

    pickups = text(coordinator.get(pickup_url))
    assert "刘职工" in pickups and "陈审批" in pickups
    assert "0003" in pickups  # the employee's phone, last four digits only
    assert "13800000003" not in pickups
    assert pickups.count("取货时收 ¥150.00") == 2  # the tier reached: 2 × ¥75.00

    mine = participation(app, group_buy_id, world.employee)
    response = coordinator.post(f"/unit/group-buys/{group_buy_id}/pickups/{mine.id}")
    assert response.status_code == 303
    pickups = text(coordinator.get(pickup_url))
    assert "刘职工 已取货" in pickups  # the flash
    assert "已付 ¥150.00" in pickups and "取货时收 ¥150.00" in pickups  # one done, one to go
    assert my_status(text(employee.get(detail_url))) == "已取货"
    with app.app_context():
        order = db.session.get(Order, mine.order_id)
        assert order.status == OrderStatus.COMPLETED
        assert order.net_paid_fen == 15000

    again = coordinator.post(f"/unit/group-buys/{group_buy_id}/pickups/{mine.id}")
    assert again.status_code == 303
    assert "该参团记录当前不能取货" in text(coordinator.get(pickup_url))


def test_time_left_is_days_and_hours_then_hours_and_minutes(app):
    now = datetime(2025, 9, 1, 4, 0, tzinfo=UTC)
    with app.test_request_context():
        assert time_left(now + timedelta(days=2, hours=5, minutes=59), now) == "剩余 2 天 5 小时"
        assert time_left(now + timedelta(hours=3, minutes=20), now) == "剩余 3 小时 20 分钟"
        assert time_left(now + timedelta(seconds=30), now) == "剩余 1 分钟"
        assert time_left(now - timedelta(seconds=1), now) == "已截止"


def test_change_then_leave_gives_the_quantity_back(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    employee = client_as("employee")
    url = f"/group-buys/{group_buy_id}"

    assert employee.post(f"{url}/join", data={f"item_{item}": "2"}).status_code == 303
    page = text(employee.get(url))
    assert 'id="change-form"' in page and f'name="item_{item}"' in page and 'value="2"' in page
    assert employee.post(f"{url}/change", data={f"item_{item}": "3"}).status_code == 303
    assert joined_quantity(app, group_buy_id) == 3
    assert "× 3" in text(employee.get(url))

    assert employee.post(f"{url}/leave").status_code == 303
    assert joined_quantity(app, group_buy_id) == 0
    assert participation(app, group_buy_id, world.employee).status == ParticipationStatus.LEFT
    page = text(employee.get(url))
    assert "已退出团购" in page
    assert 'id="join-form"' in page  # and may join again
    assert employee.post(f"{url}/join", data={f"item_{item}": "1"}).status_code == 303
    assert joined_quantity(app, group_buy_id) == 1


def test_a_group_buy_that_misses_its_minimum_releases_everyone(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    employee = client_as("employee")
    employee.post(f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "1"})
    pass_deadline(app, group_buy_id)
    close_due(app)
    page = text(employee.get(f"/group-buys/{group_buy_id}"))
    assert my_status(page) == "未结算（未扣款或已全额退款）"
    assert "未成团" in page
    assert 'id="join-form"' not in page


# -- the coordinator's changes ---------------------------------------------------------------------
def test_the_coordinator_extends_once_and_lowers_the_minimum(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    coordinator = client_as("coordinator")
    url = f"/unit/group-buys/{group_buy_id}"
    page = text(coordinator.get(url))
    assert 'id="extend-form"' in page and 'id="minimum-form"' in page

    earlier = coordinator.post(
        f"{url}/extend", data={"closes_at": local_input(utcnow() + timedelta(days=1))}
    )
    assert earlier.status_code == 400
    assert "新的截止时间必须晚于原截止时间" in text(earlier)

    later = utcnow() + timedelta(days=5)
    response = coordinator.post(f"{url}/extend", data={"closes_at": local_input(later)})
    assert response.status_code == 303
    with app.app_context():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.extended
        assert abs(group_buy.closes_at - later) < timedelta(minutes=1)
    page = text(coordinator.get(url))
    assert "已延期" in page and 'id="extend-form"' not in page
    twice = coordinator.post(
        f"{url}/extend", data={"closes_at": local_input(later + timedelta(days=1))}
    )
    assert twice.status_code == 400 and "团购只能延期一次" in text(twice)

    blank = coordinator.post(f"{url}/extend", data={"closes_at": ""})
    assert blank.status_code == 400 and "请填写新的截止时间" in text(blank)

    assert coordinator.post(f"{url}/minimum", data={"min_quantity": "2"}).status_code == 303
    higher = coordinator.post(f"{url}/minimum", data={"min_quantity": "5"})
    assert higher.status_code == 400
    assert "新的成团量必须小于原成团量且大于 0" in text(higher)
    assert "还差 2 件成团" in text(client_as("employee").get(f"/group-buys/{group_buy_id}"))


# -- the co-op's one parcel ------------------------------------------------------------------------
def test_the_coop_packs_the_consolidated_parcel_and_ships_it(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    for person in ("employee", "approver"):
        client_as(person).post(f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "2"})
    coop = client_as("coop_manager")
    listing = text(coop.get("/coop/group-buys"))
    shipping = listing.split('id="coop-shipping"')[1]
    assert "中秋蜂蜜团购" in listing.split('id="coop-open"')[1]  # open: no parcel yet
    assert "中秋蜂蜜团购" not in shipping

    pass_deadline(app, group_buy_id)
    close_due(app)
    shipping = text(coop.get("/coop/group-buys")).split('id="coop-shipping"')[1]
    assert "中秋蜂蜜团购" in shipping and "市场监管局一楼大厅" in shipping

    packing = text(coop.get(f"/coop/group-buys/{group_buy_id}/packing-list"))
    row = re.search(r"<tr><td[^>]*>原生态蜂蜜</td>.*?</tr>", packing).group(0)
    assert "500g" in row and ">4<" in row and "¥75.00" in row and "¥300.00" in row
    assert "市场监管局一楼大厅" in packing

    no_carrier = coop.post(f"/coop/group-buys/{group_buy_id}/ship", data={"carrier": ""})
    assert no_carrier.status_code == 303
    response = coop.post(
        f"/coop/group-buys/{group_buy_id}/ship",
        data={"carrier": "顺丰速运", "tracking_number": "SF100200300"},
    )
    assert response.status_code == 303
    assert "顺丰速运 SF100200300" in text(coop.get("/coop/group-buys"))
    manage = text(client_as("coordinator").get(f"/unit/group-buys/{group_buy_id}"))
    assert "合作社已发货：顺丰速运 SF100200300" in manage
    twice = coop.post(f"/coop/group-buys/{group_buy_id}/ship", data={"carrier": "顺丰速运"})
    assert twice.status_code == 303
    assert "该团购已发货" in text(coop.get(f"/coop/group-buys/{group_buy_id}/packing-list"))


# -- who may see what ------------------------------------------------------------------------------
def test_another_units_coordinator_is_refused_every_management_page(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    other = client_as("other_coordinator")
    url = f"/unit/group-buys/{group_buy_id}"
    for response in (
        other.get(url),
        other.get(f"{url}/pickup-list"),
        other.post(f"{url}/extend", data={"closes_at": local_input(utcnow() + timedelta(days=9))}),
        other.post(f"{url}/minimum", data={"min_quantity": "1"}),
        other.post(f"{url}/pickups/1"),
    ):
        assert response.status_code == 403
        assert "只能管理本单位的团购" in text(response)
    assert "中秋蜂蜜团购" not in text(other.get("/unit/group-buys"))
    assert client_as("employee").get(url).status_code == 403  # not a coordinator at all
    assert client_as("coordinator").get("/unit/group-buys/999999").status_code == 404


def test_members_only_is_refused_to_outsiders_with_the_reason(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    buyer = client_as("buyer")
    detail = buyer.get(f"/group-buys/{group_buy_id}")
    assert detail.status_code == 403
    assert "该团购仅限 高州市市场监管局 的职工参加" in text(detail)
    join = buyer.post(f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "1"})
    assert join.status_code == 403
    assert "该团购仅限 高州市市场监管局 的职工参加" in text(join)
    assert participation(app, group_buy_id, world.buyer) is None
    other = client_as("other_coordinator")
    assert other.get(f"/group-buys/{group_buy_id}").status_code == 403
    assert "中秋蜂蜜团购" not in text(other.get("/group-buys"))
    assert client_as("employee").get("/group-buys/999999").status_code == 404
    anonymous = app.test_client().get(f"/group-buys/{group_buy_id}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_a_link_group_buy_is_open_to_anyone_signed_in(app, world, client_as):
    group_buy_id = open_group_buy(app, world, visibility=Visibility.LINK)
    item = item_id(app, group_buy_id)
    buyer = client_as("buyer")
    assert buyer.get(f"/group-buys/{group_buy_id}").status_code == 200
    assert buyer.post(
        f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "1"}
    ).status_code == (303)
    assert "中秋蜂蜜团购" in text(buyer.get("/group-buys"))  # listed among the ones I joined


def test_coop_pages_are_only_for_the_group_buys_coop(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    other = client_as("other_coop_manager")
    packing = other.get(f"/coop/group-buys/{group_buy_id}/packing-list")
    assert packing.status_code == 403 and "这不是您合作社的团购" in text(packing)
    ship = other.post(f"/coop/group-buys/{group_buy_id}/ship", data={"carrier": "顺丰速运"})
    assert ship.status_code == 403
    assert client_as("employee").get("/coop/group-buys").status_code == 403
    assert client_as("coop_manager").get(
        f"/coop/group-buys/{group_buy_id}/packing-list"
    ).status_code == (200)


def test_navigation_shows_each_role_its_group_buy_pages(client_as):
    employee = text(client_as("employee").get("/"))
    assert 'href="/group-buys"' in employee and 'href="/unit/group-buys"' not in employee
    coordinator = text(client_as("coordinator").get("/"))
    assert 'href="/unit/group-buys"' in coordinator and "单位团购" in coordinator
    coop = text(client_as("coop_manager").get("/"))
    assert 'href="/coop/group-buys"' in coop and "团购配送" in coop
    buyer = text(client_as("buyer").get("/"))
    assert 'href="/group-buys"' not in buyer and "本单位团购" not in buyer


# -- bad input: a message, never a 500 -------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"closes_at": local_input(utcnow() - timedelta(hours=1))}, "截止时间必须晚于现在"),
        ({"closes_at": ""}, "请填写截止时间"),
        ({"closes_at": "明天"}, "不是有效的日期与时间值"),
        (
            {
                "items-0-tiers-0-min_total_quantity": "6",
                "items-0-tiers-1-min_total_quantity": "5",
                "items-0-tiers-1-price": "70",
            },
            "阶梯数量必须逐级增加",
        ),
        ({"items-0-tiers-0-price": "85"}, "阶梯价格必须逐级降低"),
        ({"items-0-tiers-0-price": ""}, "阶梯的数量和单价要一起填写"),
        ({"items-0-price": ""}, "请填写团购价"),
        ({"items-0-price": "八十"}, "请输入正确的金额"),
        ({"items-0-sku_id": "0"}, "请至少选择一个商品规格"),
        ({"items-0-cap": "51"}, "库存只有 50"),
        ({"min_quantity": "0"}, "成团量应在 1 到 1000000 件之间"),
        ({"title": " "}, "请填写团购标题"),
        ({"pickup_address": ""}, "请填写取货地点"),
    ],
)
def test_bad_opening_forms_are_answered_on_the_form(app, world, client_as, overrides, message):
    honey_sku = sku_of(app, world.honey_product)
    response = client_as("coordinator").post(
        "/unit/group-buys/new", data=form_data(honey_sku, **overrides)
    )
    assert response.status_code == 400
    assert message in text(response)
    with app.app_context():
        assert db.session.scalar(select(GroupBuy.id)) is None


def test_items_of_two_coops_cannot_share_a_group_buy(app, world, client_as):
    data = form_data(
        sku_of(app, world.honey_product),
        **{"items-1-sku_id": str(sku_of(app, world.lychee)), "items-1-price": "80"},
    )
    response = client_as("coordinator").post("/unit/group-buys/new", data=data)
    assert response.status_code == 400
    assert "一个团购的商品须来自同一个合作社" in text(response)


def test_joining_beyond_the_cap_twice_or_after_the_deadline_is_refused(app, world, client_as):
    group_buy_id = open_group_buy(app, world, cap=3)
    item = item_id(app, group_buy_id)
    employee = client_as("employee")
    url = f"/group-buys/{group_buy_id}"
    assert "限量 3 件，还剩 3 件" in text(employee.get(url))

    over = employee.post(f"{url}/join", data={f"item_{item}": "4"})
    assert over.status_code == 400
    assert "超出团购上限：原生态蜂蜜 还剩 3 件" in text(over)
    assert participation(app, group_buy_id, world.employee) is None
    assert joined_quantity(app, group_buy_id) == 0

    for quantity, message in [("0", "请至少选择 1 件"), ("-1", "数量应在 0 到"), ("x", "")]:
        bad = employee.post(f"{url}/join", data={f"item_{item}": quantity})
        assert bad.status_code == 400 and message in text(bad)

    assert employee.post(f"{url}/join", data={f"item_{item}": "2"}).status_code == 303
    twice = employee.post(f"{url}/join", data={f"item_{item}": "1"})
    assert twice.status_code == 400
    assert "您已参团，可以修改数量或退出" in text(twice)
    assert joined_quantity(app, group_buy_id) == 2
    change_over = employee.post(f"{url}/change", data={f"item_{item}": "4"})
    assert change_over.status_code == 400 and "超出团购上限" in text(change_over)
    assert joined_quantity(app, group_buy_id) == 2

    pass_deadline(app, group_buy_id)
    late = client_as("approver").post(f"{url}/join", data={f"item_{item}": "1"})
    assert late.status_code == 400
    assert "团购已截止" in text(late)
    leave_late = employee.post(f"{url}/leave")
    assert leave_late.status_code == 303
    assert "团购已截止" in text(employee.get(url))
    assert participation(app, group_buy_id, world.approver) is None


def test_paying_is_refused_for_a_pay_at_pickup_group_buy(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    employee = client_as("employee")
    employee.post(f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "1"})
    page = text(employee.get(f"/group-buys/{group_buy_id}"))
    assert 'id="pay-button"' not in page
    response = employee.post(f"/group-buys/{group_buy_id}/pay")
    assert response.status_code == 303
    assert "该团购在取货时付款" in text(employee.get(f"/group-buys/{group_buy_id}"))


# -- card group-buys: joining leads straight into the card page, which comes back here -------------
def test_joining_a_card_group_buy_goes_to_the_card_page_and_back(
    stripe_app, world, client_as, card_token
):
    honey_sku = sku_of(stripe_app, world.honey_product)
    coordinator = client_as("coordinator")
    assert 'value="card"' in text(coordinator.get("/unit/group-buys/new"))
    response = coordinator.post(
        "/unit/group-buys/new", data=form_data(honey_sku, payment_mode="card")
    )
    assert response.status_code == 303
    group_buy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    accept_on_coop_page(client_as("coop_manager"), group_buy_id)
    item = item_id(stripe_app, group_buy_id)
    detail_url = f"/group-buys/{group_buy_id}"

    employee = client_as("employee")
    response = employee.post(f"{detail_url}/join", data={f"item_{item}": "2"})
    assert response.status_code == 303
    location = response.headers["Location"]
    match = re.fullmatch(r"/orders/(\d+)/pay/stripe\?next=(%2F|/)group-buys(%2F|/)\d+", location)
    assert match, location
    number = match.group(1)
    card_page = text(employee.get(location))
    assert f'data-done-url="{detail_url}"' in card_page
    assert "¥160.00" in card_page  # authorised at the group-buy price: 2 × ¥80.00

    # Elsewhere than our own pages is never a place to go back to.
    for outside in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        page = text(employee.get(f"/orders/{number}/pay/stripe", query_string={"next": outside}))
        assert f'data-done-url="/orders/{number}"' in page

    # Not paid yet: the group-buy page asks for it.
    page = text(employee.get(detail_url))
    assert my_status(page) == "已参团" and 'id="pay-button"' in page
    again = employee.post(f"{detail_url}/pay")
    assert again.status_code == 303 and again.headers["Location"] == location

    confirmed = employee.post(
        f"/orders/{number}/pay/stripe/confirm", json={"token": card_token(GOOD_CARD)}
    )
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["status"] == "authorized"
    page = text(employee.get(detail_url))
    assert 'id="pay-button"' not in page and 'id="payment-secured"' in page
    with stripe_app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        statuses = db.session.scalars(select(Payment.status).where(Payment.order_id == order.id))
        assert list(statuses) == [PaymentStatus.AUTHORIZED]


def test_the_pages_forms_carry_their_csrf_token(app, world, client_as):
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    app.config["WTF_CSRF_ENABLED"] = True  # the app fixture turns it off again
    employee = client_as("employee")
    url = f"/group-buys/{group_buy_id}"
    forged = employee.post(f"{url}/join", data={f"item_{item}": "1"})
    assert forged.status_code == 400
    page = text(employee.get(url))
    token = re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, "the join form carries a token"
    joined = employee.post(f"{url}/join", data={"csrf_token": token.group(1), f"item_{item}": "1"})
    assert joined.status_code == 303
    assert my_status(text(employee.get(url))) == "已参团"
