"""A buyer cancelling a presale order on its order page: once paid, the reservation is the
buyer's place in the harvest queue and is not cancelled (the page says why, in those words);
unpaid, it is cancelled and its units go back to the presale."""

from __future__ import annotations

from sqlalchemy import func, select

from market.extensions import db
from market.payments.models import Payment, PaymentStatus, Refund
from market.presales.models import PresaleReservation
from market.tasks import expire_unpaid_orders

PAID_MESSAGE = "预售订单已付款，采收前不能取消；如歉收将全额退款"


def refunds(shop) -> int:
    with shop.app.app_context():
        return db.session.scalar(select(func.count()).select_from(Refund))


def test_a_paid_presale_order_is_not_cancelled_and_the_buyer_is_told_why(shop, movements):
    world = shop.world
    presale_id = shop.open()
    number = shop.reserve(world.buyer, presale_id, 2)
    shop.pay_by_card(world.buyer, number)
    seen = len(movements)
    before = shop.order(number)
    # The order page does not offer what would be refused.
    detail = shop.client(world.buyer).get(f"/orders/{number}").get_data(as_text=True)
    assert f"/orders/{number}/cancel" not in detail

    response = shop.client(world.buyer).post(f"/orders/{number}/cancel", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert PAID_MESSAGE in page
    assert "已有包裹发出" not in page and "订单已取消" not in page
    # Nothing changed: still paid, nothing refunded, the place in the queue kept.
    after = shop.order(number)
    assert (after.status, after.paid_fen, after.refunded_fen) == ("paid", before.paid_fen, 0)
    assert after.shipments == before.shipments
    assert [status for _id, status in after.shipments] == ["awaiting_harvest"]
    assert shop.reservation(number).status.value == "reserved"
    assert shop.presale(presale_id).reserved_quantity == 2
    assert refunds(shop) == 0 and len(movements) == seen


def test_an_unpaid_presale_order_is_cancelled_and_its_units_go_back(shop, movements):
    world = shop.world
    presale_id = shop.open(limit_quantity=3)
    number = shop.reserve(world.buyer, presale_id, 3)
    buyer = shop.client(world.buyer)
    assert buyer.post(f"/orders/{number}/pay/stripe").status_code == 303  # a card started

    page = buyer.post(f"/orders/{number}/cancel", follow_redirects=True).get_data(as_text=True)
    assert "订单已取消" in page and PAID_MESSAGE not in page
    order = shop.order(number)
    assert order.status == "cancelled" and order.paid_fen == 0
    assert [status for _id, status in order.shipments] == ["cancelled"]
    with shop.app.app_context():
        assert db.session.scalar(select(Payment.status)) == PaymentStatus.CANCELLED
    assert movements == []

    # The 3 units are free for the next buyer at once (a reservation gives back first) ...
    other = shop.reserve(world.employee, presale_id, 3)
    assert shop.reservation(other).quantity == 3
    assert shop.reservation(number).status.value == "cancelled"
    assert shop.presale(presale_id).reserved_quantity == 3


def test_the_periodic_job_gives_a_cancelled_reservations_units_back(shop):
    world = shop.world
    presale_id = shop.open(limit_quantity=3)
    number = shop.reserve(world.buyer, presale_id, 2)
    shop.client(world.buyer).post(f"/orders/{number}/cancel")
    assert shop.order(number).status == "cancelled"
    with shop.app.app_context():
        expire_unpaid_orders()  # the periodic job: orders, then presales
        reservation = db.session.scalar(
            select(PresaleReservation).where(PresaleReservation.presale_id == presale_id)
        )
        assert reservation.status.value == "cancelled" and reservation.decided_at is not None
    assert shop.presale(presale_id).reserved_quantity == 0
    page = shop.client(world.employee).get(f"/presales/{presale_id}").get_data(as_text=True)
    assert "共 3 份，剩余 3 份" in page
