"""A group-buy's life through the real services, paid at pickup (no network): open, join,
change, leave, close reached or not, pick up; the coordinator's changes; and every kind of bad
input refused with a readable error, nothing charged and no stock moved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from market.errors import Conflict, DomainError, InvalidTransition, NotAllowed
from market.extensions import db
from market.groupbuy import changes, closing, fulfilment, queries
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
)
from market.groupbuy.proposals import ItemData, TierData
from market.models import utcnow
from market.notifications.models import Notification
from market.orders.models import Order, OrderStatus, ShipmentStatus
from market.payments.models import Payment, PaymentStatus
from tests.groupbuy.conftest import GROUP_PRICE, MIN_QUANTITY, TIERS, WORLD_STOCK, Kit

HERB_PRICE = 2200  # 藿香 in the group-buy (retail 2500); 2000 from 5 units in all
HERB_TIERS = [TierData(5, 2000)]


def notified(kind: str) -> list[int]:
    return sorted(db.session.scalars(select(Notification.user_id).where(Notification.kind == kind)))


def counts() -> tuple[int, int, int]:
    """(payments, orders, notifications): what a refused request must leave as it was."""
    return tuple(
        db.session.scalar(select(func.count()).select_from(model))
        for model in (Payment, Order, Notification)
    )


def two_item_group_buy(kit: Kit, *, honey_cap: int = 20, **overrides) -> tuple[int, int, int]:
    """Honey capped at `honey_cap` (reserved at once) and herbs without a cap.
    Returns (group_buy_id, honey_item_id, herb_item_id)."""
    honey, herb = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    items = [
        ItemData(honey, GROUP_PRICE, honey_cap, list(TIERS)),
        ItemData(herb, HERB_PRICE, None, HERB_TIERS),
    ]
    group_buy_id = kit.open(items=items, **overrides)
    honey_item, herb_item = kit.item_ids(group_buy_id)
    return group_buy_id, honey_item, herb_item


# -- the state machine -------------------------------------------------------------------------
def test_the_status_table_allows_only_proposed_open_closing_then_an_outcome(app):
    S = GroupBuyStatus
    allowed = {
        S.PROPOSED: {S.OPEN, S.DECLINED, S.CANCELLED},  # the co-op answers, or it is called off
        S.OPEN: {S.CLOSING, S.CANCELLED},
        S.CLOSING: {S.SUCCEEDED, S.FAILED},
        S.SUCCEEDED: set(),
        S.FAILED: set(),
        S.DECLINED: set(),
        S.CANCELLED: set(),
    }
    assert allowed == GroupBuy.TRANSITIONS
    with app.test_request_context():
        for current in S:
            for target in S:
                group_buy = GroupBuy(status=current)
                if target in GroupBuy.TRANSITIONS[current]:
                    group_buy.move_to(target)
                    assert group_buy.status == target
                else:
                    with pytest.raises(InvalidTransition) as refused:
                        group_buy.move_to(target)
                    assert group_buy.status == current  # never silently changed
                    assert str(refused.value)  # a message a user can read


def test_an_open_group_buy_cannot_jump_to_an_outcome(kit):
    group_buy_id = kit.open()
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        with pytest.raises(InvalidTransition, match="不能改为"):
            group_buy.move_to(GroupBuyStatus.SUCCEEDED)
        db.session.rollback()
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.OPEN


# -- reached ------------------------------------------------------------------------------------
def test_reached_reprices_every_order_to_the_tier_and_returns_unsold_reserved_stock(kit):
    honey_sku, herb_sku = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    group_buy_id, honey, herb = two_item_group_buy(kit, honey_cap=20)
    assert kit.stock(honey_sku) == WORLD_STOCK - 20  # the cap is reserved at once
    assert kit.stock(herb_sku) == WORLD_STOCK

    a, b, c, d = kit.members(4)
    pa = kit.join(a, group_buy_id, {honey: 3})
    pb = kit.join(b, group_buy_id, {honey: 2, herb: 1})
    pc = kit.join(c, group_buy_id, {herb: 2})
    assert kit.stock(honey_sku) == WORLD_STOCK - 20  # capped: comes out of the reservation
    assert kit.stock(herb_sku) == WORLD_STOCK - 3  # uncapped: taken by the orders
    with kit.ctx():
        assert kit.order_of(pa).total_fen == 3 * GROUP_PRICE  # the most anyone pays
        assert kit.order_of(pb).total_fen == 2 * GROUP_PRICE + HERB_PRICE

    first_order_of_b = kit.order_number(pb)
    assert kit.change(b, group_buy_id, {honey: 4, herb: 1}) == pb
    kit.leave(c, group_buy_id)
    pd = kit.join(d, group_buy_id, {honey: 1})
    assert kit.stock(herb_sku) == WORLD_STOCK - 1  # c's two back; b's one still held
    with kit.ctx():
        old = db.session.scalar(select(Order).where(Order.number == first_order_of_b))
        assert old.status == OrderStatus.CANCELLED  # a change withdraws the old order
        assert kit.order_of(pb).total_fen == 4 * GROUP_PRICE + HERB_PRICE
        assert kit.order_of(pc).status == OrderStatus.CANCELLED
        assert db.session.get(Participation, pc).status == ParticipationStatus.LEFT
        quantities = dict(
            db.session.execute(
                select(GroupBuyItem.id, GroupBuyItem.joined_quantity).where(
                    GroupBuyItem.group_buy_id == group_buy_id
                )
            ).all()
        )
        assert quantities == {honey: 3 + 4 + 1, herb: 1}

    assert kit.close(group_buy_id) is True

    # 9 units in all: honey reaches its 5-unit tier (not 10), herbs their 5-unit tier.
    honey_tier, herb_tier = TIERS[0].price_fen, HERB_TIERS[0].price_fen
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.SUCCEEDED
        assert group_buy.reached_quantity == 9
        assert group_buy.closed_at is not None
        statuses = {p.user_id: p.status for p in group_buy.participations}
        R = ParticipationStatus
        assert statuses == {a: R.READY, b: R.READY, c: R.LEFT, d: R.READY}
        totals = {pid: kit.order_of(pid).total_fen for pid in (pa, pb, pd)}
        assert totals == {pa: 3 * honey_tier, pb: 4 * honey_tier + herb_tier, pd: honey_tier}
        for pid in (pa, pb, pd):
            order = kit.order_of(pid)
            assert order.status == OrderStatus.PENDING_PAYMENT  # paid at pickup
            assert order.expires_at is None
            assert all(
                line.amount_fen == line.unit_price_fen * line.quantity for line in order.lines
            )
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0

        # Reserved 20 honey, sold 8: 12 go back; the 8 stay reserved for the parcel.
        honey_item = db.session.get(GroupBuyItem, honey)
        assert honey_item.reserved_stock == 8
        lines = {
            line.item.id: (line.quantity, line.unit_price_fen, line.amount_fen)
            for line in fulfilment.consolidated_lines(group_buy)
        }
        assert lines == {honey: (8, honey_tier, 8 * honey_tier), herb: (1, herb_tier, herb_tier)}
        assert sum(q[2] for q in lines.values()) == sum(totals.values())

        assert notified("groupbuy.succeeded") == sorted([a, b, d])
        # 可以取货了 waits for the parcel (tests/groupbuy/test_acceptance.py).
        assert notified("groupbuy.failed") == []
        assert notified("groupbuy.joined") == sorted([a, b, c, d])
    assert kit.stock(honey_sku) == WORLD_STOCK - 8
    assert kit.stock(herb_sku) == WORLD_STOCK - 1


def test_closing_twice_closes_once(kit):
    honey_sku = kit.sku_of(kit.world.honey_product)
    group_buy_id, honey, _herb = two_item_group_buy(kit, honey_cap=10)
    for member in kit.members(2):
        kit.join(member, group_buy_id, {honey: 3})
    assert kit.close(group_buy_id) is True
    with kit.ctx():
        before = counts()
        totals = sorted(o.total_fen for o in db.session.scalars(select(Order)))
    stock = kit.stock(honey_sku)

    assert kit.close(group_buy_id) is False
    assert kit.close(group_buy_id, after=timedelta(days=1)) is False  # even long after
    closes_at = kit.closes_at(group_buy_id)
    with kit.ctx():
        assert closing.close_due_group_buys(closes_at + timedelta(hours=1)) == 0
    with kit.ctx():
        assert counts() == before
        assert sorted(o.total_fen for o in db.session.scalars(select(Order))) == totals
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.reached_quantity) == (GroupBuyStatus.SUCCEEDED, 6)
    assert kit.stock(honey_sku) == stock == WORLD_STOCK - 6


def test_only_due_group_buys_are_closed(kit):
    soon = kit.open()
    later = kit.open(closes_at=utcnow() + timedelta(days=3))
    a, b = kit.members(2)
    kit.join(a, soon, 5)
    kit.join(b, later, 5)
    due = kit.closes_at(soon) + timedelta(seconds=1)
    with kit.ctx():
        assert closing.close_group_buy(later, due) is False  # not due: nothing happens
    with kit.ctx():
        assert closing.close_due_group_buys(due) == 1
    with kit.ctx():
        assert closing.close_due_group_buys(due) == 0
    with kit.ctx():
        assert db.session.get(GroupBuy, soon).status == GroupBuyStatus.SUCCEEDED
        assert db.session.get(GroupBuy, later).status == GroupBuyStatus.OPEN
        later_participation = queries.participation_of(later, b)
        assert later_participation.status == ParticipationStatus.ACTIVE


# -- not reached ---------------------------------------------------------------------------------
def test_not_reached_fails_releases_everyone_and_returns_all_stock(kit):
    honey_sku, herb_sku = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    group_buy_id, honey, herb = two_item_group_buy(kit, honey_cap=20)
    a, b = kit.members(2)
    pa = kit.join(a, group_buy_id, {honey: 2})
    pb = kit.join(b, group_buy_id, {herb: 2})
    assert (kit.stock(honey_sku), kit.stock(herb_sku)) == (WORLD_STOCK - 20, WORLD_STOCK - 2)

    assert kit.close(group_buy_id) is True

    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.FAILED
        assert group_buy.reached_quantity == 4 < MIN_QUANTITY
        for pid in (pa, pb):
            assert db.session.get(Participation, pid).status == ParticipationStatus.RELEASED
            order = kit.order_of(pid)
            assert order.status == OrderStatus.CANCELLED
            assert order.paid_fen == 0
            assert [s.status for s in order.shipments] == [ShipmentStatus.CANCELLED]
        assert all(item.reserved_stock == 0 for item in group_buy.items)
        assert fulfilment.consolidated_lines(group_buy) == []
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
        assert notified("groupbuy.failed") == sorted([a, b])
        assert notified("groupbuy.succeeded") == []
    assert (kit.stock(honey_sku), kit.stock(herb_sku)) == (WORLD_STOCK, WORLD_STOCK)
    assert kit.close(group_buy_id) is False


def test_leaving_then_joining_again_counts_only_the_new_quantity(kit):
    group_buy_id = kit.open()
    a, b = kit.members(2)
    pa = kit.join(a, group_buy_id, 4)
    kit.leave(a, group_buy_id)
    assert kit.join(a, group_buy_id, 2) == pa  # the same participation, active again
    kit.join(b, group_buy_id, 2)
    assert kit.close(group_buy_id) is True
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.FAILED  # 4 < 5: the 4 that left do not count
        assert group_buy.reached_quantity == 4
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


# -- the coordinator's changes -----------------------------------------------------------------
def test_extend_once_to_a_later_time_and_everyone_is_told(kit):
    group_buy_id = kit.open()
    a, b, c = kit.members(3)
    kit.join(a, group_buy_id, 1)
    kit.join(b, group_buy_id, 1)
    kit.join(c, group_buy_id, 1)
    kit.leave(c, group_buy_id)
    old = kit.closes_at(group_buy_id)
    coordinator = kit.world.coordinator

    with kit.ctx(), pytest.raises(DomainError, match="晚于原截止时间"):
        changes.extend(kit.user(coordinator), group_buy_id, old - timedelta(minutes=5))
    with kit.ctx(), pytest.raises(NotAllowed):
        changes.extend(kit.user(kit.world.employee), group_buy_id, old + timedelta(days=1))
    with kit.ctx(), pytest.raises(NotAllowed):
        changes.extend(kit.user(kit.world.other_coordinator), group_buy_id, old + timedelta(1))

    with kit.ctx():
        changes.extend(kit.user(coordinator), group_buy_id, old + timedelta(days=1))
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.closes_at, group_buy.extended) == (old + timedelta(days=1), True)
        # c left: not told; the co-op, which agreed to the dates, is.
        assert notified("groupbuy.changed") == sorted([a, b, kit.world.coop_manager])
        title = db.session.scalar(
            select(Notification.title).where(Notification.kind == "groupbuy.changed")
        )
        assert "延期" in title

    with kit.ctx(), pytest.raises(DomainError, match="只能延期一次"):
        changes.extend(kit.user(coordinator), group_buy_id, old + timedelta(days=2))
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).closes_at == old + timedelta(days=1)
        assert len(notified("groupbuy.changed")) == 3
    # The old deadline is no longer due.
    assert kit.close(group_buy_id, after=-timedelta(hours=12)) is False


def test_lower_minimum_only_down_and_everyone_is_told(kit):
    group_buy_id = kit.open()  # min 5
    a, b = kit.members(2)
    kit.join(a, group_buy_id, 2)
    kit.join(b, group_buy_id, 1)
    coordinator = kit.world.coordinator
    for refused in (MIN_QUANTITY, MIN_QUANTITY + 1, 0):
        with kit.ctx(), pytest.raises(DomainError, match="小于原成团量"):
            changes.lower_minimum(kit.user(coordinator), group_buy_id, refused)
    with kit.ctx(), pytest.raises(NotAllowed):
        changes.lower_minimum(kit.user(kit.world.employee), group_buy_id, 3)
    with kit.ctx():
        assert notified("groupbuy.changed") == []
        assert db.session.get(GroupBuy, group_buy_id).min_quantity == MIN_QUANTITY

    with kit.ctx():
        changes.lower_minimum(kit.user(coordinator), group_buy_id, 3)
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).min_quantity == 3
        assert notified("groupbuy.changed") == sorted([a, b])
        # 3 joined, now the minimum: everyone hears it is reached.
        assert notified("groupbuy.reached") == sorted([a, b])
    with kit.ctx(), pytest.raises(DomainError, match="小于原成团量"):
        changes.lower_minimum(kit.user(coordinator), group_buy_id, 4)  # back up: refused

    assert kit.close(group_buy_id) is True
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.SUCCEEDED
        # Reached the minimum, not a tier: the group-buy price.
        assert kit.order_of(queries.participation_of(group_buy_id, a).id).total_fen == (
            2 * GROUP_PRICE
        )


def test_reaching_the_minimum_is_announced_once(kit):
    group_buy_id = kit.open()
    a, b, c = kit.members(3)
    kit.join(a, group_buy_id, 2)
    with kit.ctx():
        assert notified("groupbuy.reached") == []
    kit.join(b, group_buy_id, 3)
    kit.join(c, group_buy_id, 1)
    with kit.ctx():
        assert notified("groupbuy.reached") == sorted([a, b])  # c joined after it was reached
        assert notified("groupbuy.joined") == sorted([a, b, c])


# -- pickup --------------------------------------------------------------------------------------
def test_picking_up_records_the_money_through_the_hook_and_completes_the_order(kit, movements):
    group_buy_id = kit.open()
    a, b = kit.members(2)
    pa = kit.join(a, group_buy_id, 4)
    pb = kit.join(b, group_buy_id, 6)  # 10 in all: the 6000 tier
    with kit.ctx(), pytest.raises(DomainError, match="不能取货"):
        fulfilment.mark_picked_up(kit.user(kit.world.coordinator), group_buy_id, pa)  # still open
    assert kit.close(group_buy_id) is True
    assert movements == []  # nothing is paid at close in pay-at-pickup mode

    with kit.ctx(), pytest.raises(NotAllowed):
        fulfilment.mark_picked_up(kit.user(kit.world.employee), group_buy_id, pa)
    with kit.ctx(), pytest.raises(DomainError, match="包裹到达取货点后"):
        fulfilment.mark_picked_up(kit.user(kit.world.coordinator), group_buy_id, pa)
    kit.ship_and_arrive(group_buy_id)
    with kit.ctx():
        fulfilment.mark_picked_up(kit.user(kit.world.coordinator), group_buy_id, pa)

    tier = TIERS[1].price_fen
    with kit.ctx():
        participation = db.session.get(Participation, pa)
        assert participation.status == ParticipationStatus.PICKED_UP
        assert participation.picked_up_at is not None
        order = kit.order_of(pa)
        assert order.status == OrderStatus.COMPLETED
        assert (order.total_fen, order.paid_fen, order.refunded_fen) == (4 * tier, 4 * tier, 0)
        assert [s.status for s in order.shipments] == [ShipmentStatus.DELIVERED]
        (payment,) = db.session.scalars(select(Payment).where(Payment.order_id == order.id))
        assert (payment.provider, payment.status) == ("offline", PaymentStatus.SUCCEEDED)
        assert payment.received_fen == payment.amount_fen == 4 * tier
        assert payment.confirmed_by_id == kit.world.coordinator
        line_ids = {line.id: (line.amount_fen, line.quantity) for line in order.lines}
        assert kit.order_of(pb).status == OrderStatus.PENDING_PAYMENT  # b has not come yet

    (movement,) = movements
    assert (movement.order_id, movement.amount_fen, movement.refund_id) == (
        order.id,
        4 * tier,
        None,
    )
    assert {m.order_line_id: (m.amount_fen, m.quantity) for m in movement.lines} == line_ids

    with kit.ctx(), pytest.raises(DomainError, match="不能取货"):
        fulfilment.mark_picked_up(kit.user(kit.world.coordinator), group_buy_id, pa)  # twice
    assert len(movements) == 1
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert [p.id for p in fulfilment.pickup_list(group_buy)] == [pa, pb]
        assert fulfilment.quantities_by_status(group_buy) == {"picked_up": 4, "ready": 6}


# -- bad input: a readable error, nothing charged, no stock moved --------------------------------
def test_joining_after_the_close_is_refused(kit):
    group_buy_id = kit.open()
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 5)
    assert kit.close(group_buy_id) is True
    (late,) = kit.members(1)
    stock = kit.stock(kit.sku_of(kit.world.honey_product))
    with kit.ctx():
        before = counts()
    with pytest.raises(DomainError, match="团购已截止"):
        kit.join(late, group_buy_id, 1)
    with pytest.raises(DomainError, match="团购已截止"):
        kit.change(a, group_buy_id, 1)
    with pytest.raises(DomainError, match="团购已截止"):
        kit.leave(a, group_buy_id)
    with kit.ctx():
        assert counts() == before
        assert queries.participation_of(group_buy_id, late) is None
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == stock


def test_joining_after_the_deadline_before_any_closer_ran_is_refused(kit):
    group_buy_id = kit.open()
    with kit.ctx():
        db.session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_buy_id)
            .values(closes_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
        before = counts()
    (a,) = kit.members(1)
    with pytest.raises(DomainError, match="团购已截止"):
        kit.join(a, group_buy_id, 1)
    with kit.ctx():
        assert counts() == before == (0, 0, 2)  # the proposal and its acceptance told
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


def test_joining_twice_is_a_conflict(kit):
    group_buy_id = kit.open()
    (a,) = kit.members(1)
    kit.join(a, group_buy_id, 2)
    with kit.ctx():
        before = counts()
    with pytest.raises(Conflict, match="您已参团"):
        kit.join(a, group_buy_id, 3)
    with kit.ctx():
        assert counts() == before
        assert db.session.get(GroupBuy, group_buy_id).total_quantity == 2
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK - 2


def test_a_quantity_beyond_the_cap_is_refused(kit):
    honey_sku = kit.sku_of(kit.world.honey_product)
    group_buy_id, honey, herb = two_item_group_buy(kit, honey_cap=5)
    a, b = kit.members(2)
    kit.join(a, group_buy_id, {honey: 4})
    with kit.ctx():
        before = counts()
    with pytest.raises(DomainError, match=r"超出团购上限.*还剩 1 件"):
        kit.join(b, group_buy_id, {honey: 2, herb: 1})
    with pytest.raises(DomainError, match="超出团购上限"):
        kit.change(a, group_buy_id, {honey: 6})
    with kit.ctx():
        assert counts() == before
        assert queries.participation_of(group_buy_id, b) is None
        quantities = sorted(
            db.session.scalars(
                select(GroupBuyItem.joined_quantity).where(
                    GroupBuyItem.group_buy_id == group_buy_id
                )
            )
        )
        assert quantities == [0, 4]  # b's herb was not counted either
        assert kit.order_of(queries.participation_of(group_buy_id, a).id).status == (
            OrderStatus.PENDING_PAYMENT
        )  # a's refused change kept a's order
    assert kit.stock(honey_sku) == WORLD_STOCK - 5
    assert kit.stock(kit.sku_of(kit.world.herb_product)) == WORLD_STOCK
    kit.join(b, group_buy_id, {honey: 1})  # exactly up to the cap is fine


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([TierData(5, 7000), TierData(5, 6000)], "阶梯数量必须逐级增加"),
        ([TierData(10, 7000), TierData(5, 6000)], "阶梯数量必须逐级增加"),
        ([TierData(5, 7000), TierData(10, 7000)], "阶梯价格必须逐级降低"),
        ([TierData(5, 7000), TierData(10, 7500)], "阶梯价格必须逐级降低"),
        ([TierData(5, GROUP_PRICE)], "阶梯价格必须逐级降低"),  # not below the group price
        ([TierData(5, 9000)], "阶梯价格必须逐级降低"),
    ],
)
def test_tiers_must_rise_in_quantity_and_fall_in_price(kit, tiers, message):
    honey = kit.sku_of(kit.world.honey_product)
    with pytest.raises(DomainError, match=message):
        kit.open(items=[ItemData(honey, GROUP_PRICE, 10, tiers)])
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(GroupBuy)) == 0
    assert kit.stock(honey) == WORLD_STOCK  # the cap was not reserved


def test_a_close_time_in_the_past_is_refused(kit):
    now = utcnow()
    with pytest.raises(DomainError, match="截止时间必须晚于现在"):
        kit.open(closes_at=now - timedelta(minutes=1), opens_at=now - timedelta(hours=1))
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(GroupBuy)) == 0
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


def test_a_non_member_cannot_join_a_members_only_group_buy(kit):
    group_buy_id = kit.open()
    with kit.ctx():
        before = counts()
    for outsider in (kit.world.buyer, kit.world.other_coordinator):
        with pytest.raises(NotAllowed, match="仅限"):
            kit.join(outsider, group_buy_id, 1)
    with kit.ctx():
        assert counts() == before
        assert db.session.get(GroupBuy, group_buy_id).total_quantity == 0
    assert kit.stock(kit.sku_of(kit.world.honey_product)) == WORLD_STOCK


def test_anyone_signed_in_may_join_with_the_link(kit):
    from market.groupbuy.models import Visibility

    group_buy_id = kit.open(visibility=Visibility.LINK)
    kit.join(kit.world.buyer, group_buy_id, 1)
    with kit.ctx():
        assert queries.participation_of(group_buy_id, kit.world.buyer) is not None


def test_skus_of_two_coops_cannot_share_a_group_buy(kit):
    honey, lychee = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.lychee)
    items = [ItemData(honey, GROUP_PRICE, 10), ItemData(lychee, 8000, 10)]
    with pytest.raises(DomainError, match="同一个合作社"):
        kit.open(items=items)
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(GroupBuy)) == 0
    # The caps reserved before the second co-op was seen are given back.
    assert (kit.stock(honey), kit.stock(lychee)) == (WORLD_STOCK, WORLD_STOCK)


def test_a_cap_above_the_stock_is_refused(kit):
    honey, herb = kit.sku_of(kit.world.honey_product), kit.sku_of(kit.world.herb_product)
    items = [ItemData(herb, HERB_PRICE, 10), ItemData(honey, GROUP_PRICE, WORLD_STOCK + 1)]
    with pytest.raises(DomainError, match=f"库存只有 {WORLD_STOCK}"):
        kit.open(items=items)
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(GroupBuy)) == 0
    assert (kit.stock(honey), kit.stock(herb)) == (WORLD_STOCK, WORLD_STOCK)
    kit.open(items=[ItemData(honey, GROUP_PRICE, WORLD_STOCK)])  # all of it is fine
    assert kit.stock(honey) == 0


def test_only_a_coordinator_opens_a_group_buy(kit):
    with pytest.raises(NotAllowed, match="联络员"):
        kit.open(coordinator_id=kit.world.employee)
    with kit.ctx():
        assert db.session.scalar(select(func.count()).select_from(GroupBuy)) == 0
