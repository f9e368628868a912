"""预售 (issue 16, point 4): a co-op opens a presale; buyers reserve against its limit (never
today's stock) and pay on the ordinary pay page; the harvest serves them in payment order; the
rest are refunded to the fen or, if they chose so, carried into next season's presale."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from market.accounts.models import User
from market.batches.models import Batch
from market.campaign.models import AttributionEntry, Basis
from market.clock import today
from market.extensions import db
from market.models import utcnow
from market.notifications.models import Notification
from market.orders.models import Order
from market.payments import background, transfers
from market.payments.models import Refund, RefundStatus
from market.presales.models import Presale, PresaleReservation
from market.tasks import expire_unpaid_orders
from tests.presales.conftest import PRICE_FEN, presale_form


def notifications(app, user_id: int, kind: str) -> list[str]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(Notification.title).where(
                    Notification.user_id == user_id, Notification.kind == kind
                )
            )
        )


def attributed_fen(app, order_id: int) -> int:
    with app.app_context():
        return int(
            db.session.scalar(
                select(func.coalesce(func.sum(AttributionEntry.amount_fen), 0)).where(
                    AttributionEntry.order_id == order_id
                )
            )
        )


def presale_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Presale))


# -- opening ------------------------------------------------------------------------------------
def test_a_coop_opens_a_presale_and_the_page_shows_it(shop, client):
    presale_id = shop.open()
    presale = shop.presale(presale_id)
    assert (presale.price_fen, presale.limit_quantity, presale.reserved_quantity) == (
        PRICE_FEN,
        10,
        0,
    )
    assert presale.status.value == "open"
    page = client.get(f"/presales/{presale_id}").get_data(as_text=True)
    assert "白糖罂荔枝" in page and "¥128.00" in page and "剩余 10 份" in page
    listing = client.get(f"/presales?product={shop.world.lychee}").get_data(as_text=True)
    assert f'data-presale-id="{presale_id}"' in listing
    product_page = client.get(f"/products/{shop.world.lychee}").get_data(as_text=True)
    assert f"/presales?product={shop.world.lychee}" in product_page


def test_bad_terms_are_refused_and_store_nothing(shop):
    past = today() - timedelta(days=10)
    cases = [
        ({"harvest_from": past.isoformat(), "harvest_to": (past + timedelta(days=5))}, "已经过去"),
        (
            {"harvest_to": today().isoformat(), "harvest_from": today() + timedelta(days=3)},
            "不能早于",
        ),
        ({"price": "0"}, "金额必须大于 0"),
        ({"price": "abc"}, "请输入正确的金额"),
        ({"limit_quantity": "0"}, ""),
        ({"harvest_from": "0001-01-01"}, ""),
    ]
    for changes, message in cases:
        response = shop.coop.post("/coop/presales/new", data=presale_form(shop.sku_id, **changes))
        assert response.status_code == 400, changes
        assert message in response.get_data(as_text=True), changes
    assert presale_count(shop.app) == 0


def test_another_coops_sku_or_presale_is_a_404(shop):
    other = shop.client(shop.world.coop_manager)  # 古丁南药合作社: not the lychee co-op
    assert other.post("/coop/presales/new", data=presale_form(shop.sku_id)).status_code == 404
    assert presale_count(shop.app) == 0
    presale_id = shop.open()
    assert other.get(f"/coop/presales/{presale_id}").status_code == 404
    assert (
        other.post(f"/coop/presales/{presale_id}/harvest", data={"quantity": "0"}).status_code
        == 404
    )
    assert other.post(f"/coop/presales/{presale_id}/close").status_code == 404
    assert shop.presale(presale_id).status.value == "open"


def test_one_presale_of_a_sku_runs_at_a_time(shop):
    shop.open()
    again = shop.coop.post("/coop/presales/new", data=presale_form(shop.sku_id))
    assert again.status_code == 400
    assert "已有进行中的预售" in again.get_data(as_text=True)
    assert presale_count(shop.app) == 1


# -- reserving ----------------------------------------------------------------------------------
def test_a_reservation_takes_the_limit_not_the_stock_and_waits_for_the_harvest(shop):
    presale_id = shop.open()
    stock = shop.stock()
    number = shop.reserve(shop.world.buyer, presale_id, 3)
    order = shop.order(number)
    assert order.status == "pending_payment" and order.total_fen == 3 * PRICE_FEN
    assert order.holds_stock == [False]
    assert [status for _id, status in order.shipments] == ["awaiting_harvest"]
    assert shop.reservation(number).status.value == "awaiting_payment"
    assert shop.presale(presale_id).reserved_quantity == 3
    assert shop.stock() == stock  # today's stock is untouched

    shop.pay_by_card(shop.world.buyer, number)
    reservation = shop.reservation(number)
    assert reservation.status.value == "reserved" and reservation.paid_at is not None
    order = shop.order(number)
    assert order.status == "paid" and order.paid_fen == 3 * PRICE_FEN
    assert [status for _id, status in order.shipments] == ["awaiting_harvest"]
    assert shop.stock() == stock

    # Paid, but not harvested: the co-op cannot ship it yet.
    [(shipment_id, _status)] = order.shipments
    refused = shop.coop.post(
        f"/coop/shipments/{shipment_id}/ship", data={"carrier": "顺丰", "tracking_number": "SF1"}
    )
    assert refused.status_code == 303
    assert [status for _id, status in shop.order(number).shipments] == ["awaiting_harvest"]
    mine = shop.client(shop.world.buyer).get(f"/presales/{presale_id}").get_data(as_text=True)
    assert number in mine and "已预订 · 待采收" in mine


def test_past_the_limit_is_refused_with_a_message_and_places_nothing(shop):
    presale_id = shop.open(limit_quantity=5)
    shop.reserve(shop.world.buyer, presale_id, 4)
    refused = shop.reserve_response(shop.world.employee, presale_id, 2)
    assert refused.status_code == 409
    assert "预售只剩 1 件" in refused.get_data(as_text=True)
    with shop.app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).select_from(Order).where(Order.buyer_id == shop.world.employee)
            )
            == 0
        )
    assert shop.presale(presale_id).reserved_quantity == 4
    shop.reserve(shop.world.employee, presale_id, 1)
    full = shop.reserve_response(shop.world.coordinator, presale_id, 1)
    assert full.status_code == 409 and "预售已约满" in full.get_data(as_text=True)


def test_the_same_form_twice_is_one_reservation(shop):
    presale_id = shop.open()
    first = shop.reserve_response(shop.world.buyer, presale_id, 2, idempotency_key="k" * 32)
    second = shop.reserve_response(shop.world.buyer, presale_id, 2, idempotency_key="k" * 32)
    assert first.headers["Location"] == second.headers["Location"]
    assert shop.presale(presale_id).reserved_quantity == 2


def test_bad_reservations_are_refused(shop):
    presale_id = shop.open()
    assert shop.reserve_response(shop.world.buyer, presale_id, 0).status_code == 400
    assert shop.reserve_response(shop.world.buyer, presale_id, "x").status_code == 400
    assert shop.reserve_response(shop.world.buyer, 999999, 1).status_code == 404
    not_a_coordinator = shop.reserve_response(shop.world.buyer, presale_id, 1, for_unit="y")
    assert not_a_coordinator.status_code == 400
    assert "只有单位联络员" in not_a_coordinator.get_data(as_text=True)
    assert shop.presale(presale_id).reserved_quantity == 0
    shop.coop.post(f"/coop/presales/{presale_id}/close")
    closed = shop.reserve_response(shop.world.buyer, presale_id, 1)
    assert closed.status_code == 400 and "已截止预订" in closed.get_data(as_text=True)


def _expire_now(app, number: str) -> None:
    """The order's 30 minutes to pay have run out (its deadline moved into the past)."""
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()


