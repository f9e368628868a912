"""Prices never change silently (issue 11, point 9): checkout sends back the prices it showed; a
price raised or lowered, or an item delisted, between the page and the submit places nothing
(no order, no stock taken, the cart kept) and the page says old -> new and the new total; the
same form submitted again confirms them and places the order once, at the new prices."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import func, select, text

from market.catalog.models import Sku
from market.extensions import db
from market.orders.models import CartItem, Order
from tests.orders.conftest import ADDRESS, sku_of, stock_of


def orders(app) -> list[tuple[int, list[tuple[int, int, int]]]]:
    """Every order: (total, [(sku id, unit price, quantity)])."""
    with app.app_context():
        return [
            (
                order.total_fen,
                sorted((line.sku_id, line.unit_price_fen, line.quantity) for line in order.lines),
            )
            for order in db.session.scalars(select(Order).order_by(Order.id))
        ]


def cart_of(app, user_id: int) -> list[tuple[int, int]]:
    from market.orders.models import Cart

    with app.app_context():
        return sorted(
            (item.sku_id, item.quantity)
            for item in db.session.scalars(
                select(CartItem).join(Cart).where(Cart.user_id == user_id)
            )
        )


def set_price(app, sku_id: int, price_fen: int) -> None:
    with app.app_context():
        db.session.get(Sku, sku_id).price_fen = price_fen
        db.session.commit()


def form_of(page: str) -> dict[str, str]:
    """The hidden fields of the checkout form as the page carries them, plus the address."""
    fields = {}
    for name in ("idempotency_key", "shown_prices"):
        match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', page)
        assert match, f"the checkout page carries {name}"
        fields[name] = match.group(1)
    return {**fields, **ADDRESS}


def open_checkout(buyer) -> tuple[str, dict[str, str]]:
    response = buyer.get("/checkout")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return page, form_of(page)


def coop_sets_price(coop_client, sku_id: int, spec: str, yuan: str) -> None:
    """The co-op changes the price on its own SKU page."""
    response = coop_client.post(
        f"/coop/skus/{sku_id}", data={"spec": spec, "price": yuan, "active": "y"}
    )
    assert response.status_code in (302, 303), response.get_data(as_text=True)[-1500:]


def test_a_raised_price_places_nothing_and_the_confirmed_one_places_one_order(
    app, client_as, world
):
    honey = sku_of(app, world.honey_product)
    set_price(app, honey, 6800)
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    page, form = open_checkout(buyer)
    assert "¥68.00" in page and form["shown_prices"] == f"{honey}:6800"

    # The co-op raises the price tenfold while the buyer is on the checkout page.
    coop_sets_price(client_as("coop_manager"), honey, "500g", "680")
    refused = buyer.post("/checkout", data=form)

    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "价格有变动，订单尚未提交" in body
    assert "原生态蜂蜜 500g：¥68.00 → ¥680.00" in body
    assert re.search(r'id="new-total">¥680.00<', body)
    assert "确认新价格并提交订单 · ¥680.00" in body
    assert orders(app) == []
    assert stock_of(app, honey) == 50
    assert cart_of(app, world.buyer) == [(honey, 1)]
    # The page now carries the new price, and the same idempotency key: nothing was used up.
    confirm = form_of(body)
    assert confirm["shown_prices"] == f"{honey}:68000"
    assert confirm["idempotency_key"] == form["idempotency_key"]

    placed = buyer.post("/checkout", data=confirm)
    assert placed.status_code == 303
    assert orders(app) == [(68000, [(honey, 68000, 1)])]
    assert stock_of(app, honey) == 49
    assert cart_of(app, world.buyer) == []

    # The confirming form sent twice still makes that one order.
    again = buyer.post("/checkout", data=confirm)
    assert again.status_code == 303
    assert again.headers["Location"] == placed.headers["Location"]
    assert len(orders(app)) == 1 and stock_of(app, honey) == 49


def test_a_lowered_price_also_asks_first(app, client_as, world):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 2})
    buyer.post("/cart/add", data={"sku_id": lychee, "quantity": 1})
    _page, form = open_checkout(buyer)
    coop_sets_price(client_as("coop_manager"), honey, "500g", "78")

    refused = buyer.post("/checkout", data=form)
    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "原生态蜂蜜 500g：¥88.00 → ¥78.00" in body
    assert "白糖罂荔枝 5斤装：" not in body  # only the line that changed is listed
    assert re.search(r'id="new-total">¥245.00<', body)  # 2 × 78 + 89
    assert orders(app) == []
    assert stock_of(app, honey) == 50 and stock_of(app, lychee) == 50

    assert buyer.post("/checkout", data=form_of(body)).status_code == 303
    assert orders(app) == [(24500, sorted([(honey, 7800, 2), (lychee, 8900, 1)]))]


def test_a_delisted_item_is_named_and_left_out_when_confirmed(app, client_as, world):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    buyer.post("/cart/add", data={"sku_id": lychee, "quantity": 3})
    _page, form = open_checkout(buyer)
    response = client_as("other_coop_manager").post(
        f"/coop/products/{world.lychee}/status", data={"status": "delisted"}
    )
    assert response.status_code in (302, 303)

    refused = buyer.post("/checkout", data=form)
    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "白糖罂荔枝 5斤装：¥89.00 → 已下架，不会下单" in body
    assert re.search(r'id="new-total">¥88.00<', body)
    assert orders(app) == [] and stock_of(app, honey) == 50 and stock_of(app, lychee) == 50
    assert cart_of(app, world.buyer) == sorted([(honey, 1), (lychee, 3)])

    confirm = form_of(body)
    assert confirm["shown_prices"] == f"{honey}:8800"
    assert buyer.post("/checkout", data=confirm).status_code == 303
    assert orders(app) == [(8800, [(honey, 8800, 1)])]
    assert stock_of(app, honey) == 49 and stock_of(app, lychee) == 50


def test_a_sku_switched_off_is_a_change_too(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    with app.app_context():
        product = db.session.get(Sku, honey).product
        product.skus.append(Sku(spec="1000g", price_fen=16800, stock=10))
        db.session.commit()
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    _page, form = open_checkout(buyer)
    with app.app_context():
        db.session.get(Sku, honey).active = False
        db.session.commit()
    refused = buyer.post("/checkout", data=form)
    assert refused.status_code == 409
    assert "原生态蜂蜜 500g：¥88.00 → 已下架，不会下单" in refused.get_data(as_text=True)
    assert orders(app) == [] and stock_of(app, honey) == 50


def test_a_submit_that_shows_no_prices_or_other_prices_places_nothing(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    _page, form = open_checkout(buyer)
    for shown in ("", f"{honey}:1", "garbage", f"{honey}:8800," * 600, f"{honey}:{10**30}"):
        refused = buyer.post("/checkout", data={**form, "shown_prices": shown})
        assert refused.status_code == 409, shown[:40]
        body = refused.get_data(as_text=True)
        assert "价格有变动，订单尚未提交" in body
        assert form_of(body)["shown_prices"] == f"{honey}:8800"
    without = {k: v for k, v in form.items() if k != "shown_prices"}
    assert buyer.post("/checkout", data=without).status_code == 409
    assert orders(app) == [] and stock_of(app, honey) == 50
    # Claiming a lower price gets the real one shown, never the claimed one charged.
    assert buyer.post("/checkout", data=form).status_code == 303
    assert orders(app) == [(8800, [(honey, 8800, 1)])]


def test_the_page_says_which_line_it_was_not_shown(app, client_as, world):
    """A line added in another tab after the page was opened is not placed unseen."""
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    _page, form = open_checkout(buyer)
    buyer.post("/cart/add", data={"sku_id": lychee, "quantity": 1})
    refused = buyer.post("/checkout", data=form)
    assert refused.status_code == 409
    body = refused.get_data(as_text=True)
    assert "白糖罂荔枝 5斤装：现价 ¥89.00" in body
    assert re.search(r'id="new-total">¥177.00<', body)
    assert orders(app) == []


@pytest.mark.postgres_only
def test_a_price_change_committed_while_the_order_is_placed_is_caught(app, client_as, world):
    """The co-op's price change holds the SKU's row while the checkout reads the old price: the
    checkout must not place the order at a price that is no longer the price."""
    honey = sku_of(app, world.honey_product)
    buyer = client_as("buyer")
    buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
    _page, form = open_checkout(buyer)

    with app.app_context():
        engine = db.engine
        coop_side = engine.connect()
        watcher = engine.connect()
    try:
        changing = coop_side.begin()
        coop_side.execute(text("UPDATE skus SET price_fen = 68000 WHERE id = :id"), {"id": honey})
        result: list = []
        submit = threading.Thread(target=lambda: result.append(buyer.post("/checkout", data=form)))
        submit.start()
        # Wait until the checkout is blocked on the row the co-op holds.
        for _ in range(200):
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
            watcher.rollback()
            if waiting or result:
                break
            time.sleep(0.05)
        assert waiting, "the checkout waits for the co-op's change"
        changing.commit()
        submit.join(timeout=30)
    finally:
        coop_side.close()
        watcher.close()

    assert result and result[0].status_code == 409
    assert "¥88.00 → ¥680.00" in result[0].get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert stock_of(app, honey) == 50


# -- 以买代帮: the approver approves the amounts their page showed ------------------------------
def test_an_approval_agrees_to_the_prices_the_approver_saw(app, client_as, world):
    from market.procurement.models import PurchaseStatus, UnitPurchase
    from tests.procurement.test_purchases import submitted

    honey = sku_of(app, world.honey_product)
    purchase_id = submitted(client_as, (honey, 10))
    approver = client_as("approver")
    url = f"/unit/purchases/{purchase_id}"
    page = approver.get(url).get_data(as_text=True)
    shown = re.search(r'name="shown_prices" value="([^"]*)"', page).group(1)
    assert shown == f"{honey}:8800" and "¥880.00" in page

    coop_sets_price(client_as("coop_manager"), honey, "500g", "98")
    refused = approver.post(f"{url}/approve", data={"shown_prices": shown}, follow_redirects=True)
    body = refused.get_data(as_text=True)
    assert "价格有变动，尚未批准：原生态蜂蜜 500g：¥88.00 → ¥98.00。新的合计 ¥980.00" in body
    with app.app_context():
        assert db.session.get(UnitPurchase, purchase_id).status == PurchaseStatus.SUBMITTED
    assert orders(app) == [] and stock_of(app, honey) == 50

    # The page now shows ¥98.00 and its button carries it: approving again confirms.
    confirm = re.search(r'name="shown_prices" value="([^"]*)"', body).group(1)
    assert confirm == f"{honey}:9800" and "¥980.00" in body
    assert approver.post(f"{url}/approve", data={"shown_prices": confirm}).status_code == 303
    with app.app_context():
        assert db.session.get(UnitPurchase, purchase_id).status == PurchaseStatus.APPROVED
    assert orders(app) == [(98000, [(honey, 9800, 10)])]
    assert stock_of(app, honey) == 40
