"""Stripe PaymentIntents, one per Payment, in CNY fen (Stripe's smallest unit for CNY).

Each provider talks to Stripe through its own `StripeClient` (API key and base address from the
app's config), never through the `stripe` module's global settings, so two apps in one process
(tests, a staging app next to a live one) cannot leak keys into each other.

What Stripe says is the truth: every method reports the PaymentIntent's state as it is after
the call, and Stripe's own refusals (a declined card, cancelling what already succeeded) come
back as states, not exceptions. Only "Stripe cannot be reached or refuses our key" raises, as a
DomainError the buyer can read.

Tests run against localstripe, which differs from Stripe in a few places; each is marked
"localstripe:" where the code has to care.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

import stripe
from flask_babel import gettext as _

from market.errors import DomainError
from market.payments.models import Payment, PaymentStatus
from market.payments.providers import Created, ProviderState, RefundResult, WebhookNotice

log = logging.getLogger(__name__)

T = TypeVar("T")

CURRENCY = "cny"
STRIPE_HOST = "api.stripe.com"
# Seconds: connecting, then waiting for an answer. A buyer is waiting on the other side.
TIMEOUT = (5, 30)
WEBHOOK_TOLERANCE_SECONDS = 300


class PaymentServiceUnavailable(DomainError):
    status_code = 503


@lru_cache(maxsize=8)
def _client(api_key: str, api_base: str) -> stripe.StripeClient:
    # One client per key and address; its HTTP sessions are per thread, so sharing is safe.
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        http_client=stripe.RequestsClient(timeout=TIMEOUT),
        # Retried POSTs carry an idempotency key (ours, or one the library adds).
        max_network_retries=2,
    )


def _field(obj: Any, name: str) -> Any:
    """A field of a Stripe object, or None where the API (or localstripe) leaves it out."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _failure_message(error: Any) -> str:
    """A message the buyer can act on, from a Stripe error or a last_payment_error."""
    code = _field(error, "decline_code") or _field(error, "code") or ""
    known = {
        "insufficient_funds": _("卡内余额不足，请换一张卡"),
        "expired_card": _("银行卡已过期，请换一张卡"),
        "incorrect_cvc": _("安全码（CVC）不正确，请检查后重试"),
        "invalid_cvc": _("安全码（CVC）不正确，请检查后重试"),
        "incorrect_number": _("卡号不正确，请检查后重试"),
        "invalid_number": _("卡号不正确，请检查后重试"),
        "invalid_expiry_month": _("有效期不正确，请检查后重试"),
        "invalid_expiry_year": _("有效期不正确，请检查后重试"),
        "processing_error": _("银行处理出错，请稍后再试"),
        "payment_intent_authentication_failure": _("银行卡验证未通过，请重试或换一张卡"),
        "authentication_required": _("这张卡需要验证，请重试并完成验证"),
        "lost_card": _("银行卡被拒绝，请换一张卡或联系发卡行"),
        "stolen_card": _("银行卡被拒绝，请换一张卡或联系发卡行"),
        "card_declined": _("银行卡被拒绝，请换一张卡或联系发卡行"),
        "generic_decline": _("银行卡被拒绝，请换一张卡或联系发卡行"),
        "do_not_honor": _("银行卡被拒绝，请换一张卡或联系发卡行"),
    }
    if code in known:
        return known[code]
    detail = _field(error, "user_message") or _field(error, "message") or code
    return _("银行卡支付未成功：%(reason)s", reason=detail) if detail else _("银行卡支付未成功")