def test_an_unpaid_order_that_expires_gives_its_units_back(shop):
    presale_id = shop.open(limit_quantity=3)
    number = shop.reserve(shop.world.buyer, presale_id, 3)
    assert shop.reserve_response(shop.world.employee, presale_id, 1).status_code == 409
    _expire_now(shop.app, number)
    with shop.app.app_context():
        assert expire_unpaid_orders() == 1  # the periodic job: orders, then presales
    assert shop.order(number).status == "expired"
    assert shop.reservation(number).status.value == "cancelled"
    assert shop.presale(presale_id).reserved_quantity == 0
    shop.reserve(shop.world.employee, presale_id, 3)
    assert shop.presale(presale_id).reserved_quantity == 3


def test_a_reservation_finds_units_an_expired_order_left_even_before_the_job(shop):
    presale_id = shop.open(limit_quantity=3)
    number = shop.reserve(shop.world.buyer, presale_id, 2)
    _expire_now(shop.app, number)
    with shop.app.app_context():
        background.expire_unpaid_orders()  # the orders only
    assert shop.presale(presale_id).reserved_quantity == 2
    shop.reserve(shop.world.employee, presale_id, 3)
    assert shop.presale(presale_id).reserved_quantity == 3
    assert shop.reservation(number).status.value == "cancelled"


