"""预售团购: a unit's group-buy of a presale (the lychee co-op's 白糖罂荔枝, before the harvest).
The cap comes out of the presale's limit, never the SKU's stock; charged participants become
reservations queued by when they joined; the harvest serves them in that order and refunds the
rest in full, and the consolidated parcel leaves only once the harvest is in. Cards through
localstripe; each step in its own request context, as the pages run it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from market.accounts.models import User
from market.clock import today
from market.errors import DomainError
from market.extensions import db
from market.groupbuy import changes, fulfilment
from market.groupbuy.models import GroupBuy, GroupBuyStatus, Participation, ParticipationStatus
from market.groupbuy.models import PaymentMode as GroupBuyPayment
from market.groupbuy.proposals import ItemData
from market.models import utcnow
from market.orders.models import Order, OrderStatus
from market.presales import harvest
from market.presales import services as presales
from market.presales.models import Presale, PresaleReservation, ReservationStatus
from tests.groupbuy.conftest import coop_manager_of
from tests.groupbuy.test_views import local_input
from tests.payments.conftest import GOOD_CARD
from tests.presales.conftest import delivery

PRESALE_PRICE = 12800
GROUP_PRICE = 11800  # the co-op agrees to sell the unit's group-buy below the presale price
LIMIT = 10
CAP = 6


@pytest.fixture
def lychee(kit, stripe_app):
    """The lychee co-op's open, full-payment presale of 10 boxes: (presale id, sku id)."""
    sku_id = kit.sku_of(kit.world.lychee)
    return open_presale(kit, sku_id), sku_id


def open_presale(kit, sku_id: int, **terms) -> int:
    start = today() + timedelta(days=30)
    values = {
        "harvest_from": start,
        "harvest_to": start + timedelta(days=20),
        "price_fen": PRESALE_PRICE,
        "limit_quantity": LIMIT,
        **terms,
    }
    with kit.ctx():
        manager = db.session.get(User, kit.world.other_coop_manager)
        return presales.open_presale(manager, sku_id=sku_id, **values).id


def presale_data(presale_id: int, sku_id: int, *, cap: int | None = CAP, **overrides):
    values = {
        "payment_mode": GroupBuyPayment.CARD,
        "min_quantity": 3,
        "items": [ItemData(sku_id, GROUP_PRICE, cap, [], presale_id=presale_id)],
        **overrides,
    }
    return values


def presale_row(kit, presale_id: int) -> Presale:
    with kit.ctx():
        presale = db.session.get(Presale, presale_id)
        db.session.expunge(presale)
        return presale


def reservations(kit, presale_id: int) -> list[tuple[int, int, ReservationStatus]]:
    """(order id, quantity, status) of the presale's reservations in the harvest queue."""
    with kit.ctx():
        return [
            (r.order_id, r.quantity, r.status)
            for r in db.session.scalars(
                select(PresaleReservation)
                .where(PresaleReservation.presale_id == presale_id)
                .order_by(PresaleReservation.paid_at, PresaleReservation.id)
            )
        ]


def announce(kit, presale_id: int, quantity: int):
    with kit.ctx():
        manager = db.session.get(User, kit.world.other_coop_manager)
        return harvest.announce_harvest(manager, presale_id, quantity)


def participation(kit, participation_id: int) -> tuple[ParticipationStatus, int, OrderStatus]:
    with kit.ctx():
        found = db.session.get(Participation, participation_id)
        order = db.session.get(Order, found.order_id)
        return found.status, order.id, order.status


