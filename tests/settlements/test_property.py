"""Every fen is in exactly one place (DESIGN.md §6b), whatever happens in whatever order.

A hypothesis state machine runs random sequences of: retail orders, unit purchases, custom
orders and group-buys (pay at pickup, or by card); payment by bank transfer (confirmed by
finance) or card (localstripe); cancellations, co-ops' line refunds (before or after a
statement), refunds sent by finance, shipments, receipts, pickups and the cash hand-over,
the days passing, statements issued (with the platform fee changing now and then), confirmed,
disputed and paid. After every step:

- `money reconcile` finds no difference (per payment, order, co-op, statement and overall);
- received − refunds sent − refunds owed = paid out + fee + owed to co-ops + cash held, and the
  figures on each side are what the steps put there (what was paid in, refunded, sent, paid out,
  held by the coordinator);
- every payout is positive and pays exactly its statement's payable amount;
- no issued statement ever changes (its figures and lines; only its status moves on).

The days: statements are cut by the Shanghai calendar and a cut-off day may not be in the
future, so the machine's clock starts weeks ago and moves forward towards today; whatever a step
did in real time is moved back to the machine's clock right after it (`Shop.clamp`).

Each example starts from empty tables and a new world, with one order paid, received and on a
first statement that is paid (so later refunds have a statement behind them), and ends with
finance catching up (`close_the_books`: every open statement confirmed, every payable one paid).
How often the random steps in between reach a paid statement, measured while writing this
(SQLite, SETTLEMENTS_PROPERTY_STATS=1 prints it): in the "settlements-ci" profile 15 of 21
examples (71 %) paid at least one more statement in their steps and 17 of 21 put a refund on a
statement after the one its sale was on; in the small default profile about 1 in 3 examples
paid one in their steps (Hypothesis makes some examples short, and its swarm testing leaves
some rules out of an example). `hypothesis.target` on the statements paid in the steps steers
generation towards more. Profiles: "settlements-default" (8 examples, about 20 s on SQLite and
40 s on PostgreSQL) and, when the environment variable CI is set (.ci/run sets CI=true),
"settlements-ci" (20 examples); they apply to this machine only, so the other modules'
properties keep their own settings.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from types import SimpleNamespace

from hypothesis import HealthCheck, event, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from market.catalog.models import Sku
from market.extensions import db
from market.groupbuy.models import Participation, ParticipationStatus
from market.orders.models import Order, OrderMode, OrderStatus, Shipment, ShipmentStatus
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.settlements.models import Statement, StatementLine, StatementStatus
from market.settlements.services import cutoff_of
from tests import factories
from tests.conftest import _empty_all_tables
from tests.settlements.conftest import Shop, today

settings.register_profile(
    "settlements-default",
    max_examples=8,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "settlements-ci", settings.get_profile("settlements-default"), max_examples=20
)
PROFILE = settings.get_profile("settlements-ci" if os.environ.get("CI") else "settlements-default")

START_DAYS_AGO = 70
LIVE = (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, OrderStatus.COMPLETED)
# Per example: (paid a statement in the random steps, a refund went on a later statement).
REACHED: list[tuple[bool, bool]] = []

products = st.sampled_from(["honey_product", "herb_product", "lychee"])
baskets = st.dictionaries(products, st.integers(1, 3), min_size=1, max_size=3)
fulfilment = st.sampled_from(["later", "shipped", "received", "received"])


class MoneyMachine(RuleBasedStateMachine):
    def __init__(self, app, card_token):
        super().__init__()
        with app.app_context():
            _empty_all_tables()
            world = factories.make_world()
            db.session.execute(update(Sku).values(stock=100_000))
            db.session.commit()
        app.config["TEST_WORLD"] = world
        self.app = app
        self.shop = Shop(app, world, card_token)
        self.w = world
        self.day = today() - timedelta(days=START_DAYS_AGO)
        self.statements: dict[int, tuple] = {}  # id -> what it said when issued
        # What the steps put where, counted here independently of the reconciliation.
        self.received = 0
        self.refunded = 0  # decided: sent or owed
        self.sent = 0  # card refunds, and offline refunds finance sent
        self.paid_out = 0
        self.paid_statements = 0
        self.state = self.read_state()
        self.paid_at_start = 0

    # -- the clock ---------------------------------------------------------------------------
    def now(self):
        return cutoff_of(self.day) - timedelta(hours=1)

    # -- orders ------------------------------------------------------------------------------
    @initialize(
        basket=baskets,
        how=st.sampled_from(["transfer", "transfer", "card"]),
        days=st.integers(1, 9),
        fee_bp=st.sampled_from([0, 0, 1000, 333]),
    )
    def first_order_received_and_paid_out(self, basket, how, days, fee_bp):
        """Every example starts with one order paid, received, on a first statement that is
        paid: so that every example has statements behind it for later refunds to follow.
        Everything else is left to the rules."""
        number = self.shop.retail({getattr(self.w, p): q for p, q in basket.items()})
        self._pay(number, how)
        for shipment_id in self.shop.shipments(number):
            self.shop.ship(shipment_id)
            self.shop.receive(shipment_id)
        self.shop.clamp(self.now())
        self._issue(days, fee_bp, settle=True)
        assert self.paid_statements >= 1
        self.paid_at_start = self.paid_statements

    def _pay(self, number: str, how: str) -> None:
        with self.shop.ctx():
            total = db.session.scalar(select(Order.total_fen).where(Order.number == number))
        if how == "card":
            self.shop.pay_card(number)
        elif how == "transfer":
            self.shop.pay_transfer(number)
        else:
            return
        self.received += total
        event(f"paid by {how}")

    def _fulfil(self, number: str, how: str) -> None:
        """The co-ops ship a paid order's parcels at once, and the buyer confirms receipt,
        or not (the `ship` and `receive` rules do it later)."""
        if how == "later":
            return
        for shipment_id in self.shop.shipments(number):
            self.shop.ship(shipment_id)
            if how == "received":
                self.shop.receive(shipment_id)

    @rule(
        basket=baskets,
        how=st.sampled_from(["transfer", "transfer", "card", "unpaid"]),
        then=fulfilment,
    )
    def retail(self, basket, how, then):
        number = self.shop.retail({getattr(self.w, p): q for p, q in basket.items()})
        self._pay(number, how)
        if how != "unpaid":
            self._fulfil(number, then)

    @rule(basket=baskets, pay=st.booleans(), then=fulfilment)
    def unit_purchase(self, basket, pay, then):
        numbers = self.shop.unit_purchase({getattr(self.w, p): q * 5 for p, q in basket.items()})
        for number in numbers:
            self._pay(number, "transfer" if pay else "unpaid")
            if pay:
                self._fulfil(number, then)

    @rule(
        quantity=st.integers(1, 30),
        price=st.integers(1, 20_000),
        coop=st.sampled_from(["coop", "other_coop"]),
        then=fulfilment,
    )
    def custom(self, quantity, price, coop, then):
        number = self.shop.custom(quantity, price, getattr(self.w, coop))
        self._pay(number, "transfer")
        self._fulfil(number, then)

    @rule(
        quantities=st.lists(st.integers(1, 3), min_size=1, max_size=3),
        product=st.sampled_from(["honey_product", "lychee"]),
        card=st.sampled_from([False, False, False, True]),
        price=st.integers(100, 9_000),
        discount=st.sampled_from([0, 0, 7, 50]),
    )
    def group_buy(self, quantities, product, card, price, discount):
        """Pay at pickup (cash) or by card now; with a lower price from 3 in all, a card
        charged the group price gets the difference back at the close."""
        tier = (3, price - discount) if discount else None
        self.shop.group_buy(
            quantities, product_id=getattr(self.w, product), card=card, price_fen=price, tier=tier
        )
        if card:
            self.received += sum(quantities) * price
            event("group-buy by card")
            if tier and sum(quantities) >= 3:
                back = sum(quantities) * discount
                self.refunded += back
                self.sent += back
                event("group-buy tier refunded")

    @precondition(lambda self: self.state.unpaid)
    @rule(data=st.data(), how=st.sampled_from(["transfer", "card"]))
    def pay_later(self, data, how):
        self._pay(data.draw(st.sampled_from(self.state.unpaid)), how)

    @precondition(lambda self: self.state.cancellable)
    @rule(data=st.data())
    def cancel(self, data):
        number, refundable, provider = data.draw(st.sampled_from(self.state.cancellable))
        self.shop.cancel(number)
        self._refunded(refundable, provider)

    def _refunded(self, amount: int, provider: str | None) -> None:
        if provider is None:
            return
        self.refunded += amount
        if provider == "stripe":
            self.sent += amount

    # -- parcels, pickups, cash ---------------------------------------------------------------
    @precondition(lambda self: self.state.to_ship)
    @rule(data=st.data(), received=st.booleans())
    def ship(self, data, received):
        shipment_id = data.draw(st.sampled_from(self.state.to_ship))
        self.shop.ship(shipment_id)
        if received:
            self.shop.receive(shipment_id)

    @precondition(lambda self: self.state.shipped)
    @rule(data=st.data())
    def receive(self, data):
        self.shop.receive(data.draw(st.sampled_from(self.state.shipped)))

    @precondition(lambda self: self.state.pickups)
    @rule(data=st.data(), everyone=st.booleans())
    def pick_up(self, data, everyone):
        chosen = (
            self.state.pickups if everyone else [data.draw(st.sampled_from(self.state.pickups))]
        )
        for group_buy_id, participation_id, total, paid in chosen:
            self.shop.pick_up(group_buy_id, participation_id)
            if not paid:
                self.received += total

    @precondition(lambda self: self.state.cash_held)
    @rule()
    def hand_over(self):
        self.shop.hand_over(self.w.coordinator)

    # -- refunds -----------------------------------------------------------------------------
    @precondition(lambda self: self.state.refundable)
    @rule(data=st.data(), share=st.sampled_from([1, 2, 3, 10, 100]))
    def refund_line(self, data, share):
        line_id, refundable, provider = data.draw(st.sampled_from(self.state.refundable))
        amount = max(1, refundable // share)
        self.shop.refund_line(line_id, amount)
        self._refunded(amount, provider)

    @precondition(lambda self: self.state.stated_refundable)
    @rule(data=st.data(), share=st.sampled_from([1, 2, 5]))
    def refund_after_a_statement(self, data, share):
        """A co-op refunds part of a line that is already on a statement (a complaint after
        the sale was settled): the refund goes on the co-op's next statement."""
        line_id, refundable, provider = data.draw(st.sampled_from(self.state.stated_refundable))
        amount = max(1, refundable // share)
        self.shop.refund_line(line_id, amount)
        self._refunded(amount, provider)

    @precondition(lambda self: self.state.owed_refunds)
    @rule(data=st.data())
    def send_refund(self, data):
        refund_id, amount = data.draw(st.sampled_from(self.state.owed_refunds))
        self.shop.send_refund(refund_id)
        self.sent += amount

    # -- statements --------------------------------------------------------------------------
    @rule(days=st.integers(0, 9), fee_bp=st.sampled_from([0, 0, 0, 1000, 333]))
    def issue(self, days, fee_bp):
        """Days pass; finance issues the period's statements (the co-ops answer later)."""
        self._issue(days, fee_bp, settle=False)

    @rule(days=st.integers(0, 9), fee_bp=st.sampled_from([0, 0, 0, 1000, 333]))
    def issue_and_settle(self, days, fee_bp):
        """The same, and each co-op confirms at once and finance pays what is payable."""
        self._issue(days, fee_bp, settle=True)

    @rule(days=st.integers(7, 10), fee_bp=st.sampled_from([0, 0, 0, 1000, 333]))
    def weekly_settlement(self, days, fee_bp):
        """A week or more passes (parcels shipped and never confirmed fall due); finance
        issues, the co-ops confirm, finance pays."""
        self._issue(days, fee_bp, settle=True)

    def _issue(self, days: int, fee_bp: int, settle: bool) -> None:
        self.day = min(today(), self.day + timedelta(days=days))
        self.app.config["PLATFORM_FEE_BP"] = fee_bp
        for statement_id in self.shop.issue(self.day):
            statement = self.shop.statement(statement_id)
            assert statement.period_end == self.day
            assert statement.status == StatementStatus.ISSUED
            event("statement issued")
            if settle:
                self.shop.confirm(statement_id)
                if statement.payable_fen > 0:
                    self._pay_out(statement_id, statement.payable_fen, "")

    @precondition(lambda self: self.state.issued)
    @rule(data=st.data(), dispute=st.sampled_from([False, False, True]))
    def answer(self, data, dispute):
        statement_id, coop_id = data.draw(st.sampled_from(self.state.issued))
        if dispute:
            from market.settlements.services import dispute_statement

            self.shop.call(
                dispute_statement, self.shop.manager_of(coop_id), statement_id, "数量不符"
            )
        else:
            self.shop.confirm(statement_id)

    @precondition(lambda self: self.state.payable)
    @rule(data=st.data())
    def pay_out(self, data):
        statement_id, payable, disputed = data.draw(st.sampled_from(self.state.payable))
        self._pay_out(statement_id, payable, "已与合作社核实" if disputed else "")

    def _pay_out(self, statement_id: int, payable: int, note: str) -> None:
        from market.settlements.services import record_payout

        self.shop.call(
            record_payout, self.w.finance, statement_id, self.shop.ref("PAY"), today(), note=note
        )
        self.paid_out += payable
        self.paid_statements += 1
        event("statement paid")

    # -- after every step --------------------------------------------------------------------
    def read_state(self) -> SimpleNamespace:
        """What the next steps can act on, read from the database."""
        with self.shop.ctx():
            shipments = db.session.execute(
                select(Shipment.id, Shipment.status)
                .join(Order, Order.id == Shipment.order_id)
                .where(Order.mode != OrderMode.GROUP_BUY)
                .order_by(Shipment.id)
            ).all()
            received = {
                order_id: provider
                for order_id, provider in db.session.execute(
                    select(Payment.order_id, Payment.provider)
                    .where(
                        Payment.status == PaymentStatus.SUCCEEDED,
                        Payment.received_fen > Payment.refunded_fen,
                    )
                    .order_by(Payment.id.desc())  # the first payment wins, as in a refund
                )
            }
            orders = db.session.scalars(
                select(Order)
                .where(Order.status.in_(LIVE))
                .options(selectinload(Order.lines), selectinload(Order.shipments))
                .order_by(Order.id)
            ).all()
            unpaid, cancellable, refundable = [], [], []
            for order in orders:
                provider = received.get(order.id)
                if order.status == OrderStatus.PENDING_PAYMENT:
                    if order.mode != OrderMode.GROUP_BUY:
                        unpaid.append(order.number)
                        cancellable.append((order.number, 0, None))
                    continue
                if order.mode != OrderMode.GROUP_BUY and all(
                    s.status == ShipmentStatus.TO_SHIP for s in order.shipments
                ):
                    left = sum(line.refundable_fen for line in order.lines)
                    cancellable.append((order.number, left, provider if left else None))
                if provider is not None:
                    refundable.extend(
                        (line.id, line.refundable_fen, provider)
                        for line in order.lines
                        if line.refundable_fen > 0
                    )
            pickups = [
                (group_buy_id, participation_id, total, status == OrderStatus.PAID)
                for group_buy_id, participation_id, total, status in db.session.execute(
                    select(
                        Participation.group_buy_id, Participation.id, Order.total_fen, Order.status
                    )
                    .join(Order, Order.id == Participation.order_id)
                    .where(Participation.status == ParticipationStatus.READY)
                    .order_by(Participation.id)
                )
            ]
            statements = db.session.scalars(
                select(Statement).options(
                    selectinload(Statement.lines), selectinload(Statement.payout)
                )
            ).all()
            for statement in statements:
                self.check_statement(statement)
            stated = set(db.session.scalars(select(StatementLine.order_line_id)))
            return SimpleNamespace(
                stated_refundable=[r for r in refundable if r[0] in stated],
                to_ship=[i for i, status in shipments if status == ShipmentStatus.TO_SHIP],
                shipped=[i for i, status in shipments if status == ShipmentStatus.SHIPPED],
                unpaid=unpaid,
                cancellable=cancellable,
                refundable=refundable,
                pickups=pickups,
                owed_refunds=[
                    tuple(row)
                    for row in db.session.execute(
                        select(Refund.id, Refund.amount_fen)
                        .where(Refund.status == RefundStatus.PENDING)
                        .order_by(Refund.id)
                    )
                ],
                issued=[
                    (s.id, s.coop_id) for s in statements if s.status == StatementStatus.ISSUED
                ],
                payable=[
                    (s.id, s.payable_fen, s.status == StatementStatus.DISPUTED)
                    for s in statements
                    if s.needs_payout
                ],
                cash_held=self.shop.cash_held_by(self.w.coordinator),
            )

    def check_statement(self, statement: Statement) -> None:
        """Payable is never negative, a payout pays exactly it, and what the statement said
        when it was issued it says for ever (its status alone moves on)."""
        assert statement.payable_fen >= 0 and statement.closing_balance_fen <= 0
        payout = statement.payout
        if payout is not None:
            assert payout.amount_fen == statement.payable_fen > 0
            assert statement.status == StatementStatus.PAID
        else:
            assert statement.status != StatementStatus.PAID
        said = (
            statement.number,
            statement.coop_id,
            statement.period_start,
            statement.period_end,
            statement.received_fen,
            statement.refunded_fen,
            statement.fee_bp,
            statement.fee_fen,
            statement.opening_balance_fen,
            statement.payable_fen,
            statement.closing_balance_fen,
            statement.issued_at,
            tuple(
                (
                    ln.id,
                    ln.order_line_id,
                    ln.received_fen,
                    ln.refunded_fen,
                    ln.fee_fen,
                    ln.payable_fen,
                )
                for ln in statement.lines
            ),
        )
        assert self.statements.setdefault(statement.id, said) == said

    @invariant()
    def after_every_step(self):
        if self.day < today():
            self.shop.clamp(self.now())  # what the last step did, it did on the machine's day
        self.state = self.read_state()
        result = self.shop.reconcile()
        assert result.differences == [], [str(d) for d in result.differences]
        totals = result.totals
        assert (
            totals.received_fen - totals.refunds_sent_fen - totals.refunds_owed_fen
            == totals.paid_out_fen
            + totals.fee_fen
            + totals.owed_to_coops_fen
            + totals.cash_held_fen
        )
        assert totals.received_fen == self.received
        assert totals.refunds_sent_fen + totals.refunds_owed_fen == self.refunded
        assert totals.refunds_sent_fen == self.sent
        assert totals.paid_out_fen == self.paid_out
        assert result.ledger_fen == totals.net_fen
        assert totals.cash_held_fen == self.state.cash_held

    def teardown(self):
        paid_in_steps = self.paid_statements - self.paid_at_start
        with self.shop.ctx():
            refunds_after = db.session.scalar(
                select(func.count())
                .select_from(StatementLine)
                .where(StatementLine.received_fen == 0, StatementLine.refunded_fen > 0)
            )
        REACHED.append((paid_in_steps > 0, refunds_after > 0))
        target(float(paid_in_steps), label="statements paid in the steps")
        if sys.exc_info()[0] is None:  # a failing example keeps its own error
            self.close_the_books()

    def close_the_books(self):
        """After the random steps, finance catches up: the days pass to today, the statements
        are issued, the co-ops confirm the ones still open and every payable one is paid. The
        identity still holds, and nothing payable is left unpaid."""
        self._issue(9999, 0, settle=True)
        self.after_every_step()
        for statement_id, _coop_id in self.state.issued:
            self.shop.confirm(statement_id)
        self.after_every_step()
        for statement_id, payable, disputed in self.state.payable:
            self._pay_out(statement_id, payable, "已与合作社核实" if disputed else "")
        self.after_every_step()
        assert self.state.issued == [] and self.state.payable == []


def test_every_fen_is_in_exactly_one_place(stripe_app, card_token):
    app = stripe_app
    saved_fee = app.config["PLATFORM_FEE_BP"]
    REACHED.clear()
    try:
        run_state_machine_as_test(lambda: MoneyMachine(app, card_token), settings=PROFILE)
    finally:
        app.config["PLATFORM_FEE_BP"] = saved_fee
    if os.environ.get("SETTLEMENTS_PROPERTY_STATS"):
        paid = sum(p for p, _r in REACHED)
        refunds = sum(r for _p, r in REACHED)
        print(
            f"\nof {len(REACHED)} examples, {paid} paid a statement in their random steps (all"
            f" paid the first one), {refunds} put a refund on a statement after its sale's"
        )