# -- the harvest --------------------------------------------------------------------------------
def _four_paid_reservations(shop):
    """Reserved in id order A, B, C, D; paid in the order C, D, B, A."""
    world = shop.world
    presale_id = shop.open()
    a = shop.reserve(world.buyer, presale_id, 2)  # refund if short
    b = shop.reserve(world.employee, presale_id, 3, shortfall="rollover")
    c = shop.reserve(world.coordinator, presale_id, 2)
    d = shop.reserve(world.approver, presale_id, 1)
    for user_id, number in [(world.coordinator, c), (world.approver, d)]:
        shop.pay_by_card(user_id, number)
    shop.pay_by_card(world.employee, b)
    shop.pay_by_card(world.buyer, a)
    return presale_id, a, b, c, d


def test_the_harvest_serves_in_payment_order_and_refunds_the_rest_to_the_fen(shop, movements):
    world = shop.world
    presale_id, a, b, c, d = _four_paid_reservations(shop)
    stock = shop.stock()
    received = len(movements)

    response = shop.announce(presale_id, 3)  # enough for C (2) and D (1), paid first
    assert response.status_code == 303
    page = shop.coop.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 单待发货，1 单全额退款，1 单顺延下一季" in page

    statuses = {n: shop.reservation(n).status.value for n in (a, b, c, d)}
    assert statuses == {a: "refunded", b: "rolled_over", c: "served", d: "served"}
    for number in (c, d):
        order = shop.order(number)
        assert order.status == "paid"
        assert [status for _id, status in order.shipments] == ["to_ship"]
        assert order.holds_stock == [True]  # out of the harvest now
    # The harvest went into a new batch, and the served parcels ship from it.
    with shop.app.app_context():
        batch = db.session.scalar(select(Batch).where(Batch.sku_id == shop.sku_id))
        assert (batch.quantity_received, batch.quantity_remaining) == (3, 0)
        batch_id = batch.id
    assert shop.order(c).batch_ids == [batch_id] and shop.order(d).batch_ids == [batch_id]
    assert shop.stock() == stock  # received 3, all 3 promised: nothing left to sell

    # A (reserved first, paid last) is refunded exactly what it paid, through the hook.
    refunded = shop.order(a)
    assert refunded.status == "cancelled" and refunded.refunded_fen == 2 * PRICE_FEN
    assert [status for _id, status in refunded.shipments] == ["cancelled"]
    new = movements[received:]
    assert [(m.order_id, m.amount_fen) for m in new] == [(refunded.id, -2 * PRICE_FEN)]
    # B chose to roll over: paid, still waiting for a harvest.
    rolled = shop.order(b)
    assert rolled.status == "paid" and rolled.refunded_fen == 0
    assert [status for _id, status in rolled.shipments] == ["awaiting_harvest"]

    # The ledger nets to what was kept: served and rolled over; the refunded order to 0.
    assert attributed_fen(shop.app, refunded.id) == 0
    assert attributed_fen(shop.app, shop.order(c).id) == 2 * PRICE_FEN
    assert attributed_fen(shop.app, shop.order(d).id) == PRICE_FEN
    assert attributed_fen(shop.app, rolled.id) == 3 * PRICE_FEN

    # Every buyer is told what happened to theirs.
    assert notifications(shop.app, world.coordinator, "presale.served")
    assert notifications(shop.app, world.approver, "presale.served")
    assert notifications(shop.app, world.buyer, "presale.refunded")
    assert notifications(shop.app, world.employee, "presale.rolled_over")
    assert notifications(shop.app, world.other_coop_manager, "presale.to_ship")
    assert shop.presale(presale_id).status.value == "harvested"

    # Announcing again changes nothing.
    again = shop.announce(presale_id, 8)
    assert "收成已公布过" in shop.coop.get(again.headers["Location"]).get_data(as_text=True)
    assert len(movements) == received + 1
    assert {n: shop.reservation(n).status.value for n in (a, b, c, d)} == statuses
    assert shop.presale(presale_id).harvested_quantity == 3
    assert len(notifications(shop.app, world.buyer, "presale.refunded")) == 1

    # Served parcels ship now.
    [(shipment_id, _status)] = shop.order(c).shipments
    shipped = shop.coop.post(
        f"/coop/shipments/{shipment_id}/ship", data={"carrier": "顺丰", "tracking_number": "SF9"}
    )
    assert shipped.status_code == 303
    assert shop.order(c).shipments == [(shipment_id, "shipped")]


