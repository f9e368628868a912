"""The one call through which every amount received or refunded is reported (DESIGN.md §6).

Payments call `money_moved(...)` inside the transaction that records the money; listeners (the
campaign ledger) add their rows to the same session and only flush, so the ledger and the
payments commit or roll back together. Lower layers never import the campaign: it subscribes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from market.orders.models import Order


@dataclass(frozen=True)
class LineMovement:
    order_line_id: int
    amount_fen: int  # positive when received, negative when refunded
    quantity: int  # signed like the amount; 0 for a refund of part of a line's price


@dataclass(frozen=True)
class MoneyMovement:
    order_id: int
    payment_id: int
    refund_id: int | None
    amount_fen: int
    lines: tuple[LineMovement, ...]
    at: datetime


Listener = Callable[[MoneyMovement], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Listener:
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def money_moved(movement: MoneyMovement) -> None:
    if sum(line.amount_fen for line in movement.lines) != movement.amount_fen:
        raise ValueError("line amounts must add up to the movement")
    for listener in list(_listeners):
        listener(movement)


def received(order: Order, payment_id: int, at: datetime) -> MoneyMovement:
    """Report an order's whole total as received, line by line."""
    movement = MoneyMovement(
        order_id=order.id,
        payment_id=payment_id,
        refund_id=None,
        amount_fen=sum(line.amount_fen for line in order.lines),
        lines=tuple(LineMovement(line.id, line.amount_fen, line.quantity) for line in order.lines),
        at=at,
    )
    money_moved(movement)
    return movement


def refunded(
    order: Order, payment_id: int, refund_id: int, parts: list[tuple[int, int, int]], at: datetime
) -> MoneyMovement:
    """Report a refund; `parts` are (order_line_id, fen, quantity) given back, as positives."""
    movement = MoneyMovement(
        order_id=order.id,
        payment_id=payment_id,
        refund_id=refund_id,
        amount_fen=-sum(fen for _line, fen, _qty in parts),
        lines=tuple(LineMovement(line, -fen, -qty) for line, fen, qty in parts),
        at=at,
    )
    money_moved(movement)
    return movement
