"""Buyers racing for a presale's last units: the reserved quantity never passes the limit, and
every loser is told how many are left; a late 尾款 racing the periodic sweep of lapsed balances
ends one way only. PostgreSQL only: row locks under real concurrency, which
SQLite (one writer at a time) cannot show."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from market.accounts.models import User
from market.campaign.models import AttributionEntry
from market.catalog.models import Sku
from market.clock import today
from market.errors import DomainError
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus, Refund
from market.presales import services
from market.presales.models import Presale, PresaleReservation
from market.settlements.models import SettlementEntry
from market.tasks import expire_unpaid_orders
from tests import factories
from tests.concurrency import all_at_once
from tests.payments.conftest import GOOD_CARD, THREE_D_SECURE_CARD
from tests.presales.conftest import PRICE_FEN, delivery

pytestmark = pytest.mark.postgres_only

RACERS = 8
LIMIT = 5


def test_buyers_racing_for_the_last_units_never_pass_the_limit(app, world):
    with app.test_request_context():
        manager = db.session.get(User, world.other_coop_manager)
        sku_id = db.session.scalar(select(Sku.id).where(Sku.product_id == world.lychee))
        start = today() + timedelta(days=30)
        presale = services.open_presale(
            manager,
            sku_id=sku_id,
            harvest_from=start,
            harvest_to=start + timedelta(days=10),
            price_fen=12800,
            limit_quantity=LIMIT + 1,
        )
        presale_id = presale.id
        buyers = [
            factories.make_user(f"买家{n}", f"racer{n}@example.com").id for n in range(RACERS)
        ]
        db.session.commit()
    # One unit already gone: LIMIT left for RACERS buyers of one unit each.
    with app.test_request_context():
        services.reserve(
            db.session.get(User, world.buyer),
            presale_id,
            1,
            rollover_wanted=False,
            for_unit=False,
            delivery=delivery(detail="1号"),
            idempotency_key=uuid.uuid4().hex,
        )

    def racer(user_id: int):
        return lambda: (
            services.reserve(
                db.session.get(User, user_id),
                presale_id,
                1,
                rollover_wanted=False,
                for_unit=False,
                delivery=delivery("买家", "13900000001", "2号"),
                idempotency_key=uuid.uuid4().hex,
            ).number
        )

    results = all_at_once(app, [racer(user_id) for user_id in buyers])
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == LIMIT and len(lost) == RACERS - LIMIT, results
    assert all(isinstance(error, services.OverLimit) for error in lost), lost
    assert all(str(error) == "预售已约满" for error in lost), lost
    with app.app_context():
        presale = db.session.get(Presale, presale_id)
        assert presale.reserved_quantity == presale.limit_quantity == LIMIT + 1
        reserved = db.session.scalar(
            select(func.sum(PresaleReservation.quantity)).where(
                PresaleReservation.presale_id == presale_id
            )
        )
        assert reserved == LIMIT + 1
        orders = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id.in_(buyers))
        )
        assert orders == LIMIT  # a loser placed no order


# -- a late 尾款 against the sweep ----------------------------------------------------------------
DEPOSIT_FEN = 2000
QUANTITY = 2


def _net_received(order_ids: list[int]) -> int:
    """What the shop still holds for these orders: received less refunded, by the payments."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(Payment.received_fen - Payment.refunded_fen), 0)).where(
                Payment.order_id.in_(order_ids)
            )
        )
    )


def _ledger(model, order_ids: list[int]) -> int:
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(model.amount_fen), 0)).where(
                model.order_id.in_(order_ids)
            )
        )
    )


