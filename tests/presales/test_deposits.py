"""定金预售 (issue 16, point 4): a presale may take a deposit per unit when ordering and the rest
(尾款) once the harvest is in. The deposit is the place in the queue; served reservations get a
尾款 order whose parcel carries the goods and ships only once it is paid (the deposit order's
parcel holds none and follows it); an unpaid 尾款 past its deadline cancels the reservation and
refunds the deposit in full; every order counts when its money arrives and refunds reverse it."""

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
from market.orders.models import Order, Shipment
from market.payments import transfers
from market.payments.models import Refund
from market.presales.models import Presale
from market.settlements import services as settlements
from market.settlements.models import SettlementEntry
from market.tasks import expire_unpaid_orders
from tests.payments.conftest import GOOD_CARD
from tests.presales.conftest import PRICE_FEN, presale_form

DEPOSIT_FEN = 2000  # ¥20 定金 of the ¥128 presale price
BALANCE_FEN = PRICE_FEN - DEPOSIT_FEN
SHIP = {"carrier": "顺丰", "tracking_number": "SF100"}


def open_deposit_presale(shop, **changes) -> int:
    return shop.open(payment_kind="deposit", deposit="20", **changes)


def balance_number(shop, deposit_number: str) -> str | None:
    reservation = shop.reservation(deposit_number)
    if reservation.balance_order_id is None:
        return None
    with shop.app.app_context():
        return db.session.get(Order, reservation.balance_order_id).number


def specs(shop, number: str) -> list[str]:
    with shop.app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        return [line.spec for line in order.lines]


def notes(shop, user_id: int, kind: str) -> list[tuple[str, str]]:
    with shop.app.app_context():
        return list(
            db.session.execute(
                select(Notification.title, Notification.link).where(
                    Notification.user_id == user_id, Notification.kind == kind
                )
            ).all()
        )


def attributed(shop, *order_ids: int) -> int:
    with shop.app.app_context():
        return int(
            db.session.scalar(
                select(func.coalesce(func.sum(AttributionEntry.amount_fen), 0)).where(
                    AttributionEntry.order_id.in_(order_ids)
                )
            )
        )


def settled(shop, *order_ids: int) -> int:
    with shop.app.app_context():
        return int(
            db.session.scalar(
                select(func.coalesce(func.sum(SettlementEntry.amount_fen), 0)).where(
                    SettlementEntry.order_id.in_(order_ids)
                )
            )
        )


def ship(shop, shipment_id: int, tracking: str = "SF100"):
    return shop.coop.post(
        f"/coop/shipments/{shipment_id}/ship", data={**SHIP, "tracking_number": tracking}
    )


def statuses(shop, number: str) -> list[str]:
    return [status for _id, status in shop.order(number).shipments]


def make_overdue(shop, number: str) -> None:
    """The 尾款's deadline has passed."""
    with shop.app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()


def harvest_batch(shop) -> tuple[int, int]:
    with shop.app.app_context():
        batch = db.session.scalar(select(Batch).where(Batch.sku_id == shop.sku_id))
        return batch.quantity_received, batch.quantity_remaining


# -- opening ------------------------------------------------------------------------------------
def test_a_coop_opens_a_deposit_presale_and_the_pages_say_so(shop, client):
    form = shop.coop.get("/coop/presales/new").get_data(as_text=True)
    assert 'name="payment_kind"' in form and 'name="deposit"' in form
    presale_id = open_deposit_presale(shop)
    presale = shop.presale(presale_id)
    assert (presale.payment_kind.value, presale.deposit_fen, presale.price_fen) == (
        "deposit",
        DEPOSIT_FEN,
        PRICE_FEN,
    )
    page = client.get(f"/presales/{presale_id}").get_data(as_text=True)
    assert "定金 ¥20.00/份 · 尾款 ¥108.00/份" in page
    coop_page = shop.coop.get(f"/coop/presales/{presale_id}").get_data(as_text=True)
    assert "定金预订" in coop_page


def test_a_full_payment_presale_stores_no_deposit_even_if_one_was_typed(shop):
    presale = shop.presale(shop.open(payment_kind="full", deposit="20"))
    assert (presale.payment_kind.value, presale.deposit_fen) == ("full", None)


