"""The co-op's order inbox and its presale parcels: paid reservations wait in a 待采收 tab of
their own (counted, read-only, with the presale's harvest window) until the co-op announces the
harvest; then they move to 待发货."""

from __future__ import annotations

import re
from datetime import timedelta

from market.clock import today
from tests.presales.test_deposits import balance_number, open_deposit_presale

HARVEST_TAB = "/coop/orders?tab=awaiting_harvest"


def inbox(shop, tab: str = "to_ship") -> str:
    response = shop.coop.get(f"/coop/orders?tab={tab}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def card_of(page: str, number: str) -> str | None:
    """The inbox card of the order `number`, or None when the page lists no such parcel."""
    for card in page.split('class="card mb-3 inbox-shipment"')[1:]:
        if f"{number} ·" in card:
            return card
    return None


def tab_count(page: str, tab: str) -> int:
    """The badge of a tab (0 when the tab shows none)."""
    found = re.search(rf'id="tab-{tab}"[^>]*>[^<]*(<span[^>]*tab-count">(\d+)</span>)?', page)
    assert found, tab
    return int(found.group(2) or 0)


def test_a_paid_reservation_waits_in_the_harvest_tab_then_moves_to_ship(shop):
    world = shop.world
    presale_id = shop.open()
    paid = shop.reserve(world.buyer, presale_id, 2)
    unpaid = shop.reserve(world.employee, presale_id, 1)
    shop.pay_by_card(world.buyer, paid)
    window = (
        f"预计采收 {(today() + timedelta(days=30)).isoformat()} 至 "
        + (today() + timedelta(days=50)).isoformat()
    )

    page = inbox(shop, "awaiting_harvest")
    card = card_of(page, paid)
    assert card is not None and "预售 · 待采收" in card
    assert window in card
    # Read-only: no ship form, no batch to pick, no refund of the reservation's line.
    assert "ship-form" not in card and "batch-pick" not in card and "/refund" not in card
    # The unpaid reservation may still lapse: not listed, not counted.
    assert card_of(page, unpaid) is None
    assert tab_count(page, "awaiting_harvest") == 1
    assert tab_count(page, "to_ship") == 0
    # Neither is in 待发货 (nor 待付款), before the harvest.
    assert card_of(inbox(shop), paid) is None and card_of(inbox(shop), unpaid) is None
    assert card_of(inbox(shop, "awaiting"), paid) is None
    # Another co-op sees none of it.
    other = shop.client(world.coop_manager).get(HARVEST_TAB).get_data(as_text=True)
    assert card_of(other, paid) is None and tab_count(other, "awaiting_harvest") == 0

    assert shop.announce(presale_id, 5).status_code == 303
    page = inbox(shop, "awaiting_harvest")
    assert card_of(page, paid) is None and tab_count(page, "awaiting_harvest") == 0
    to_ship = inbox(shop)
    card = card_of(to_ship, paid)
    assert card is not None and "ship-form" in card
    assert tab_count(to_ship, "to_ship") == 1


def test_a_deposit_parcel_waits_in_the_harvest_tab_and_then_names_its_balance_order(shop):
    world = shop.world
    presale_id = open_deposit_presale(shop)
    deposit = shop.reserve(world.buyer, presale_id, 1)
    shop.pay_by_card(world.buyer, deposit)
    assert "预计采收" in card_of(inbox(shop, "awaiting_harvest"), deposit)

    shop.announce(presale_id, 3)
    balance = balance_number(shop, deposit)
    # The goods travel on the 尾款 order, listed unpaid under 待付款; the deposit's parcel
    # holds none and says which order it goes with.
    assert card_of(inbox(shop, "awaiting"), balance) is not None
    card = card_of(inbox(shop, "awaiting_harvest"), deposit)
    assert card is not None and f"已采收：货随尾款订单 {balance} 发出" in card
    assert "ship-form" not in card
    shop.pay_by_card(world.buyer, balance)
    assert "ship-form" in card_of(inbox(shop), balance)
