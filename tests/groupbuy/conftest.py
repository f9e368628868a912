"""Group-buy test kit: open a group-buy for the world's unit, add members, join, change, leave
and close through the real services, each call in its own request context (as a view would run
it), so every call gets its own session and sees only what was committed."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from market.accounts.models import CoopMembership, CoopRole, User
from market.catalog.models import Category, Sku
from market.directory.models import Coop, Unit
from market.extensions import db
from market.groupbuy import closing, fulfilment, joining, proposals
from market.groupbuy.models import GroupBuy, GroupBuyItem, Participation, PaymentMode, Visibility
from market.groupbuy.proposals import GroupBuyData, ItemData, TierData
from market.models import utcnow
from market.orders.models import Order
from market.payments import services as payments
from market.payments.models import Payment
from tests import factories
from tests.payments.conftest import (  # noqa: F401  (card payments through localstripe)
    GOOD_CARD,
    card_token,
    localstripe_url,
    stripe_app,
    stripe_client,
)

# The honey (原生态蜂蜜 500g, retail 8800 fen, stock 50) at a group-buy price with two tiers:
# from 5 units in all it costs 7000, from 10 units 6000. The group-buy needs 5 to succeed.
GROUP_PRICE = 8000
TIERS = (TierData(5, 7000), TierData(10, 6000))
MIN_QUANTITY = 5
WORLD_STOCK = 50  # every product of the world starts with 50


@dataclass
class Kit:
    """Service calls on the world's data, by id; returns ids and plain values, never objects
    bound to a session that is gone."""

    app: Flask
    world: SimpleNamespace
    _serial: Iterator[int] = field(default_factory=itertools.count)

    # -- contexts and lookups ------------------------------------------------------------------
    @contextmanager
    def ctx(self) -> Iterator[None]:
        with self.app.test_request_context():
            yield

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a service in a request context of its own; a DomainError rolls back and
        propagates, like a view would see it."""
        with self.ctx():
            try:
                return function(*args, **kwargs)
            except Exception:
                db.session.rollback()
                raise

    @staticmethod
    def user(user_id: int) -> User:
        return db.session.get(User, user_id)

    def sku_of(self, product_id: int) -> int:
        with self.ctx():
            return db.session.scalar(select(Sku.id).where(Sku.product_id == product_id))

    def stock(self, sku_id: int) -> int:
        with self.ctx():
            return db.session.get(Sku, sku_id).stock

    def payment_count(self) -> int:
        with self.ctx():
            return db.session.scalar(select(func.count()).select_from(Payment))

    # -- people and products -------------------------------------------------------------------
    def members(self, count: int, unit_id: int | None = None) -> list[int]:
        """`count` new confirmed members of the world's unit (or of `unit_id`)."""
        with self.ctx():
            unit = db.session.get(Unit, unit_id or self.world.unit)
            return factories.add_members(unit, [next(self._serial) for _ in range(count)])

    def new_sku(self, *, stock: int = 10_000, price_fen: int = 9900, coop_id: int | None = None):
        """A fresh listed product of the world's co-op (or `coop_id`) with one SKU."""
        with self.ctx():
            n = next(self._serial)
            product = factories.make_product(
                db.session.get(Coop, coop_id or self.world.coop),
                db.session.get(Category, self.world.honey),
                f"团购土蜂蜜{n}",
                price_fen=price_fen,
                stock=stock,
            )
            db.session.commit()
            return product.skus[0].id

    # -- the group-buy ------------------------------------------------------------------------
    def data(self, **overrides: Any) -> GroupBuyData:
        """The usual group-buy: the honey at GROUP_PRICE with TIERS, min 5, pay at pickup,
        members only, closing in two hours."""
        now = utcnow()
        base = GroupBuyData(
            title="消费帮扶 · 蜂蜜团购",
            opens_at=now - timedelta(minutes=1),
            closes_at=now + timedelta(hours=2),
            min_quantity=MIN_QUANTITY,
            payment_mode=PaymentMode.PICKUP,
            visibility=Visibility.MEMBERS,
            pickup_address="市场监管局一楼大厅",
            pickup_contact="李联络 13800000001",
            pickup_window="周五 12:00-14:00",
            items=[ItemData(self.sku_of(self.world.honey_product), GROUP_PRICE, None, list(TIERS))],
        )
        return replace(base, **overrides)

    def propose(self, coordinator_id: int | None = None, **overrides: Any) -> int:
        """The coordinator proposes; the co-op has not answered yet (PROPOSED)."""
        data = self.data(**overrides)
        with self.ctx():
            coordinator = self.user(coordinator_id or self.world.coordinator)
            return proposals.open_group_buy(coordinator, data).id

    def accept(self, group_buy_id: int, manager_id: int | None = None) -> None:
        """A manager of the group-buy's co-op (or `manager_id`) accepts its terms: it opens."""
        with self.ctx():
            if manager_id is None:
                manager_id = coop_manager_of(group_buy_id)
            proposals.accept_group_buy(self.user(manager_id), group_buy_id)

    def open(self, coordinator_id: int | None = None, **overrides: Any) -> int:
        """Proposed by the coordinator and accepted by the co-op: open for joining."""
        group_buy_id = self.propose(coordinator_id, **overrides)
        self.accept(group_buy_id)
        return group_buy_id

    def item_ids(self, group_buy_id: int) -> list[int]:
        with self.ctx():
            return list(
                db.session.scalars(
                    select(GroupBuyItem.id)
                    .where(GroupBuyItem.group_buy_id == group_buy_id)
                    .order_by(GroupBuyItem.id)
                )
            )

    def join(self, user_id: int, group_buy_id: int, quantities: dict[int, int] | int) -> int:
        """Join; an int is a quantity of the first item. Returns the participation id."""
        wanted = self._wanted(group_buy_id, quantities)
        with self.ctx():
            try:
                return joining.join(self.user(user_id), group_buy_id, wanted).id
            except Exception:
                db.session.rollback()
                raise

    def change(self, user_id: int, group_buy_id: int, quantities: dict[int, int] | int) -> int:
        wanted = self._wanted(group_buy_id, quantities)
        with self.ctx():
            try:
                return joining.change(self.user(user_id), group_buy_id, wanted).id
            except Exception:
                db.session.rollback()
                raise

    def leave(self, user_id: int, group_buy_id: int) -> None:
        with self.ctx():
            try:
                joining.leave(self.user(user_id), group_buy_id)
            except Exception:
                db.session.rollback()
                raise

    def _wanted(self, group_buy_id: int, quantities: dict[int, int] | int) -> dict[int, int]:
        if isinstance(quantities, int):
            return {self.item_ids(group_buy_id)[0]: quantities}
        return quantities

    def closes_at(self, group_buy_id: int) -> datetime:
        with self.ctx():
            return db.session.get(GroupBuy, group_buy_id).closes_at

    def close(self, group_buy_id: int, *, after: timedelta = timedelta(seconds=1)) -> bool:
        """Close as the clock would just after the deadline."""
        now = self.closes_at(group_buy_id) + after
        with self.ctx():
            return closing.close_group_buy(group_buy_id, now)

    def ship_and_arrive(self, group_buy_id: int) -> None:
        """The co-op ships the consolidated parcel; the coordinator marks it arrived."""
        with self.ctx():
            manager = self.user(coop_manager_of(group_buy_id))
            fulfilment.ship_consolidated(manager, group_buy_id, "顺丰速运", "SF1")
        with self.ctx():
            fulfilment.mark_arrived(self.user(self.world.coordinator), group_buy_id)

    def order_number(self, participation_id: int) -> str:
        with self.ctx():
            participation = db.session.get(Participation, participation_id)
            return participation.order.number

    def shipment_value(self, group_buy_id: int) -> int:
        """What the co-op's consolidated parcel is worth at the tier reached."""
        with self.ctx():
            group_buy = db.session.get(GroupBuy, group_buy_id)
            return sum(line.amount_fen for line in fulfilment.consolidated_lines(group_buy))

    def pay_by_card(self, user_id: int, group_buy_id: int, token: str) -> SimpleNamespace:
        """start_card_payment, then the card form: the card is confirmed on the server."""
        with self.ctx():
            order = joining.start_card_payment(self.user(user_id), group_buy_id)
            number = order.number
        with self.ctx():
            outcome = payments.confirm_card(self.user(user_id), number, token)
            return SimpleNamespace(
                payment_id=outcome.payment.id,
                status=outcome.payment.status,
                amount_fen=outcome.payment.amount_fen,
                intent_id=outcome.payment.provider_ref,
                number=number,
            )

    def order_of(self, participation_id: int) -> Order:
        participation = db.session.get(Participation, participation_id)
        return db.session.get(Order, participation.order_id)


def coop_manager_of(group_buy_id: int) -> int:
    """A manager of the group-buy's co-op (in an app context)."""
    return db.session.scalar(
        select(CoopMembership.user_id)
        .join(GroupBuy, GroupBuy.coop_id == CoopMembership.coop_id)
        .where(GroupBuy.id == group_buy_id, CoopMembership.role == CoopRole.MANAGER)
        .order_by(CoopMembership.id)
    )


def accept_as_coop(app: Flask, group_buy_id: int) -> None:
    """The group-buy's co-op accepts it, as its manager would on the co-op's page."""
    with app.test_request_context():
        manager = db.session.get(User, coop_manager_of(group_buy_id))
        proposals.accept_group_buy(manager, group_buy_id)


@pytest.fixture
def kit(app: Flask, world: SimpleNamespace) -> Kit:
    return Kit(app, world)
