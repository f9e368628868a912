"""Money through bank transfer (the embedded default): confirmation, cancellation with a full
refund, a co-op's partial refund, and the attribution hook's amounts to the fen."""

from __future__ import annotations

from sqlalchemy import func, select

from market.audit.models import AuditEvent
from market.extensions import db
from market.orders.models import Order, OrderLine, OrderStatus, ShipmentStatus
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from tests.orders.conftest import buy, sku_of, stock_of


def _order(app, number: str) -> Order:
    return db.session.scalar(select(Order).where(Order.number == number))


def _pay_by_transfer(client, organizer, number: str):
    client.post(f"/orders/{number}/pay/offline")
    return organizer.post(
        f"/orders/{number}/transfer-received",
        data={"reference": "ABC-2026-001", "transfer_date": "2026-11-28"},
    )


def _two_coop_order(app, buyer) -> str:
    """2 × honey (¥88, co-op 1) and 1 × lychee (¥89, co-op 2): ¥265.00."""
    world = app.config["TEST_WORLD"]
    buyer.post("/cart/add", data={"sku_id": sku_of(app, world.honey_product), "quantity": 2})
    return buy(buyer, sku_of(app, world.lychee), 1)


def test_bank_transfer_shows_instructions_and_gives_days(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product))
    page = buyer.post(f"/orders/{number}/pay/offline", follow_redirects=True).get_data(as_text=True)
    assert "对公转账" in page and number in page and "¥88.00" in page
    with app.app_context():
        order = _order(app, number)
        assert (order.expires_at - order.created_at).days >= 6


def test_finance_confirms_a_transfer_and_the_order_is_paid(app, client_as, world, movements):
    buyer = client_as("buyer")
    number = _two_coop_order(app, buyer)
    response = _pay_by_transfer(buyer, client_as("finance"), number)
    assert response.status_code == 303
    with app.app_context():
        order = _order(app, number)
        assert order.status == OrderStatus.PAID
        assert order.paid_fen == 26500
        assert {s.status for s in order.shipments} == {ShipmentStatus.TO_SHIP}
        payment = db.session.scalar(select(Payment))
        assert payment.status == PaymentStatus.SUCCEEDED
        assert (payment.transfer_reference, str(payment.transfer_date)) == (
            "ABC-2026-001",
            "2026-11-28",
        )
        lines = {line.id: line.amount_fen for line in order.lines}
    assert len(movements) == 1
    assert movements[0].amount_fen == 26500
    assert {m.order_line_id: m.amount_fen for m in movements[0].lines} == lines
    assert "已付款" in buyer.get(f"/orders/{number}").get_data(as_text=True)


def test_confirming_twice_records_the_money_once(app, client_as, world, movements):
    buyer, organizer = client_as("buyer"), client_as("finance")
    number = buy(buyer, sku_of(app, world.honey_product))
    _pay_by_transfer(buyer, organizer, number)
    response = _pay_by_transfer(buyer, organizer, number)
    assert response.status_code == 303
    assert len(movements) == 1
    with app.app_context():
        assert _order(app, number).paid_fen == 8800


def test_only_finance_confirms_a_transfer(app, client_as, world):
    """Nobody with an interest books money: the buyer, the selling co-op and an organizer who
    is not finance get 403 and the order stays unpaid; finance (and an admin) can."""
    buyer = client_as("buyer")
    single = buy(buyer, sku_of(app, world.honey_product))
    buyer.post(f"/orders/{single}/pay/offline")
    data = {"reference": "R1", "transfer_date": "2026-11-28"}
    for role in ("buyer", "coop_manager", "other_coop_manager", "organizer", "coordinator"):
        response = client_as(role).post(f"/orders/{single}/transfer-received", data=data)
        assert response.status_code == 403, role
    with app.app_context():
        assert _order(app, single).status == OrderStatus.PENDING_PAYMENT
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    own = client_as("finance").post(f"/orders/{single}/transfer-received", data=data)
    assert own.status_code == 303
    with app.app_context():
        assert _order(app, single).status == OrderStatus.PAID
        event = db.session.scalar(select(AuditEvent))
        assert (event.action, event.actor_role, event.after["reference"]) == (
            "transfer.confirmed",
            "finance",
            "R1",
        )
    mixed = _two_coop_order(app, buyer)
    buyer.post(f"/orders/{mixed}/pay/offline")
    assert (
        client_as("admin").post(f"/orders/{mixed}/transfer-received", data=data).status_code == 303
    )
    with app.app_context():
        assert _order(app, mixed).status == OrderStatus.PAID


