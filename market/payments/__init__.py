"""Payments through providers (Stripe PaymentIntents, offline bank transfer), refunds, webhooks,
reconciliation, and the one hook through which every received or refunded amount is reported."""
