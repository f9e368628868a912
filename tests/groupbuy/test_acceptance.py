"""Group-buy rules a co-op agrees to, and honest statuses.

A coordinator's group-buy is only a proposal until the co-op of its SKUs accepts its prices, caps
and dates: nothing is reserved and no employee sees it before; the co-op may decline with a reason.
Closing times are at most 30 days ahead, an extension stays within the card authorisation window.
The coordinator, the co-op or an organizer may cancel a proposed or open group-buy, once: every
authorisation cancelled (at localstripe too), every charge refunded, every reservation returned,
everyone told. A card-held order says 已授权 · 待成团, and 可以取货了 / 确认取货 wait for the
co-op's parcel to arrive."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from market.catalog.models import Sku
from market.errors import Conflict, DomainError, NotAllowed
from market.extensions import db
from market.groupbuy import changes, fulfilment, joining, proposals, queries
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.groupbuy.proposals import ItemData, TierData
from market.models import utcnow
from market.notifications.models import Notification
from market.orders.models import Order, OrderStatus
from market.payments.models import Payment, PaymentStatus
from tests.groupbuy.conftest import GROUP_PRICE, TIERS, WORLD_STOCK, Kit
from tests.groupbuy.test_card import intent, refunded_at_stripe
from tests.groupbuy.test_views import close_due, local_input, pass_deadline, text
from tests.payments.conftest import GOOD_CARD

SHANGHAI = ZoneInfo("Asia/Shanghai")
SOON = timedelta(hours=2)  # a card authorisation, captured at close
LATER = timedelta(days=8)  # a card charge, refunded the difference at close


def notified(kind: str) -> list[int]:
    return sorted(db.session.scalars(select(Notification.user_id).where(Notification.kind == kind)))


def bodies(kind: str) -> list[str]:
    return list(db.session.scalars(select(Notification.body).where(Notification.kind == kind)))


def beijing(moment) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def honey_and_herbs(kit: Kit, honey_cap: int | None = 10) -> list[ItemData]:
    """Honey capped (reserved when the co-op accepts), herbs without a cap (taken by orders)."""
    honey, herb = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    return [
        ItemData(honey, GROUP_PRICE, honey_cap, list(TIERS)),
        ItemData(herb, 2200, None, [TierData(5, 2000)]),
    ]


def status_of(kit: Kit, group_buy_id: int) -> GroupBuyStatus:
    with kit.ctx():
        return db.session.get(GroupBuy, group_buy_id).status


def flashed(client, path: str) -> str:
    return text(client.get(path))


# -- the co-op's acceptance ---------------------------------------------------------------------
def test_a_proposal_reserves_nothing_until_its_coop_accepts_and_only_that_coop_sees_it(
    kit, client_as
):
    honey, herb = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    group_buy_id = kit.propose(items=honey_and_herbs(kit))
    assert status_of(kit, group_buy_id) == GroupBuyStatus.PROPOSED
    assert kit.stock(honey) == WORLD_STOCK  # the cap is not reserved on proposal

    coop, other_coop = client_as("coop_manager"), client_as("other_coop_manager")
    page = text(coop.get("/coop/group-buys"))
    proposal = page.split(f'id="proposal-{group_buy_id}"')[1].split('id="coop-open"')[0]
    assert "消费帮扶 · 蜂蜜团购" in proposal and "高州市市场监管局" in proposal
    assert "原生态蜂蜜 500g：¥80.00，满 5 件 ¥70.00，满 10 件 ¥60.00" in proposal
    assert "上限 10 件（库存 50）" in proposal and "不设上限" in proposal
    with kit.ctx():
        closes_at = db.session.get(GroupBuy, group_buy_id).closes_at
        assert notified("groupbuy.proposed") == [kit.world.coop_manager]
    assert beijing(closes_at) in proposal  # the dates it agrees to
    assert "消费帮扶 · 蜂蜜团购" not in text(other_coop.get("/coop/group-buys"))

    # Employees do not know of it: not listed, not on the home page, no page, no joining.
    employee = client_as("employee")
    assert "消费帮扶 · 蜂蜜团购" not in text(employee.get("/group-buys"))
    assert "消费帮扶 · 蜂蜜团购" not in text(employee.get("/"))
    assert employee.get(f"/group-buys/{group_buy_id}").status_code == 404
    item = kit.item_ids(group_buy_id)[0]
    joined = employee.post(f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "1"})
    assert joined.status_code == 404
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(Participation)) == 0

    accepted = coop.post(f"/coop/group-buys/{group_buy_id}/accept")
    assert accepted.status_code == 303
    assert "已确认团购，职工现在可以参团了" in text(coop.get("/coop/group-buys"))
    assert status_of(kit, group_buy_id) == GroupBuyStatus.OPEN
    assert kit.stock(honey) == WORLD_STOCK - 10  # reserved now, by the co-op's acceptance
    assert kit.stock(herb) == WORLD_STOCK
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.accepted_by_id == kit.world.coop_manager
        assert [i.reserved_stock for i in group_buy.items] == [10, 0]
        assert notified("groupbuy.accepted") == [kit.world.coordinator]
    page = text(coop.get("/coop/group-buys"))
    assert f'id="open-{group_buy_id}"' in page and f'id="proposal-{group_buy_id}"' not in page
    assert "消费帮扶 · 蜂蜜团购" in text(employee.get("/group-buys"))
    again = coop.post(f"/coop/group-buys/{group_buy_id}/accept")
    assert again.status_code == 303
    assert "不能再确认或拒绝" in text(coop.get("/coop/group-buys"))
    assert kit.stock(honey) == WORLD_STOCK - 10  # reserved once


def test_acceptance_is_refused_when_the_stock_no_longer_covers_a_cap(kit, client_as):
    honey = kit.sku_of(kit.world.honey_product)
    group_buy_id = kit.propose(items=[ItemData(honey, GROUP_PRICE, 30, list(TIERS))])
    with kit.ctx():  # retail sold 30 meanwhile
        db.session.execute(update(Sku).where(Sku.id == honey).values(stock=20))
        db.session.commit()
    coop = client_as("coop_manager")
    coop.post(f"/coop/group-buys/{group_buy_id}/accept")
    assert "库存只有 20，不够预留上限 30 件" in text(coop.get("/coop/group-buys"))
    assert status_of(kit, group_buy_id) == GroupBuyStatus.PROPOSED
    assert kit.stock(honey) == 20


def test_a_stranger_cannot_answer_for_a_coop(kit, client_as, app):
    lychee = kit.sku_of(kit.world.lychee)
    honey_id = kit.propose()
    lychee_id = kit.propose(items=[ItemData(lychee, 8000, 5, [])])
    for group_buy_id, stranger in (
        (honey_id, "other_coop_manager"),
        (lychee_id, "coop_manager"),  # the coordinator's own paired co-op, not the lychee's
    ):
        client = client_as(stranger)
        for action in ("accept", "decline"):
            response = client.post(
                f"/coop/group-buys/{group_buy_id}/{action}", data={"reason": "不行"}
            )
            assert response.status_code == 403
            assert "只有该合作社的负责人可以确认或拒绝团购" in text(response)
    for role in ("coordinator", "organizer", "employee"):
        assert client_as(role).post(f"/coop/group-buys/{honey_id}/accept").status_code == 403
    assert client_as("coop_manager").post("/coop/group-buys/999999/accept").status_code == 404
    # Nor an admin: the co-op agrees to its own price.
    with kit.ctx(), pytest.raises(NotAllowed):
        proposals.accept_group_buy(kit.user(kit.world.admin), honey_id)
    assert status_of(kit, honey_id) == status_of(kit, lychee_id) == GroupBuyStatus.PROPOSED
    assert kit.stock(lychee) == WORLD_STOCK

    kit.accept(lychee_id, kit.world.other_coop_manager)  # its own co-op may
    assert kit.stock(lychee) == WORLD_STOCK - 5


def test_declining_says_why_to_the_coordinator_and_nobody_ever_sees_it(kit, client_as):
    group_buy_id = kit.propose(items=honey_and_herbs(kit))
    coop = client_as("coop_manager")
    blank = coop.post(f"/coop/group-buys/{group_buy_id}/decline", data={"reason": " "})
    assert blank.status_code == 303
    assert "请填写理由" in text(coop.get("/coop/group-buys"))
    assert status_of(kit, group_buy_id) == GroupBuyStatus.PROPOSED

    response = coop.post(
        f"/coop/group-buys/{group_buy_id}/decline", data={"reason": "团购价低于成本"}
    )
    assert response.status_code == 303
    assert "已拒绝该团购申请" in text(coop.get("/coop/group-buys"))
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.decline_reason) == (
            GroupBuyStatus.DECLINED,
            "团购价低于成本",
        )
        assert notified("groupbuy.declined") == [kit.world.coordinator]
        assert bodies("groupbuy.declined") == ["古丁南药合作社 的理由：团购价低于成本"]
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK
    manage = text(client_as("coordinator").get(f"/unit/group-buys/{group_buy_id}"))
    assert "未接受这个团购，理由：团购价低于成本" in manage and 'id="share-link"' not in manage
    assert client_as("employee").get(f"/group-buys/{group_buy_id}").status_code == 404
    late = coop.post(f"/coop/group-buys/{group_buy_id}/accept")
    assert late.status_code == 303
    assert "当前为“合作社已拒绝”，不能再确认或拒绝" in text(coop.get("/coop/group-buys"))
    assert status_of(kit, group_buy_id) == GroupBuyStatus.DECLINED


def test_a_proposal_past_its_closing_time_cannot_be_accepted(kit, client_as):
    group_buy_id = kit.propose(items=honey_and_herbs(kit))
    with kit.ctx():
        db.session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_buy_id)
            .values(
                opens_at=utcnow() - timedelta(days=1), closes_at=utcnow() - timedelta(minutes=1)
            )
        )
        db.session.commit()
    with kit.ctx(), pytest.raises(DomainError, match="截止时间已过，不能再确认"):
        proposals.accept_group_buy(kit.user(kit.world.coop_manager), group_buy_id)
    assert status_of(kit, group_buy_id) == GroupBuyStatus.PROPOSED
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK
    page = text(client_as("coop_manager").get("/coop/group-buys"))
    assert f'id="proposal-{group_buy_id}"' not in page  # nothing left to answer
    manage = text(client_as("coordinator").get(f"/unit/group-buys/{group_buy_id}"))
    assert "合作社未确认，这个团购不会开放" in manage
    # The closer leaves it alone: it never opened.
    assert "closed 0 group-buys" in close_due(kit.app)
    assert status_of(kit, group_buy_id) == GroupBuyStatus.PROPOSED


# -- bounds on dates ------------------------------------------------------------------------------
def test_a_closing_time_more_than_30_days_ahead_is_refused(kit, client_as, app):
    from tests.groupbuy.test_views import form_data
    from tests.orders.conftest import sku_of

    with pytest.raises(DomainError, match="截止时间最晚为 30 天后"):
        kit.propose(closes_at=utcnow() + timedelta(days=30, minutes=5))
    kit.propose(closes_at=utcnow() + timedelta(days=29, hours=23))  # within: fine

    coordinator = client_as("coordinator")
    honey_sku = sku_of(app, kit.world.honey_product)
    for closes_at, message in [
        ("9999-12-31T23:59", "截止时间最晚为 30 天后"),
        (local_input(utcnow() + timedelta(days=31)), "截止时间最晚为 30 天后"),
        ("0001-01-01T00:00", "请填写有效的日期与时间"),
        (local_input(utcnow() - timedelta(days=1)), "截止时间必须晚于现在"),
    ]:
        response = coordinator.post(
            "/unit/group-buys/new", data=form_data(honey_sku, closes_at=closes_at)
        )
        assert response.status_code == 400, closes_at
        assert message in text(response), closes_at
    opens_far = coordinator.post(
        "/unit/group-buys/new",
        data=form_data(honey_sku, opens_at="0001-01-01T00:00"),
    )
    assert opens_far.status_code == 400 and "请填写有效的日期与时间" in text(opens_far)
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(GroupBuy)) == 1


def test_an_extension_stays_within_30_days_and_is_refused_with_the_latest_time(kit, client_as):
    group_buy_id = kit.open()
    coordinator = client_as("coordinator")
    url = f"/unit/group-buys/{group_buy_id}"
    for closes_at, message in [
        ("9999-12-31T23:59", "截止时间最晚为 30 天后"),
        (local_input(utcnow() + timedelta(days=31)), "截止时间最晚为 30 天后"),
        (local_input(utcnow() - timedelta(days=1)), "新的截止时间必须晚于原截止时间"),
        ("0001-01-01T00:00", "请填写有效的日期与时间"),
        ("2025-13-45T99:99", "不是有效的日期与时间值"),
    ]:
        response = coordinator.post(f"{url}/extend", data={"closes_at": closes_at})
        assert response.status_code == 400, closes_at
        assert message in text(response), closes_at
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert not group_buy.extended
    with kit.ctx(), pytest.raises(DomainError) as refused:
        changes.extend(
            kit.user(kit.world.coordinator), group_buy_id, utcnow() + timedelta(days=30, hours=1)
        )
    assert re.search(r"截止时间最晚为 30 天后（\d{4}-\d\d-\d\d \d\d:\d\d）", str(refused.value))
    fine = coordinator.post(
        f"{url}/extend", data={"closes_at": local_input(utcnow() + timedelta(days=29))}
    )
    assert fine.status_code == 303


def test_an_extension_of_a_card_group_buy_stays_within_its_authorisation_window(
    kit, stripe_app, card_token, client_as
):
    group_buy_id = kit.open(payment_mode=PaymentMode.CARD, closes_at=utcnow() + SOON)
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 2)
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    assert paid.status == PaymentStatus.AUTHORIZED
    with kit.ctx():
        started = db.session.get(Payment, paid.payment_id).created_at
    latest = started + joining.AUTHORIZE_WITHIN

    coordinator = client_as("coordinator")
    url = f"/unit/group-buys/{group_buy_id}"
    assert f"最晚 {beijing(latest)}" in text(coordinator.get(url))  # said before anyone tries
    response = coordinator.post(
        f"{url}/extend", data={"closes_at": local_input(utcnow() + timedelta(days=7))}
    )
    assert response.status_code == 400
    assert f"银行卡授权只保留 6 天，最晚可延期至 {beijing(latest)}" in text(response)
    with kit.ctx():
        assert not db.session.get(GroupBuy, group_buy_id).extended

    within = utcnow() + timedelta(days=5, hours=12)
    response = coordinator.post(f"{url}/extend", data={"closes_at": local_input(within)})
    assert response.status_code == 303
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.extended and group_buy.closes_at <= latest


def test_a_card_group_buy_without_authorisations_extends_up_to_30_days(kit, stripe_app):
    group_buy_id = kit.open(payment_mode=PaymentMode.CARD, closes_at=utcnow() + SOON)
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 2)  # joined, never paid: nothing is held
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert changes.authorisation_deadline(group_buy) is None
    with kit.ctx():
        changes.extend(kit.user(kit.world.coordinator), group_buy_id, utcnow() + timedelta(20))
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert not joining.manual_capture(group_buy)  # who pays now is charged instead


# -- cancelling ---------------------------------------------------------------------------------
CANCEL_URL = {
    "coordinator": "/unit/group-buys/{id}/cancel",
    "coop_manager": "/coop/group-buys/{id}/cancel",
    "organizer": "/admin/group-buys/{id}/cancel",
}
BACK = {
    "coordinator": "/unit/group-buys/{id}",
    "coop_manager": "/coop/group-buys",
    "organizer": "/admin/group-buys",
}


@pytest.mark.parametrize("role", ["coordinator", "coop_manager", "organizer"])
def test_cancelling_releases_every_card_and_all_stock_and_tells_everyone(
    kit, stripe_app, card_token, stripe_client, client_as, role
):
    honey, herb = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    group_buy_id = kit.open(
        items=honey_and_herbs(kit), payment_mode=PaymentMode.CARD, closes_at=utcnow() + SOON
    )
    honey_item, herb_item = kit.item_ids(group_buy_id)
    a, b = kit.members(2)
    pa = kit.join(a, group_buy_id, {honey_item: 2, herb_item: 1})
    pb = kit.join(b, group_buy_id, {honey_item: 1})  # never pays
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    assert paid.status == PaymentStatus.AUTHORIZED
    assert intent(stripe_client, paid.intent_id).status == "requires_capture"
    assert (kit.stock(honey), kit.stock(herb)) == (WORLD_STOCK - 10, WORLD_STOCK - 1)

    client = client_as(role)
    if role != "coordinator":  # the co-op's and the organizer's lists offer the button
        assert CANCEL_URL[role].format(id=group_buy_id) in text(
            client.get(BACK[role].format(id=group_buy_id))
        )
    url = CANCEL_URL[role].format(id=group_buy_id)
    blank = client.post(url, data={"reason": ""})
    assert blank.status_code in (303, 400)
    assert status_of(kit, group_buy_id) == GroupBuyStatus.OPEN

    response = client.post(url, data={"reason": "产品检测未通过"})
    assert response.status_code == 303
    assert "团购已取消" in text(client.get(response.headers["Location"]))

    assert intent(stripe_client, paid.intent_id).status == "canceled"  # the hold is gone
    assert (kit.stock(honey), kit.stock(herb)) == (WORLD_STOCK, WORLD_STOCK)
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.CANCELLED
        assert group_buy.cancel_reason == "产品检测未通过"
        assert group_buy.cancelled_by_id == getattr(kit.world, role)
        assert [i.reserved_stock for i in group_buy.items] == [0, 0]
        assert [i.joined_quantity for i in group_buy.items] == [0, 0]
        for pid in (pa, pb):
            assert db.session.get(Participation, pid).status == ParticipationStatus.RELEASED
            assert kit.order_of(pid).status == OrderStatus.CANCELLED
        assert db.session.get(Payment, paid.payment_id).status == PaymentStatus.CANCELLED
        told = notified("groupbuy.cancelled")
        assert told == sorted([a, b, kit.world.coordinator, kit.world.coop_manager])
        assert all("产品检测未通过" in body for body in bodies("groupbuy.cancelled"))

    page = text(client_as("coordinator").get(f"/unit/group-buys/{group_buy_id}"))
    assert "取消，理由：产品检测未通过" in page and 'id="cancel-form"' not in page

    # Once only: a second cancel changes nothing and says so.
    again = client.post(url, data={"reason": "再取消一次"})
    assert again.status_code in (303, 409)
    assert "该团购已取消，无需再次取消" in (
        text(again) + text(client.get(BACK[role].format(id=group_buy_id)))
    )
    with kit.ctx():
        assert len(notified("groupbuy.cancelled")) == 4
        assert db.session.get(GroupBuy, group_buy_id).cancel_reason == "产品检测未通过"
    assert (kit.stock(honey), kit.stock(herb)) == (WORLD_STOCK, WORLD_STOCK)
    # Nobody can join or pay any more.
    with pytest.raises(DomainError, match="团购已取消"):
        kit.join(kit.members(1)[0], group_buy_id, 1)


def test_cancelling_a_charged_group_buy_refunds_every_charge_in_full(
    kit, stripe_app, card_token, stripe_client
):
    group_buy_id = kit.open(payment_mode=PaymentMode.CARD, closes_at=utcnow() + LATER)
    (a,) = kit.members(1)
    pa = kit.join(a, group_buy_id, 3)
    paid = kit.pay_by_card(a, group_buy_id, card_token(GOOD_CARD))
    assert (paid.status, paid.amount_fen) == (PaymentStatus.SUCCEEDED, 3 * GROUP_PRICE)
    with kit.ctx():
        changes.cancel_group_buy(kit.user(kit.world.organizer), group_buy_id, "合作社停产")
    assert refunded_at_stripe(stripe_client, paid.intent_id) == [3 * GROUP_PRICE]
    with kit.ctx():
        order = kit.order_of(pa)
        assert (order.status, order.paid_fen, order.refunded_fen) == (
            OrderStatus.CANCELLED,
            3 * GROUP_PRICE,
            3 * GROUP_PRICE,
        )


def test_a_proposal_can_be_cancelled_too_and_nothing_was_reserved(kit, client_as):
    group_buy_id = kit.propose(items=honey_and_herbs(kit))
    response = client_as("coordinator").post(
        f"/unit/group-buys/{group_buy_id}/cancel", data={"reason": "改期"}
    )
    assert response.status_code == 303
    assert status_of(kit, group_buy_id) == GroupBuyStatus.CANCELLED
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK
    with kit.ctx():
        assert kit.world.coop_manager in notified("groupbuy.cancelled")
    page = text(client_as("coop_manager").get("/coop/group-buys"))
    assert f'id="proposal-{group_buy_id}"' not in page


def test_strangers_cannot_cancel_and_the_deadline_ends_the_right_to(kit, client_as):
    group_buy_id = kit.open(items=honey_and_herbs(kit))
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 5)
    for role, url in (
        ("other_coordinator", "/unit/group-buys/{id}/cancel"),
        ("other_coop_manager", "/coop/group-buys/{id}/cancel"),
        ("employee", "/unit/group-buys/{id}/cancel"),
        ("coop_manager", "/admin/group-buys/{id}/cancel"),
    ):
        response = client_as(role).post(url.format(id=group_buy_id), data={"reason": "捣乱"})
        assert response.status_code == 403, role
    with kit.ctx(), pytest.raises(NotAllowed, match="活动组织方"):
        changes.cancel_group_buy(kit.user(kit.world.buyer), group_buy_id, "捣乱")
    assert status_of(kit, group_buy_id) == GroupBuyStatus.OPEN

    pass_deadline(kit.app, group_buy_id)  # due, the closer not yet run: the outcome is its own
    with kit.ctx(), pytest.raises(DomainError, match="团购已截止，正在结算，不能取消"):
        changes.cancel_group_buy(kit.user(kit.world.organizer), group_buy_id, "太晚")
    close_due(kit.app)
    assert status_of(kit, group_buy_id) == GroupBuyStatus.SUCCEEDED
    with kit.ctx(), pytest.raises(Conflict, match="当前为“已成团”，不能取消"):
        changes.cancel_group_buy(kit.user(kit.world.organizer), group_buy_id, "太晚")
    assert 'id="cancel-form"' not in text(
        client_as("coordinator").get(f"/unit/group-buys/{group_buy_id}")
    )


@pytest.mark.postgres_only
def test_two_cancels_at_once_cancel_once(kit):
    group_buy_id = kit.open(items=honey_and_herbs(kit))
    members = kit.members(3)
    for member in members:
        kit.join(member, group_buy_id, 2)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def cancel(actor_id: int) -> None:
        with kit.ctx():
            barrier.wait()
            try:
                changes.cancel_group_buy(kit.user(actor_id), group_buy_id, "同时取消")
                outcomes.append("cancelled")
            except DomainError as error:
                db.session.rollback()
                outcomes.append(str(error))

    threads = [
        threading.Thread(target=cancel, args=(actor,))
        for actor in (kit.world.coordinator, kit.world.coop_manager)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["cancelled", "该团购已取消，无需再次取消"]
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK
    assert kit.stock(kit.sku_of(kit.world.herb_product)) == WORLD_STOCK
    with kit.ctx():
        assert len(notified("groupbuy.cancelled")) == 3 + 2  # members, coordinator, co-op


# -- honest statuses ----------------------------------------------------------------------------
def test_a_card_held_group_buy_order_says_authorised_not_awaiting_payment(
    kit, stripe_app, card_token, client_as, app
):
    group_buy_id = kit.open(payment_mode=PaymentMode.CARD, closes_at=utcnow() + SOON)
    employee = client_as("employee")
    pid = kit.join(kit.world.employee, group_buy_id, 2)
    number = kit.order_number(pid)
    mine = text(employee.get("/orders"))
    assert "待付款" in mine  # joined, card not yet through: it is owed
    paid = kit.pay_by_card(kit.world.employee, group_buy_id, card_token(GOOD_CARD))
    assert paid.status == PaymentStatus.AUTHORIZED

    mine = text(employee.get("/orders"))
    row = mine.split(f">{number}<")[1].split("</a>")[0]
    assert "已授权 · 待成团" in row and "待付款" not in row
    page = text(employee.get(f"/orders/{number}"))
    status = re.search(r'id="order-status">([^<]+)<', page).group(1)
    assert status == "已授权 · 待成团"
    detail = text(employee.get(f"/group-buys/{group_buy_id}"))
    assert "银行卡已授权 ¥" in detail and "（尚未扣款）" in detail
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.status == OrderStatus.PENDING_PAYMENT  # the order itself is unchanged
        assert order.is_card_held and order.buyer_status_label == "已授权 · 待成团"


def test_pickups_wait_for_the_coops_parcel_to_arrive(kit, client_as):
    group_buy_id = kit.open()
    a, b = kit.members(2)
    pa = kit.join(a, group_buy_id, 3)
    kit.join(b, group_buy_id, 3)
    assert kit.close(group_buy_id) is True
    coordinator = client_as("coordinator")
    pickup_url = f"/unit/group-buys/{group_buy_id}/pickup-list"

    with kit.ctx():
        assert db.session.get(Participation, pa).status_label == "已成团 · 待发货"
    page = text(coordinator.get(pickup_url))
    assert "确认取货</button>" not in page and "等待合作社发货" in page
    assert 'id="arrived-button"' not in page
    early = coordinator.post(f"/unit/group-buys/{group_buy_id}/arrived")
    assert early.status_code == 303
    assert "合作社还没有发货，不能标记到货" in text(coordinator.get(pickup_url))
    with kit.ctx(), pytest.raises(DomainError, match="包裹到达取货点后才能确认取货"):
        fulfilment.mark_picked_up(kit.user(kit.world.coordinator), group_buy_id, pa)

    with kit.ctx():
        manager = kit.user(kit.world.coop_manager)
        fulfilment.ship_consolidated(manager, group_buy_id, "顺丰速运", "SF42")
    with kit.ctx():
        assert db.session.get(Participation, pa).status_label == "已发货 · 待到货"
        assert notified("groupbuy.shipped") == [kit.world.coordinator]
        before = len(notified("groupbuy.ready_for_pickup"))
    page = text(coordinator.get(pickup_url))
    assert "确认取货</button>" not in page and 'id="arrived-button"' in page
    assert client_as("other_coordinator").post(
        f"/unit/group-buys/{group_buy_id}/arrived"
    ).status_code == (403)

    arrived = coordinator.post(f"/unit/group-buys/{group_buy_id}/arrived")
    assert arrived.status_code == 303
    page = text(coordinator.get(pickup_url))
    assert "已标记到货，已通知参团职工取货" in page
    assert page.count("确认取货</button>") == 2
    with kit.ctx():
        ready = db.session.scalars(
            select(Notification).where(Notification.kind == "groupbuy.ready_for_pickup")
        ).all()
        assert len(ready) == before + 2
        assert sorted(n.user_id for n in ready[before:]) == sorted([a, b])
        assert "可以取货了" in ready[-1].title and "市场监管局一楼大厅" in ready[-1].body
        assert db.session.get(Participation, pa).status_label == "待取货"
    twice = coordinator.post(f"/unit/group-buys/{group_buy_id}/arrived")
    assert twice.status_code == 303
    assert "已标记到货" in text(coordinator.get(pickup_url))
    with kit.ctx():
        assert len(notified("groupbuy.ready_for_pickup")) == before + 2  # told once

    with kit.ctx():
        fulfilment.mark_picked_up(kit.user(kit.world.coordinator), group_buy_id, pa)
        assert db.session.get(Participation, pa).status == ParticipationStatus.PICKED_UP


def test_nobody_is_told_to_pick_up_before_the_parcel_arrives(kit):
    group_buy_id = kit.open()
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 5)
    assert kit.close(group_buy_id) is True
    with kit.ctx():
        manager = kit.user(kit.world.coop_manager)
        fulfilment.ship_consolidated(manager, group_buy_id, "顺丰速运", "SF42")
    with kit.ctx():
        assert notified("groupbuy.succeeded") == [a]
        assert notified("groupbuy.ready_for_pickup") == []  # closed and shipped: not yet
    with kit.ctx():
        fulfilment.mark_arrived(kit.user(kit.world.coordinator), group_buy_id)
    with kit.ctx():
        assert notified("groupbuy.ready_for_pickup") == [a]  # once, on arrival


def test_the_organizer_sees_every_proposed_and_open_group_buy(kit, client_as):
    proposed = kit.propose(title="待确认的团")
    opened = kit.open(title="进行中的团")
    page = text(client_as("organizer").get("/admin/group-buys"))
    assert "待确认的团" in page and "进行中的团" in page
    assert f"/admin/group-buys/{proposed}/cancel" in page
    assert f"/admin/group-buys/{opened}/cancel" in page
    assert 'href="/admin/group-buys"' in page  # in the organizer's menu
    assert client_as("coordinator").get("/admin/group-buys").status_code == 403
    with kit.ctx():
        assert {g.id for g in queries.current_group_buys()} == {proposed, opened}
        assert db.session.get(GroupBuyItem, kit.item_ids(opened)[0]).reserved_stock == 0
