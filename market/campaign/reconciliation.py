"""The one reconciliation (`flask --app market money reconcile`, the organizer's page):
settlements' three-way check (market.settlements.reconciliation) plus the attribution ledger
against the money, per payment, per order, per co-op and overall:

    received − refunded (sent or owed) = attribution ledger = settlement entries
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, literal_column, select

from market.campaign.models import AttributionEntry
from market.settlements import reconciliation as settlements
from market.settlements.models import SettlementEntry
from market.settlements.reconciliation import Difference, OrderNumbers, Totals

E = AttributionEntry


@dataclass(frozen=True)
class MoneyReconciliation:
    totals: Totals
    ledger_fen: int
    differences: list[Difference]

    @property
    def agrees(self) -> bool:
        return not self.differences


def money_reconcile() -> MoneyReconciliation:
    totals, found = settlements.check()
    numbers = OrderNumbers()
    scopes = (
        ("payment", AttributionEntry.payment_id, SettlementEntry.payment_id, lambda k: f"#{k}"),
        (
            "order",
            AttributionEntry.order_id,
            SettlementEntry.order_id,
            lambda k: f"order {numbers[k]}",
        ),
        ("coop", AttributionEntry.coop_id, SettlementEntry.coop_id, lambda k: f"#{k}"),
    )
    # The ledger and the settlement entries per scope, and the ledger's total: one read.
    queries = {
        "ledger_total": select(literal_column("0").label("everything"), func.sum(E.amount_fen))
    }
    for scope, column, other, _name in scopes:
        queries[f"ledger {scope}"] = select(column, func.sum(E.amount_fen)).group_by(column)
        queries[f"entries {scope}"] = select(other, func.sum(SettlementEntry.amount_fen)).group_by(
            other
        )
    sums = {
        name: {key: value for key, value in found_sums.items() if value}
        for name, found_sums in settlements.keyed_sums(queries).items()
    }
    for scope, _column, _other, name in scopes:
        ledger, entries = sums[f"ledger {scope}"], sums[f"entries {scope}"]
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
    ledger_total = sum(sums["ledger_total"].values())
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
