"""Links from an order's pages to pages of the layers above (a unit's purchases, the delivery note
of a unit's order). Those layers register them here when their pages are loaded, so the orders'
pages name no page above them (docs/ARCHITECTURE.md: a lower layer takes a registered callback;
it never imports). Templates call `order_links(place, subject)`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

Link = tuple[str, str]  # (label, url)

# The places an order's page leaves room for, and what each builder is given.
OWN_ORDERS = "own_orders"  # the buyer's own orders page: the signed-in user
SHIPMENT = "shipment"  # a co-op's parcel in its inbox: the Shipment

_builders: dict[str, list[Callable[..., Iterable[Link]]]] = defaultdict(list)


def register(place: str, builder: Callable[..., Iterable[Link]]) -> None:
    """Add `builder(subject) -> [(label, url), ...]` to a place of the orders' pages."""
    if place not in (OWN_ORDERS, SHIPMENT):
        raise ValueError(f"no such place on the orders' pages: {place}")
    if builder not in _builders[place]:
        _builders[place].append(builder)


def order_links(place: str, subject: object) -> list[Link]:
    """Every registered link for the place and subject, in the order they were registered."""
    return [link for builder in _builders[place] for link in builder(subject)]
