"""Read side of the money pages: finance's work lists (transfers to confirm, refunds to send,
cash to take over, statements to pay, payouts made), a co-op's statements and the organizer's
per co-op and per village balances. Nothing here changes anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from market.accounts.models import User
from market.directory.models import Coop, Unit, Village
from market.extensions import db
from market.models import contains
from market.orders.models import Order, OrderMode, OrderStatus
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.settlements.models import Payout, Statement, StatementLine, StatementStatus
from market.settlements.services import Balance, balances

PER_PAGE = 50


# -- finance's work lists ----------------------------------------------------------------------
def _open_transfers():
    """Offline payments waiting for finance: a bank transfer, not cash taken at a pickup."""
    return (
        select(Payment)
        .join(Payment.order)
        .where(
            Payment.provider == "offline",
            Payment.status.in_((PaymentStatus.PENDING, PaymentStatus.FAILED)),
            Payment.cash_holder_id.is_(None),
            # 先货后款: a unit's order shipped on credit is still waiting for its transfer.
            Order.status.in_((OrderStatus.PENDING_PAYMENT, OrderStatus.ON_CREDIT)),
        )
    )


def open_transfers(q: str = "", mode: OrderMode | None = None, page: int = 1):
    query = _open_transfers()
    if q:
        query = query.where(contains(Order.number, q.strip()))
    if mode is not None:
        query = query.where(Order.mode == mode)
    query = query.options(
        selectinload(Payment.order).selectinload(Order.buyer),
        selectinload(Payment.order).selectinload(Order.unit),
    ).order_by(Payment.id)
    return db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)


def refunds(status: RefundStatus | None = RefundStatus.PENDING, page: int = 1):
    query = select(Refund).options(
        selectinload(Refund.payment).selectinload(Payment.order).selectinload(Order.buyer),
        selectinload(Refund.order_line),
    )
    if status is not None:
        query = query.where(Refund.status == status)
    # What is owed longest comes first; what was sent, the latest first.
    order = Refund.id if status == RefundStatus.PENDING else Refund.id.desc()
    return db.paginate(query.order_by(order), page=page, per_page=PER_PAGE, error_out=False)


@dataclass
class CashHeld:
    holder_id: int
    holder_name: str
    units: list[str] = field(default_factory=list)
    payments: int = 0
    outstanding_fen: int = 0


def cash_held() -> list[CashHeld]:
    """Cash taken at pickups and not yet handed over, per coordinator holding it."""
    rows = db.session.execute(
        select(
            Payment.cash_holder_id,
            User.name,
            Unit.name,
            func.count(Payment.id),
            func.sum(Payment.received_fen - Payment.refunded_fen),
        )
        .join(User, User.id == Payment.cash_holder_id)
        .outerjoin(Unit, Unit.id == Payment.cash_unit_id)
        .where(
            Payment.cash_holder_id.is_not(None),
            Payment.cash_handed_over_at.is_(None),
            Payment.status == PaymentStatus.SUCCEEDED,
        )
        .group_by(Payment.cash_holder_id, User.name, Unit.name)
        .order_by(Payment.cash_holder_id, Unit.name)
    )
    held: dict[int, CashHeld] = {}
    for holder_id, name, unit, count, outstanding in rows:
        entry = held.setdefault(holder_id, CashHeld(holder_id, name))
        if unit:
            entry.units.append(unit)
        entry.payments += int(count or 0)
        entry.outstanding_fen += int(outstanding or 0)
    return list(held.values())


def statements(status: StatementStatus | None = None, coop_id: int | None = None, page: int = 1):
    query = (
        select(Statement)
        .where(Statement.status != StatementStatus.DRAFT)
        .options(
            selectinload(Statement.coop).selectinload(Coop.village),
            selectinload(Statement.payout),
        )
    )
    if status is not None:
        query = query.where(Statement.status == status)
    if coop_id:
        query = query.where(Statement.coop_id == coop_id)
    query = query.order_by(Statement.period_end.desc(), Statement.id.desc())
    return db.paginate(query, page=page, per_page=PER_PAGE, error_out=False)


def coops_with_statements() -> list[tuple[int, str]]:
    rows = db.session.execute(
        select(Coop.id, Coop.name).where(Coop.id.in_(select(Statement.coop_id))).order_by(Coop.name)
    )
    return [(coop_id, name) for coop_id, name in rows]


@dataclass(frozen=True)
class PayoutList:
    items: list[Payout]
    total_fen: int


def payouts(
    coop_id: int | None = None, start: date | None = None, end: date | None = None
) -> PayoutList:
    query = select(Payout).options(
        selectinload(Payout.coop), selectinload(Payout.statement), selectinload(Payout.recorded_by)
    )
    if coop_id:
        query = query.where(Payout.coop_id == coop_id)
    if start is not None:
        query = query.where(Payout.paid_on >= start)
    if end is not None:
        query = query.where(Payout.paid_on <= end)
    items = list(db.session.scalars(query.order_by(Payout.paid_on.desc(), Payout.id.desc())))
    return PayoutList(items, sum(p.amount_fen for p in items))


@dataclass(frozen=True)
class FinanceCounts:
    receipts: int
    refunds: int
    refunds_fen: int
    cash_holders: int
    cash_fen: int
    to_pay: int
    to_pay_fen: int
    awaiting_coop: int


def finance_counts() -> FinanceCounts:
    receipts = db.session.scalar(select(func.count()).select_from(_open_transfers().subquery()))
    refund_count, refund_fen = db.session.execute(
        select(func.count(Refund.id), func.sum(Refund.amount_fen)).where(
            Refund.status == RefundStatus.PENDING
        )
    ).one()
    held = cash_held()
    payable = (
        Statement.status.in_((StatementStatus.CONFIRMED, StatementStatus.DISPUTED)),
        Statement.payable_fen > 0,
    )
    to_pay, to_pay_fen = db.session.execute(
        select(func.count(Statement.id), func.sum(Statement.payable_fen)).where(*payable)
    ).one()
    awaiting = db.session.scalar(
        select(func.count(Statement.id)).where(Statement.status == StatementStatus.ISSUED)
    )
    return FinanceCounts(
        receipts=int(receipts or 0),
        refunds=int(refund_count or 0),
        refunds_fen=int(refund_fen or 0),
        cash_holders=len(held),
        cash_fen=sum(h.outstanding_fen for h in held),
        to_pay=int(to_pay or 0),
        to_pay_fen=int(to_pay_fen or 0),
        awaiting_coop=int(awaiting or 0),
    )


# -- a statement and a co-op's own ---------------------------------------------------------------
def statement_lines(statement: Statement) -> list[StatementLine]:
    return list(
        db.session.scalars(
            select(StatementLine)
            .where(StatementLine.statement_id == statement.id)
            .options(selectinload(StatementLine.order), selectinload(StatementLine.order_line))
            .order_by(StatementLine.id)
        )
    )


@dataclass(frozen=True)
class CoopSettlements:
    coop: Coop
    balance: Balance
    statements: list[Statement]
    payouts: list[Payout]


def coop_settlements(coops: list[Coop]) -> list[CoopSettlements]:
    """Each of the co-ops' balance, statements (latest first) and payouts."""
    ids = [c.id for c in coops]
    if not ids:
        return []
    found = balances(ids)
    all_statements = list(
        db.session.scalars(
            select(Statement)
            .where(Statement.coop_id.in_(ids), Statement.status != StatementStatus.DRAFT)
            .options(selectinload(Statement.payout))
            .order_by(Statement.period_end.desc(), Statement.id.desc())
        )
    )
    all_payouts = list(
        db.session.scalars(
            select(Payout)
            .where(Payout.coop_id.in_(ids))
            .options(selectinload(Payout.statement))
            .order_by(Payout.paid_on.desc(), Payout.id.desc())
        )
    )
    return [
        CoopSettlements(
            coop=coop,
            balance=found.get(coop.id, Balance(coop.id)),
            statements=[s for s in all_statements if s.coop_id == coop.id],
            payouts=[p for p in all_payouts if p.coop_id == coop.id],
        )
        for coop in sorted(coops, key=lambda c: c.id)
    ]