def test_bad_deposit_terms_are_refused_and_store_nothing(shop):
    cases = [
        ({"deposit": "128"}, "定金应低于预售价"),
        ({"deposit": "200"}, "定金应低于预售价"),
        ({"deposit": "0"}, "金额必须大于 0"),
        ({"deposit": "abc"}, "请输入正确的金额"),
        ({"deposit": ""}, "请填写每份定金"),
        ({"deposit": "20", "payment_kind": "half"}, ""),
    ]
    for changes, message in cases:
        data = presale_form(shop.sku_id, **{"payment_kind": "deposit", **changes})
        response = shop.coop.post("/coop/presales/new", data=data)
        assert response.status_code == 400, changes
        assert message in response.get_data(as_text=True), changes
    with shop.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Presale)) == 0


# -- ordering -----------------------------------------------------------------------------------
def test_a_deposit_is_ordered_paid_by_card_and_is_the_place_in_the_queue(shop):
    presale_id = open_deposit_presale(shop)
    stock = shop.stock()
    response = shop.reserve_response(shop.world.buyer, presale_id, 3)
    assert response.status_code == 303
    number = response.headers["Location"].split("/")[-2]
    order = shop.order(number)
    assert order.status == "pending_payment" and order.total_fen == 3 * DEPOSIT_FEN
    assert order.holds_stock == [False]
    assert specs(shop, number) == ["5斤装 · 定金"]
    assert statuses(shop, number) == ["awaiting_harvest"]
    pay_page = shop.client(shop.world.buyer).get(f"/orders/{number}/pay").get_data(as_text=True)
    assert "定金" in pay_page and "¥60.00" in pay_page

    shop.pay_by_card(shop.world.buyer, number)
    reservation = shop.reservation(number)
    assert reservation.status.value == "reserved" and reservation.paid_at is not None
    assert reservation.deposit_fen == DEPOSIT_FEN
    order = shop.order(number)
    assert order.status == "paid" and order.paid_fen == 3 * DEPOSIT_FEN
    assert statuses(shop, number) == ["awaiting_harvest"]
    assert shop.stock() == stock
    assert shop.presale(presale_id).reserved_quantity == 3
    # The buyer's order page names the deposit; the ledger counts the deposit received.
    detail = shop.client(shop.world.buyer).get(f"/orders/{number}").get_data(as_text=True)
    assert "5斤装 · 定金" in detail
    assert attributed(shop, order.id) == 3 * DEPOSIT_FEN
    assert settled(shop, order.id) == 3 * DEPOSIT_FEN
    # Not harvested: the co-op cannot ship it.
    [(shipment_id, _status)] = order.shipments
    ship(shop, shipment_id)
    assert statuses(shop, number) == ["awaiting_harvest"]


# -- the harvest --------------------------------------------------------------------------------
def _three_paid_deposits(shop):
    """A (2) paid first, B (1) second, C (2, refund if short) third, D (1, rollover) last."""
    world = shop.world
    presale_id = open_deposit_presale(shop)
    c = shop.reserve(world.coordinator, presale_id, 2)
    a = shop.reserve(world.buyer, presale_id, 2)
    b = shop.reserve(world.employee, presale_id, 1)
    d = shop.reserve(world.approver, presale_id, 1, shortfall="rollover")
    for user_id, number in [(world.buyer, a), (world.employee, b), (world.coordinator, c)]:
        shop.pay_by_card(user_id, number)
    shop.pay_by_card(world.approver, d)
    return presale_id, a, b, c, d