def test_a_presale_group_buy_from_acceptance_to_a_short_harvest(kit, lychee, card_token, movements):
    presale_id, sku_id = lychee
    stock_before = kit.stock(sku_id)
    group_buy_id = kit.open(**presale_data(presale_id, sku_id))

    # Accepted: the cap is claimed from the presale's limit, the SKU's stock is untouched.
    assert presale_row(kit, presale_id).reserved_quantity == CAP
    assert kit.stock(sku_id) == stock_before

    a, b, c = kit.members(3)
    pa, pb, pc = (
        kit.join(a, group_buy_id, 2),
        kit.join(b, group_buy_id, 2),
        kit.join(c, group_buy_id, 1),
    )
    for user_id in (a, b, c):
        kit.pay_by_card(user_id, group_buy_id, card_token(GOOD_CARD))

    # The harvest waits while the group-buy still takes participants.
    with pytest.raises(DomainError, match="进行中的团购"):
        announce(kit, presale_id, 4)

    assert kit.close(group_buy_id) is True
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.SUCCEEDED
    # Sold 5 of the cap of 6: one goes back to the presale; each participant is a paid
    # reservation, queued by when they joined.
    assert presale_row(kit, presale_id).reserved_quantity == 5
    orders = [participation(kit, p)[1] for p in (pa, pb, pc)]
    assert reservations(kit, presale_id) == [
        (orders[0], 2, ReservationStatus.RESERVED),
        (orders[1], 2, ReservationStatus.RESERVED),
        (orders[2], 1, ReservationStatus.RESERVED),
    ]
    received = {m.order_id: m.amount_fen for m in movements if m.refund_id is None}
    assert received == {
        orders[0]: 2 * GROUP_PRICE,
        orders[1]: 2 * GROUP_PRICE,
        orders[2]: GROUP_PRICE,
    }

    # Nothing to ship before the harvest.
    with kit.ctx(), pytest.raises(DomainError, match="预售尚未采收"):
        manager = db.session.get(User, coop_manager_of(group_buy_id))
        fulfilment.ship_consolidated(manager, group_buy_id, "顺丰速运", "SF1")

    # Harvested 4: the first two (2 + 2) are served, the third refunded in full.
    result = announce(kit, presale_id, 4)
    assert (result.served, result.refunded, result.rolled_over) == (2, 1, 0)
    assert [status for _o, _q, status in reservations(kit, presale_id)] == [
        ReservationStatus.SERVED,
        ReservationStatus.SERVED,
        ReservationStatus.REFUNDED,
    ]
    assert participation(kit, pa)[0] == ParticipationStatus.READY
    assert participation(kit, pc)[0] == ParticipationStatus.RELEASED
    assert participation(kit, pc)[2] == OrderStatus.CANCELLED
    net: dict[int, int] = {}
    for movement in movements:
        net[movement.order_id] = net.get(movement.order_id, 0) + movement.amount_fen
    assert net == {orders[0]: 2 * GROUP_PRICE, orders[1]: 2 * GROUP_PRICE, orders[2]: 0}

    # The harvest's batch went into stock and straight out to the served parcels' lines.
    assert kit.stock(sku_id) == stock_before
    kit.ship_and_arrive(group_buy_id)
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        lines = fulfilment.consolidated_lines(group_buy)
        assert sum(line.quantity for line in lines) == 4
        served_lines = [
            line for order_id in orders[:2] for line in db.session.get(Order, order_id).lines
        ]
        assert all(line.batch_id is not None for line in served_lines)
        picking = {p.user_id for p in fulfilment.pickup_list(group_buy)}
        assert picking == {a, b}


def test_a_group_buy_that_fails_gives_its_whole_cap_back(kit, lychee, card_token):
    presale_id, sku_id = lychee
    group_buy_id = kit.open(**presale_data(presale_id, sku_id, min_quantity=5))
    member = kit.members(1)[0]
    kit.join(member, group_buy_id, 2)
    kit.pay_by_card(member, group_buy_id, card_token(GOOD_CARD))
    assert kit.close(group_buy_id) is True
    assert presale_row(kit, presale_id).reserved_quantity == 0
    assert reservations(kit, presale_id) == []
    announce(kit, presale_id, 3)  # nothing of the group-buy holds the harvest any more


def test_a_cancelled_group_buy_gives_its_cap_back(kit, lychee):
    presale_id, sku_id = lychee
    group_buy_id = kit.open(**presale_data(presale_id, sku_id))
    assert presale_row(kit, presale_id).reserved_quantity == CAP
    with kit.ctx():
        changes.cancel_group_buy(
            db.session.get(User, kit.world.coordinator), group_buy_id, "单位活动改期"
        )
    assert presale_row(kit, presale_id).reserved_quantity == 0


def test_acceptance_claims_what_buyers_left_or_nothing(kit, lychee):
    presale_id, sku_id = lychee
    group_buy_id = kit.propose(**presale_data(presale_id, sku_id))
    buyer = kit.members(1)[0]
    with kit.ctx():
        presales.reserve(
            db.session.get(User, buyer),
            presale_id,
            5,
            rollover_wanted=False,
            for_unit=False,
            delivery=delivery(),
            idempotency_key="buyer-first",
        )
    with pytest.raises(DomainError, match="预售只剩 5 件"):
        kit.accept(group_buy_id)
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.PROPOSED
    assert presale_row(kit, presale_id).reserved_quantity == 5


