"""Properties of closing, over random group-buys (1–2 items, 1–3 tiers each, with or without a
cap) and random joins, changes and leaves:

- the services accept exactly what a simple model of the rules accepts;
- after the close, every ready participant is charged the tier price reached × quantity, never
  more than the group price (nor than an authorisation, in card mode);
- the participants' charges add up to the value of the co-op's consolidated parcel;
- stock goes down by exactly what was sold, whatever was reserved, taken and given back.

Each example uses fresh rows (its own SKUs, members and group-buy), so examples never see each
other's data. Pay at pickup runs offline; a smaller card-mode property runs against localstripe.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from market.errors import DomainError
from market.extensions import db
from market.groupbuy import changes
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.groupbuy.proposals import ItemData, TierData
from market.models import utcnow
from market.orders.models import OrderStatus
from market.payments import hook
from market.payments.models import Payment, PaymentStatus
from tests.groupbuy.conftest import GOOD_CARD, Kit

MEMBERS = 5
STOCK = 10_000
FIXTURES_ARE_PER_TEST = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@dataclass(frozen=True)
class ItemSpec:
    price_fen: int
    cap: int | None
    tiers: tuple[tuple[int, int], ...]  # (from total quantity, price), rising / falling

    def price_at(self, total: int) -> int:
        """The rule, written independently of GroupBuyItem.price_at."""
        reached = [price for threshold, price in self.tiers if total >= threshold]
        return reached[-1] if reached else self.price_fen


@st.composite
def item_specs(draw) -> ItemSpec:
    price = draw(st.integers(3_000, 20_000))
    steps = draw(
        st.lists(st.tuples(st.integers(1, 8), st.integers(1, 900)), min_size=1, max_size=3)
    )
    threshold, tier_price, tiers = 0, price, []
    for up, down in steps:
        threshold, tier_price = threshold + up, tier_price - down
        tiers.append((threshold, tier_price))
    cap = draw(st.none() | st.integers(3, 25))
    return ItemSpec(price, cap, tuple(tiers))


actions = st.lists(
    st.tuples(
        st.integers(0, MEMBERS - 1),
        st.sampled_from(["join", "join", "join", "change", "leave"]),
        st.tuples(st.integers(0, 5), st.integers(0, 5)),
    ),
    min_size=2,
    max_size=14,
)


@dataclass
class Model:
    """What the rules say should be accepted, and who holds what."""

    specs: list[ItemSpec]
    held: dict[int, dict[int, int]]  # member index -> {item index: quantity}, active only

    def joined(self, item: int) -> int:
        return sum(lines.get(item, 0) for lines in self.held.values())

    def fits(self, member: int, wanted: dict[int, int]) -> bool:
        for item, quantity in wanted.items():
            cap = self.specs[item].cap
            others = self.joined(item) - self.held.get(member, {}).get(item, 0)
            if cap is not None and others + quantity > cap:
                return False
        return True

    def accepts(self, member: int, action: str, wanted: dict[int, int]) -> bool:
        if action == "leave":
            return member in self.held
        if not wanted:
            return False
        if action == "join" and member in self.held:
            return False
        if action == "change" and member not in self.held:
            return False
        return self.fits(member, wanted)

    def apply(self, member: int, action: str, wanted: dict[int, int]) -> None:
        if action == "leave":
            del self.held[member]
        else:
            self.held[member] = wanted

    @property
    def total(self) -> int:
        return sum(sum(lines.values()) for lines in self.held.values())


def open_random(kit: Kit, specs: list[ItemSpec], min_quantity: int, **overrides) -> tuple:
    skus = [kit.new_sku(stock=STOCK) for _ in specs]
    items = [
        ItemData(sku, spec.price_fen, spec.cap, [TierData(q, p) for q, p in spec.tiers])
        for sku, spec in zip(skus, specs, strict=True)
    ]
    group_buy_id = kit.open(items=items, min_quantity=min_quantity, **overrides)
    return group_buy_id, skus, kit.item_ids(group_buy_id)


def play(kit: Kit, group_buy_id: int, item_ids: list[int], model: Model, members, steps):
    for member, action, quantities in steps:
        wanted = {i: q for i, q in enumerate(quantities[: len(item_ids)]) if q}
        expected = model.accepts(member, action, wanted)
        try:
            if action == "leave":
                kit.leave(members[member], group_buy_id)
            else:
                by_item = {item_ids[i]: q for i, q in wanted.items()}
                getattr(kit, action)(members[member], group_buy_id, by_item)
        except DomainError:
            event(f"{action} refused")
            assert not expected, (member, action, wanted)
        else:
            assert expected, (member, action, wanted)
            model.apply(member, action, wanted)


def charged(order) -> int:
    """What the participant pays: the net of what was received, or the order's total when
    nothing has been received yet (pay at pickup)."""
    return order.paid_fen - order.refunded_fen if order.paid_fen else order.total_fen


def check_close(
    kit: Kit, group_buy_id: int, skus, item_ids, model: Model, members, released=frozenset()
) -> dict:
    """The properties after the close; `released` are the members whose card never went
    through. Returns {order id: what its participant pays}."""
    total = model.total
    reached = total >= min_quantity_of(kit, group_buy_id)
    prices = [spec.price_at(total) for spec in model.specs]
    sold = [model.joined(i) for i in range(len(model.specs))]
    pays: dict[int, int] = {}
    event("reached" if reached else "not reached")
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.reached_quantity == total
        assert group_buy.status == (GroupBuyStatus.SUCCEEDED if reached else GroupBuyStatus.FAILED)
        joined = {
            item.id: item.joined_quantity
            for item in db.session.scalars(
                select(GroupBuyItem).where(GroupBuyItem.group_buy_id == group_buy_id)
            )
        }
        assert joined == dict(zip(item_ids, sold, strict=True))
        for index, user_id in enumerate(members):
            participation = db.session.scalar(
                select(Participation).where(
                    Participation.group_buy_id == group_buy_id, Participation.user_id == user_id
                )
            )
            if index in released:
                assert participation.status == ParticipationStatus.RELEASED
                assert kit.order_of(participation.id).status == OrderStatus.CANCELLED
                assert kit.order_of(participation.id).paid_fen == 0
                continue
            if index not in model.held:
                assert participation is None or participation.status == ParticipationStatus.LEFT
                continue
            order = kit.order_of(participation.id)
            lines = model.held[index]
            if not reached:
                assert participation.status == ParticipationStatus.RELEASED
                assert order.status == OrderStatus.CANCELLED
                assert order.paid_fen == order.refunded_fen
                continue
            assert participation.status == ParticipationStatus.READY
            expected = sum(prices[i] * q for i, q in lines.items())
            most = sum(model.specs[i].price_fen * q for i, q in lines.items())
            assert charged(order) == expected <= most
            for payment in db.session.scalars(select(Payment).where(Payment.order_id == order.id)):
                assert payment.status == PaymentStatus.SUCCEEDED
                assert payment.received_fen <= payment.amount_fen  # never above authorised
                assert payment.received_fen - payment.refunded_fen == expected
            pays[order.id] = expected
        parcel = kit.shipment_value(group_buy_id)
        assert parcel == sum(pays.values())
        assert parcel == (sum(p * s for p, s in zip(prices, sold, strict=True)) if reached else 0)
    for sku, quantity in zip(skus, sold, strict=True):
        assert kit.stock(sku) == STOCK - (quantity if reached else 0)
    return pays


def min_quantity_of(kit: Kit, group_buy_id: int) -> int:
    with kit.ctx():
        return db.session.get(GroupBuy, group_buy_id).min_quantity


@settings(max_examples=50, deadline=None, suppress_health_check=FIXTURES_ARE_PER_TEST)
@given(
    specs=st.lists(item_specs(), min_size=1, max_size=2),
    min_quantity=st.integers(1, 5),
    steps=actions,
)
def test_pay_at_pickup_everyone_pays_the_tier_reached(kit, specs, min_quantity, steps):
    group_buy_id, skus, item_ids = open_random(kit, specs, min_quantity)
    members = kit.members(MEMBERS)
    model = Model(specs, {})
    play(kit, group_buy_id, item_ids, model, members, steps)

    assert kit.close(group_buy_id) is True
    check_close(kit, group_buy_id, skus, item_ids, model, members)
    assert kit.close(group_buy_id) is False  # and once only


card_steps = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.sampled_from(["join", "join", "change", "leave"]),
        st.tuples(st.integers(1, 6)),
    ),
    min_size=2,
    max_size=6,
)


@settings(max_examples=12, deadline=None, suppress_health_check=FIXTURES_ARE_PER_TEST)
@given(
    spec=item_specs(),
    min_quantity=st.integers(1, 4),
    steps=card_steps,
    authorise=st.booleans(),
    unpaid=st.sets(st.integers(0, 2), max_size=1),
    lapsed=st.sets(st.integers(0, 2), max_size=2),
    extend=st.booleans(),
)
def test_card_everyone_pays_the_tier_reached_never_more_than_authorised(
    kit,
    stripe_app,
    card_token,
    stripe_client,
    spec,
    min_quantity,
    steps,
    authorise,
    unpaid,
    lapsed,
    extend,
):
    """Against localstripe: authorised (captured in part) or charged (refunded in part); a
    member in `unpaid` never gives a card and must not count; a member in `lapsed` has its
    authorisation cancelled at the provider before the close (a capture that would fail): it
    must not count either, and the others pay the tier the rest reaches. `extend` moves the
    deadline once, within the authorisation window, before the close.

    Measured with --hypothesis-show-statistics (two runs): the minimum is met ("reached") in
    61–74 % of the pay-at-pickup examples and 67 % of these; an authorisation lapses in 17–25 %
    and the deadline is extended in 33–50 % of these."""
    closes_in = timedelta(hours=2) if authorise else timedelta(days=8)
    group_buy_id, skus, item_ids = open_random(
        kit,
        [spec],
        min_quantity,
        payment_mode=PaymentMode.CARD,
        closes_at=utcnow() + closes_in,
    )
    members = kit.members(3)
    model = Model([spec], {})
    moved: list[hook.MoneyMovement] = []  # this example's movements only
    listener = hook.subscribe(moved.append)
    try:
        play(kit, group_buy_id, item_ids, model, members, steps)
        intents = {}
        for index in sorted(set(model.held) - unpaid):
            paid = kit.pay_by_card(members[index], group_buy_id, card_token(GOOD_CARD))
            expected = PaymentStatus.AUTHORIZED if authorise else PaymentStatus.SUCCEEDED
            assert (paid.status, paid.amount_fen) == (expected, kit_total(model, index))
            intents[index] = paid.intent_id
        released = {index for index in unpaid if model.held.pop(index, None)}  # counted nowhere
        if authorise:
            for index in sorted(lapsed & set(intents)):
                stripe_client.v1.payment_intents.cancel(intents[index])
                model.held.pop(index)
                released.add(index)
                event("an authorisation lapsed")
        if extend:
            later = kit.closes_at(group_buy_id) + timedelta(hours=1)
            with kit.ctx():
                changes.extend(kit.user(kit.world.coordinator), group_buy_id, later)
            event("extended")
        assert kit.close(group_buy_id) is True
    finally:
        hook.unsubscribe(listener)
    pays = check_close(kit, group_buy_id, skus, item_ids, model, members, released)

    # What the hook was told nets, order by order, to what each participant pays; left,
    # released and failed orders net to nothing.
    net: Counter[int] = Counter()
    for movement in moved:
        net[movement.order_id] += movement.amount_fen
    assert {order_id: fen for order_id, fen in net.items() if fen} == pays


def kit_total(model: Model, index: int) -> int:
    """The most a member can pay: the group price × quantity (what is authorised or charged)."""
    return sum(model.specs[i].price_fen * q for i, q in model.held[index].items())