def _overdue_balances(shop) -> tuple[dict[int, str], dict[int, str]]:
    """Three buyers paid their deposits, the harvest served them all, and each opened the card
    page of its 尾款 in time; then the deadline passed. -> ({buyer: deposit order},
    {buyer: 尾款 order})."""
    world = shop.world
    presale_id = shop.open(payment_kind="deposit", deposit=str(DEPOSIT_FEN // 100))
    buyers = [world.buyer, world.employee, world.approver]
    deposits = {user_id: shop.reserve(user_id, presale_id, QUANTITY) for user_id in buyers}
    for user_id, number in deposits.items():
        shop.pay_by_card(user_id, number)
    assert shop.announce(presale_id, QUANTITY * len(buyers)).status_code == 303
    balances = {}
    with shop.app.app_context():
        for user_id, number in deposits.items():
            reservation = shop.reservation(number)
            balances[user_id] = db.session.get(Order, reservation.balance_order_id).number
    for user_id, number in balances.items():
        assert shop.client(user_id).post(f"/orders/{number}/pay/stripe").status_code == 303
    return deposits, balances


def _make_overdue(shop, numbers) -> None:
    with shop.app.app_context():
        db.session.execute(
            update(Order)
            .where(Order.number.in_(list(numbers)))
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()


def _check_one_outcome(shop, stripe_client, deposit_number: str, balance_number: str) -> str:
    """Either the 尾款 is paid, the reservation served and its parcel to ship; or the 尾款
    expired with its card payment never captured or given back in full, the reservation
    cancelled and the deposit refunded in full. The payments, the attribution ledger and the
    settlement entries agree to the fen. -> "paid" or "lapsed"."""
    deposit, balance = shop.order(deposit_number), shop.order(balance_number)
    reservation = shop.reservation(deposit_number)
    orders = [deposit.id, balance.id]
    with shop.app.app_context():
        [intent_ref] = db.session.scalars(
            select(Payment.provider_ref).where(Payment.order_id == balance.id)
        ).all()
        held = _net_received(orders)
        attributed = _ledger(AttributionEntry, orders)
        settled = _ledger(SettlementEntry, orders)
    intent = stripe_client.v1.payment_intents.retrieve(intent_ref)
    if balance.status == "paid":
        assert intent.status == "succeeded"
        assert balance.paid_fen == balance.total_fen == QUANTITY * (PRICE_FEN - DEPOSIT_FEN)
        assert balance.refunded_fen == 0
        assert [status for _id, status in balance.shipments] == ["to_ship"]
        assert reservation.status.value == "served"
        assert (deposit.status, deposit.refunded_fen) == ("paid", 0)
        assert held == attributed == settled == QUANTITY * PRICE_FEN
        return "paid"
    assert balance.status == "expired"
    assert [status for _id, status in balance.shipments] == ["cancelled"]
    assert balance.paid_fen == balance.refunded_fen
    if intent.status == "succeeded":  # captured before it could be stopped: all given back
        assert balance.refunded_fen == balance.total_fen
        refunds = stripe_client.v1.refunds.list({"payment_intent": intent_ref}).data
        assert sum(r.amount for r in refunds) == balance.total_fen
    else:
        assert intent.status == "canceled" and balance.paid_fen == 0
    assert reservation.status.value == "cancelled"
    assert deposit.status == "cancelled"
    assert deposit.refunded_fen == deposit.paid_fen == QUANTITY * DEPOSIT_FEN
    assert held == attributed == settled == 0
    return "lapsed"


def _deposit_refunds(shop, deposits: dict[int, str]) -> list[int]:
    with shop.app.app_context():
        return sorted(
            db.session.scalars(
                select(Refund.amount_fen)
                .join(Payment, Payment.id == Refund.payment_id)
                .join(Order, Order.id == Payment.order_id)
                .where(Order.number.in_(list(deposits.values())))
            )
        )


def test_a_late_balance_payment_racing_the_sweep_has_exactly_one_outcome(shop, stripe_client):
    """Each overdue 尾款's buyer sends the card while two runs of the periodic job (expiry, then
    lapsed balances) go: per reservation exactly one outcome, never both."""
    deposits, balances = _overdue_balances(shop)
    tokens = {user_id: shop.card_token(GOOD_CARD) for user_id in balances}
    _make_overdue(shop, balances.values())

    def pay(user_id: int):
        return lambda: (
            payments.confirm_card(
                db.session.get(User, user_id), balances[user_id], tokens[user_id]
            ).payment.status
        )

    buyers = list(balances)
    results = all_at_once(shop.app, [pay(u) for u in buyers] + [expire_unpaid_orders] * 2)
    assert all(isinstance(n, int) for n in results[len(buyers) :]), results
    with shop.app.app_context():
        expire_unpaid_orders()  # a later run finds nothing left half done
    outcomes = []
    for user_id, paid in zip(buyers, results, strict=False):
        outcome = _check_one_outcome(shop, stripe_client, deposits[user_id], balances[user_id])
        if outcome == "paid":
            assert paid == PaymentStatus.SUCCEEDED, paid
        else:  # the sweep came first: the card is refused, never charged
            assert isinstance(paid, DomainError) and str(paid) == "该订单当前不需要付款", paid
        outcomes.append(outcome)
    # A deposit is refunded once at most, however many sweeps ran.
    assert _deposit_refunds(shop, deposits) == [QUANTITY * DEPOSIT_FEN] * outcomes.count("lapsed")


def test_a_balance_paid_at_stripe_settling_while_the_sweep_runs_has_exactly_one_outcome(
    shop, stripe_client, authenticate
):
    """The buyers finished 3-D Secure in the browser just before the deadline passed: Stripe has
    the money, the shop not yet. The return page (or the webhook) settles each payment while two
    sweeps run: nobody fails (the settling locks the order before the payment, as the sweep
    does, so the two wait for each other instead of deadlocking), and per reservation exactly
    one outcome."""
    deposits, balances = _overdue_balances(shop)
    payment_ids = []
    for user_id, number in balances.items():
        with shop.app.test_request_context():
            outcome = payments.confirm_card(
                db.session.get(User, user_id), number, shop.card_token(THREE_D_SECURE_CARD)
            )
            assert outcome.state.requires_action
            payment_ids.append(outcome.payment.id)
            authenticate(outcome.client_secret, True)  # what Stripe.js does in the browser
    _make_overdue(shop, balances.values())

    def settle(payment_id: int):
        return lambda: payments.settle(payment_id).status

    calls = [settle(p) for p in payment_ids] + [expire_unpaid_orders] * 2
    results = all_at_once(shop.app, calls)
    assert not any(isinstance(r, Exception) for r in results), results
    with shop.app.app_context():
        expire_unpaid_orders()
    outcomes = [
        _check_one_outcome(shop, stripe_client, deposits[user_id], balances[user_id])
        for user_id in balances
    ]
    assert _deposit_refunds(shop, deposits) == [QUANTITY * DEPOSIT_FEN] * outcomes.count("lapsed")
