"""Payment providers share one interface: create, fetch (the provider's current truth), capture,
cancel, refund, and reading a webhook. `offline` (bank transfer, 对公转账) is always there;
`stripe` when STRIPE_SECRET_KEY is configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from flask import current_app

from market.payments.models import Payment, PaymentStatus


@dataclass(frozen=True)
class ProviderState:
    """What the provider says now about a payment."""

    status: PaymentStatus
    received_fen: int = 0
    authorized_fen: int = 0
    failure_message: str = ""
    # The buyer must still act in the browser (3-D Secure): the page calls confirmCardPayment.
    requires_action: bool = False


@dataclass(frozen=True)
class Created:
    provider_ref: str
    client_secret: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundResult:
    provider_ref: str
    succeeded: bool
    failure_message: str = ""
    # Accepted but not yet sent: someone must still send the money (an offline refund).
    owed: bool = False


@dataclass(frozen=True)
class WebhookNotice:
    event_id: str
    event_type: str
    payment_ref: str | None


class PaymentProvider(Protocol):
    name: str

    def create(self, payment: Payment, *, manual_capture: bool = False) -> Created: ...

    def fetch(self, payment: Payment) -> ProviderState: ...

    def capture(self, payment: Payment, amount_fen: int) -> ProviderState: ...

    def cancel(self, payment: Payment) -> ProviderState: ...

    def refund(self, payment: Payment, amount_fen: int, reason: str) -> RefundResult: ...


class OfflineProvider:
    """Bank transfer to the platform's account (and cash at a pickup). Nothing remote: the money
    is 'received' when finance confirms it with the bank's reference, and a refund is owed until
    finance records the outgoing transfer."""

    name = "offline"

    def create(self, payment: Payment, *, manual_capture: bool = False) -> Created:
        return Created(provider_ref=f"BT-{payment.order.number}-{payment.id}")

    def fetch(self, payment: Payment) -> ProviderState:
        return ProviderState(payment.status, payment.received_fen)

    def capture(self, payment: Payment, amount_fen: int) -> ProviderState:
        return ProviderState(PaymentStatus.SUCCEEDED, amount_fen)

    def cancel(self, payment: Payment) -> ProviderState:
        return ProviderState(PaymentStatus.CANCELLED, 0)

    def refund(self, payment: Payment, amount_fen: int, reason: str) -> RefundResult:
        # Nobody has sent anything yet: the refund is owed until finance sends the transfer.
        return RefundResult(provider_ref="", succeeded=True, owed=True)


def available() -> list[str]:
    names = []
    if current_app.config.get("STRIPE_SECRET_KEY"):
        names.append("stripe")
    names.append("offline")
    return names


def get(name: str) -> PaymentProvider:
    if name == "offline":
        return OfflineProvider()
    if name == "stripe" and current_app.config.get("STRIPE_SECRET_KEY"):
        from market.payments.stripe_provider import StripeProvider

        return StripeProvider.from_config(current_app.config)
    raise LookupError(name)
