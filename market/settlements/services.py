"""Settlement statements and payouts (DESIGN.md §6b).

Rules:
- An entry is due at a cut-off when it was booked by then, its parcel was received by then or
  shipped SETTLE_AFTER_DAYS before it, and — for cash taken at a pickup — finance had confirmed
  the hand-over by then. Money for a parcel not yet due stays owed, not due.
- Issuing puts every due entry not yet on a statement onto one statement per co-op for the period
  that ends on `until`; a co-op with nothing due gets none; a period never goes backwards, so a
  second run for the same day issues nothing. The co-op's row lock makes concurrent runs issue
  each statement once.
- A statement line is the net of one order line's entries, less the platform fee
  (PLATFORM_FEE_BP basis points, default 0). Payable = max(0, opening balance + net); a
  negative result carries forward to the next statement, never a negative payout.
- Only finance records a payout, once per statement, with the bank's reference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, or_, select, update
from werkzeug.datastructures import FileStorage

from market.accounts.models import User
from market.audit import services as audit
from market.clock import SHANGHAI, day_end, today  # noqa: F401  (SHANGHAI re-exported)
from market.directory.models import Coop
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.notifications.services import notify
from market.orders.models import Shipment, ShipmentStatus
from market.payments.models import Payment
from market.payments.transfers import check_bank_details, ensure_finance, is_finance
from market.settlements.models import (
    Payout,
    SettlementEntry,
    Statement,
    StatementLine,
    StatementStatus,
)
from market.transactions import unit_of_work
from market.uploads import store_private_image


def cutoff_of(until: date) -> datetime:
    """The end of `until` in Beijing time, as UTC: statements are by the Shanghai calendar."""
    return day_end(until)


def due_condition(cutoff: datetime):
    """The SQL condition "this entry is due at `cutoff`" (joined with Shipment and Payment)."""
    settle_after = timedelta(days=current_app.config["SETTLE_AFTER_DAYS"])
    return and_(
        SettlementEntry.at < cutoff,
        Shipment.status.in_((ShipmentStatus.SHIPPED, ShipmentStatus.DELIVERED)),
        or_(
            and_(Shipment.status == ShipmentStatus.DELIVERED, Shipment.delivered_at < cutoff),
            Shipment.shipped_at < cutoff - settle_after,
        ),
        or_(
            Payment.cash_holder_id.is_(None),
            Payment.cash_handed_over_at < cutoff,
        ),
    )


def _entries_with_context():
    return (
        select(SettlementEntry)
        .join(Shipment, Shipment.id == SettlementEntry.shipment_id)
        .join(Payment, Payment.id == SettlementEntry.payment_id)
    )


def fee_of(net_fen: int, fee_bp: int) -> int:
    """The platform fee on a net amount, rounded half away from zero to the fen."""
    sign = -1 if net_fen < 0 else 1
    return sign * ((abs(net_fen) * fee_bp + 5000) // 10000)


def _statement_number(coop_id: int, until: date) -> str:
    return f"JS{until:%Y%m%d}-{coop_id:04d}"


def _check_until(until: date) -> None:
    if until > today():
        raise DomainError(_("结算截止日不能晚于今天"), field="until")


@unit_of_work
def issue_statement(coop_id: int, until: date, actor: User | None = None) -> Statement | None:
    """Issue the co-op's statement for the period ending on `until`, if anything is due.
    One unit of work; the co-op's row lock serialises concurrent issuers."""
    _check_until(until)
    statement = _issue_for(coop_id, until, actor)
    db.session.commit()
    return statement