def test_the_confirm_button_is_shown_only_to_finance(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product))
    buyer.post(f"/orders/{number}/pay/offline")
    organizer_page = client_as("organizer").get("/admin/orders").get_data(as_text=True)
    assert number in organizer_page
    assert "transfer-received" not in organizer_page
    assert "待财务确认到账" in organizer_page
    coop_page = client_as("coop_manager").get("/coop/orders?tab=awaiting").get_data(as_text=True)
    assert "transfer-received" not in coop_page
    finance_page = client_as("finance").get("/finance/receipts").get_data(as_text=True)
    assert f"/orders/{number}/transfer-received" in finance_page


def test_a_transfer_needs_a_reference(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product))
    buyer.post(f"/orders/{number}/pay/offline")
    response = client_as("finance").post(
        f"/orders/{number}/transfer-received",
        data={"reference": "", "transfer_date": "2026-11-28"},
        follow_redirects=True,
    )
    assert "alert-danger" in response.get_data(as_text=True)
    with app.app_context():
        assert _order(app, number).status == OrderStatus.PENDING_PAYMENT


def test_cancelling_an_unpaid_order_gives_the_stock_back(app, client_as, world, movements):
    buyer = client_as("buyer")
    honey = sku_of(app, world.honey_product)
    number = buy(buyer, honey, 3)
    buyer.post(f"/orders/{number}/pay/offline")
    buyer.post(f"/orders/{number}/cancel")
    with app.app_context():
        order = _order(app, number)
        assert order.status == OrderStatus.CANCELLED
        assert db.session.scalar(select(Payment.status)) == PaymentStatus.CANCELLED
    assert stock_of(app, honey) == 50
    assert movements == []


def test_cancelling_a_paid_order_refunds_it_in_full(app, client_as, world, movements):
    """The refund of a bank-transfer order is decided at once (the ledger reverses the sale)
    but owed until finance sends it: nobody pretends the money has left."""
    buyer = client_as("buyer")
    number = _two_coop_order(app, buyer)
    _pay_by_transfer(buyer, client_as("finance"), number)
    response = buyer.post(f"/orders/{number}/cancel", follow_redirects=True)
    assert "退款将由财务转账退回" in response.get_data(as_text=True)
    with app.app_context():
        order = _order(app, number)
        assert order.status == OrderStatus.CANCELLED
        assert order.refunded_fen == order.paid_fen == 26500
        assert db.session.scalar(select(func.sum(Refund.amount_fen))) == 26500
        refund = db.session.scalar(select(Refund))
        assert refund.status == RefundStatus.PENDING and refund.sent_at is None
        refund_id = refund.id
    with app.app_context():
        from datetime import date

        from market.accounts.models import User
        from market.payments.transfers import send_refund

        send_refund(db.session.get(User, world.finance), refund_id, "OUT-1", date(2026, 11, 29))
        refund = db.session.get(Refund, refund_id)
        assert refund.status == RefundStatus.SUCCEEDED and refund.sent_reference == "OUT-1"
    assert stock_of(app, sku_of(app, world.honey_product)) == 50
    assert [m.amount_fen for m in movements] == [26500, -26500]
    assert sorted(line.quantity for line in movements[1].lines) == [-2, -1]


def _ship(app, client_as, number: str, role: str = "coop_manager") -> None:
    with app.app_context():
        shipment = next(s for s in _order(app, number).shipments if s.coop.name == "古丁南药合作社")
        shipment_id = shipment.id
    client_as(role).post(
        f"/coop/shipments/{shipment_id}/ship",
        data={"carrier": "中国邮政", "tracking_number": "9876"},
    )


def test_nothing_shipped_yet_is_the_only_time_to_cancel(app, client_as, world):
    buyer = client_as("buyer")
    number = _two_coop_order(app, buyer)
    _pay_by_transfer(buyer, client_as("finance"), number)
    _ship(app, client_as, number)
    response = buyer.post(f"/orders/{number}/cancel", follow_redirects=True)
    assert "已有包裹发出，不能整单取消" in response.get_data(as_text=True)
    with app.app_context():
        order = _order(app, number)
        assert order.status == OrderStatus.PAID and order.refunded_fen == 0