def test_a_presale_closed_before_the_coop_accepts_is_not_claimed(kit, lychee):
    presale_id, sku_id = lychee
    group_buy_id = kit.propose(**presale_data(presale_id, sku_id))
    with kit.ctx():
        presales.close_presale(db.session.get(User, kit.world.other_coop_manager), presale_id)
    with pytest.raises(DomainError, match="该预售已截止预订，不能再确认该团购"):
        kit.accept(group_buy_id)
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.PROPOSED
    assert presale_row(kit, presale_id).reserved_quantity == 0
    # And a new proposal naming it is refused at once.
    with pytest.raises(DomainError, match="该预售已截止预订"):
        kit.propose(**presale_data(presale_id, sku_id))


def test_a_proposal_naming_another_skus_presale_is_not_found(kit, lychee):
    presale_id, _sku_id = lychee
    honey = kit.sku_of(kit.world.honey_product)
    with pytest.raises(DomainError, match="找不到该预售"):
        kit.propose(**presale_data(presale_id, honey))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"payment_mode": GroupBuyPayment.PICKUP}, "须在参团时银行卡支付"),
        ({"cap": None}, "须填写上限"),
        ({"cap": LIMIT + 1}, "不超过预售余量 10 件"),
        ({"closes_in": timedelta(days=10)}, "预计采收期结束"),
        ({"deposit": True}, "定金预售不能团购"),
        ({"second_item": True}, "只能包含这一个预售规格"),
    ],
)
def test_a_presale_group_buy_that_could_not_be_kept_is_refused(kit, lychee, change, message):
    presale_id, sku_id = lychee
    overrides = {}
    if change.get("deposit"):
        sku_id = kit.new_sku(coop_id=kit.world.other_coop)
        presale_id = open_presale(kit, sku_id, payment_kind="deposit", deposit_fen=2000)
    data = presale_data(presale_id, sku_id, cap=change.get("cap", CAP))
    if "payment_mode" in change:
        overrides["payment_mode"] = change["payment_mode"]
    if "closes_in" in change:  # a harvest three days from now
        sku_id = kit.new_sku(coop_id=kit.world.other_coop)
        presale_id = open_presale(
            kit, sku_id, harvest_from=today(), harvest_to=today() + timedelta(days=3)
        )
        data = presale_data(presale_id, sku_id)
        overrides["closes_at"] = utcnow() + change["closes_in"]
    if change.get("second_item"):
        other = kit.new_sku(coop_id=kit.world.other_coop)
        data["items"] = [*data["items"], ItemData(other, 5000, None, [])]
    with kit.ctx():
        groups_before = db.session.query(GroupBuy).count()
    with pytest.raises(DomainError, match=message):
        kit.propose(**(data | overrides))
    with kit.ctx():
        assert db.session.query(GroupBuy).count() == groups_before


def test_the_coordinator_opens_one_from_the_presale_page(app, kit, lychee, client_as):
    presale_id, sku_id = lychee
    coordinator = client_as(kit.world.coordinator)
    page = coordinator.get(f"/presales/{presale_id}").get_data(as_text=True)
    assert f"/unit/group-buys/new?presale={presale_id}" in page

    form = coordinator.get(f"/unit/group-buys/new?presale={presale_id}")
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and 'id="presale-group-buy"' in html
    assert "白糖罂荔枝 预售团购" in html and 'value="128.00"' in html

    closes = local_input(utcnow() + timedelta(days=3))
    answer = coordinator.post(
        f"/unit/group-buys/new?presale={presale_id}",
        data={
            "title": "白糖罂荔枝 预售团购",
            "closes_at": closes,
            "min_quantity": "3",
            "payment_mode": "card",
            "visibility": "members",
            "pickup_address": "市场监管局一楼大厅",
            "items-0-sku_id": str(sku_id),
            "items-0-price": "118",
            "items-0-cap": "6",
        },
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    with kit.ctx():
        group_buy = db.session.scalars(select(GroupBuy).order_by(GroupBuy.id.desc())).first()
        item = group_buy.items[0]
        assert (item.sku_id, item.presale_id, item.cap, item.price_fen) == (
            sku_id,
            presale_id,
            6,
            GROUP_PRICE,
        )
    # No such presale (or one closed, or taking deposits): the form is a 404.
    assert coordinator.get("/unit/group-buys/new?presale=999999").status_code == 404


def test_participants_are_told_it_waits_for_the_harvest(kit, lychee, client_as):
    presale_id, sku_id = lychee
    group_buy_id = kit.open(**presale_data(presale_id, sku_id))
    member = kit.members(1)[0]
    page = client_as(member).get(f"/group-buys/{group_buy_id}").get_data(as_text=True)
    assert "预售团购：预计" in page and "未能供货的全额退款" in page
