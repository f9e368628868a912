"""Writing settlement entries. `record` listens to market.payments.hook like the attribution
ledger: it runs in the transaction that records the money and only flushes."""

from __future__ import annotations

from market.extensions import db
from market.orders.models import OrderLine
from market.payments import hook
from market.settlements.models import SettlementEntry


def record(movement: hook.MoneyMovement) -> None:
    for part in movement.lines:
        line = db.session.get(OrderLine, part.order_line_id)
        db.session.add(
            SettlementEntry(
                coop_id=line.coop_id,
                order_id=movement.order_id,
                order_line_id=line.id,
                shipment_id=line.shipment_id,
                payment_id=movement.payment_id,
                refund_id=movement.refund_id,
                amount_fen=part.amount_fen,
                at=movement.at,
            )
        )
    db.session.flush()


def install() -> None:
    hook.subscribe(record)
