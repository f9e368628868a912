"""Payment providers share one interface: create, fetch (the provider's current truth), capture,
cancel, refund, and reading a webhook. `offline` (bank transfer, 对公转账) is always there;
`stripe` when STRIPE_SECRET_KEY is configured."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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


# The provider's refund statuses that mean the money is given back (or on its way back).
REFUND_GIVEN_BACK = ("succeeded", "pending")


@dataclass(frozen=True)
class ProviderRefund:
    """One refund as the provider lists it for a payment."""

    provider_ref: str
    amount_fen: int
    status: str  # the provider's own word: succeeded, pending, failed, canceled ...
    created: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def given_back(self) -> bool:
        return self.status in REFUND_GIVEN_BACK


@dataclass(frozen=True)
class ProviderTruth:
    """Everything the provider holds for a payment, read from its own fields, for the
    reconciliation: what it captured, what it still holds, and every refund."""

    status: PaymentStatus
    provider_status: str
    received_fen: int
    capturable_fen: int
    refunds: tuple[ProviderRefund, ...] = ()

    @property
    def refunded_fen(self) -> int:
        return sum(refund.amount_fen for refund in self.refunds if refund.given_back)


class PaymentProvider(Protocol):
    name: str

    def create(self, payment: Payment, *, manual_capture: bool = False) -> Created: ...

    def fetch(self, payment: Payment) -> ProviderState: ...

    # `key`: an idempotency key for a step that may be retried after a crash (a group-buy's
    # closing); the provider does that step once, and a retry returns its first outcome.
    def capture(
        self, payment: Payment, amount_fen: int, key: str | None = None
    ) -> ProviderState: ...

    def cancel(self, payment: Payment) -> ProviderState: ...

    def refund(
        self, payment: Payment, amount_fen: int, reason: str, key: str | None = None
    ) -> RefundResult: ...


class OfflineProvider:
    """Bank transfer to the platform's account (and cash at a pickup). Nothing remote: the money
    is 'received' when finance confirms it with the bank's reference, and a refund is owed until
    finance records the outgoing transfer."""

    name = "offline"

    def create(self, payment: Payment, *, manual_capture: bool = False) -> Created:
        return Created(provider_ref=f"BT-{payment.order.number}-{payment.id}")

    def fetch(self, payment: Payment) -> ProviderState:
        return ProviderState(payment.status, payment.received_fen)

    def capture(self, payment: Payment, amount_fen: int, key: str | None = None) -> ProviderState:
        return ProviderState(PaymentStatus.SUCCEEDED, amount_fen)

    def cancel(self, payment: Payment) -> ProviderState:
        return ProviderState(PaymentStatus.CANCELLED, 0)

    def refund(
        self, payment: Payment, amount_fen: int, reason: str, key: str | None = None
    ) -> RefundResult:
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
