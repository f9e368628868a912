"""Where every fen is, checked to the fen (DESIGN.md §6b), from each table on its own:

    received (payments) − refunds sent − refunds owed (refunds)
        = settlement entries
        = paid out (payouts) + platform fee + owed to co-ops (statements not yet paid, due,
          not yet due) + cash not yet handed over

per payment, per order, per co-op, per statement and overall. The attribution ledger's side
(received − refunded = ledger) is added by market.campaign.reconciliation, which sits above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal_column, select, union_all

from market.extensions import db
from market.orders.models import Order
from market.payments.models import Payment, Refund, RefundStatus
from market.settlements.models import (
    Payout,
    SettlementEntry,
    Statement,
    StatementLine,
    StatementStatus,
)
from market.settlements.services import Balance, balances


@dataclass(frozen=True)
class Difference:
    scope: str  # payment, order, coop, statement, overall
    object: str  # e.g. "order M2026..." or "coop 3"
    what: str  # which two figures disagree
    expected_fen: int
    actual_fen: int

    @property
    def gap_fen(self) -> int:
        return self.actual_fen - self.expected_fen

    def __str__(self) -> str:
        return (
            f"{self.scope} {self.object}: {self.what}: expected {self.expected_fen} fen, "
            f"found {self.actual_fen} fen ({self.gap_fen:+d})"
        )


@dataclass(frozen=True)
class Totals:
    received_fen: int
    refunds_sent_fen: int
    refunds_owed_fen: int
    paid_out_fen: int
    fee_fen: int
    owed_to_coops_fen: int  # on statements not yet paid + due + not yet due
    due_fen: int
    not_due_fen: int
    cash_held_fen: int

    @property
    def net_fen(self) -> int:
        return self.received_fen - self.refunds_sent_fen - self.refunds_owed_fen

    @property
    def accounted_fen(self) -> int:
        return self.paid_out_fen + self.fee_fen + self.owed_to_coops_fen + self.cash_held_fen


class OrderNumbers(dict):
    """Order numbers for the messages, looked up only for the orders that differ."""

    def __missing__(self, order_id):
        number = db.session.scalar(select(Order.number).where(Order.id == order_id))
        self[order_id] = number or str(order_id)
        return self[order_id]


def keyed_sums(queries: dict[str, Any]) -> dict[str, dict]:
    """Several (key, amount) SELECTs read in one statement, a UNION ALL of each tagged with its
    position: {name: {key: amount}}. The keys are ids (or one constant for an overall total)."""
    names = list(queries)
    parts = []
    for position, name in enumerate(names):
        key, amount = queries[name].subquery().c
        parts.append(select(literal_column(str(position)), key, amount))
    found: dict[str, dict] = {name: {} for name in names}
    for position, key, amount in db.session.execute(union_all(*parts)):
        found[names[position]][key] = int(amount or 0)
    return found


def _compare(found: list[Difference], scope: str, what: str, left: dict, right: dict, name):
    for key in sorted(set(left) | set(right), key=str):
        expected, actual = left.get(key, 0), right.get(key, 0)
        if expected != actual:
            found.append(Difference(scope, name(key), what, expected, actual))


def check() -> tuple[Totals, list[Difference]]:
    found: list[Difference] = []
    numbers = OrderNumbers()

    def order_name(order_id):
        return f"order {numbers[order_id]}"

    # Every table's figures in one read (a page shows this; each sum is its own SELECT).
    sums = keyed_sums(_check_sums())

    # Per payment: its own counters, its refunds, and the entries written when money moved.
    received, refunded = sums["received"], sums["refunded"]
    refunds_all, entries_by_payment = sums["refunds"], sums["entries_by_payment"]
    payment_net = {pid: received.get(pid, 0) - refunded.get(pid, 0) for pid in received}
    _compare(
        found,
        "payment",
        "refunded on the payment vs its refunds",
        {k: v for k, v in refunded.items() if v},
        refunds_all,
        lambda k: f"#{k}",
    )
    _compare(
        found,
        "payment",
        "received − refunded vs settlement entries",
        {k: v for k, v in payment_net.items() if v},
        {k: v for k, v in entries_by_payment.items() if v},
        lambda k: f"#{k}",
    )

    # Per order: the order's counters against its payments and its entries.
    order_net = {oid: net for oid, net in sums["order_net"].items() if net}
    payments_by_order, entries_by_order = sums["payments_by_order"], sums["entries_by_order"]
    _compare(
        found,
        "order",
        "paid − refunded on the order vs its payments",
        order_net,
        {k: v for k, v in payments_by_order.items() if v},
        order_name,
    )
    _compare(
        found,
        "order",
        "payments vs settlement entries",
        {k: v for k, v in payments_by_order.items() if v},
        {k: v for k, v in entries_by_order.items() if v},
        order_name,
    )

    # Per statement: its totals against its lines, its lines against its entries, the carry
    # from the previous statement, and the payout against what was payable.
    line_sums = {
        sid: (received_, sums["line_refunded"].get(sid, 0), sums["line_fee"].get(sid, 0))
        for sid, received_ in sums["line_received"].items()
    }
    entry_sums, payouts = sums["entries_by_statement"], sums["payouts"]
    previous_closing: dict[int, int] = {}
    for statement in db.session.scalars(
        select(Statement)
        .where(Statement.status != StatementStatus.DRAFT)
        .order_by(Statement.coop_id, Statement.period_end)
    ):
        name = statement.number
        received_, refunded_, fee = line_sums.get(statement.id, (0, 0, 0))
        for what, expected, actual in (
            ("received vs its lines", statement.received_fen, received_),
            ("refunded vs its lines", statement.refunded_fen, refunded_),
            ("fee vs its lines", statement.fee_fen, fee),
            ("lines vs settlement entries", received_ - refunded_, entry_sums.get(statement.id, 0)),
            (
                "opening balance vs the previous closing balance",
                previous_closing.get(statement.coop_id, 0),
                statement.opening_balance_fen,
            ),
            (
                "payout vs payable",
                statement.payable_fen if statement.status == StatementStatus.PAID else 0,
                payouts.get(statement.id, 0),
            ),
        ):
            if expected != actual:
                found.append(Difference("statement", name, what, expected, actual))
        previous_closing[statement.coop_id] = statement.closing_balance_fen

    # Per co-op and overall: entries = paid out + fee + owed + cash held.
    per_coop = balances()
    for coop_id, balance in sorted(per_coop.items()):
        accounted = balance.paid_out_fen + balance.fee_fen + balance.owed_fen
        accounted += balance.cash_held_fen
        if balance.net_fen != accounted:
            found.append(
                Difference(
                    "coop",
                    f"#{coop_id}",
                    "received − refunded vs paid out + fee + owed + cash held",
                    balance.net_fen,
                    accounted,
                )
            )
    totals = _totals(per_coop, sums)
    if totals.net_fen != totals.accounted_fen:
        found.append(
            Difference(
                "overall",
                "all",
                "received − refunds sent − refunds owed vs paid out + fee + owed + cash held",
                totals.net_fen,
                totals.accounted_fen,
            )
        )
    return totals, found


def _check_sums() -> dict[str, Any]:
    """What `check` compares, as (key, amount) SELECTs for `keyed_sums`."""
    decided = Refund.status.in_((RefundStatus.PENDING, RefundStatus.SUCCEEDED))
    line = StatementLine
    everything = literal_column("0").label("everything")  # the key of an overall total

    def total(amount, *where):
        return select(everything, func.sum(amount)).where(*where)

    return {
        "received": select(Payment.id, Payment.received_fen),
        "refunded": select(Payment.id, Payment.refunded_fen),
        "refunds": select(Refund.payment_id, func.sum(Refund.amount_fen))
        .where(decided)
        .group_by(Refund.payment_id),
        "entries_by_payment": select(
            SettlementEntry.payment_id, func.sum(SettlementEntry.amount_fen)
        ).group_by(SettlementEntry.payment_id),
        "order_net": select(Order.id, (Order.paid_fen - Order.refunded_fen).label("net")),
        "payments_by_order": select(
            Payment.order_id, func.sum(Payment.received_fen - Payment.refunded_fen)
        ).group_by(Payment.order_id),
        "entries_by_order": select(
            SettlementEntry.order_id, func.sum(SettlementEntry.amount_fen)
        ).group_by(SettlementEntry.order_id),
        "line_received": select(line.statement_id, func.sum(line.received_fen)).group_by(
            line.statement_id
        ),
        "line_refunded": select(line.statement_id, func.sum(line.refunded_fen)).group_by(
            line.statement_id
        ),
        "line_fee": select(line.statement_id, func.sum(line.fee_fen)).group_by(line.statement_id),
        "entries_by_statement": select(
            SettlementEntry.statement_id, func.sum(SettlementEntry.amount_fen)
        )
        .where(SettlementEntry.statement_id.is_not(None))
        .group_by(SettlementEntry.statement_id),
        "payouts": select(Payout.statement_id, Payout.amount_fen),
        "received_total": total(Payment.received_fen),
        "refunds_sent": total(Refund.amount_fen, Refund.status == RefundStatus.SUCCEEDED),
        "refunds_owed": total(Refund.amount_fen, Refund.status == RefundStatus.PENDING),
        "paid_out_total": total(Payout.amount_fen),
    }


def _totals(per_coop: dict[int, Balance], sums: dict[str, dict]) -> Totals:
    def overall(name: str) -> int:
        return sum(sums[name].values())

    return Totals(
        received_fen=overall("received_total"),
        refunds_sent_fen=overall("refunds_sent"),
        refunds_owed_fen=overall("refunds_owed"),
        paid_out_fen=overall("paid_out_total"),
        fee_fen=sum(b.fee_fen for b in per_coop.values()),
        owed_to_coops_fen=sum(b.owed_fen for b in per_coop.values()),
        due_fen=sum(b.due_fen for b in per_coop.values()),
        not_due_fen=sum(b.not_due_fen for b in per_coop.values()),
        cash_held_fen=sum(b.cash_held_fen for b in per_coop.values()),
    )
