"""礼盒 across co-ops: the price is split by shares to the fen, each co-op's and village's revenue
follows the split, the lead co-op ships the box as one parcel and the stock is taken once."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from market.catalog.models import BundlePart, Category
from market.directory.models import Coop
from market.extensions import db
from market.money import split_by_shares
from market.orders.models import Order, OrderStatus
from tests import factories
from tests.orders.conftest import buy, sku_of, stock_of


# -- the split ------------------------------------------------------------------------------------
@given(
    amount=st.integers(min_value=0, max_value=10**8),
    shares=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=6),
)
def test_a_split_adds_up_to_the_fen_and_each_part_is_within_a_fen_of_its_share(amount, shares):
    parts = split_by_shares(amount, shares)
    assert len(parts) == len(shares)
    assert sum(parts) == amount
    total = sum(shares)
    for part, share in zip(parts, shares, strict=True):
        assert part >= 0
        assert abs(part - Fraction(amount * share, total)) < 1


def test_the_remainder_goes_to_the_largest_fractions():
    assert split_by_shares(9999, [60, 40]) == [5999, 4000]
    assert split_by_shares(100, [1, 1, 1]) == [34, 33, 33]
    assert split_by_shares(0, [3, 7]) == [0, 0]


# -- a gift box of two co-ops, bought and paid ----------------------------------------------------
def make_gift_box(app, world, price_fen: int = 9999, stock: int = 10) -> int:
    with app.app_context():
        category = Category(name="礼盒", slug="giftbox", sort_order=9)
        db.session.add(category)
        product = factories.make_product(
            db.session.get(Coop, world.coop),
            category,
            "结对村土特产礼盒",
            price_fen=price_fen,
            stock=stock,
            spec="礼盒装",
        )
        db.session.commit()
        return product.id


def set_parts(client, product_id: int, *parts: tuple[int, int | str], status: int = 302):
    data = {}
    for index, (coop_id, share) in enumerate(parts):
        data[f"parts-{index}-coop_id"] = str(coop_id)
        data[f"parts-{index}-share"] = str(share)
    response = client.post(f"/coop/products/{product_id}/bundle", data=data)
    assert response.status_code == status, response.get_data(as_text=True)[-2000:]
    return response


def parts_of(app, product_id: int) -> list[tuple[int, int]]:
    with app.app_context():
        return [
            (part.coop_id, part.share)
            for part in db.session.scalars(
                select(BundlePart)
                .where(BundlePart.product_id == product_id)
                .order_by(BundlePart.id)
            )
        ]


def test_a_gift_box_of_two_coops_is_split_shipped_once_and_attributed_by_share(
    app, client_as, world, movements
):
    box = make_gift_box(app, world)
    manager = client_as("coop_manager")
    edit = manager.get(f"/coop/products/{box}/edit").get_data(as_text=True)
    assert "礼盒分成" in edit and "柏桥村 · 柏桥荔枝合作社" in edit
    set_parts(manager, box, (world.coop, 60), (world.other_coop, 40))
    assert parts_of(app, box) == [(world.coop, 60), (world.other_coop, 40)]
    page = client_as("buyer").get(f"/products/{box}").get_data(as_text=True)
    assert "古丁村 · 古丁南药合作社" in page and "柏桥村 · 柏桥荔枝合作社" in page
    assert "由 古丁南药合作社 统一发货" in page

    sku = sku_of(app, box)
    buyer = client_as("buyer")
    number = buy(buyer, sku, 3)
    assert stock_of(app, sku) == 7  # taken once, for the box
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        lines = [
            (line.coop_id, line.village_id, line.quantity, line.unit_price_fen, line.amount_fen)
            for line in order.lines
        ]
        assert lines == [
            (world.coop, world.village, 3, 5999, 17997),
            (world.other_coop, world.other_village, 3, 4000, 12000),
        ]
        assert order.total_fen == 29997 == 3 * 9999
        assert [s.coop_id for s in order.shipments] == [world.coop]
        assert [len(s.lines) for s in order.shipments] == [2]
        assert [line.holds_stock for line in order.lines] == [True, False]
        line_ids = [line.id for line in order.lines]

    # Paid by bank transfer: the hook reports each co-op's part.
    assert buyer.post(f"/orders/{number}/pay/offline").status_code == 303
    response = client_as("finance").post(
        f"/orders/{number}/transfer-received",
        data={"reference": "GIFT-1", "transfer_date": date.today().isoformat()},
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Order.status).where(Order.number == number)) == (
            OrderStatus.PAID
        )
    assert len(movements) == 1
    assert movements[0].amount_fen == 29997
    assert [(m.order_line_id, m.amount_fen, m.quantity) for m in movements[0].lines] == [
        (line_ids[0], 17997, 3),
        (line_ids[1], 12000, 3),
    ]
    # The lead co-op ships the one parcel; the other co-op has nothing to ship.
    assert number in client_as("coop_manager").get("/coop/orders").get_data(as_text=True)
    assert number not in client_as("other_coop_manager").get("/coop/orders").get_data(as_text=True)


def test_shares_can_be_changed_and_cleared(app, client_as, world):
    box = make_gift_box(app, world)
    manager = client_as("coop_manager")
    set_parts(manager, box, (world.coop, 60), (world.other_coop, 40))
    set_parts(manager, box, (world.coop, 50), (world.other_coop, 50))
    assert parts_of(app, box) == [(world.coop, 50), (world.other_coop, 50)]
    set_parts(manager, box)
    assert parts_of(app, box) == []
    number = buy(client_as("buyer"), sku_of(app, box), 1)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert [(line.coop_id, line.amount_fen) for line in order.lines] == [(world.coop, 9999)]


def test_bad_shares_are_refused_and_nothing_changes(app, client_as, world):
    box = make_gift_box(app, world)
    manager = client_as("coop_manager")
    set_parts(manager, box, (world.coop, 60), (world.other_coop, 40))
    response = set_parts(manager, box, (world.coop, 60), (world.coop, 40), status=400)
    assert "每个合作社只能填一次" in response.get_data(as_text=True)
    response = set_parts(manager, box, (world.coop, 0), status=400)
    assert "分成比例应在 1 到 10000 之间" in response.get_data(as_text=True)
    response = set_parts(manager, box, (world.coop, ""), status=400)
    assert "请填写分成比例" in response.get_data(as_text=True)
    assert parts_of(app, box) == [(world.coop, 60), (world.other_coop, 40)]
    # Only the box's own co-op says how it is shared.
    other = client_as("other_coop_manager")
    assert other.post(f"/coop/products/{box}/bundle", data={}).status_code == 403
