"""Settlement test kit: orders in the four modes, paid by bank transfer, card (localstripe) or
cash at a pickup, shipped, received, refunded, stated and paid out, through the real services.
Each call runs in a request context of its own (as a view would), so every call gets its own
session and sees only what was committed. The kit hands out ids and plain values only.

Time: statements are cut by the Shanghai calendar and the cut-off day may not be in the future,
so tests move the past instead of the clock: `backdate` moves every timestamp the settlement
rules read (entries booked, parcels shipped and received, cash handed over) back by some days.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from market.accounts.models import User
from market.catalog.models import Sku
from market.clock import SHANGHAI
from market.extensions import db
from market.groupbuy import closing, fulfilment, joining, proposals
from market.groupbuy.models import GroupBuy, PaymentMode, Visibility
from market.groupbuy.proposals import GroupBuyData, ItemData, TierData
from market.models import utcnow
from market.orders import lifecycle
from market.orders import services as orders
from market.orders.models import DeliveryMethod, Order, OrderLine, Shipment
from market.payments import refunds, transfers
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.procurement import custom, purchases
from market.procurement.models import Purpose
from market.settlements import services as settlements
from market.settlements.models import Payout, SettlementEntry, Statement, StatementLine
from tests.groupbuy.conftest import coop_manager_of
from tests.payments.conftest import (  # noqa: F401  (card payments through localstripe)
    GOOD_CARD,
    card_token,
    localstripe_url,
    stripe_app,
)

TIMESTAMPS = (
    ("settlement_entries", "at"),
    ("shipments", "shipped_at"),
    ("shipments", "delivered_at"),
    ("payments", "cash_handed_over_at"),
)


def today() -> date:
    """The shop's today: statements are cut by the Shanghai calendar."""
    return datetime.now(SHANGHAI).date()


