"""The money pages (DESIGN.md §6b): finance's desk (transfers to confirm, refunds to send, cash
to take over, statements to issue and pay, payouts made), a co-op's statements with confirm and
dispute, a statement's page, print layout and XLSX, and the organizer's balances per co-op and
per village. Only finance books money; everyone else sees, confirms or disputes."""

from __future__ import annotations

import enum
from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.clock import today
from market.idempotency import one_effect_per_form
from market.orders.models import ORDER_MODE_LABELS, OrderMode
from market.payments import transfers
from market.payments.models import REFUND_STATUS_LABELS, RefundStatus
from market.security.access import Access, requires
from market.security.inputs import int_arg, page_arg, parse_day
from market.settlements import exports, queries, services
from market.settlements.forms import (
    CashHandoverForm,
    DisputeForm,
    IssueStatementsForm,
    PayoutForm,
    SendRefundForm,
)
from market.settlements.models import STATEMENT_STATUS_LABELS, StatementStatus
from market.uploads import send_private
from market.web import back_or, run_action, run_form

bp = Blueprint("settlements", __name__)


# -- small helpers -------------------------------------------------------------------------------
def _enum_arg(cls: type[enum.Enum], name: str):
    """The enum member named by a query argument, or None for anything else."""
    return cls._value2member_map_.get(request.args.get(name) or "")


def _day_arg(name: str) -> date | None:
    text = (request.args.get(name) or "").strip()
    if not text:
        return None
    day = parse_day(text)
    if day is None:
        flash(_("日期格式不正确：%(text)s", text=text[:20]), "warning")
    return day


# -- finance's desk ------------------------------------------------------------------------------
@bp.get("/finance")
@requires(Access.FINANCE)
def finance():
    return render_template("finance/index.html", counts=queries.finance_counts())


@bp.get("/finance/receipts")
@requires(Access.FINANCE)
def receipts():
    q = (request.args.get("q") or "").strip()[:30]
    mode = _enum_arg(OrderMode, "mode")
    return render_template(
        "finance/receipts.html",
        page=queries.open_transfers(q, mode, page_arg()),
        q=q,
        mode=mode,
        modes=ORDER_MODE_LABELS,
    )


REFUND_FILTERS = {"pending": RefundStatus.PENDING, "sent": RefundStatus.SUCCEEDED, "all": None}


@bp.get("/finance/refunds")
@requires(Access.FINANCE)
def refunds():
    chosen = request.args.get("status") or "pending"
    if chosen not in REFUND_FILTERS:
        chosen = "pending"
    return render_template(
        "finance/refunds.html",
        page=queries.refunds(REFUND_FILTERS[chosen], page_arg()),
        chosen=chosen,
        labels=REFUND_STATUS_LABELS,
    )


@bp.post("/finance/refunds/<int:refund_id>/send")
@requires(Access.FINANCE)
@one_effect_per_form
def send_refund(refund_id: int):
    form = SendRefundForm()
    run_form(
        form,
        lambda: transfers.send_refund(
            current_user,
            refund_id,
            form.reference.data,
            form.sent_date.data,
            request.files.get(form.proof.name),
        ),
        _("已登记退款转出"),
    )
    return redirect(back_or(url_for(".refunds")), 303)


@bp.get("/finance/cash")
@requires(Access.FINANCE)
def cash():
    return render_template("finance/cash.html", held=queries.cash_held())


@bp.post("/finance/cash/<int:holder_id>/confirm")
@requires(Access.FINANCE)
@one_effect_per_form
def confirm_cash(holder_id: int):
    form = CashHandoverForm()
    run_form(
        form,
        lambda: transfers.confirm_cash_handover(
            current_user, holder_id, form.amount.data, form.reference.data
        ),
        lambda count: _("已确认现金交接（%(count)d 笔）", count=count),
    )
    return redirect(back_or(url_for(".cash")), 303)


@bp.get("/finance/statements")
@requires(Access.FINANCE)
def statements():
    status = _enum_arg(StatementStatus, "status")
    coop_id = int_arg("coop")
    return render_template(
        "finance/statements.html",
        page=queries.statements(status, coop_id, page_arg()),
        status=status,
        coop_id=coop_id,
        coops=queries.coops_with_statements(),
        labels={
            value: label
            for value, label in STATEMENT_STATUS_LABELS.items()
            if value != StatementStatus.DRAFT
        },
        today=today(),
    )


