"""Bank transfers (对公转账) and cash, confirmed by hand by finance (财务): a transfer received,
a refund sent back by transfer, and the cash a group-buy's coordinator collected at pickup
handed over. Each is a unit of work; the money itself is recorded by market.payments.services.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from market.accounts.models import User
from market.audit import services as audit
from market.clock import today
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import format_fen
from market.notifications import recipients
from market.notifications.services import notify
from market.orders.models import Order
from market.payments import services as payments
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus
from market.payments.providers import ProviderState
from market.transactions import unit_of_work
from market.uploads import store_private_image


# -- bank transfer ---------------------------------------------------------------------------
def is_finance(actor: User) -> bool:
    return actor.is_finance or actor.is_admin


def ensure_finance(actor: User) -> None:
    """Only finance (财务) books money: co-ops and organizers see, confirm or dispute."""
    if not is_finance(actor):
        raise NotAllowed(_("只有财务可以办理收付款"))


def check_bank_details(reference: str, on: date | None) -> str:
    reference = (reference or "").strip()
    if not reference:
        raise DomainError(_("请填写银行流水号"), field="reference")
    if on is None:
        raise DomainError(_("请填写日期"), field="transfer_date")
    if on > today() + timedelta(days=1):
        raise DomainError(_("日期不能晚于今天"), field="transfer_date")
    return reference[:100]


@unit_of_work
def confirm_transfer(
    actor: User,
    number: str,
    reference: str,
    transfer_date: date,
    proof: FileStorage | None = None,
) -> Payment:
    """Finance confirms that the buyer's transfer arrived in the service centre's account, with
    the bank's reference and date. A repeat with the same reference is the same confirmation."""
    ensure_finance(actor)
    reference = check_bank_details(reference, transfer_date)
    order = db.session.scalar(select(Order).where(Order.number == number).with_for_update())
    if order is None:
        raise NotFound(_("找不到该订单"))
    done = db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id,
            Payment.provider == "offline",
            Payment.status == PaymentStatus.SUCCEEDED,
            Payment.transfer_reference == reference,
        )
    )
    if done is not None:
        db.session.commit()
        return done
    payment = db.session.scalar(
        select(Payment)
        .where(
            Payment.order_id == order.id,
            Payment.provider == "offline",
            Payment.status.in_(payments.OPEN),
        )
        .with_for_update()
    )
    if payment is None:
        raise DomainError(_("该订单没有待确认的对公转账"))
    if proof is not None and proof.filename:
        payment.proof_path = store_private_image(proof, "transfers")
    payment.transfer_reference = reference
    payment.transfer_date = transfer_date
    payment.confirmed_by_id = actor.id
    before = {"status": payment.status, "received_fen": payment.received_fen}
    payments.apply_state(payment, order, ProviderState(PaymentStatus.SUCCEEDED, payment.amount_fen))
    audit.record(
        actor,
        "transfer.confirmed",
        payment,
        before=before,
        after={
            "status": payment.status,
            "received_fen": payment.received_fen,
            "order": order.number,
            "reference": reference,
            "date": transfer_date,
        },
    )
    db.session.commit()
    return payment


@unit_of_work
def send_refund(
    actor: User,
    refund_id: int,
    reference: str,
    sent_date: date,
    proof: FileStorage | None = None,
) -> Refund:
    """Finance records the outgoing bank transfer of an owed refund (待退款 -> 已退款). A repeat
    with the same reference is the same sending, not a second one."""
    ensure_finance(actor)
    reference = check_bank_details(reference, sent_date)
    refund = db.session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
    if refund is None:
        raise NotFound(_("找不到该退款"))
    if refund.status == RefundStatus.SUCCEEDED and refund.sent_reference == reference:
        db.session.commit()
        return refund
    if refund.status != RefundStatus.PENDING:
        raise Conflict(_("该退款已办理，不能再次登记"))
    if proof is not None and proof.filename:
        refund.proof_path = store_private_image(proof, "refunds")
    refund.move_to(RefundStatus.SUCCEEDED)
    refund.sent_at = utcnow()
    refund.sent_by_id = actor.id
    refund.sent_reference = reference
    refund.sent_date = sent_date
    refund.provider_ref = reference
    audit.record(
        actor,
        "refund.sent",
        refund,
        before={"status": RefundStatus.PENDING},
        after={"status": refund.status, "amount_fen": refund.amount_fen, "reference": reference},
    )
    order = refund.payment.order
    notify(
        [order.buyer_id],
        "refund.sent",
        _l(
            "订单 %(number)s 的退款 %(amount)s 已转出",
            number=order.number,
            amount=format_fen(refund.amount_fen),
        ),
        _l("银行流水号 %(reference)s，请留意到账。", reference=reference),
        recipients.link_to("orders.detail", number=order.number),
    )
    db.session.commit()
    return refund


def cash_held_by(holder_id: int) -> int:
    """Cash a coordinator took at pickups and has not yet handed over to the service centre."""
    held = db.session.scalar(
        select(func.sum(Payment.received_fen - Payment.refunded_fen)).where(
            Payment.cash_holder_id == holder_id,
            Payment.cash_handed_over_at.is_(None),
            Payment.status == PaymentStatus.SUCCEEDED,
        )
    )
    return int(held or 0)


def owed_refunds_fen(order: Order) -> int:
    """Refunds decided for the order that finance has still to send back (待退款)."""
    owed = db.session.scalar(
        select(func.sum(Refund.amount_fen))
        .join(Refund.payment)
        .where(Payment.order_id == order.id, Refund.status == RefundStatus.PENDING)
    )
    return int(owed or 0)


@unit_of_work
def confirm_cash_handover(actor: User, holder_id: int, amount_fen: int, reference: str) -> int:
    """Finance confirms that a coordinator handed over the cash taken at pickups. The amount
    finance counted must be what the shop says the coordinator holds, so that a pickup ticked
    off meanwhile is never confirmed unseen. Returns the number of payments confirmed."""
    ensure_finance(actor)
    reference = (reference or "").strip()[:100]
    if not reference:
        raise DomainError(_("请填写交接凭证号"), field="reference")
    held = list(
        db.session.scalars(
            select(Payment)
            .where(
                Payment.cash_holder_id == holder_id,
                Payment.cash_handed_over_at.is_(None),
                Payment.status == PaymentStatus.SUCCEEDED,
            )
            .order_by(Payment.id)
            .with_for_update()
        )
    )
    outstanding = sum(p.received_fen - p.refunded_fen for p in held)
    if not held:
        raise Conflict(_("该联络员没有待交接的现金"))
    if amount_fen != outstanding:
        raise DomainError(
            _("金额不符：应交接 ¥%(yuan)s", yuan=f"{outstanding / 100:.2f}"), field="amount"
        )
    now = utcnow()
    for payment in held:
        payment.cash_handed_over_at = now
        payment.cash_handover_confirmed_by_id = actor.id
        payment.cash_handover_reference = reference
    audit.record(
        actor,
        "cash.handed_over",
        ("User", holder_id),
        before={"outstanding_fen": outstanding},
        after={"outstanding_fen": 0, "payments": len(held), "reference": reference},
    )
    db.session.commit()
    return len(held)
