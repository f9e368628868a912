"""What a presale tells the workflows that order it in bulk (a group-buy, in
market/groupbuy/presale.py), without importing them: a reservation the harvest could not serve
(refunded, so its buyer is out), and a question asked before the harvest is announced (is
anything still gathering orders against this presale?). Listeners change their own rows in
the same session and only flush."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from market.presales.models import Presale, PresaleReservation

UnservedListener = Callable[["PresaleReservation"], None]
# A blocker returns why the harvest cannot be announced yet, or None.
HarvestBlocker = Callable[["Presale"], "str | None"]
_unserved: list[UnservedListener] = []
_blockers: list[HarvestBlocker] = []


def on_unserved(listener: UnservedListener) -> UnservedListener:
    if listener not in _unserved:
        _unserved.append(listener)
    return listener


def blocks_harvest(blocker: HarvestBlocker) -> HarvestBlocker:
    if blocker not in _blockers:
        _blockers.append(blocker)
    return blocker


def reservation_unserved(reservation: PresaleReservation) -> None:
    for listener in list(_unserved):
        listener(reservation)


def harvest_blocked(presale: Presale) -> str | None:
    for blocker in list(_blockers):
        reason = blocker(presale)
        if reason:
            return reason
    return None