def test_a_rolled_over_reservation_is_carried_into_next_seasons_presale(shop):
    world = shop.world
    presale_id, _a, b, _c, _d = _four_paid_reservations(shop)
    shop.announce(presale_id, 3)
    assert shop.reservation(b).status.value == "rolled_over"

    too_small = shop.coop.post(
        "/coop/presales/new", data=presale_form(shop.sku_id, limit_quantity=2)
    )
    assert too_small.status_code == 400
    assert "顺延来的 3 件" in too_small.get_data(as_text=True)

    next_season = shop.open(limit_quantity=5)
    presale = shop.presale(next_season)
    assert presale.reserved_quantity == 3 and presale.rolled_over_from_id == presale_id
    carried = shop.reservation(b)
    assert (carried.presale_id, carried.status.value) == (next_season, "reserved")
    assert notifications(shop.app, world.employee, "presale.carried")
    # It counts against the new limit: 2 left.
    assert shop.reserve_response(world.buyer, next_season, 3).status_code == 409
    newcomer = shop.reserve(world.buyer, next_season, 2)
    shop.pay_by_card(world.buyer, newcomer)

    shop.announce(next_season, 3)  # B paid last season: first in the queue
    assert shop.reservation(b).status.value == "served"
    assert [status for _id, status in shop.order(b).shipments] == ["to_ship"]
    assert shop.reservation(newcomer).status.value == "refunded"
    # A third presale carries nothing more: B was carried once.
    shop.coop.post(f"/coop/presales/{next_season}/finish")
    assert shop.open(limit_quantity=1)
    with shop.app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(PresaleReservation)
                .where(PresaleReservation.order_id == shop.order(b).id)
            )
            == 2
        )


def test_a_failed_harvest_refunds_a_units_transfer_for_finance_to_send(shop, movements):
    world = shop.world
    presale_id = shop.open()
    number = shop.reserve(world.coordinator, presale_id, 4, for_unit="y", delivery_method="pickup")
    order = shop.order(number)
    assert order.unit_id == world.unit and order.total_fen == 4 * PRICE_FEN
    coordinator = shop.client(world.coordinator)
    assert coordinator.post(f"/orders/{number}/pay/offline").status_code == 303
    with shop.app.test_request_context():
        finance = db.session.get(User, world.finance)
        transfers.confirm_transfer(finance, number, "BANK-001", today())
    assert shop.reservation(number).status.value == "reserved"
    with shop.app.app_context():
        bases = set(
            db.session.scalars(
                select(AttributionEntry.basis).where(AttributionEntry.order_id == order.id)
            )
        )
    assert bases == {Basis.UNIT_ORDER}
    unpaid = shop.reserve(world.buyer, presale_id, 1)

    shop.announce(presale_id, 0)
    assert shop.presale(presale_id).status.value == "failed"
    assert shop.reservation(number).status.value == "refunded"
    assert shop.reservation(unpaid).status.value == "cancelled"
    assert shop.order(unpaid).status == "cancelled"
    with shop.app.app_context():
        [refund] = db.session.scalars(
            select(Refund).join(Refund.payment).where(Refund.payment.has(order_id=order.id))
        ).all()
        assert (refund.amount_fen, refund.status) == (4 * PRICE_FEN, RefundStatus.PENDING)
    assert attributed_fen(shop.app, order.id) == 0
    assert [m.amount_fen for m in movements] == [4 * PRICE_FEN, -4 * PRICE_FEN]