@bp.post("/finance/statements/issue")
@requires(Access.FINANCE)
@one_effect_per_form
def issue_statements():
    form = IssueStatementsForm()

    def done(issued) -> str:
        if not issued:
            return _("没有到期未结的款项，未出具结算单")
        return _("已出具 %(count)d 张结算单", count=len(issued))

    run_form(form, lambda: services.issue_statements(form.until.data, current_user), done)
    return redirect(url_for(".statements"), 303)


@bp.post("/finance/statements/<int:statement_id>/pay")
@requires(Access.FINANCE)
@one_effect_per_form
def pay_statement(statement_id: int):
    form = PayoutForm()
    run_form(
        form,
        lambda: services.record_payout(
            current_user,
            statement_id,
            form.reference.data,
            form.paid_on.data,
            request.files.get(form.proof.name),
            form.note.data or "",
        ),
        _("已登记付款"),
    )
    return redirect(back_or(url_for(".statements")), 303)


@bp.get("/finance/statements/<int:statement_id>")
@requires(Access.FINANCE)
def finance_statement(statement_id: int):
    """Where finance's notifications point."""
    return redirect(url_for(".statement", statement_id=statement_id))


@bp.get("/finance/payouts")
@requires(Access.FINANCE)
def payouts():
    coop_id = int_arg("coop")
    start, end = _day_arg("start"), _day_arg("end")
    return render_template(
        "finance/payouts.html",
        result=queries.payouts(coop_id, start, end),
        coop_id=coop_id,
        coops=queries.coops_with_statements(),
    )


# -- a co-op's statements ------------------------------------------------------------------------
@bp.get("/coop/settlements")
@requires(Access.COOP_MANAGER)
def coop_settlements():
    return render_template(
        "settlements/coop.html", sections=queries.coop_settlements(current_user.managed_coops())
    )


@bp.get("/coop/settlements/<int:statement_id>")
@requires(Access.COOP_MANAGER)
def coop_statement(statement_id: int):
    """Where the co-op's notifications point."""
    return redirect(url_for(".statement", statement_id=statement_id))


@bp.post("/coop/settlements/<int:statement_id>/confirm")
@requires(Access.COOP_MANAGER)
def confirm_statement(statement_id: int):
    return run_action(
        lambda: services.confirm_statement(current_user, statement_id),
        _("已确认结算单"),
        url_for(".statement", statement_id=statement_id),
    )


@bp.post("/coop/settlements/<int:statement_id>/dispute")
@requires(Access.COOP_MANAGER)
def dispute_statement(statement_id: int):
    form = DisputeForm()
    run_form(
        form,
        lambda: services.dispute_statement(current_user, statement_id, form.reason.data),
        _("已提出异议，财务会与您联系"),
    )
    return redirect(url_for(".statement", statement_id=statement_id), 303)


# -- one statement: page, print, XLSX --------------------------------------------------------------
@bp.get("/settlements/<int:statement_id>")
@requires(Access.COOP_MANAGER, Access.FINANCE, Access.ORGANIZER)
def statement(statement_id: int):
    statement = services.statement_for(current_user, statement_id)
    return render_template(
        "settlements/statement.html",
        statement=statement,
        lines=queries.statement_lines(statement),
        answers=services.answers_for(current_user, statement),
        pays=transfers.is_finance(current_user) and statement.needs_payout,
    )


@bp.get("/settlements/<int:statement_id>.xlsx")
@requires(Access.COOP_MANAGER, Access.FINANCE, Access.ORGANIZER)
def statement_xlsx(statement_id: int):
    statement = services.statement_for(current_user, statement_id)
    handle, name = exports.statement_workbook(statement, queries.statement_lines(statement))
    response = send_file(
        handle, mimetype=exports.XLSX_MIMETYPE, as_attachment=True, download_name=name, max_age=0
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/settlements/<int:statement_id>/payout-proof")
@requires(Access.COOP_MANAGER, Access.FINANCE, Access.ORGANIZER)
def payout_proof(statement_id: int):
    """The bank slip of the statement's payout (付款回单), to whoever may read the statement."""
    statement = services.statement_for(current_user, statement_id)
    return send_private(statement.payout.proof_path if statement.payout else None)


# -- the organizer's overview --------------------------------------------------------------------
@bp.get("/admin/settlements")
@requires(Access.ORGANIZER, Access.FINANCE)
def overview():
    return render_template("settlements/overview.html", overview=queries.settlement_overview())