def test_a_coop_refunds_part_of_a_line(app, client_as, world, movements):
    buyer = client_as("buyer")
    number = _two_coop_order(app, buyer)
    _pay_by_transfer(buyer, client_as("finance"), number)
    with app.app_context():
        honey_line = db.session.scalar(
            select(OrderLine.id).where(OrderLine.product_name == "原生态蜂蜜")
        )
    coop = client_as("coop_manager")
    response = coop.post(
        f"/coop/lines/{honey_line}/refund",
        data={"amount": "30.5", "reason": "一瓶破损"},
        follow_redirects=True,
    )
    assert "已退款" in response.get_data(as_text=True)
    # More than what is left of the line (176.00 - 30.50) is refused, nothing changes.
    response = coop.post(
        f"/coop/lines/{honey_line}/refund",
        data={"amount": "145.51", "reason": "再退"},
        follow_redirects=True,
    )
    assert "最多可退 ¥145.50" in response.get_data(as_text=True)
    for bad in (
        {"amount": "-1", "reason": "x"},
        {"amount": "abc", "reason": "x"},
        {"amount": "10", "reason": ""},
    ):
        coop.post(f"/coop/lines/{honey_line}/refund", data=bad)
    with app.app_context():
        line = db.session.get(OrderLine, honey_line)
        assert line.refunded_fen == 3050
        assert _order(app, number).refunded_fen == 3050
        assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    assert [m.amount_fen for m in movements] == [26500, -3050]
    assert [(m.amount_fen, m.quantity) for m in movements[1].lines] == [(-3050, 0)]


def test_another_coops_line_cannot_be_refunded(app, client_as, world):
    buyer = client_as("buyer")
    number = _two_coop_order(app, buyer)
    _pay_by_transfer(buyer, client_as("finance"), number)
    with app.app_context():
        honey_line = db.session.scalar(
            select(OrderLine.id).where(OrderLine.product_name == "原生态蜂蜜")
        )
    response = client_as("other_coop_manager").post(
        f"/coop/lines/{honey_line}/refund", data={"amount": "1", "reason": "x"}
    )
    assert response.status_code == 403
    with app.app_context():
        assert _order(app, number).refunded_fen == 0


def test_fulfilment_from_inbox_to_completed(app, client_as, world):
    buyer = client_as("buyer")
    number = _two_coop_order(app, buyer)
    _pay_by_transfer(buyer, client_as("finance"), number)
    coop = client_as("coop_manager")
    inbox = coop.get("/coop/orders").get_data(as_text=True)
    assert number in inbox and "白糖罂荔枝" not in inbox  # only its own lines
    _ship(app, client_as, number)
    assert number in coop.get("/coop/orders?tab=shipped").get_data(as_text=True)
    with app.app_context():
        order = _order(app, number)
        by_coop = {s.coop.name: s for s in order.shipments}
        shipped, waiting = by_coop["古丁南药合作社"], by_coop["柏桥荔枝合作社"]
        assert shipped.status == ShipmentStatus.SHIPPED and shipped.carrier == "中国邮政"
        assert waiting.status == ShipmentStatus.TO_SHIP
        shipped_id, waiting_id = shipped.id, waiting.id
    packing = coop.get(f"/coop/shipments/{shipped_id}/packing-list").get_data(as_text=True)
    assert "装箱单" in packing and "原生态蜂蜜" in packing and "白糖罂荔枝" not in packing
    assert (
        client_as("coop_manager").get(f"/coop/shipments/{waiting_id}/packing-list").status_code
        == 403
    )
    # Shipping twice is refused.
    again = coop.post(
        f"/coop/shipments/{shipped_id}/ship", data={"carrier": "顺丰"}, follow_redirects=True
    )
    assert "不能改为" in again.get_data(as_text=True)
    buyer.post(f"/orders/{number}/shipments/{shipped_id}/received")
    with app.app_context():
        assert _order(app, number).status == OrderStatus.PAID  # one parcel still to come
    client_as("other_coop_manager").post(
        f"/coop/shipments/{waiting_id}/ship", data={"carrier": "顺丰", "tracking_number": "SF1"}
    )
    buyer.post(f"/orders/{number}/shipments/{waiting_id}/received")
    with app.app_context():
        assert _order(app, number).status == OrderStatus.COMPLETED


def test_the_organizer_filters_orders(app, client_as, world):
    buyer = client_as("buyer")
    paid = _two_coop_order(app, buyer)
    _pay_by_transfer(buyer, client_as("finance"), paid)
    unpaid = buy(client_as("employee"), sku_of(app, world.lychee))
    organizer = client_as("organizer")
    page = organizer.get("/admin/orders?status=paid").get_data(as_text=True)
    assert paid in page and unpaid not in page
    page = organizer.get(f"/admin/orders?village={world.other_village}").get_data(as_text=True)
    assert paid in page and unpaid in page
    page = organizer.get(f"/admin/orders?coop={world.coop}").get_data(as_text=True)
    assert paid in page and unpaid not in page
    page = organizer.get("/admin/orders?start=2000-01-01&end=2000-01-02").get_data(as_text=True)
    assert paid not in page
    assert organizer.get("/admin/orders?status=nonsense&start=bad").status_code == 200
    assert client_as("buyer").get("/admin/orders").status_code == 403
