"""A group-buy's consolidated parcel: when the co-op ships it, every participant's line is given
the oldest open batch of its SKU, and the group-buy's packing list prints the batch codes."""

from __future__ import annotations

import re

from sqlalchemy import select

from market.batches.models import Batch
from market.extensions import db
from market.groupbuy.models import Participation
from market.orders.models import OrderLine
from tests.batches.test_batches import record
from tests.groupbuy.test_views import close_due, item_id, open_group_buy, pass_deadline, text
from tests.orders.conftest import sku_of


def test_the_consolidated_parcel_ships_from_the_oldest_batch(app, world, client_as):
    honey = sku_of(app, world.honey_product)
    coop = client_as("coop_manager")
    record(coop, app, honey, quantity="10")
    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    for person in ("employee", "approver"):
        client_as(person).post(f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "2"})
    pass_deadline(app, group_buy_id)
    close_due(app)
    packing = text(coop.get(f"/coop/group-buys/{group_buy_id}/packing-list"))
    assert "批次：____" in packing
    response = coop.post(f"/coop/group-buys/{group_buy_id}/ship", data={"carrier": "顺丰速运"})
    assert response.status_code == 303
    with app.app_context():
        batch = db.session.scalar(select(Batch).where(Batch.sku_id == honey))
        code, remaining = batch.code, batch.quantity_remaining
        lines = db.session.scalars(
            select(OrderLine)
            .join(Participation, Participation.order_id == OrderLine.order_id)
            .where(Participation.group_buy_id == group_buy_id)
        ).all()
        assert [line.batch_id for line in lines] == [batch.id, batch.id]
    assert remaining == 10 - 4
    packing = text(coop.get(f"/coop/group-buys/{group_buy_id}/packing-list"))
    row = re.search(r"<tr><td[^>]*>原生态蜂蜜</td>.*?</tr>", packing).group(0)
    assert f'<td class="cell-batch text-nowrap">{code}</td>' in row
