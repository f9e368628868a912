"""Paying an order (choose a method, card page, bank-transfer instructions), cancelling it, the
Stripe webhook, confirming a transfer, a co-op's refund of a line, and the bank slips of an
order's payments and refunds (private: only to those who may see the order's money)."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts.forms import ActionForm
from market.errors import DomainError
from market.extensions import csrf
from market.idempotency import one_effect_per_form
from market.money import format_fen
from market.orders import services as orders
from market.orders.models import OrderStatus
from market.payments import background, providers, queries, refunds, services, transfers
from market.payments.forms import RefundForm, TransferForm
from market.payments.models import RefundStatus
from market.security.access import Access, requires
from market.security.inputs import accepts_json
from market.security.redirects import safe_target
from market.security.throttle import limit
from market.uploads import send_private
from market.web import back_or, flash_form_errors, reraise_access_errors, show_error

bp = Blueprint("payments", __name__)


@bp.get("/orders/<number>/pay")
@requires(Access.SIGNED_IN)
def pay(number: str):
    order = orders.order_of_buyer(current_user, number)
    if not order.awaits_payment:
        return redirect(url_for("orders.detail", number=number))
    methods = providers.available()
    if order.status == OrderStatus.ON_CREDIT:  # 先货后款: by bank transfer
        methods = [name for name in methods if name == "offline"]
    return render_template(
        "payments/choose.html",
        order=order,
        methods=methods,
        action_form=ActionForm(),
    )


@bp.post("/orders/<number>/pay/<any(stripe, offline):provider>")
@requires(Access.SIGNED_IN)
def start(number: str, provider: str):
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".pay", number=number), 303)
    try:
        services.start_payment(current_user, number, provider)
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
        return redirect(url_for("orders.detail", number=number), 303)
    return redirect(url_for(".method", number=number, provider=provider), 303)


@bp.get("/orders/<number>/pay/<any(stripe, offline):provider>")
@requires(Access.SIGNED_IN)
def method(number: str, provider: str):
    order = orders.order_of_buyer(current_user, number)
    payment = services.open_payment(order, provider)
    if not order.awaits_payment or payment is None:
        return redirect(url_for(".pay", number=number))
    if provider == "offline":
        return render_template("payments/transfer.html", order=order, payment=payment)
    client_secret = providers.get("stripe").client_secret(payment)  # type: ignore[attr-defined]
    # Where pay.js goes when done: a local page that sent the buyer here (a group-buy), else
    # the order; never another site.
    done_url = safe_target(request.args.get("next"), url_for("orders.detail", number=number))
    return render_template(
        "payments/card.html",
        order=order,
        payment=payment,
        client_secret=client_secret,
        done_url=done_url,
    )


def _json_error(error: DomainError):
    return jsonify({"error": error.__class__.__name__, "message": str(error)}), error.status_code


@bp.post("/orders/<number>/pay/stripe/confirm")
@requires(Access.SIGNED_IN)
@accepts_json
def confirm_card(number: str):
    payload = request.get_json(silent=True)
    # Only an object with a string token: a JSON string, list or number is the same 400.
    token = payload.get("token") if isinstance(payload, dict) else None
    if not isinstance(token, str):
        return jsonify({"error": "BadRequest", "message": _("请填写银行卡信息")}), 400
    try:
        outcome = services.confirm_card(current_user, number, token)
    except DomainError as error:
        return _json_error(error)
    return jsonify(
        {
            "status": outcome.payment.status.value,
            "requires_action": outcome.state.requires_action,
            "client_secret": outcome.client_secret,
            "message": outcome.payment.failure_message,
        }
    )


@bp.post("/orders/<number>/payments/refresh")
@requires(Access.SIGNED_IN)
@accepts_json
def refresh(number: str):
    """After the browser finished with Stripe: ask Stripe, not the browser, what happened."""
    order = orders.order_of_buyer(current_user, number)
    payment = services.open_payment(order, "stripe")
    if payment is None:
        return jsonify({"status": order.status.value})
    try:
        payment = services.settle(payment.id)
    except DomainError as error:
        return _json_error(error)
    return jsonify({"status": payment.status.value, "message": payment.failure_message})


@bp.post("/orders/<number>/cancel")
@requires(Access.SIGNED_IN)
@one_effect_per_form
def cancel(number: str):
    if ActionForm().validate_on_submit():
        try:
            order = refunds.cancel_order(current_user, number)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            if transfers.owed_refunds_fen(order):
                flash(_("订单已取消，退款将由财务转账退回，请留意订单页"), "success")
            elif order.refunded_fen:
                flash(_("订单已取消，货款将原路退回"), "success")
            else:
                flash(_("订单已取消"), "success")
    return redirect(url_for("orders.detail", number=number), 303)


@bp.post("/payments/stripe/webhook")
@csrf.exempt
@requires(Access.PUBLIC)
@limit("LIMIT_WEBHOOK")
@accepts_json
def stripe_webhook():
    """Stripe calls this; the signature, not a session, says it is Stripe."""
    if "stripe" not in providers.available():
        return jsonify({"error": "NotConfigured", "message": "stripe is not configured"}), 404
    try:
        result = background.handle_webhook(
            "stripe", request.get_data(), request.headers.get("Stripe-Signature")
        )
    except DomainError as error:
        return _json_error(error)
    return jsonify({"result": result})


@bp.post("/orders/<number>/transfer-received")
@requires(Access.FINANCE)
@one_effect_per_form
def transfer_received(number: str):
    form = TransferForm()
    if form.validate_on_submit():
        try:
            payment = transfers.confirm_transfer(
                current_user,
                number,
                form.reference.data,
                form.transfer_date.data,
                request.files.get(form.proof.name),
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(
                _(
                    "已确认收款 %(amount)s，订单 %(number)s 已付款",
                    amount=format_fen(payment.received_fen),
                    number=number,
                ),
                "success",
            )
    else:
        flash_form_errors(form)
    return redirect(back_or(url_for("orders.admin_orders")), 303)


@bp.post("/coop/lines/<int:line_id>/refund/confirm")
@requires(Access.COOP_MANAGER)
def confirm_refund_line(line_id: int):
    """The step before a refund: the amount and reason shown back to confirm. Moves nothing;
    the page's button posts the same fields and form token to refund_line."""
    form = RefundForm()
    if form.validate_on_submit():
        try:
            line = refunds.line_refund_to_confirm(
                current_user, line_id, form.amount.data, form.reason.data
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            return render_template(
                "payments/refund_confirm.html",
                line=line,
                form=form,
                form_token=request.form.get("form_token", ""),
                # The inbox page (with its tab) the refund was started from, as a local path.
                back=safe_target(
                    "/" + back_or("").removeprefix(request.host_url),
                    url_for("orders.coop_inbox"),
                ),
            )
    else:
        flash_form_errors(form)
    return redirect(back_or(url_for("orders.coop_inbox")), 303)


@bp.post("/coop/lines/<int:line_id>/refund")
@requires(Access.COOP_MANAGER)
@one_effect_per_form
def refund_line(line_id: int):
    form = RefundForm()
    if form.validate_on_submit():
        try:
            refund = refunds.refund_line(current_user, line_id, form.amount.data, form.reason.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            amount = format_fen(refund.amount_fen)
            if refund.status == RefundStatus.PENDING:
                flash(_("已退款 %(amount)s：财务将转账退回买家", amount=amount), "success")
            else:
                flash(_("已退款 %(amount)s：款项原路退回买家", amount=amount), "success")
    else:
        flash_form_errors(form)
    # From the confirmation page, back to the inbox page it came from.
    return redirect(
        safe_target(request.form.get("next"), back_or(url_for("orders.coop_inbox"))), 303
    )


@bp.get("/payments/<int:payment_id>/slip")
@requires(Access.SIGNED_IN)
def payment_slip(payment_id: int):
    """The bank slip of a transfer (转账回单); who may see it: payments/queries.py."""
    return send_private(queries.payment_slip_for(current_user, payment_id).proof_path)


@bp.get("/refunds/<int:refund_id>/slip")
@requires(Access.SIGNED_IN)
def refund_slip(refund_id: int):
    """The bank slip of a refund finance sent (退款回单)."""
    return send_private(queries.refund_slip_for(current_user, refund_id).proof_path)
