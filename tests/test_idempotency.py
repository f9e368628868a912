"""Five identical POSTs at once, for every action that moves money: a transfer confirmed, a
line refunded, an order cancelled, a refund sent, cash taken over, statements issued, a
statement paid. Each form carries its one-time token (as the pages render it); the first POST
does the work, the other four get its outcome — a redirect, never a 500 — and nothing happens
twice. The five-at-once tests run on PostgreSQL, where they really run at once."""

from __future__ import annotations

import re
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from market.accounts.models import User
from market.audit.models import AuditEvent
from market.extensions import db
from market.orders import lifecycle
from market.orders.models import Order, OrderStatus, Shipment
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.settlements import services as settlements
from market.settlements.models import Payout, SettlementEntry, Statement
from tests.factories import signed_in_client
from tests.orders.conftest import buy, sku_of

TWINS = 5
TODAY = date.today().isoformat()


def token_of(page: str, action: str) -> str:
    """The one-time token of the form that posts to `action` on a rendered page."""
    start = page.index(f'action="{action}"')
    match = re.search(r'name="form_token" value="([0-9a-f]{32})"', page[start:])
    assert match, f"the form posting to {action} carries a one-time token"
    return match.group(1)


def five_at_once(app, user_id: int, url: str, data: dict) -> list[int]:
    """POST the same form TWINS times at the same moment, each from its own client (the same
    person's session, as a double tap or a resubmit would be); the status codes."""
    start = threading.Barrier(TWINS)
    codes: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        client = signed_in_client(app, user_id)
        start.wait()
        code = client.post(url, data=data).status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=post) for _ in range(TWINS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return codes


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def paid_order(app, client_as, world) -> str:
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product), 2)
    buyer.post(f"/orders/{number}/pay/offline")
    response = client_as("finance").post(
        f"/orders/{number}/transfer-received", data={"reference": "R-0", "transfer_date": TODAY}
    )
    assert response.status_code == 303
    return number


@pytest.mark.postgres_only
def test_a_transfer_confirmed_five_times_at_once_is_booked_once(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product), 2)
    buyer.post(f"/orders/{number}/pay/offline")
    action = f"/orders/{number}/transfer-received"
    token = token_of(client_as("finance").get("/finance/receipts").get_data(as_text=True), action)
    data = {"reference": "NY-1", "transfer_date": TODAY, "form_token": token}
    assert five_at_once(app, world.finance, action, data) == [303] * TWINS
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.status == OrderStatus.PAID and order.paid_fen == order.total_fen
        assert count(Payment, Payment.status == PaymentStatus.SUCCEEDED) == 1
        assert count(SettlementEntry) == len(order.lines)
        assert count(AuditEvent, AuditEvent.action == "transfer.confirmed") == 1


@pytest.mark.postgres_only
def test_a_line_refund_sent_five_times_at_once_refunds_once(app, client_as, world):
    number = paid_order(app, client_as, world)
    coop = client_as("coop_manager")
    with app.app_context():
        line_id = db.session.scalar(select(Order).where(Order.number == number)).lines[0].id
    action = f"/coop/lines/{line_id}/refund"
    token = token_of(
        coop.get("/coop/orders?tab=to_ship").get_data(as_text=True), f"{action}/confirm"
    )
    data = {"amount": "10", "reason": "包装破损", "form_token": token}
    assert five_at_once(app, world.coop_manager, action, data) == [303] * TWINS
    with app.app_context():
        assert [r.amount_fen for r in db.session.scalars(select(Refund))] == [1000]
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.refunded_fen == 1000


@pytest.mark.postgres_only
def test_a_cancellation_sent_five_times_at_once_refunds_once(app, client_as, world):
    number = paid_order(app, client_as, world)
    action = f"/orders/{number}/cancel"
    page = client_as("buyer").get(f"/orders/{number}").get_data(as_text=True)
    data = {"form_token": token_of(page, action)}
    assert five_at_once(app, world.buyer, action, data) == [303] * TWINS
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.status == OrderStatus.CANCELLED
        assert [r.amount_fen for r in db.session.scalars(select(Refund))] == [order.paid_fen]


