"""The one reconciliation (`flask --app market money reconcile`, the organizer's page):
settlements' three-way check (market.settlements.reconciliation) plus the attribution ledger
against the money, per payment, per order, per co-op and overall:

    received − refunded (sent or owed) = attribution ledger = settlement entries
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from market.campaign.models import AttributionEntry
from market.extensions import db
from market.settlements import reconciliation as settlements
from market.settlements.models import SettlementEntry
from market.settlements.reconciliation import Difference, OrderNumbers, Totals


@dataclass(frozen=True)
class MoneyReconciliation:
    totals: Totals
    ledger_fen: int
    differences: list[Difference]

    @property
    def agrees(self) -> bool:
        return not self.differences


def _sums(query) -> dict:
    return {key: int(value or 0) for key, value in db.session.execute(query) if value}


def money_reconcile() -> MoneyReconciliation:
    totals, found = settlements.check()
    numbers = OrderNumbers()
    for scope, column, other, name in (
        ("payment", AttributionEntry.payment_id, SettlementEntry.payment_id, lambda k: f"#{k}"),
        (
            "order",
            AttributionEntry.order_id,
            SettlementEntry.order_id,
            lambda k: f"order {numbers[k]}",
        ),
        ("coop", AttributionEntry.coop_id, SettlementEntry.coop_id, lambda k: f"#{k}"),
    ):
        ledger = _sums(select(column, func.sum(AttributionEntry.amount_fen)).group_by(column))
        entries = _sums(select(other, func.sum(SettlementEntry.amount_fen)).group_by(other))
        for key in sorted(set(ledger) | set(entries), key=str):
            if entries.get(key, 0) != ledger.get(key, 0):
                found.append(
                    Difference(
                        scope,
                        name(key),
                        "received − refunded vs attribution ledger",
                        entries.get(key, 0),
                        ledger.get(key, 0),
                    )
                )
    ledger_total = int(db.session.scalar(select(func.sum(AttributionEntry.amount_fen))) or 0)
    if ledger_total != totals.net_fen:
        found.append(
            Difference(
                "overall",
                "all",
                "received − refunds sent − refunds owed vs attribution ledger",
                totals.net_fen,
                ledger_total,
            )
        )
    return MoneyReconciliation(totals, ledger_total, found)