@dataclass
class Shop:
    """Service calls on the world's data, by id."""

    app: Flask
    world: SimpleNamespace
    card: Callable[[str], str] | None = None  # card_token, when localstripe runs
    _serial: Iterator[int] = field(default_factory=itertools.count)

    # -- contexts ----------------------------------------------------------------------------
    @contextmanager
    def ctx(self) -> Iterator[None]:
        with self.app.test_request_context():
            yield

    def call(self, function: Callable[..., Any], user_id: int, *args: Any, **kwargs: Any) -> Any:
        """Run a service as the user, in a context of its own; an error rolls back and
        propagates, like a view would see it. Returns plain values only (ids for objects)."""
        with self.ctx():
            try:
                result = function(self.user(user_id), *args, **kwargs)
            except Exception:
                db.session.rollback()
                raise
            return getattr(result, "id", result)

    @staticmethod
    def user(user_id: int) -> User:
        return db.session.get(User, user_id)

    def ref(self, prefix: str = "BANK") -> str:
        return f"{prefix}-{next(self._serial):06d}"

    def sku_of(self, product_id: int) -> int:
        with self.ctx():
            return db.session.scalar(select(Sku.id).where(Sku.product_id == product_id))

    def manager_of(self, coop_id: int) -> int:
        return (
            self.world.coop_manager if coop_id == self.world.coop else self.world.other_coop_manager
        )

    # -- orders in the four modes ------------------------------------------------------------
    def retail(self, quantities: dict[int, int], buyer_id: int | None = None) -> str:
        """An unpaid retail order of {product id: quantity}; returns its number."""
        with self.ctx():
            buyer = self.user(buyer_id or self.world.buyer)
            wanted = [
                orders.WantedLine(self.sku_of_here(product_id), quantity)
                for product_id, quantity in quantities.items()
            ]
            delivery = orders.Delivery(
                DeliveryMethod.DELIVERY, "周买家", "13900000009", "广东省茂名市高州市人民路 1 号"
            )
            order = orders.build_order(buyer, wanted, delivery, secrets.token_hex(16))
            db.session.commit()
            return order.number

    @staticmethod
    def sku_of_here(product_id: int) -> int:
        return db.session.scalar(select(Sku.id).where(Sku.product_id == product_id))

    def unit_purchase(self, quantities: dict[int, int]) -> list[str]:
        """A unit purchase drafted, submitted and approved: one unpaid order per co-op."""
        world = self.world
        with self.ctx():
            data = purchases.PurchaseData(
                purpose=Purpose.CANTEEN,
                purpose_note="机关食堂",
                recipient="李联络",
                phone="13800000001",
                address="高州市府前路 1 号 机关食堂",
                invoice_title="高州市市场监管局",
                invoice_tax_id="11440981MB2C12345X",
                pay_online=False,
                lines={self.sku_of_here(p): q for p, q in quantities.items()},
            )
            purchase_id = purchases.draft_purchase(self.user(world.coordinator), data).id
        self.call(purchases.submit_purchase, world.coordinator, purchase_id)
        with self.ctx():
            purchase = purchases.approve_purchase(self.user(world.approver), purchase_id)
            return [order.number for order in purchase.orders]

    def custom(self, quantity: int, unit_price_fen: int, coop_id: int | None = None) -> str:
        """A custom request, one quote from the co-op, accepted: an unpaid order."""
        world = self.world
        coop_id = coop_id or world.coop
        with self.ctx():
            request = custom.create_request(
                self.user(world.coordinator),
                custom.RequestData(
                    title=f"定制礼盒{next(self._serial)}",
                    description="蜂蜜加藿香",
                    quantity=quantity,
                    budget_fen=unit_price_fen * 2,
                    needed_by=today() + timedelta(days=30),
                    card_text="",
                    packaging="礼盒",
                ),
            )
            request_id = request.id
        if coop_id != world.coop:  # a co-op of a village the unit is not paired with
            self.call(custom.open_to_all, world.coordinator, request_id)
        with self.ctx():
            quote = custom.submit_quote(
                self.user(self.manager_of(coop_id)),
                request_id,
                coop_id,
                custom.QuoteData(unit_price_fen, 10, ""),
            )
            quote_id = quote.id
        with self.ctx():
            order = custom.accept_quote(self.user(world.coordinator), request_id, quote_id)
            return order.number

    def group_buy(
        self,
        member_quantities: list[int],
        *,
        product_id: int | None = None,
        card: bool = False,
        price_fen: int = 8000,
        tier: tuple[int, int] | None = None,
    ) -> tuple[int, list[int]]:
        """A group-buy of the world's unit for one product, joined by new members with the
        given quantities (paying by card at once when `card`), closed after its deadline.
        `tier` is (from total quantity, price): a card charged the group price gets the
        difference back at the close when the tier is reached.
        Returns (group-buy id, participation ids)."""
        world = self.world
        with self.ctx():
            now = utcnow()
            sku_id = self.sku_of_here(product_id or world.honey_product)
            data = GroupBuyData(
                title="消费帮扶 · 团购",
                opens_at=now - timedelta(minutes=1),
                # A card charge now (closing more than six days away), refunded at close.
                closes_at=now + (timedelta(days=8) if card else timedelta(hours=2)),
                min_quantity=1,
                payment_mode=PaymentMode.CARD if card else PaymentMode.PICKUP,
                visibility=Visibility.MEMBERS,
                pickup_address="市场监管局一楼大厅",
                pickup_contact="李联络 13800000001",
                pickup_window="周五 12:00-14:00",
                items=[ItemData(sku_id, price_fen, None, [TierData(*tier)] if tier else [])],
            )
            group_buy = proposals.open_group_buy(self.user(world.coordinator), data)
            group_buy_id, item_id, closes_at = group_buy.id, group_buy.items[0].id, data.closes_at
        with self.ctx():  # the co-op agrees to the proposal: it opens
            manager = self.user(coop_manager_of(group_buy_id))
            proposals.accept_group_buy(manager, group_buy_id)
        members = self.members(len(member_quantities))
        participations = []
        for member, quantity in zip(members, member_quantities, strict=True):
            with self.ctx():
                participations.append(
                    joining.join(self.user(member), group_buy_id, {item_id: quantity}).id
                )
            if card:
                with self.ctx():
                    number = joining.start_card_payment(self.user(member), group_buy_id).number
                with self.ctx():
                    payments.confirm_card(self.user(member), number, self.card(GOOD_CARD))
        with self.ctx():
            closing.close_group_buy(group_buy_id, closes_at + timedelta(seconds=1))
        return group_buy_id, participations

    def members(self, count: int) -> list[int]:
        from market.directory.models import Unit
        from tests import factories

        with self.ctx():
            unit = db.session.get(Unit, self.world.unit)
            return factories.add_members(unit, [next(self._serial) for _ in range(count)])

    def pick_up(self, group_buy_id: int, participation_id: int) -> None:
        """The coordinator ticks off a pickup (pay-at-pickup cash is taken then), once the
        co-op's parcel has arrived (shipped and marked arrived here if not yet)."""
        with self.ctx():
            group_buy = db.session.get(GroupBuy, group_buy_id)
            shipped, arrived = group_buy.shipped_at, group_buy.arrived_at
        if shipped is None:
            with self.ctx():
                manager = self.user(coop_manager_of(group_buy_id))
                fulfilment.ship_consolidated(manager, group_buy_id, "顺丰速运", "SF1")
        if arrived is None:
            with self.ctx():
                fulfilment.mark_arrived(self.user(self.world.coordinator), group_buy_id)
        self.call(
            fulfilment.mark_picked_up,
            self.world.coordinator,
            group_buy_id,
            participation_id,
        )

    # -- money in ----------------------------------------------------------------------------
    def buyer_of(self, number: str) -> int:
        with self.ctx():
            return db.session.scalar(select(Order.buyer_id).where(Order.number == number))

    def pay_transfer(self, number: str) -> int:
        """The buyer chooses bank transfer and finance confirms it arrived. Returns the payment."""
        buyer = self.buyer_of(number)
        with self.ctx():
            payments.start_payment(self.user(buyer), number, "offline")
        with self.ctx():
            payment = transfers.confirm_transfer(
                self.user(self.world.finance), number, self.ref(), today()
            )
            return payment.id

    def pay_card(self, number: str) -> int:
        assert self.card is not None, "card payments need the stripe_app fixture"
        buyer = self.buyer_of(number)
        with self.ctx():
            payments.start_payment(self.user(buyer), number, "stripe")
        with self.ctx():
            outcome = payments.confirm_card(self.user(buyer), number, self.card(GOOD_CARD))
            assert outcome.payment.status == PaymentStatus.SUCCEEDED
            return outcome.payment.id

    def cash_held_by(self, holder_id: int) -> int:
        with self.ctx():
            held = db.session.scalar(
                select(func.sum(Payment.received_fen - Payment.refunded_fen)).where(
                    Payment.cash_holder_id == holder_id,
                    Payment.cash_handed_over_at.is_(None),
                    Payment.status == PaymentStatus.SUCCEEDED,
                )
            )
            return int(held or 0)

    def hand_over(self, holder_id: int | None = None) -> int:
        holder_id = holder_id or self.world.coordinator
        amount = self.cash_held_by(holder_id)
        return self.call(
            transfers.confirm_cash_handover,
            self.world.finance,
            holder_id,
            amount,
            self.ref("CASH"),
        )

    # -- parcels -----------------------------------------------------------------------------
    def shipments(self, number: str) -> list[int]:
        with self.ctx():
            return list(
                db.session.scalars(
                    select(Shipment.id)
                    .join(Order, Order.id == Shipment.order_id)
                    .where(Order.number == number)
                    .order_by(Shipment.id)
                )
            )

    def ship(self, shipment_id: int) -> None:
        with self.ctx():
            coop_id = db.session.get(Shipment, shipment_id).coop_id
        self.call(lifecycle.ship, self.manager_of(coop_id), shipment_id, "顺丰", "SF1")

    def receive(self, shipment_id: int) -> None:
        with self.ctx():
            shipment = db.session.get(Shipment, shipment_id)
            number, buyer = shipment.order.number, shipment.order.buyer_id
        self.call(lifecycle.confirm_delivery, buyer, number, shipment_id)

    def lines(self, number: str) -> list[int]:
        with self.ctx():
            return list(
                db.session.scalars(
                    select(OrderLine.id)
                    .join(Order, Order.id == OrderLine.order_id)
                    .where(Order.number == number)
                    .order_by(OrderLine.id)
                )
            )

    # -- refunds -----------------------------------------------------------------------------
    def refund_line(self, line_id: int, amount_fen: int) -> int:
        with self.ctx():
            coop_id = db.session.get(OrderLine, line_id).coop_id
        return self.call(refunds.refund_line, self.manager_of(coop_id), line_id, amount_fen, "破损")

    def cancel(self, number: str) -> None:
        self.call(refunds.cancel_order, self.buyer_of(number), number)

    def send_refund(self, refund_id: int) -> None:
        self.call(transfers.send_refund, self.world.finance, refund_id, self.ref(), today())

    def pending_refunds(self) -> list[int]:
        with self.ctx():
            return list(
                db.session.scalars(
                    select(Refund.id)
                    .where(Refund.status == RefundStatus.PENDING)
                    .order_by(Refund.id)
                )
            )

    # -- statements --------------------------------------------------------------------------
    def issue(self, until: date | None = None) -> list[int]:
        with self.ctx():
            issued = settlements.issue_statements(until or today(), self.user(self.world.finance))
            return [statement.id for statement in issued]

    def statement_of(self, coop_id: int) -> list[int]:
        with self.ctx():
            return list(
                db.session.scalars(
                    select(Statement.id)
                    .where(Statement.coop_id == coop_id)
                    .order_by(Statement.period_end)
                )
            )

    def confirm(self, statement_id: int) -> None:
        with self.ctx():
            coop_id = db.session.get(Statement, statement_id).coop_id
        self.call(settlements.confirm_statement, self.manager_of(coop_id), statement_id)

    def pay_out(self, statement_id: int, reference: str | None = None) -> int:
        with self.ctx():
            payout = settlements.record_payout(
                self.user(self.world.finance), statement_id, reference or self.ref(), today()
            )
            return payout.id

    def statement(self, statement_id: int) -> SimpleNamespace:
        """A statement's figures and its lines as plain values."""
        with self.ctx():
            s = db.session.get(Statement, statement_id)
            return SimpleNamespace(
                id=s.id,
                number=s.number,
                coop_id=s.coop_id,
                status=s.status,
                period_end=s.period_end,
                received_fen=s.received_fen,
                refunded_fen=s.refunded_fen,
                fee_fen=s.fee_fen,
                opening_balance_fen=s.opening_balance_fen,
                payable_fen=s.payable_fen,
                closing_balance_fen=s.closing_balance_fen,
                lines=[
                    (ln.order_line_id, ln.received_fen, ln.refunded_fen, ln.fee_fen, ln.payable_fen)
                    for ln in s.lines
                ],
            )

    def balance(self, coop_id: int) -> settlements.Balance:
        with self.ctx():
            return settlements.balances([coop_id]).get(coop_id, settlements.Balance(coop_id))

    def reconcile(self):
        from market.campaign.reconciliation import money_reconcile

        with self.ctx():
            return money_reconcile()

    def payouts(self) -> list[tuple[int, int, str]]:
        with self.ctx():
            return [
                (p.statement_id, p.amount_fen, p.reference)
                for p in db.session.scalars(select(Payout).order_by(Payout.id))
            ]

    def unstated_entries(self, coop_id: int) -> int:
        with self.ctx():
            return db.session.scalar(
                select(func.count())
                .select_from(SettlementEntry)
                .where(SettlementEntry.coop_id == coop_id, SettlementEntry.statement_id.is_(None))
            )

    def statement_lines_count(self) -> int:
        with self.ctx():
            return db.session.scalar(select(func.count()).select_from(StatementLine))

    # -- time --------------------------------------------------------------------------------
    def backdate(self, days: float, *, only: tuple[str, str] | None = None) -> None:
        """Move the past `days` back: every timestamp the settlement rules read (or `only`
        that (table, column))."""
        with self.ctx():
            for name, col in [only] if only else TIMESTAMPS:
                table = db.metadata.tables[name]
                column = table.c[col]
                for row_id, value in db.session.execute(
                    select(table.c.id, column).where(column.is_not(None))
                ).all():
                    db.session.execute(
                        update(table)
                        .where(table.c.id == row_id)
                        .values({col: value - timedelta(days=days)})
                    )
            db.session.commit()

    def clamp(self, moment: datetime) -> None:
        """Everything that happened after `moment` (that is: in the step just run, when the
        simulated clock lags the real one) happened at `moment`."""
        with self.ctx():
            moved = 0
            for name, col in TIMESTAMPS:
                table = db.metadata.tables[name]
                moved += db.session.execute(
                    update(table).where(table.c[col] > moment).values({col: moment})
                ).rowcount
            if moved:
                db.session.commit()
            else:
                db.session.rollback()


@pytest.fixture
def shop(app: Flask, world: SimpleNamespace) -> Shop:
    return Shop(app, world)


@pytest.fixture
def card_shop(stripe_app: Flask, world: SimpleNamespace, card_token) -> Shop:  # noqa: F811
    return Shop(stripe_app, world, card_token)