def _issue_for(coop_id: int, until: date, actor: User | None) -> Statement | None:
    """The step of `issue_statement` and `issue_statements`: the co-op's statement, flushed,
    or None when nothing is due. Runs in a transaction of the co-op's own (its callers commit
    after each co-op), so that when another issuer claimed the entries first this one rolls
    back its statement and changes nothing."""
    coop = db.session.get(Coop, coop_id, with_for_update=True, populate_existing=True)
    if coop is None:
        raise NotFound(_("找不到该合作社"))
    previous = db.session.scalar(
        select(Statement)
        .where(Statement.coop_id == coop_id)
        .order_by(Statement.period_end.desc())
        .limit(1)
    )
    if previous is not None and previous.period_end >= until:
        return None
    cutoff = cutoff_of(until)
    entries = list(
        db.session.scalars(
            _entries_with_context()
            .where(
                SettlementEntry.coop_id == coop_id,
                SettlementEntry.statement_id.is_(None),
                due_condition(cutoff),
            )
            .order_by(SettlementEntry.id)
        )
    )
    if not entries:
        return None
    fee_bp = int(current_app.config["PLATFORM_FEE_BP"])
    opening = previous.closing_balance_fen if previous else 0
    statement = Statement(
        number=_statement_number(coop_id, until),
        coop_id=coop_id,
        period_start=previous.period_end + timedelta(days=1) if previous else None,
        period_end=until,
        fee_bp=fee_bp,
        opening_balance_fen=opening,
        # Balanced from the first flush (the CHECK holds for a statement with no lines yet): a
        # carried negative balance is its closing balance until the lines are added.
        closing_balance_fen=opening,
    )
    db.session.add(statement)
    db.session.flush()
    per_line: dict[int, list[SettlementEntry]] = defaultdict(list)
    for entry in entries:
        per_line[entry.order_line_id].append(entry)
    for order_line_id, group in per_line.items():
        received = sum(e.amount_fen for e in group if e.amount_fen > 0)
        refunded = -sum(e.amount_fen for e in group if e.amount_fen < 0)
        fee = fee_of(received - refunded, fee_bp)
        db.session.add(
            StatementLine(
                statement_id=statement.id,
                order_id=group[0].order_id,
                order_line_id=order_line_id,
                received_fen=received,
                refunded_fen=refunded,
                fee_fen=fee,
                payable_fen=received - refunded - fee,
            )
        )
        statement.received_fen += received
        statement.refunded_fen += refunded
        statement.fee_fen += fee
    balance = statement.opening_balance_fen + statement.net_fen
    statement.payable_fen = max(0, balance)
    statement.closing_balance_fen = min(0, balance)
    claimed = db.session.execute(
        update(SettlementEntry)
        .where(
            SettlementEntry.id.in_([e.id for e in entries]),
            SettlementEntry.statement_id.is_(None),
        )
        .values(statement_id=statement.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != len(entries):  # another issuer got there first: this one changes nothing
        db.session.rollback()
        return None
    statement.move_to(StatementStatus.ISSUED)
    statement.issued_at = utcnow()
    statement.issued_by_id = actor.id if actor else None
    audit.record(
        actor,
        "statement.issued",
        statement,
        after={
            "number": statement.number,
            "coop_id": coop_id,
            "period_end": until,
            "payable_fen": statement.payable_fen,
            "closing_balance_fen": statement.closing_balance_fen,
        },
    )
    notify(
        coop_manager_ids(coop_id),
        "settlement.issued",
        _l("结算单 %(number)s 待确认", number=statement.number),
        _l("应付 ¥%(yuan)s，请核对后确认或提出异议。", yuan=f"{statement.payable_fen / 100:.2f}"),
        f"/coop/settlements/{statement.id}",
    )
    db.session.flush()
    return statement


def coop_manager_ids(coop_id: int) -> list[int]:
    from market.accounts.models import CoopMembership

    return list(
        db.session.scalars(select(CoopMembership.user_id).where(CoopMembership.coop_id == coop_id))
    )


@unit_of_work
def issue_statements(until: date, actor: User | None = None) -> list[Statement]:
    """Issue the period's statements for every co-op with something due (idempotent)."""
    if actor is not None:
        ensure_finance(actor)
    _check_until(until)  # also when nothing is due: a wrong date is refused, not ignored
    coop_ids = db.session.scalars(
        select(SettlementEntry.coop_id)
        .where(SettlementEntry.statement_id.is_(None))
        .distinct()
        .order_by(SettlementEntry.coop_id)
    ).all()
    db.session.commit()  # end the read: each co-op is its own unit of work
    issued = []
    for coop_id in coop_ids:
        statement = _issue_for(coop_id, until, actor)
        # A batch: each co-op's statement is committed on its own, so that a rerun after a
        # failure issues the rest (the co-ops done are skipped: their period is issued).
        db.session.commit()
        if statement is not None:
            issued.append(statement)
    return issued


# -- the co-op's answer -----------------------------------------------------------------------
def statement_for(user: User, statement_id: int, *, for_update: bool = False) -> Statement:
    """A statement its co-op's people, finance, organizers and admins may read; 404 otherwise
    for a co-op's statement that is someone else's."""
    statement = db.session.get(
        Statement, statement_id, with_for_update=for_update, populate_existing=for_update
    )
    if statement is None or statement.status == StatementStatus.DRAFT:
        raise NotFound(_("找不到该结算单"))
    if is_finance(user) or user.is_organizer or statement.coop_id in user.coop_ids():
        return statement
    raise NotFound(_("找不到该结算单"))


def answers_for(user: User, statement: Statement) -> bool:
    """Whether the statement's page offers `user` confirm and dispute: a manager of its co-op
    (`_own_statement` checks it again)."""
    return statement.coop_id in {c.id for c in user.managed_coops()}


def _own_statement(user: User, statement_id: int) -> Statement:
    statement = statement_for(user, statement_id, for_update=True)
    if statement.coop_id not in {c.id for c in user.managed_coops()} and not user.is_admin:
        raise NotAllowed(_("只有本合作社的负责人可以确认结算单"))
    return statement


@unit_of_work
def confirm_statement(user: User, statement_id: int) -> Statement:
    """The co-op's manager agrees with the statement. Confirming twice is one confirmation."""
    statement = _own_statement(user, statement_id)
    if statement.status == StatementStatus.CONFIRMED:
        db.session.commit()
        return statement
    before = statement.status
    statement.move_to(StatementStatus.CONFIRMED)
    statement.confirmed_at = utcnow()
    statement.confirmed_by_id = user.id
    audit.record(
        user,
        "statement.confirmed",
        statement,
        before={"status": before},
        after={"status": statement.status},
        acting_as="coop",
    )
    db.session.commit()
    return statement


@unit_of_work
def dispute_statement(user: User, statement_id: int, reason: str) -> Statement:
    """The co-op's manager disputes the statement, saying why; finance is told."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(_("请填写异议原因"), field="reason")
    statement = _own_statement(user, statement_id)
    if statement.status == StatementStatus.DISPUTED and statement.dispute_reason == reason[:500]:
        db.session.commit()
        return statement
    statement.move_to(StatementStatus.DISPUTED)
    statement.dispute_reason = reason[:500]
    statement.disputed_at = utcnow()
    audit.record(
        user,
        "statement.disputed",
        statement,
        before={"status": StatementStatus.ISSUED},
        after={"status": statement.status, "reason": statement.dispute_reason},
        acting_as="coop",
    )
    finance_ids = db.session.scalars(select(User.id).where(User.is_finance.is_(True))).all()
    notify(
        finance_ids,
        "settlement.disputed",
        _l("结算单 %(number)s 有异议", number=statement.number),
        statement.dispute_reason,
        f"/finance/statements/{statement.id}",
    )
    db.session.commit()
    return statement


# -- paying -----------------------------------------------------------------------------------
@unit_of_work
def record_payout(
    actor: User,
    statement_id: int,
    reference: str,
    paid_on: date,
    proof: FileStorage | None = None,
    note: str = "",
) -> Payout:
    """Finance records the transfer that paid a confirmed (or resolved disputed) statement.
    One payout per statement: a repeat with the same reference returns the first; two finance
    users at once make one (the statement row is locked, and statement_id is unique)."""
    ensure_finance(actor)
    reference = check_bank_details(reference, paid_on)
    statement = db.session.get(
        Statement, statement_id, with_for_update=True, populate_existing=True
    )
    if statement is None:
        raise NotFound(_("找不到该结算单"))
    if statement.payout is not None:
        if statement.payout.reference == reference:
            db.session.commit()
            return statement.payout
        raise Conflict(_("该结算单已付款"))
    if statement.payable_fen <= 0:
        raise DomainError(_("该结算单无应付金额，余额结转下期"))
    if statement.status == StatementStatus.DISPUTED and not note.strip():
        raise DomainError(_("有异议的结算单付款时请说明处理结果"), field="note")
    before = statement.status
    statement.move_to(StatementStatus.PAID)  # raises for an issued, unconfirmed statement
    statement.paid_at = utcnow()
    payout = Payout(
        statement_id=statement.id,
        coop_id=statement.coop_id,
        amount_fen=statement.payable_fen,
        reference=reference,
        paid_on=paid_on,
        note=note.strip()[:300],
        recorded_by_id=actor.id,
    )
    if proof is not None and proof.filename:
        payout.proof_path = store_private_image(proof, "payouts")
    db.session.add(payout)
    db.session.flush()
    audit.record(
        actor,
        "payout.recorded",
        payout,
        before={"statement": statement.number, "status": before},
        after={"amount_fen": payout.amount_fen, "reference": reference, "paid_on": paid_on},
    )
    notify(
        coop_manager_ids(statement.coop_id),
        "settlement.paid",
        _l("结算单 %(number)s 已付款", number=statement.number),
        _l(
            "¥%(yuan)s 已转出，流水号 %(ref)s。",
            yuan=f"{payout.amount_fen / 100:.2f}",
            ref=reference,
        ),
        f"/coop/settlements/{statement.id}",
    )
    db.session.commit()
    return payout


# -- balances ---------------------------------------------------------------------------------
@dataclass
class Balance:
    """A co-op's money, to the fen: received − refunded = fee + paid out + owed + cash held,
    where owed = on statements not yet paid (or carried) + due, not yet stated + not yet due."""

    coop_id: int
    received_fen: int = 0
    refunded_fen: int = 0
    fee_fen: int = 0
    paid_out_fen: int = 0
    on_statements_fen: int = 0  # issued, not yet paid (negative: carried forward)
    due_fen: int = 0  # due, not yet on a statement
    not_due_fen: int = 0
    cash_held_fen: int = 0  # cash at a coordinator's, not yet handed over

    @property
    def net_fen(self) -> int:
        return self.received_fen - self.refunded_fen

    @property
    def owed_fen(self) -> int:
        return self.on_statements_fen + self.due_fen + self.not_due_fen


def balances(coop_ids: list[int] | None = None, at: datetime | None = None) -> dict[int, Balance]:
    """Every co-op's balance (or the given ones'), from entries, statements and payouts."""
    at = at or utcnow()
    result: dict[int, Balance] = {}

    def of(coop_id: int) -> Balance:
        return result.setdefault(coop_id, Balance(coop_id))

    def scoped(query, column):
        return query.where(column.in_(coop_ids)) if coop_ids is not None else query

    amount = SettlementEntry.amount_fen
    for coop_id, received, refunded in db.session.execute(
        scoped(
            select(
                SettlementEntry.coop_id,
                func.sum(case((amount > 0, amount), else_=0)),
                func.sum(case((amount < 0, -amount), else_=0)),
            ).group_by(SettlementEntry.coop_id),
            SettlementEntry.coop_id,
        )
    ):
        of(coop_id).received_fen = int(received or 0)
        of(coop_id).refunded_fen = int(refunded or 0)
    for coop_id, fee, net in db.session.execute(
        scoped(
            select(
                Statement.coop_id,
                func.sum(Statement.fee_fen),
                func.sum(Statement.received_fen - Statement.refunded_fen - Statement.fee_fen),
            )
            .where(Statement.status != StatementStatus.DRAFT)
            .group_by(Statement.coop_id),
            Statement.coop_id,
        )
    ):
        of(coop_id).fee_fen = int(fee or 0)
        of(coop_id).on_statements_fen = int(net or 0)
    for coop_id, paid in db.session.execute(
        scoped(
            select(Payout.coop_id, func.sum(Payout.amount_fen)).group_by(Payout.coop_id),
            Payout.coop_id,
        )
    ):
        of(coop_id).paid_out_fen = int(paid or 0)
        of(coop_id).on_statements_fen -= int(paid or 0)
    cash_held = and_(Payment.cash_holder_id.is_not(None), Payment.cash_handed_over_at.is_(None))
    rows = db.session.execute(
        scoped(
            select(
                SettlementEntry.coop_id,
                func.sum(case((cash_held, amount), else_=0)),
                func.sum(case((and_(~cash_held, due_condition(at)), amount), else_=0)),
                func.sum(amount),
            )
            .join(Shipment, Shipment.id == SettlementEntry.shipment_id)
            .join(Payment, Payment.id == SettlementEntry.payment_id)
            .where(SettlementEntry.statement_id.is_(None))
            .group_by(SettlementEntry.coop_id),
            SettlementEntry.coop_id,
        )
    )
    for coop_id, cash, due, total in rows:
        balance = of(coop_id)
        balance.cash_held_fen = int(cash or 0)
        balance.due_fen = int(due or 0)
        balance.not_due_fen = int(total or 0) - balance.cash_held_fen - balance.due_fen
    return result