def test_a_short_harvest_gives_the_served_a_balance_order_and_refunds_the_rest_exactly(
    shop, movements
):
    world = shop.world
    presale_id, a, b, c, d = _three_paid_deposits(shop)
    stock = shop.stock()
    received = len(movements)

    response = shop.announce(presale_id, 4)  # A (2) and B (1); C (2) does not fit
    assert response.status_code == 303
    page = shop.coop.get(response.headers["Location"]).get_data(as_text=True)
    assert "2 单待发货，1 单全额退款，1 单顺延下一季" in page
    assert {n: shop.reservation(n).status.value for n in (a, b, c, d)} == {
        a: "served",
        b: "served",
        c: "refunded",
        d: "rolled_over",
    }
    # The served get a 尾款 order of (price − deposit) × quantity, due within 7 days.
    for number, quantity, user_id in [(a, 2, world.buyer), (b, 1, world.employee)]:
        balance = balance_number(shop, number)
        assert balance is not None
        order = shop.order(balance)
        assert order.status == "pending_payment" and order.total_fen == quantity * BALANCE_FEN
        assert specs(shop, balance) == ["5斤装 · 尾款"]
        assert statuses(shop, balance) == ["awaiting_payment"]
        assert order.holds_stock == [True]  # out of the harvest just received
        with shop.app.app_context():
            due = db.session.scalar(select(Order.expires_at).where(Order.number == balance))
        assert timedelta(days=6, hours=23) < due - utcnow() <= timedelta(days=7)
        [(title, link)] = notes(shop, user_id, "presale.balance_due")
        assert "尾款" in title and link == f"/orders/{balance}/pay"
        # The deposit order's parcel holds no goods and waits for the 尾款 parcel.
        assert statuses(shop, number) == ["awaiting_harvest"]
        assert shop.order(number).status == "paid"
    assert balance_number(shop, c) is None and balance_number(shop, d) is None
    # 4 received, 3 promised: one left for sale; the batch gives units out when parcels ship.
    assert shop.stock() == stock + 1
    assert harvest_batch(shop) == (4, 4)

    # C is refunded exactly its deposit, through the hook; nothing else moved.
    refunded = shop.order(c)
    assert refunded.status == "cancelled" and refunded.refunded_fen == 2 * DEPOSIT_FEN
    assert [(m.order_id, m.amount_fen) for m in movements[received:]] == [
        (refunded.id, -2 * DEPOSIT_FEN)
    ]
    assert attributed(shop, refunded.id) == 0 and settled(shop, refunded.id) == 0
    assert notes(shop, world.coordinator, "presale.refunded")
    # D keeps its deposit for next season.
    assert shop.order(d).refunded_fen == 0 and statuses(shop, d) == ["awaiting_harvest"]

    # Neither parcel ships before the 尾款: the co-op's attempts change nothing.
    [(deposit_parcel, _s)] = shop.order(a).shipments
    [(balance_parcel, _s)] = shop.order(balance_number(shop, a)).shipments
    ship(shop, deposit_parcel)
    ship(shop, balance_parcel)
    assert statuses(shop, a) == ["awaiting_harvest"]
    assert statuses(shop, balance_number(shop, a)) == ["awaiting_payment"]
    # The co-op cannot end the presale while 尾款 are outstanding.
    shop.coop.post(f"/coop/presales/{presale_id}/finish")
    assert shop.presale(presale_id).status.value == "harvested"

    # Announcing again changes nothing: no second 尾款 order, no second refund.
    shop.announce(presale_id, 9)
    with shop.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 6
    assert len(movements) == received + 1
    assert len(notes(shop, world.buyer, "presale.balance_due")) == 1


