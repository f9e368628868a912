"""Parcel events for higher layers: `orders.services` reports a parcel shipped or delivered
inside its transaction; listeners (a deposit presale's order, whose parcel follows the 尾款
order's) change their own rows in the same session and only flush. Lower layers never import
the workflows: they subscribe."""

from __future__ import annotations

from collections.abc import Callable

from market.orders.models import Shipment

Listener = Callable[[Shipment], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Listener:
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def parcel_moved(shipment: Shipment) -> None:
    for listener in list(_listeners):
        listener(shipment)
