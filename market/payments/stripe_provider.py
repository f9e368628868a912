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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

import stripe
from flask_babel import gettext as _

from market.errors import DomainError
from market.payments.models import Payment, PaymentStatus
from market.payments.providers import (
    Created,
    ProviderRefund,
    ProviderState,
    ProviderTruth,
    RefundResult,
    WebhookNotice,
)

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


def _metadata(obj: Any) -> dict:
    """A Stripe object's metadata as a plain dict (StripeObject is not a dict)."""
    metadata = _field(obj, "metadata")
    if metadata is None:
        return {}
    return metadata.to_dict() if hasattr(metadata, "to_dict") else dict(metadata)


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


def state_of(intent: Any, received: int | None = None) -> ProviderState:
    """Our reading of a PaymentIntent's status. The amount received is the intent's own
    `amount_received` (or `received`, when the caller had to work it out); never assumed."""
    status = _field(intent, "status")
    amount = _field(intent, "amount") or 0
    if status == "succeeded":
        if received is None:
            received = _field(intent, "amount_received")
        if received is None:
            raise DomainError(_("支付服务没有返回实收金额，请稍后再试"))
        return ProviderState(PaymentStatus.SUCCEEDED, received)
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
        return self._state(self._retrieve(payment.provider_ref))

    def _state(self, intent: Any) -> ProviderState:
        return state_of(intent, self._amount_received(intent))

    def _amount_received(self, intent: Any) -> int | None:
        """What the intent captured. Stripe says it in `amount_received`. localstripe leaves it
        out and captures part of an authorisation by capturing all of it and refunding the rest
        at once, with a refund that carries neither an intent nor metadata (every refund the
        shop asks for carries both): the charge's amount less those is what was captured."""
        received = _field(intent, "amount_received")
        if received is not None or _field(intent, "status") != "succeeded":
            return received
        charge = _field(intent, "latest_charge")
        if charge is None or not _field(charge, "captured"):
            return None
        client = _client(self.secret_key, self.api_base)
        refunds = self._call(client.v1.refunds.list, {"payment_intent": intent.id, "limit": 100})
        released = sum(
            _field(r, "amount") or 0
            for r in refunds.data
            if not _field(r, "payment_intent") and not _metadata(r)
        )
        return (_field(charge, "amount") or 0) - released

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
            return self._state(intent), intent.client_secret
        if self.stand_in and _attempted(intent):
            replacement = self._replace(payment, intent)
            if replacement is None:  # the old intent went through after all
                intent = self._retrieve(payment.provider_ref)
                return self._state(intent), intent.client_secret
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
            state = self._state(intent)
            if state.status == PaymentStatus.PENDING and not state.requires_action:
                state = ProviderState(
                    PaymentStatus.FAILED, failure_message=_("银行卡信息无效，请重新填写")
                )
            return state, intent.client_secret
        return self._state(intent), intent.client_secret

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

    def capture(self, payment: Payment, amount_fen: int, key: str | None = None) -> ProviderState:
        """Capture up to the authorised amount; the rest is released. A retry with the same
        `key` (a crashed closer's successor) gets Stripe's first answer back; one Stripe
        refuses because the intent is captured already reports what it really captured."""
        try:
            intent = self._call(
                self._intents.capture,
                payment.provider_ref,
                {"amount_to_capture": amount_fen},
                {"idempotency_key": key or f"market-capture-{payment.provider_ref}-{amount_fen}"},
            )
        except (stripe.InvalidRequestError, stripe.CardError, stripe.IdempotencyError) as error:
            # Already captured, expired or cancelled: report what it is now.
            log.info("stripe refused to capture %s: %s", payment.provider_ref, error)
            return self.fetch(payment)
        return self._state(intent)

    def cancel(self, payment: Payment) -> ProviderState:
        """Withdraw the intent. One that can no longer be cancelled (it succeeded, or was
        cancelled already) is not an error: its state is returned for the caller to act on."""
        return self._cancel_intent(payment.provider_ref)

    def _cancel_intent(self, provider_ref: str) -> ProviderState:
        try:
            return self._state(self._call(self._intents.cancel, provider_ref))
        except stripe.InvalidRequestError as error:
            log.info("stripe did not cancel %s: %s", provider_ref, error)
            return self._state(self._retrieve(provider_ref))

    def refund(
        self, payment: Payment, amount_fen: int, reason: str, key: str | None = None
    ) -> RefundResult:
        """Give `amount_fen` back on the intent. Stripe's `reason` is an enum; ours is free
        text, so it travels in the metadata. A step with a `key` (a group-buy's tier refund)
        is done once however often it is retried: the key is Stripe's idempotency key and is
        kept in the refund's metadata, and a refund already carrying it is returned as it is
        (localstripe honours no idempotency keys; Stripe keeps them only 24 hours)."""
        client = _client(self.secret_key, self.api_base)
        if key is not None:
            done = self._refund_with_key(payment, key)
            if done is not None:
                return done
        key = key or (
            f"market-refund-{payment.order.number}-{payment.id}-{payment.refunded_fen}-{amount_fen}"
        )
        params = {
            "payment_intent": payment.provider_ref,
            "amount": amount_fen,
            "metadata": {
                "reason": reason[:500],
                "order_number": payment.order.number,
                "payment_id": str(payment.id),
                "market_key": key,
            },
        }
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

    def _refund_with_key(self, payment: Payment, key: str) -> RefundResult | None:
        client = _client(self.secret_key, self.api_base)
        refunds = self._call(
            client.v1.refunds.list, {"payment_intent": payment.provider_ref, "limit": 100}
        )
        for refund in refunds.data:
            if _metadata(refund).get("market_key") == key:
                status = _field(refund, "status")
                succeeded = status in ("succeeded", "pending")
                return RefundResult(provider_ref=refund.id, succeeded=succeeded)
        return None

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

    # -- reconciliation ----------------------------------------------------------------------
    def truth(self, payment: Payment) -> ProviderTruth:
        """What Stripe holds for the payment, read from its own fields: the intent's status,
        `amount_received`, `amount_capturable`, and every refund listed for the intent (all
        pages). Nothing is assumed: when Stripe cannot say what it captured, this raises a
        DomainError instead of guessing."""
        intent = self._retrieve(payment.provider_ref)
        status = _field(intent, "status") or ""
        charge = _field(intent, "latest_charge")
        # Refunds need a charge (localstripe answers 500 to a listing for an intent without one).
        listed = self._list_refunds(intent.id) if charge is not None else []
        refunds = []
        for refund in listed:
            if self.stand_in and not _field(refund, "payment_intent") and not _metadata(refund):
                # localstripe: the rest of a partial capture, "refunded" at once (see
                # _amount_received); it was never received, so it is not money given back.
                continue
            created = _field(refund, "created")
            refunds.append(
                ProviderRefund(
                    provider_ref=refund.id,
                    amount_fen=_field(refund, "amount") or 0,
                    status=_field(refund, "status") or "",
                    created=datetime.fromtimestamp(created, UTC) if created else None,
                    metadata=_metadata(refund),
                )
            )
        received = self._amount_received(intent)
        if received is None and status == "succeeded":
            log.error("stripe gave no amount_received for %s", intent.id)
            raise DomainError(_("支付服务没有返回实收金额，请稍后再试"))
        # localstripe: no amount_received before a capture; nothing has been received then.
        received = received or 0
        capturable = _field(intent, "amount_capturable")
        if capturable is None:
            # localstripe: no amount_capturable; an uncaptured charge holds its whole amount.
            held = status == "requires_capture" and charge is not None
            capturable = (_field(charge, "amount") or 0) if held else 0
        return ProviderTruth(
            status=state_of(intent, received).status,
            provider_status=status,
            received_fen=received,
            capturable_fen=capturable,
            refunds=tuple(refunds),
        )

    def _list_refunds(self, intent_id: str) -> list[Any]:
        client = _client(self.secret_key, self.api_base)

        def every_page() -> list[Any]:
            listing = client.v1.refunds.list({"payment_intent": intent_id, "limit": 100})
            return list(listing.auto_paging_iter())

        try:
            return self._call(every_page)
        except stripe.InvalidRequestError as error:
            log.error("stripe cannot list the refunds of %s: %s", intent_id, error)
            raise DomainError(_("支付服务找不到这笔支付，请联系客服")) from error