def test_a_paid_balance_ships_once_and_the_figures_are_the_full_price(shop, movements):
    world = shop.world
    presale_id, a, b, c, _d = _three_paid_deposits(shop)
    shop.announce(presale_id, 4)
    balance_a, balance_b = balance_number(shop, a), balance_number(shop, b)

    buyer_page = shop.client(world.buyer).get(f"/presales/{presale_id}").get_data(as_text=True)
    assert f"/orders/{balance_a}/pay" in buyer_page and "付尾款 ¥216.00" in buyer_page
    shop.pay_by_card(world.buyer, balance_a)
    order = shop.order(balance_a)
    assert order.status == "paid" and order.paid_fen == 2 * BALANCE_FEN
    assert statuses(shop, balance_a) == ["to_ship"]
    assert shop.reservation(a).status.value == "served"
    # Paying the 尾款 twice: refused, one payment.
    seen = len(movements)
    again = shop.client(world.buyer).post(f"/orders/{balance_a}/pay/stripe")
    assert again.status_code == 303 and again.headers["Location"].endswith(f"/orders/{balance_a}")
    shop.client(world.buyer).post(
        f"/orders/{balance_a}/pay/stripe/confirm", json={"token": shop.card_token(GOOD_CARD)}
    )
    assert shop.order(balance_a).paid_fen == 2 * BALANCE_FEN and len(movements) == seen

    # The co-op's inbox shows the 尾款 parcel to ship, named as such; it ships once.
    inbox = shop.coop.get("/coop/orders").get_data(as_text=True)
    assert balance_a in inbox and "尾款" in inbox
    [(balance_parcel, _s)] = shop.order(balance_a).shipments
    [(deposit_parcel, _s)] = shop.order(a).shipments
    assert ship(shop, balance_parcel).status_code == 303
    assert statuses(shop, balance_a) == ["shipped"]
    assert statuses(shop, a) == ["shipped"]  # the deposit's parcel follows: nothing to ship
    ship(shop, deposit_parcel, "SF-again")
    ship(shop, balance_parcel, "SF-again")
    with shop.app.app_context():
        order_ids = [shop.order(n).id for n in (a, balance_a)]
        trackings = set(
            db.session.scalars(
                select(Shipment.tracking_number).where(Shipment.order_id.in_(order_ids))
            )
        )
    assert trackings == {"SF100"}
    # The goods came out of the harvest's batch when the parcel shipped.
    assert harvest_batch(shop) == (4, 2)
    assert shop.order(balance_a).batch_ids[0] is not None
    assert shop.order(a).batch_ids == [None]  # the deposit line carries no goods

    # The buyer confirms receipt: both orders complete.
    received = shop.client(world.buyer).post(
        f"/orders/{balance_a}/shipments/{balance_parcel}/received"
    )
    assert received.status_code in (302, 303)
    assert shop.order(balance_a).status == "completed" and shop.order(a).status == "completed"

    # Ledger and settlement: the served reservation counts its full price, to the fen.
    deposit_a, paid_a = shop.order(a).id, shop.order(balance_a).id
    assert attributed(shop, deposit_a, paid_a) == 2 * PRICE_FEN
    assert settled(shop, deposit_a, paid_a) == 2 * PRICE_FEN
    with shop.app.test_request_context():
        statement = settlements.issue_statement(shop.world.other_coop, today())
        assert statement is not None
        # Due: A's two parcels, delivered (B's 尾款 is unpaid, C's deposit refunded).
        assert statement.received_fen - statement.refunded_fen == 2 * PRICE_FEN

    # B pays and ships: then the co-op can end the presale.
    shop.pay_by_card(world.employee, balance_b)
    [(parcel_b, _s)] = shop.order(balance_b).shipments
    ship(shop, parcel_b, "SF200")
    finished = shop.coop.post(f"/coop/presales/{presale_id}/finish")
    assert finished.status_code == 303
    assert shop.presale(presale_id).status.value == "done"
    assert attributed(shop, *(shop.order(n).id for n in (a, balance_a, b, balance_b))) == (
        3 * PRICE_FEN
    )
    assert attributed(shop, shop.order(c).id) == 0


