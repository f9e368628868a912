"""Many buyers at once for the last units: exactly the stock is sold, never below zero, every
loser is told it sold out, and nobody sees a 500."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from market.catalog.models import Sku
from market.extensions import db
from market.orders.models import Order
from tests import factories
from tests.orders.conftest import ADDRESS, sku_of

BUYERS = 50
LAST_UNITS = 10


def test_fifty_buyers_for_the_last_ten_units(app, world):
    honey = sku_of(app, world.honey_product)
    with app.app_context():
        db.session.get(Sku, honey).stock = LAST_UNITS
        users = [factories.make_user(f"买家{n}", f"rush{n}@example.com") for n in range(BUYERS)]
        db.session.commit()
        user_ids = [u.id for u in users]
    clients = []
    for user_id in user_ids:
        client = factories.signed_in_client(app, user_id)
        assert client.post("/cart/add", data={"sku_id": honey, "quantity": 1}).status_code == 303
        clients.append(client)

    start = threading.Barrier(BUYERS)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def checkout(client, n: int) -> None:
        start.wait()
        data = {"idempotency_key": f"rush-{n}", "shown_prices": f"{honey}:8800", **ADDRESS}
        response = client.post("/checkout", data=data)
        with lock:
            results.append((response.status_code, response.get_data(as_text=True)))

    threads = [threading.Thread(target=checkout, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    statuses = sorted(status for status, _body in results)
    assert len(results) == BUYERS
    assert statuses.count(303) == LAST_UNITS
    assert statuses.count(400) == BUYERS - LAST_UNITS
    losers = [body for status, body in results if status == 400]
    assert all("已售罄" in body for body in losers)
    with app.app_context():
        assert db.session.get(Sku, honey).stock == 0
        assert db.session.scalar(select(func.count()).select_from(Order)) == LAST_UNITS