def state_of(intent: Any) -> ProviderState:
    """Our reading of a PaymentIntent's status."""
    status = _field(intent, "status")
    amount = _field(intent, "amount") or 0
    if status == "succeeded":
        # localstripe: no amount_received; it captures the whole amount unless told otherwise.
        received = _field(intent, "amount_received")
        return ProviderState(PaymentStatus.SUCCEEDED, received if received is not None else amount)
    if status == "requires_capture":
        return ProviderState(
            PaymentStatus.AUTHORIZED, authorized_fen=_field(intent, "amount_capturable") or amount
        )
    if status == "canceled":
        return ProviderState(PaymentStatus.CANCELLED)
    error = _field(intent, "last_payment_error")
    if status == "requires_payment_method" and error:
        return ProviderState(PaymentStatus.FAILED, failure_message=_failure_message(error))
    if status == "requires_action":
        return ProviderState(PaymentStatus.PENDING, requires_action=True)
    # requires_payment_method (nothing tried yet), requires_confirmation, processing.
    return ProviderState(PaymentStatus.PENDING)


def _attempted(intent: Any) -> bool:
    """The intent has been through a confirmation: declined, failed or abandoned 3-D Secure."""
    status = _field(intent, "status")
    return status == "requires_action" or (
        status == "requires_payment_method" and bool(_field(intent, "last_payment_error"))
    )