def test_an_unpaid_balance_past_its_deadline_cancels_and_refunds_the_deposit(shop, movements):
    world = shop.world
    presale_id, a, b, _c, _d = _three_paid_deposits(shop)
    shop.announce(presale_id, 4)
    stock_after_harvest = shop.stock()
    balance_a = balance_number(shop, a)
    shop.pay_by_card(world.employee, balance_number(shop, b))
    seen = len(movements)

    make_overdue(shop, balance_a)
    with shop.app.app_context():
        expire_unpaid_orders()  # the periodic job
        expire_unpaid_orders()  # run twice: one effect
    assert shop.order(balance_a).status == "expired"
    assert statuses(shop, balance_a) == ["cancelled"]
    assert shop.reservation(a).status.value == "cancelled"
    deposit = shop.order(a)
    assert deposit.status == "cancelled" and deposit.refunded_fen == 2 * DEPOSIT_FEN
    assert statuses(shop, a) == ["cancelled"]
    assert [(m.order_id, m.amount_fen) for m in movements[seen:]] == [
        (deposit.id, -2 * DEPOSIT_FEN)
    ]
    with shop.app.app_context():
        refunds = db.session.scalars(
            select(Refund).join(Refund.payment).where(Refund.payment.has(order_id=deposit.id))
        ).all()
        assert [r.amount_fen for r in refunds] == [2 * DEPOSIT_FEN]
    # Its 2 units are back in the stock, and the batch never gave them out.
    assert shop.stock() == stock_after_harvest + 2
    assert harvest_batch(shop) == (4, 4)
    assert attributed(shop, deposit.id, shop.order(balance_a).id) == 0
    assert settled(shop, deposit.id, shop.order(balance_a).id) == 0
    [(title, _link)] = notes(shop, world.buyer, "presale.balance_lapsed")
    assert "定金全额退款" in title
    page = shop.client(world.buyer).get(f"/presales/{presale_id}").get_data(as_text=True)
    assert "尾款逾期 · 定金已全额退款" in page
    # B, paid, is untouched.
    assert shop.reservation(b).status.value == "served"
    assert statuses(shop, balance_number(shop, b)) == ["to_ship"]
    # Paying the lapsed 尾款 now is refused.
    late = shop.client(world.buyer).post(f"/orders/{balance_a}/pay/stripe")
    assert late.status_code == 303 and late.headers["Location"].endswith(f"/orders/{balance_a}")
    assert shop.order(balance_a).paid_fen == 0


def test_a_unit_pays_its_deposit_and_balance_by_bank_transfer(shop):
    world = shop.world
    presale_id = open_deposit_presale(shop)
    number = shop.reserve(world.coordinator, presale_id, 4, for_unit="y", delivery_method="pickup")
    order = shop.order(number)
    assert order.unit_id == world.unit and order.total_fen == 4 * DEPOSIT_FEN
    coordinator = shop.client(world.coordinator)
    assert coordinator.post(f"/orders/{number}/pay/offline").status_code == 303
    assert shop.reservation(number).status.value == "awaiting_payment"
    with shop.app.test_request_context():
        finance = db.session.get(User, world.finance)
        transfers.confirm_transfer(finance, number, "BANK-D1", today())
    reservation = shop.reservation(number)
    assert reservation.status.value == "reserved" and reservation.paid_at is not None

    shop.announce(presale_id, 4)
    balance = balance_number(shop, number)
    paid = shop.order(balance)
    assert paid.unit_id == world.unit and paid.total_fen == 4 * BALANCE_FEN
    assert notes(shop, world.coordinator, "presale.balance_due")
    assert coordinator.post(f"/orders/{balance}/pay/offline").status_code == 303
    with shop.app.test_request_context():
        finance = db.session.get(User, world.finance)
        transfers.confirm_transfer(finance, balance, "BANK-D2", today())
    assert shop.order(balance).status == "paid"
    assert statuses(shop, balance) == ["to_ship"]
    with shop.app.app_context():
        bases = set(
            db.session.scalars(
                select(AttributionEntry.basis).where(
                    AttributionEntry.order_id.in_([order.id, paid.id])
                )
            )
        )
    assert bases == {Basis.UNIT_ORDER}
    assert attributed(shop, order.id, paid.id) == 4 * PRICE_FEN


def test_a_failed_harvest_refunds_deposits_and_a_rolled_over_one_pays_next_seasons_balance(
    shop,
):
    world = shop.world
    presale_id = open_deposit_presale(shop)
    refund = shop.reserve(world.buyer, presale_id, 1)
    carry = shop.reserve(world.employee, presale_id, 2, shortfall="rollover")
    shop.pay_by_card(world.buyer, refund)
    shop.pay_by_card(world.employee, carry)
    shop.announce(presale_id, 0)
    assert shop.presale(presale_id).status.value == "failed"
    assert shop.order(refund).refunded_fen == DEPOSIT_FEN
    assert shop.reservation(carry).status.value == "rolled_over"

    # Next season, at a new price: the carried deposit pays the new price less its deposit.
    next_season = shop.open(payment_kind="deposit", deposit="30", price="150")
    shop.announce(next_season, 5)
    assert shop.reservation(carry).status.value == "served"
    balance = balance_number(shop, carry)
    assert shop.order(balance).total_fen == 2 * (15000 - DEPOSIT_FEN)
