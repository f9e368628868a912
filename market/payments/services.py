"""Where money moves: paying an order, settling a payment with the provider's truth, bank
transfers confirmed by hand, refunds, cancellation of paid orders, expiry, webhooks and
reconciliation. Every amount received or refunded is reported through `hook`, in the same
transaction that records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
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
from market.orders import services as orders
from market.orders.models import Order, OrderLine, OrderMode, OrderStatus, ShipmentStatus
from market.payments import hook, providers
from market.payments.models import Payment, PaymentStatus, Refund, RefundStatus, WebhookEvent
from market.payments.providers import Created, ProviderState
from market.transactions import unit_of_work
from market.uploads import store_private_image

OPEN = (PaymentStatus.PENDING, PaymentStatus.AUTHORIZED, PaymentStatus.FAILED)


class InvalidWebhook(DomainError):
    status_code = 400


def _lock_order(order_id: int) -> Order:
    return db.session.get(Order, order_id, with_for_update=True, populate_existing=True)


def _lock_payment(payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    if payment is None:
        raise NotFound(_("找不到该支付"))
    return payment


def _lock_order_and_payment(payment_id: int) -> tuple[Order, Payment]:
    """The payment's order, then the payment: the order every writer locks them in (paying,
    expiring, cancelling, refunding), so a webhook racing the expiry sweep waits for it
    instead of deadlocking with it."""
    order_id = db.session.scalar(select(Payment.order_id).where(Payment.id == payment_id))
    if order_id is None:
        raise NotFound(_("找不到该支付"))
    order = _lock_order(order_id)
    return order, _lock_payment(payment_id)


# -- paying --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentStart:
    payment: Payment
    created: Created | None


@unit_of_work
def start_payment(
    buyer: User, number: str, provider_name: str, *, manual_capture: bool = False
) -> PaymentStart:
    """The buyer pays their own pending order with a provider the shop offers (see
    `begin_payment`). An order past its deadline is closed instead: stock back, payments
    withdrawn."""
    order = orders.order_of_buyer(buyer, number, for_update=True)
    _check_payable(order, provider_name)
    if order.expires_at is not None and order.expires_at <= utcnow():
        _expire(order)
        db.session.commit()  # closing the order is this call's outcome, though it refuses
        raise DomainError(_("订单已超时关闭，库存已释放，请重新下单"))
    started = begin_payment(order, provider_name, manual_capture=manual_capture)
    db.session.commit()
    return started


def _check_payable(order: Order, provider_name: str) -> None:
    if not order.awaits_payment:
        raise DomainError(_("该订单当前不需要付款"))
    if order.status == OrderStatus.ON_CREDIT and provider_name != "offline":
        # 先货后款 is settled by the unit's bank transfer against the invoice.
        raise DomainError(_("先货后款的订单请对公转账"))


def begin_payment(
    order: Order, provider_name: str, *, manual_capture: bool = False
) -> PaymentStart:
    """Open (or reuse) the payment of an order the caller has locked and found within its
    deadline (`start_payment` closes one past it; group-buy and unit-purchase orders have
    none). One open payment per provider is reused; choosing bank transfer gives the buyer
    days, not minutes. Flushes only: the caller commits."""
    _check_payable(order, provider_name)
    if provider_name not in providers.available():
        raise DomainError(_("不支持该支付方式"))
    now = utcnow()
    provider = providers.get(provider_name)
    payment = open_payment(order, provider_name)
    created = None
    if payment is None:
        payment = Payment(
            order=order,
            provider=provider_name,
            provider_ref=f"new-{order.number}-{now.timestamp()}",
            amount_fen=order.total_fen,
        )
        db.session.add(payment)
        db.session.flush()
        created = provider.create(payment, manual_capture=manual_capture)
        payment.provider_ref = created.provider_ref
    elif payment.status == PaymentStatus.FAILED:
        payment.move_to(PaymentStatus.PENDING)
        payment.failure_message = ""
    if provider_name == "offline" and order.expires_at is not None:
        order.expires_at = _transfer_deadline(order, now)
    db.session.flush()
    return PaymentStart(payment, created)


def _transfer_deadline(order: Order, now: datetime) -> datetime:
    """Bank transfer turns the checkout's minutes to pay (UNPAID_ORDER_MINUTES) into
    BANK_TRANSFER_DAYS from now. A deadline already beyond those minutes was set on purpose (a
    尾款's due date, a transfer chosen before) and stays: choosing how to pay never moves a
    deadline later, nor shortens one the buyer was given."""
    placed = order.created_at or now
    checkout_window = placed + timedelta(minutes=current_app.config["UNPAID_ORDER_MINUTES"])
    if order.expires_at > checkout_window:
        return order.expires_at
    return now + timedelta(days=current_app.config["BANK_TRANSFER_DAYS"])


def open_payment(order: Order, provider_name: str) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id,
            Payment.provider == provider_name,
            Payment.status.in_(OPEN),
        )
    )


@dataclass(frozen=True)
class CardOutcome:
    payment: Payment
    state: ProviderState
    client_secret: str


@unit_of_work
def confirm_card(buyer: User, number: str, card_token: str) -> CardOutcome:
    """The card the buyer typed (tokenised by Stripe.js in the browser) is attached to the
    order's PaymentIntent and confirmed on the server. A card that needs 3-D Secure comes back
    with requires_action, and the page finishes it with confirmCardPayment."""
    order = orders.order_of_buyer(buyer, number, for_update=True)
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise DomainError(_("该订单当前不需要付款"))
    payment = open_payment(order, "stripe")
    if payment is None:
        raise DomainError(_("请先选择银行卡支付"))
    if not card_token or len(card_token) > 200:
        raise DomainError(_("请填写银行卡信息"))
    if payment.status == PaymentStatus.FAILED:  # another card after a declined one
        payment.move_to(PaymentStatus.PENDING)
        payment.failure_message = ""
    provider = providers.get("stripe")
    state, client_secret = provider.confirm_with_token(payment, card_token)  # type: ignore[attr-defined]
    _apply(payment, order, state)
    db.session.commit()
    return CardOutcome(payment, state, client_secret)


@unit_of_work
def settle(payment_id: int) -> Payment:
    """Make our record agree with what the provider says now. Safe to call any number of times,
    in any order, from the return page, a webhook or the reconciler: money is recorded once."""
    order, payment = _lock_order_and_payment(payment_id)
    if payment.held_by:  # a group-buy's closer owns it and settles it itself
        db.session.commit()
        return payment
    state = providers.get(payment.provider).fetch(payment)
    _apply(payment, order, state)
    db.session.commit()
    return payment


HELD_BY_CLOSING = "groupbuy-closing"


def hold_for_closing(order_ids: list[int]) -> None:
    """A group-buy's closer takes these orders' payments over: until it lets go, webhooks and
    the reconciler leave them alone, so nothing settles a payment halfway through its closing
    step (a capture's webhook must not book the un-repriced amount). Flushes only."""
    if order_ids:
        db.session.execute(
            update(Payment)
            .where(Payment.order_id.in_(order_ids), Payment.status.in_(OPEN))
            .values(held_by=HELD_BY_CLOSING)
            .execution_options(synchronize_session=False)
        )


def let_go(order_id: int) -> None:
    """The closer is done with this order's payments. Flushes only."""
    db.session.execute(
        update(Payment)
        .where(Payment.order_id == order_id, Payment.held_by != "")
        .values(held_by="")
        .execution_options(synchronize_session=False)
    )


def _apply(payment: Payment, order: Order, state: ProviderState) -> None:
    if state.status == payment.status:
        return
    if state.status == PaymentStatus.SUCCEEDED:
        payment.move_to(PaymentStatus.SUCCEEDED)
        payment.received_fen = state.received_fen
        payment.received_at = utcnow()
        _receive(order, payment)
    elif state.status == PaymentStatus.AUTHORIZED and payment.status in (
        PaymentStatus.PENDING,
        PaymentStatus.FAILED,
    ):
        payment.move_to(PaymentStatus.AUTHORIZED)
    elif state.status == PaymentStatus.FAILED and payment.status == PaymentStatus.PENDING:
        payment.move_to(PaymentStatus.FAILED)
        payment.failure_message = state.failure_message[:300]
    elif state.status == PaymentStatus.CANCELLED and payment.status in OPEN:
        payment.move_to(PaymentStatus.CANCELLED)


def _receive(order: Order, payment: Payment) -> None:
    """Money arrived. It pays the order if the order still wants it; otherwise (expired,
    cancelled, or paid already through another payment) it goes straight back in full."""
    now = utcnow()
    order.paid_fen += payment.received_fen
    hook.received(order, payment.id, now)
    if order.awaits_payment and payment.received_fen == order.total_fen:
        orders.mark_paid(order)
        _cancel_open_payments(order, keep=payment)
    else:
        parts = [(line, line.amount_fen, line.quantity) for line in order.lines]
        _refund(
            payment, order, parts, _("订单已关闭或已付过款，自动全额退款"), None, touch_lines=False
        )


def _cancel_open_payments(order: Order, keep: Payment | None = None) -> None:
    for other in db.session.scalars(
        select(Payment).where(Payment.order_id == order.id, Payment.status.in_(OPEN))
    ):
        if keep is not None and other.id == keep.id:
            continue
        state = providers.get(other.provider).cancel(other)
        if state.status == PaymentStatus.SUCCEEDED:
            # The money came in before it could be stopped: record it; _receive gives it back.
            _apply(other, order, state)
        else:
            other.move_to(PaymentStatus.CANCELLED)


# -- bank transfer ---------------------------------------------------------------------------
def is_finance(actor: User) -> bool:
    return actor.is_finance or actor.is_admin


def _ensure_finance(actor: User) -> None:
    """Only finance (财务) books money: co-ops and organizers see, confirm or dispute."""
    if not is_finance(actor):
        raise NotAllowed(_("只有财务可以办理收付款"))


def _check_bank_details(reference: str, on: date | None) -> str:
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
    _ensure_finance(actor)
    reference = _check_bank_details(reference, transfer_date)
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
            Payment.status.in_(OPEN),
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
    _apply(payment, order, ProviderState(PaymentStatus.SUCCEEDED, payment.amount_fen))
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
    _ensure_finance(actor)
    reference = _check_bank_details(reference, sent_date)
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
    _ensure_finance(actor)
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


# -- refunds -------------------------------------------------------------------------------------
def _refund(
    payment: Payment,
    order: Order,
    parts: list[tuple[OrderLine, int, int]],
    reason: str,
    actor: User | None,
    *,
    touch_lines: bool = True,
    key: str | None = None,
) -> Refund:
    """Give `parts` (line, fen, quantity) back through the payment's provider. Never more than
    the payment received, nor more than a line's amount. Flushes only."""
    total = sum(fen for _line, fen, _qty in parts)
    if total <= 0:
        raise DomainError(_("退款金额必须大于 0"), field="amount")
    if total > payment.refundable_fen:
        raise DomainError(_("退款金额超过了可退金额"), field="amount")
    if touch_lines:
        for line, fen, _qty in parts:
            if fen > line.refundable_fen:
                raise DomainError(_("退款金额超过了该商品的可退金额"), field="amount")
    refund = Refund(
        payment=payment,
        order_line_id=parts[0][0].id if len(parts) == 1 else None,
        amount_fen=total,
        reason=reason[:300],
        created_by_id=actor.id if actor else None,
    )
    db.session.add(refund)
    db.session.flush()
    result = providers.get(payment.provider).refund(payment, total, reason, key=key)
    if not result.succeeded:
        raise DomainError(_("退款失败：%(message)s", message=result.failure_message))
    refund.provider_ref = result.provider_ref
    if not result.owed:  # a card: the provider has sent it; a transfer waits for finance
        refund.move_to(RefundStatus.SUCCEEDED)
        refund.sent_at = utcnow()
    payment.refunded_fen += total
    order.refunded_fen += total
    if touch_lines:
        for line, fen, _qty in parts:
            line.refunded_fen += fen
    hook.refunded(
        order, payment.id, refund.id, [(line.id, fen, qty) for line, fen, qty in parts], utcnow()
    )
    audit.record(
        actor,
        "refund.decided",
        refund,
        after={
            "status": refund.status,
            "amount_fen": total,
            "order": order.number,
            "reason": refund.reason,
        },
    )
    db.session.flush()
    return refund


def _received_payment(order: Order) -> Payment | None:
    return db.session.scalar(
        select(Payment)
        .where(Payment.order_id == order.id, Payment.status == PaymentStatus.SUCCEEDED)
        .where(Payment.received_fen > Payment.refunded_fen)
        .order_by(Payment.id)
        .with_for_update()
    )


def _refund_and_cancel_paid(
    order: Order, reason: str, actor: User | None, key: str | None = None
) -> None:
    """A paid order that will not be fulfilled: everything still held goes back. Flushes."""
    payment = _received_payment(order)
    parts = [(line, line.refundable_fen, line.quantity) for line in order.lines]
    parts = [p for p in parts if p[1] > 0]
    if payment is not None and parts:
        _refund(payment, order, parts, reason, actor, key=key)
    order.move_to(OrderStatus.CANCELLED)
    order.closed_at = utcnow()
    for shipment in order.shipments:
        shipment.move_to(ShipmentStatus.CANCELLED)
    orders.give_back_stock(order)


def release_order(order: Order, reason: str, key: str | None = None) -> None:
    """The shop withdraws an order (a group-buy that did not reach its minimum, or a
    participant who left): an authorisation is released, a charge refunded in full (once per
    `key`), stock given back. Flushes only: the caller commits."""
    order = _lock_order(order.id)
    if order.status == OrderStatus.PENDING_PAYMENT:
        orders.close_unpaid(order, OrderStatus.CANCELLED)
        _cancel_open_payments(order)
    elif order.status == OrderStatus.PAID:
        _refund_and_cancel_paid(order, reason, None, key=key)


def capture_order(order: Order, key: str | None = None) -> Payment:
    """Take the order's total (already repriced to what was agreed) from its authorisation;
    less than authorised is fine, more is refused. With a `key` the capture is done once at the
    provider however often it is retried; what is recorded is what the provider says it
    captured. Flushes only."""
    order = _lock_order(order.id)
    payment = db.session.scalar(
        select(Payment)
        .where(Payment.order_id == order.id, Payment.status == PaymentStatus.AUTHORIZED)
        .with_for_update()
    )
    if payment is None:
        raise DomainError(_("该订单没有可扣款的授权"))
    if order.total_fen > payment.amount_fen:
        raise DomainError(_("扣款金额不能超过授权金额"))
    state = providers.get(payment.provider).capture(payment, order.total_fen, key=key)
    _apply(payment, order, state)
    return payment


def authorisation_holds(order: Order) -> bool:
    """Whether the order's card authorisation can still be captured, as the provider says now
    (a capture already made by a closer that died counts as holding). Reads only."""
    payment = db.session.scalar(
        select(Payment).where(
            Payment.order_id == order.id, Payment.status == PaymentStatus.AUTHORIZED
        )
    )
    if payment is None:
        return False
    state = providers.get(payment.provider).fetch(payment)
    return state.status in (PaymentStatus.AUTHORIZED, PaymentStatus.SUCCEEDED)


def refund_difference(
    order: Order, parts: list[tuple[OrderLine, int]], reason: str, key: str | None = None
) -> None:
    """Give back part of each line's price (a lower tier reached after a full charge); the
    quantities stay. Done once per `key` at the provider. Flushes only."""
    payment = _received_payment(order)
    wanted = [(line, fen, 0) for line, fen in parts if fen > 0]
    if payment is not None and wanted:
        _refund(payment, order, wanted, reason, None, key=key)


def record_paid_at_pickup(actor: User, order: Order) -> Payment:
    """Money handed over at the pickup point (offline provider), recorded by the coordinator.
    Flushes only."""
    order = _lock_order(order.id)
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise DomainError(_("该订单当前不需要付款"))
    payment = open_payment(order, "offline")
    if payment is None:
        payment = Payment(
            order=order,
            provider="offline",
            provider_ref=f"new-{order.number}-{utcnow().timestamp()}",
            amount_fen=order.total_fen,
        )
        db.session.add(payment)
        db.session.flush()
        payment.provider_ref = providers.get("offline").create(payment).provider_ref
    payment.amount_fen = order.total_fen
    payment.confirmed_by_id = actor.id
    payment.transfer_reference = _("自提时付款")
    # The coordinator now holds the cash for the service centre until finance confirms it.
    payment.cash_holder_id = actor.id
    payment.cash_unit_id = order.unit_id
    before = {"status": payment.status, "received_fen": payment.received_fen}
    _apply(payment, order, ProviderState(PaymentStatus.SUCCEEDED, order.total_fen))
    audit.record(
        actor,
        "cash.received",
        payment,
        before=before,
        after={
            "status": payment.status,
            "received_fen": payment.received_fen,
            "amount_fen": order.total_fen,
            "holder_id": actor.id,
            "holder": actor.name,
            "order": order.number,
        },
        acting_as=None if actor.is_admin else "coordinator",
    )
    return payment


@unit_of_work
def cancel_order(buyer: User, number: str) -> Order:
    """The buyer cancels before anything ships. Unpaid: stock back, payments withdrawn. Paid:
    refunded in full automatically, stock back."""
    order = orders.order_of_buyer(buyer, number, for_update=True)
    if order.mode == OrderMode.GROUP_BUY:
        raise DomainError(_("团购订单请在团购页面修改或退出"))
    if order.status == OrderStatus.PENDING_PAYMENT:
        orders.close_unpaid(order, OrderStatus.CANCELLED)
        _cancel_open_payments(order)
    elif order.status == OrderStatus.PAID:
        if any(s.status == ShipmentStatus.AWAITING_HARVEST for s in order.shipments):
            # 预售: the paid reservation is the buyer's place in the harvest queue.
            raise DomainError(_("预售订单已付款，采收前不能取消；如歉收将全额退款"))
        if any(s.status != ShipmentStatus.TO_SHIP for s in order.shipments):
            raise DomainError(_("已有包裹发出，不能整单取消；请联系合作社退款"))
        _refund_and_cancel_paid(order, _("买家取消订单"), buyer)
    else:
        order.move_to(OrderStatus.CANCELLED)  # raises: says why in the buyer's words
    db.session.commit()
    return order


def _check_line_refund(order: Order, line: OrderLine, amount_fen: int, reason: str) -> None:
    if order.status not in (OrderStatus.PAID, OrderStatus.COMPLETED):
        raise DomainError(_("只有已付款的订单可以退款"))
    if not reason.strip():
        raise DomainError(_("请填写退款原因"), field="reason")
    if amount_fen <= 0:
        raise DomainError(_("退款金额必须大于 0"), field="amount")
    if amount_fen > line.refundable_fen:
        raise DomainError(
            _("最多可退 %(amount)s", amount=format_fen(line.refundable_fen)), field="amount"
        )


def line_refund_to_confirm(actor: User, line_id: int, amount_fen: int, reason: str) -> OrderLine:
    """The refund a co-op is about to confirm, checked as refund_line will check it; nothing
    changes (the confirmation page shows the amount and reason before money moves)."""
    line = db.session.get(OrderLine, line_id)
    if line is None:
        raise NotFound(_("找不到该商品行"))
    orders.shipment_of_coop(actor, line.shipment_id)  # 403 for another co-op's line
    _check_line_refund(line.order, line, amount_fen, reason)
    return line


@unit_of_work
def refund_line(actor: User, line_id: int, amount_fen: int, reason: str) -> Refund:
    """A co-op refunds part or all of one of its lines, with a reason. Never more than the line
    brought in after earlier refunds."""
    line = db.session.get(OrderLine, line_id)
    if line is None:
        raise NotFound(_("找不到该商品行"))
    orders.shipment_of_coop(actor, line.shipment_id)  # 403 for another co-op's line
    order = _lock_order(line.order_id)
    db.session.refresh(line)
    _check_line_refund(order, line, amount_fen, reason)
    payment = _received_payment(order)
    if payment is None:
        raise DomainError(_("该订单没有可退的款项"))
    quantity = line.quantity if amount_fen == line.amount_fen else 0
    refund = _refund(payment, order, [(line, amount_fen, quantity)], reason.strip(), actor)
    notify(
        [order.buyer_id],
        "refund.decided",
        _l("订单 %(number)s 退款 %(amount)s", number=order.number, amount=format_fen(amount_fen)),
        _l("退款原因：%(reason)s。款项已原路退回。", reason=refund.reason)
        if refund.status == RefundStatus.SUCCEEDED
        else _l("退款原因：%(reason)s。财务将把款项转回您的账户。", reason=refund.reason),
        recipients.link_to("orders.detail", number=order.number),
    )
    db.session.commit()
    return refund


# -- deadlines, webhooks, reconciliation -------------------------------------------------------
def _expire(order: Order) -> None:
    orders.close_unpaid(order, OrderStatus.EXPIRED)
    _cancel_open_payments(order)


def expire_unpaid_orders(now: datetime | None = None) -> int:
    """Close every unpaid order past its deadline: stock back, open payments withdrawn. Safe to
    run from several places at once: each order is locked and checked again."""
    now = now or utcnow()
    due = db.session.scalars(
        select(Order.id).where(Order.status == OrderStatus.PENDING_PAYMENT, Order.expires_at <= now)
    ).all()
    closed = 0
    for order_id in due:
        order = _lock_order(order_id)
        if order.status == OrderStatus.PENDING_PAYMENT and order.expires_at <= now:
            _expire(order)
            closed += 1
        db.session.commit()  # a batch: each order closed on its own (a rerun does the rest)
    return closed


@unit_of_work
def handle_webhook(provider_name: str, payload: bytes, signature: str | None) -> str:
    """Verify, deduplicate on the event id, then settle the payment it concerns from the
    provider's current state (so replays and out-of-order events change nothing)."""
    provider = providers.get(provider_name)
    try:
        notice = provider.parse_webhook(payload, signature)  # type: ignore[attr-defined]
    except ValueError as error:
        raise InvalidWebhook(str(error)) from None
    db.session.add(
        WebhookEvent(
            id=notice.event_id,
            provider=provider_name,
            type=notice.event_type,
            received_at=utcnow(),
        )
    )
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    payment = None
    if notice.payment_ref:
        payment = db.session.scalar(
            select(Payment).where(
                Payment.provider == provider_name, Payment.provider_ref == notice.payment_ref
            )
        )
    if payment is None:
        db.session.commit()
        return "ignored"
    order, payment = _lock_order_and_payment(payment.id)
    if payment.held_by:
        db.session.commit()
        return "left to the closer"
    _apply(payment, order, provider.fetch(payment))
    db.session.commit()
    return "processed"


@dataclass(frozen=True)
class Reconciled:
    changed: list[tuple[str, str, str]]  # (order, before, after) for each payment that changed
    skipped_recent: int  # open payments younger than `older_than`, left to their buyers


def reconcile(older_than: timedelta = timedelta(minutes=2)) -> Reconciled:
    """Settle open payments whose webhooks never came. Payments younger than `older_than` are
    left alone (their buyer may still be on the payment page) and only counted."""
    cutoff = utcnow() - older_than
    open_card = (
        Payment.status.in_((PaymentStatus.PENDING, PaymentStatus.AUTHORIZED)),
        Payment.provider != "offline",
    )
    ids = db.session.scalars(
        select(Payment.id).where(*open_card, Payment.created_at <= cutoff)
    ).all()
    skipped = db.session.scalar(
        select(func.count()).select_from(Payment).where(*open_card, Payment.created_at > cutoff)
    )
    changed = []
    for payment_id in ids:
        before = db.session.get(Payment, payment_id).status
        payment = settle(payment_id)
        if payment.status != before:
            changed.append((payment.order.number, str(before), str(payment.status)))
    return Reconciled(changed, int(skipped or 0))


def record_provider_refund(
    payment: Payment,
    order: Order,
    parts: list[tuple[OrderLine, int, int]],
    reason: str,
    provider_ref: str,
) -> Refund:
    """Book a refund the provider has already made (in its dashboard, found by the
    reconciliation against the provider): the same records, limits and ledger reversal as
    `_refund`, without asking the provider for anything. Flushes only."""
    total = sum(fen for _line, fen, _qty in parts)
    if total <= 0:
        raise DomainError(_("退款金额必须大于 0"), field="amount")
    if total > payment.refundable_fen:
        raise DomainError(_("退款金额超过了可退金额"), field="amount")
    for line, fen, _qty in parts:
        if fen > line.refundable_fen:
            raise DomainError(_("退款金额超过了该商品的可退金额"), field="amount")
    now = utcnow()
    refund = Refund(
        payment=payment,
        order_line_id=parts[0][0].id if len(parts) == 1 else None,
        amount_fen=total,
        reason=reason[:300],
        created_by_id=None,
        provider_ref=provider_ref,
    )
    db.session.add(refund)
    db.session.flush()
    refund.move_to(RefundStatus.SUCCEEDED)
    refund.sent_at = now
    payment.refunded_fen += total
    order.refunded_fen += total
    for line, fen, _qty in parts:
        line.refunded_fen += fen
    hook.refunded(
        order, payment.id, refund.id, [(line.id, fen, qty) for line, fen, qty in parts], now
    )
    audit.record(
        None,
        "refund.decided",
        refund,
        after={
            "status": refund.status,
            "amount_fen": total,
            "order": order.number,
            "reason": refund.reason,
            "provider_ref": provider_ref,
        },
    )
    db.session.flush()
    return refund