@pytest.mark.postgres_only
def test_a_refund_recorded_as_sent_five_times_at_once_is_sent_once(app, client_as, world):
    number = paid_order(app, client_as, world)
    client_as("buyer").post(f"/orders/{number}/cancel")
    with app.app_context():
        refund_id = db.session.scalar(select(Refund.id))
    action = f"/finance/refunds/{refund_id}/send"
    token = token_of(client_as("finance").get("/finance/refunds").get_data(as_text=True), action)
    data = {"reference": "OUT-1", "sent_date": TODAY, "form_token": token}
    assert five_at_once(app, world.finance, action, data) == [303] * TWINS
    with app.app_context():
        refund = db.session.get(Refund, refund_id)
        assert refund.status == RefundStatus.SUCCEEDED and refund.sent_reference == "OUT-1"
        assert count(AuditEvent, AuditEvent.action == "refund.sent") == 1


@pytest.mark.postgres_only
def test_cash_taken_over_five_times_at_once_is_taken_over_once(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product), 1)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        payments.record_paid_at_pickup(db.session.get(User, world.coordinator), order)
        db.session.commit()
        amount = order.total_fen
    action = f"/finance/cash/{world.coordinator}/confirm"
    token = token_of(client_as("finance").get("/finance/cash").get_data(as_text=True), action)
    data = {"amount": f"{amount / 100:.2f}", "reference": "CASH-1", "form_token": token}
    assert five_at_once(app, world.finance, action, data) == [303] * TWINS
    with app.app_context():
        assert count(AuditEvent, AuditEvent.action == "cash.handed_over") == 1
        assert count(Payment, Payment.cash_handed_over_at.is_not(None)) == 1


def _delivered_days_ago(app, world, number: str, days: int) -> None:
    """Shipped and received `days` ago (the money came in before): due for a statement."""
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        manager = db.session.get(User, world.coop_manager)
        shipment_id = lifecycle.ship(manager, order.shipments[0].id, "中国邮政", "EMS-1").id
        lifecycle.confirm_delivery(db.session.get(User, world.buyer), number, shipment_id)
        shipment = db.session.get(Shipment, shipment_id)
        shipment.shipped_at -= timedelta(days=days)
        shipment.delivered_at -= timedelta(days=days)
        for entry in db.session.scalars(
            select(SettlementEntry).where(SettlementEntry.order_id == order.id)
        ):
            entry.at -= timedelta(days=days + 1)
        db.session.commit()


@pytest.mark.postgres_only
def test_statements_issued_five_times_at_once_are_issued_once(app, client_as, world):
    number = paid_order(app, client_as, world)
    _delivered_days_ago(app, world, number, 2)
    action = "/finance/statements/issue"
    page = client_as("finance").get("/finance/statements").get_data(as_text=True)
    data = {"until": TODAY, "form_token": token_of(page, action)}
    assert five_at_once(app, world.finance, action, data) == [303] * TWINS
    with app.app_context():
        assert count(Statement) == 1
        assert count(AuditEvent, AuditEvent.action == "statement.issued") == 1


@pytest.mark.postgres_only
def test_a_statement_paid_five_times_at_once_is_paid_once(app, client_as, world):
    number = paid_order(app, client_as, world)
    _delivered_days_ago(app, world, number, 2)
    with app.app_context():
        finance = db.session.get(User, world.finance)
        statement = settlements.issue_statements(date.today(), finance)[0]
        settlements.confirm_statement(db.session.get(User, world.coop_manager), statement.id)
        statement_id, payable = statement.id, statement.payable_fen
    action = f"/finance/statements/{statement_id}/pay"
    token = token_of(client_as("finance").get("/finance/statements").get_data(as_text=True), action)
    data = {"reference": "PAY-1", "paid_on": TODAY, "form_token": token}
    assert five_at_once(app, world.finance, action, data) == [303] * TWINS
    with app.app_context():
        assert [p.amount_fen for p in db.session.scalars(select(Payout))] == [payable]
        assert count(AuditEvent, AuditEvent.action == "payout.recorded") == 1


def test_a_repeat_of_a_used_token_gets_the_first_outcome(app, client_as, world):
    """On any database: the back button and a second tap land where the first one did."""
    number = paid_order(app, client_as, world)
    coop = client_as("coop_manager")
    with app.app_context():
        line_id = db.session.scalar(select(Order).where(Order.number == number)).lines[0].id
    action = f"/coop/lines/{line_id}/refund"
    token = token_of(
        coop.get("/coop/orders?tab=to_ship").get_data(as_text=True), f"{action}/confirm"
    )
    data = {"amount": "5", "reason": "少称", "form_token": token}
    first = coop.post(action, data=data, headers={"Referer": "http://localhost/coop/orders"})
    again = coop.post(action, data=data)
    assert (first.status_code, again.status_code) == (303, 303)
    assert again.headers["Location"] == first.headers["Location"]
    assert "没有重复办理" in coop.get(again.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        assert count(Refund) == 1