# -- the organizer's overview ---------------------------------------------------------------------
@dataclass
class BalanceRow:
    """A co-op's (or a village's, or everyone's) balance, as the overview shows it."""

    name: str
    village: str = ""
    received_fen: int = 0
    refunded_fen: int = 0
    fee_fen: int = 0
    paid_out_fen: int = 0
    owed_fen: int = 0
    due_fen: int = 0  # on statements not yet paid, and due but not yet on a statement
    not_due_fen: int = 0
    cash_held_fen: int = 0
    coops: int = 0

    def add(self, balance: Balance) -> None:
        self.received_fen += balance.received_fen
        self.refunded_fen += balance.refunded_fen
        self.fee_fen += balance.fee_fen
        self.paid_out_fen += balance.paid_out_fen
        self.owed_fen += balance.owed_fen
        self.due_fen += balance.on_statements_fen + balance.due_fen
        self.not_due_fen += balance.not_due_fen
        self.cash_held_fen += balance.cash_held_fen
        self.coops += 1


@dataclass(frozen=True)
class Overview:
    coops: list[BalanceRow]
    villages: list[BalanceRow]
    total: BalanceRow


def settlement_overview() -> Overview:
    """Every co-op that has had money, with its village; the villages' sums; the total."""
    found = balances()
    names = {
        coop_id: (coop, village)
        for coop_id, coop, village in db.session.execute(
            select(Coop.id, Coop.name, Village.name)
            .join(Village, Village.id == Coop.village_id)
            .where(Coop.id.in_(list(found) or [0]))
        )
    }
    coop_rows, village_rows = [], {}
    total = BalanceRow(name="")
    for coop_id, balance in found.items():
        coop, village = names.get(coop_id, (f"#{coop_id}", ""))
        row = BalanceRow(name=coop, village=village)
        row.add(balance)
        coop_rows.append(row)
        village_rows.setdefault(village, BalanceRow(name=village)).add(balance)
        total.add(balance)
    coop_rows.sort(key=lambda r: (r.village, r.name))
    return Overview(coop_rows, sorted(village_rows.values(), key=lambda r: r.name), total)
