"""先货后款: a unit's approved purchase and a custom order may ship before they are paid; the
payment term (PAYMENT_TERM_DAYS, from shipping) shows to the unit and finance, overdue orders are
listed for both, the unit pays by bank transfer after delivery, and only then is anything due to
the co-op. A retail order still cannot ship unpaid."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from market.clock import SHANGHAI
from market.errors import InvalidTransition
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order, OrderMode, OrderStatus, Shipment, ShipmentStatus
from tests.orders.conftest import sku_of
from tests.procurement.test_purchases import approved, confirm, orders_of
from tests.settlements.conftest import Shop, today


@pytest.fixture
def shop(app, world) -> Shop:
    return Shop(app, world)


def order_of(app, number: str) -> Order:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        _ = order.shipments
        db.session.expunge_all()
        return order


def shipment_of(app, number: str) -> int:
    with app.app_context():
        return db.session.scalar(
            select(Shipment.id)
            .join(Order, Order.id == Shipment.order_id)
            .where(Order.number == number)
        )


def ship(client, shipment_id: int):
    return client.post(
        f"/coop/shipments/{shipment_id}/ship", data={"carrier": "顺丰", "tracking_number": "SF9"}
    )


def due_day(order: Order) -> str:
    return order.payment_due_at.astimezone(SHANGHAI).strftime("%Y-%m-%d")


def make_overdue(app, number: str) -> None:
    with app.app_context():
        db.session.execute(
            update(Order)
            .where(Order.number == number)
            .values(payment_due_at=utcnow() - timedelta(days=1))
        )
        db.session.commit()


# -- the state machine ------------------------------------------------------------------------
def test_the_order_state_machine_lets_only_unit_modes_ship_on_credit(app):
    with app.app_context():
        for mode, allowed in [
            (OrderMode.UNIT_PURCHASE, True),
            (OrderMode.CUSTOM, True),
            (OrderMode.RETAIL, False),
            (OrderMode.GROUP_BUY, False),
        ]:
            order = Order(mode=mode, status=OrderStatus.PENDING_PAYMENT)
            assert order.may_move_to(OrderStatus.ON_CREDIT) is allowed
        on_credit = Order(mode=OrderMode.UNIT_PURCHASE, status=OrderStatus.ON_CREDIT)
        assert on_credit.allowed_moves() == {OrderStatus.PAID}
        with pytest.raises(InvalidTransition, match="不能改为"):
            on_credit.move_to(OrderStatus.CANCELLED)
        retail = Order(mode=OrderMode.RETAIL, status=OrderStatus.PENDING_PAYMENT)
        with pytest.raises(InvalidTransition):
            retail.move_to(OrderStatus.ON_CREDIT)


# -- shipping before payment, through the pages --------------------------------------------------
def test_an_approved_unit_order_ships_unpaid_and_its_due_date_shows_to_unit_and_finance(
    app, client_as, world
):
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 3))
    [order] = orders_of(app, purchase_id)
    co_op = client_as("coop_manager")
    inbox = co_op.get("/coop/orders?tab=awaiting").get_data(as_text=True)
    assert "先货后款发货" in inbox and "30 天内付款" in inbox

    assert ship(co_op, order.shipments[0].id).status_code == 303
    shipped = order_of(app, order.number)
    assert shipped.status == OrderStatus.ON_CREDIT
    assert shipped.shipments[0].status == ShipmentStatus.SHIPPED
    assert shipped.expires_at is None
    term = shipped.payment_due_at - shipped.shipments[0].shipped_at
    assert term == timedelta(days=30)
    day = due_day(shipped)

    coordinator = client_as("coordinator")
    detail = coordinator.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "先货后款 · 待付款" in detail and f"请在 {day} 前对公转账付款" in detail
    pay = coordinator.get(f"/orders/{order.number}/pay").get_data(as_text=True)
    assert f"请在 {day} 前付款" in pay and "pay-transfer" in pay and "pay-card" not in pay
    approver_view = client_as("approver").get(f"/unit/purchases/{purchase_id}")
    assert f"付款期限 {day}" in approver_view.get_data(as_text=True)
    bills = client_as("approver").get("/unit/bills").get_data(as_text=True)
    assert order.number in bills and day in bills

    finance = client_as("finance")
    assert order.number in finance.get("/finance/overdue?tab=all").get_data(as_text=True)
    # Not overdue yet: the overdue lists are empty.
    overdue = finance.get("/finance/overdue").get_data(as_text=True)
    assert f'data-number="{order.number}"' not in overdue and "没有逾期未付的订单" in overdue
    unit_overdue = coordinator.get("/unit/bills?tab=overdue").get_data(as_text=True)
    assert f'data-number="{order.number}"' not in unit_overdue


def test_past_the_term_the_order_is_listed_overdue_for_finance_and_its_unit_only(
    app, client_as, world
):
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 1))
    [order] = orders_of(app, purchase_id)
    ship(client_as("coop_manager"), order.shipments[0].id)
    make_overdue(app, order.number)

    overdue = client_as("finance").get("/finance/overdue").get_data(as_text=True)
    assert f'data-number="{order.number}"' in overdue and "已逾期" in overdue
    unit = client_as("approver").get("/unit/bills?tab=overdue").get_data(as_text=True)
    assert f'data-number="{order.number}"' in unit and "已逾期" in unit
    other = client_as("other_coordinator").get("/unit/bills?tab=overdue").get_data(as_text=True)
    assert f'data-number="{order.number}"' not in other
    detail = client_as("coordinator").get(f"/orders/{order.number}").get_data(as_text=True)
    assert "已逾期" in detail
    assert client_as("coop_manager").get("/finance/overdue").status_code == 403


def test_paid_by_transfer_after_delivery_the_order_completes(app, client_as, world):
    purchase_id = approved(client_as, (sku_of(app, world.honey_product), 2))
    [order] = orders_of(app, purchase_id)
    ship(client_as("coop_manager"), order.shipments[0].id)
    coordinator = client_as("coordinator")
    coordinator.post(f"/orders/{order.number}/shipments/{order.shipments[0].id}/received")
    assert order_of(app, order.number).status == OrderStatus.ON_CREDIT  # received, not paid

    coordinator.post(f"/unit/purchases/{purchase_id}/transfer")
    finance = client_as("finance")
    receipts = finance.get("/finance/receipts").get_data(as_text=True)
    assert order.number in receipts and "付款期限" in receipts
    assert confirm(finance, order.number).status_code == 303
    paid = order_of(app, order.number)
    assert paid.status == OrderStatus.COMPLETED and paid.paid_fen == paid.total_fen
    listed = finance.get("/finance/overdue?tab=all").get_data(as_text=True)
    assert f'data-number="{order.number}"' not in listed


def test_a_custom_order_may_ship_on_credit_too(shop, world, app):
    number = shop.custom(5, 9800)
    [shipment_id] = shop.shipments(number)
    shop.ship(shipment_id)
    order = order_of(app, number)
    assert order.status == OrderStatus.ON_CREDIT and order.payment_due_at is not None


def test_the_term_follows_the_configured_days(shop, world, app):
    app.config["PAYMENT_TERM_DAYS"] = 45
    try:
        [number] = shop.unit_purchase({world.honey_product: 1})
        shop.ship(shop.shipments(number)[0])
    finally:
        app.config["PAYMENT_TERM_DAYS"] = 30
    order = order_of(app, number)
    assert order.payment_due_at - order.shipments[0].shipped_at == timedelta(days=45)


def test_a_retail_order_still_cannot_ship_unpaid(shop, world, app, client_as):
    number = shop.retail({world.honey_product: 1})
    [shipment_id] = shop.shipments(number)
    with pytest.raises(InvalidTransition, match="不能改为"):
        shop.ship(shipment_id)
    page = ship(client_as("coop_manager"), shipment_id)
    assert page.status_code == 303
    order = order_of(app, number)
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.shipments[0].status == ShipmentStatus.AWAITING_PAYMENT
    assert order.payment_due_at is None


# -- money: nothing is due to the co-op before the unit pays -----------------------------------
def test_the_co_op_is_owed_only_once_the_unit_paid_and_the_money_reconciles(shop, world, app):
    [number] = shop.unit_purchase({world.honey_product: 2})
    [shipment_id] = shop.shipments(number)
    shop.ship(shipment_id)
    shop.receive(shipment_id)
    shop.backdate(10)  # received long enough ago to be due, were it paid
    assert shop.issue() == []  # shipped and received, but no money yet: nothing due
    assert shop.balance(world.coop).due_fen == 0
    result = shop.reconcile()
    assert result.differences == [] and result.totals.net_fen == 0

    shop.pay_transfer(number)
    assert order_of(app, number).status == OrderStatus.COMPLETED
    [statement_id] = shop.issue(today())
    statement = shop.statement(statement_id)
    assert statement.coop_id == world.coop and statement.received_fen == 2 * 8800
    result = shop.reconcile()
    assert result.differences == [], [str(d) for d in result.differences]
    assert result.totals.net_fen == result.totals.accounted_fen == 2 * 8800