class StripeProvider:
    name = "stripe"

    def __init__(self, secret_key: str, api_base: str, webhook_secret: str = ""):
        if not secret_key:
            raise LookupError("stripe")
        self.secret_key = secret_key
        self.api_base = api_base.rstrip("/")
        self.webhook_secret = webhook_secret
        # Anything but Stripe's own address is taken to be localstripe (tests, local demo).
        self.stand_in = urlsplit(self.api_base).hostname != STRIPE_HOST

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StripeProvider:
        return cls(
            config.get("STRIPE_SECRET_KEY", ""),
            config.get("STRIPE_API_BASE") or f"https://{STRIPE_HOST}",
            config.get("STRIPE_WEBHOOK_SECRET", ""),
        )

    # -- plumbing --------------------------------------------------------------------------
    @property
    def _intents(self):
        return _client(self.secret_key, self.api_base).v1.payment_intents

    def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one API call; trouble reaching Stripe (or a key it refuses) is the shop's
        problem, not the buyer's card: it becomes a readable DomainError."""
        try:
            return call(*args, **kwargs)
        except (
            stripe.APIConnectionError,
            stripe.APIError,
            stripe.RateLimitError,
            stripe.AuthenticationError,
            stripe.PermissionError,
        ) as error:
            log.warning("stripe unavailable: %s: %s", type(error).__name__, error)
            raise PaymentServiceUnavailable(_("支付服务暂时不可用，请稍后再试")) from error

    def _retrieve(self, provider_ref: str) -> Any:
        try:
            return self._call(self._intents.retrieve, provider_ref)
        except stripe.InvalidRequestError as error:
            log.error("stripe cannot find %s: %s", provider_ref, error)
            raise DomainError(_("支付服务找不到这笔支付，请联系客服")) from error

    def _create_intent(self, payment: Payment, *, manual_capture: bool, key: str) -> Any:
        params: dict[str, Any] = {
            "amount": payment.amount_fen,
            "currency": CURRENCY,
            # Cards only: the page tokenises a card, and nothing here needs a return_url.
            "payment_method_types": ["card"],
            "metadata": {"order_number": payment.order.number, "payment_id": str(payment.id)},
        }
        if manual_capture:
            params["capture_method"] = "manual"
        return self._call(self._intents.create, params, {"idempotency_key": key})

    def _intent_key(self, payment: Payment) -> str:
        # The order number is random, so a key never collides across databases (dev resets).
        return f"market-pi-{payment.order.number}-{payment.id}"

    # -- the provider interface -----------------------------------------------------------
    def create(self, payment: Payment, *, manual_capture: bool = False) -> Created:
        """One PaymentIntent per payment: a retried create returns the same intent."""
        intent = self._create_intent(
            payment, manual_capture=manual_capture, key=self._intent_key(payment)
        )
        return Created(provider_ref=intent.id, client_secret=intent.client_secret)

    def client_secret(self, payment: Payment) -> str:
        return self._retrieve(payment.provider_ref).client_secret

    def fetch(self, payment: Payment) -> ProviderState:
        return state_of(self._retrieve(payment.provider_ref))

    def confirm_with_token(self, payment: Payment, card_token: str) -> tuple[ProviderState, str]:
        """Attach the card the browser tokenised (Stripe.js createToken) and confirm on the
        server. Returns the state and the client_secret of the intent now carrying the payment
        (the page needs it for 3-D Secure).

        Stripe confirms the same intent again with the next card after a decline or an
        abandoned 3-D Secure, so the intent (and `payment.provider_ref`) never changes.
        localstripe cannot: its confirm refuses an intent whose last charge failed, and takes
        no new card while 3-D Secure is pending. There the next card goes on a fresh intent,
        the old one is cancelled (so its 3-D Secure window can no longer charge), and
        `payment.provider_ref` changes, for the caller to commit."""
        intent = self._retrieve(payment.provider_ref)
        if _field(intent, "status") in ("succeeded", "requires_capture", "processing", "canceled"):
            # A double submit, or a payment already withdrawn: nothing to confirm.
            return state_of(intent), intent.client_secret
        if self.stand_in and _attempted(intent):
            replacement = self._replace(payment, intent)
            if replacement is None:  # the old intent went through after all
                intent = self._retrieve(payment.provider_ref)
                return state_of(intent), intent.client_secret
            intent = replacement
        try:
            if self.stand_in:
                self._attach_stand_in(intent.id, card_token)
                intent = self._call(self._intents.confirm, intent.id)
            else:
                card = {"type": "card", "card": {"token": card_token}}
                intent = self._call(self._intents.confirm, intent.id, {"payment_method_data": card})
        except stripe.CardError:
            # Declined: the intent now says why (last_payment_error).
            intent = self._retrieve(intent.id)
        except (stripe.InvalidRequestError, stripe.IdempotencyError) as error:
            # A bad or used token, or an intent in a state that cannot be confirmed.
            log.info("stripe refused to confirm %s: %s", intent.id, error)
            intent = self._retrieve(intent.id)
            state = state_of(intent)
            if state.status == PaymentStatus.PENDING and not state.requires_action:
                state = ProviderState(
                    PaymentStatus.FAILED, failure_message=_("银行卡信息无效，请重新填写")
                )
            return state, intent.client_secret
        return state_of(intent), intent.client_secret

    def _attach_stand_in(self, intent_id: str, card_token: str) -> None:
        # localstripe: confirm(payment_method=...) is "Not implemented" and payment_method_data
        # is unknown, but a token's card id can be set on the intent and then confirmed.
        client = _client(self.secret_key, self.api_base)
        token = self._call(client.v1.tokens.retrieve, card_token)
        card_id = _field(_field(token, "card"), "id")
        self._call(self._intents.update, intent_id, {"payment_method": card_id})

    def _replace(self, payment: Payment, old: Any) -> Any | None:
        """Cancel `old` and put a fresh intent on the payment; None when `old` cannot be
        cancelled because its money went through meanwhile (then nothing is replaced)."""
        state = self._cancel_intent(old.id)
        if state.status in (PaymentStatus.SUCCEEDED, PaymentStatus.AUTHORIZED):
            return None
        intent = self._create_intent(
            payment,
            manual_capture=_field(old, "capture_method") == "manual",
            key=f"{self._intent_key(payment)}-after-{old.id}",
        )
        payment.provider_ref = intent.id
        return intent

    def capture(self, payment: Payment, amount_fen: int) -> ProviderState:
        """Capture up to the authorised amount; the rest is released."""
        try:
            intent = self._call(
                self._intents.capture,
                payment.provider_ref,
                {"amount_to_capture": amount_fen},
                {"idempotency_key": f"market-capture-{payment.provider_ref}-{amount_fen}"},
            )
        except (stripe.InvalidRequestError, stripe.CardError) as error:
            # Already captured, expired or cancelled: report what it is now.
            log.info("stripe refused to capture %s: %s", payment.provider_ref, error)
            return self.fetch(payment)
        state = state_of(intent)
        if state.status == PaymentStatus.SUCCEEDED and _field(intent, "amount_received") is None:
            # localstripe: no amount_received; what was captured is what we asked for.
            return ProviderState(PaymentStatus.SUCCEEDED, amount_fen)
        return state

    def cancel(self, payment: Payment) -> ProviderState:
        """Withdraw the intent. One that can no longer be cancelled (it succeeded, or was
        cancelled already) is not an error: its state is returned for the caller to act on."""
        return self._cancel_intent(payment.provider_ref)

    def _cancel_intent(self, provider_ref: str) -> ProviderState:
        try:
            return state_of(self._call(self._intents.cancel, provider_ref))
        except stripe.InvalidRequestError as error:
            log.info("stripe did not cancel %s: %s", provider_ref, error)
            return state_of(self._retrieve(provider_ref))

    def refund(self, payment: Payment, amount_fen: int, reason: str) -> RefundResult:
        """Give `amount_fen` back on the intent. Stripe's `reason` is an enum; ours is free
        text, so it travels in the metadata."""
        key = (
            f"market-refund-{payment.order.number}-{payment.id}-{payment.refunded_fen}-{amount_fen}"
        )
        params = {
            "payment_intent": payment.provider_ref,
            "amount": amount_fen,
            "metadata": {
                "reason": reason[:500],
                "order_number": payment.order.number,
                "payment_id": str(payment.id),
            },
        }
        client = _client(self.secret_key, self.api_base)
        try:
            refund = self._call(client.v1.refunds.create, params, {"idempotency_key": key})
        except (stripe.InvalidRequestError, stripe.CardError, stripe.IdempotencyError) as error:
            log.warning("stripe refused to refund %s: %s", payment.provider_ref, error)
            message = _field(error, "user_message") or str(error)
            return RefundResult(provider_ref="", succeeded=False, failure_message=message)
        status = _field(refund, "status")
        # "pending": accepted, the card network still has to carry it back; it is given back.
        succeeded = status in ("succeeded", "pending")
        message = "" if succeeded else (_field(refund, "failure_reason") or str(status))
        return RefundResult(provider_ref=refund.id, succeeded=succeeded, failure_message=message)

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookNotice:
        """Verify Stripe's signature (HMAC-SHA256 with the endpoint's secret, recent timestamp)
        and say which event it is and which PaymentIntent it concerns. ValueError when it is
        not from Stripe or not an event."""
        if not self.webhook_secret:
            raise ValueError("STRIPE_WEBHOOK_SECRET is not configured")
        if not signature:
            raise ValueError("missing Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, self.webhook_secret, WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as error:
            raise ValueError(f"bad signature: {error.user_message or error}") from None
        try:
            event = json.loads(payload)
        except ValueError:  # includes a body that is not UTF-8
            raise ValueError("payload is not JSON") from None
        if not isinstance(event, dict):
            raise ValueError("payload is not an event")
        event_id, event_type = event.get("id"), event.get("type")
        if not (isinstance(event_id, str) and 0 < len(event_id) <= 100):
            raise ValueError("event without a usable id")
        if not (isinstance(event_type, str) and 0 < len(event_type) <= 100):
            raise ValueError("event without a usable type")
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        obj = obj if isinstance(obj, dict) else {}
        ref = None
        if event_type.startswith("payment_intent."):
            ref = obj.get("id")
        elif event_type.startswith("charge."):  # charges and their refunds name the intent
            ref = obj.get("payment_intent")
            if isinstance(ref, dict):  # expanded
                ref = ref.get("id")
        return WebhookNotice(
            event_id=event_id,
            event_type=event_type,
            payment_ref=ref if isinstance(ref, str) and ref else None,
        )
