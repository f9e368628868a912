"""Money is integer fen everywhere; this module alone turns it into text and back."""

from __future__ import annotations

import re
from decimal import Decimal

MAX_PRICE_FEN = 100_000_000  # ¥1,000,000.00; nothing sold here costs more

_AMOUNT = re.compile(r"^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$")
# What people type around an amount: currency signs, the unit, thousands separators (ASCII or
# full-width, as a Chinese keyboard gives them).
_DECORATION = str.maketrans("", "", "¥￥元,，")


class InvalidAmount(ValueError):
    """Not an amount of yuan; `reason` says why: "format", "negative" or "too_large"."""

    def __init__(self, text: object, reason: str = "format") -> None:
        super().__init__(text)
        self.reason = reason


def parse_yuan(value: str | int | float | Decimal | None, *, max_fen: int = MAX_PRICE_FEN) -> int:
    """Parse an amount of yuan into fen: '12.5', '12.50', '¥1,234', '50，000元' or a
    spreadsheet's number (30000, 1234.5) -> 1250, 1250, 123400, 5000000, 3000000, 123450.
    No sign, at most two decimals, at most `max_fen`: one parser for prices and targets."""
    if value is None or isinstance(value, bool):
        raise InvalidAmount(value)
    cleaned = str(value).translate(_DECORATION)
    if cleaned.strip().startswith("-"):
        raise InvalidAmount(value, "negative")
    match = _AMOUNT.match(cleaned)
    if not match:
        raise InvalidAmount(value)
    yuan, cents = match.groups()
    fen = int(yuan) * 100 + int((cents or "0").ljust(2, "0"))
    if fen > max_fen:
        raise InvalidAmount(value, "too_large")
    return fen


def fen_to_yuan_text(fen: int) -> str:
    """1250 -> '12.50' (for form fields)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_fen(fen: int | None) -> str:
    """1250 -> '¥12.50'; 123456789 -> '¥1,234,567.89'."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def split_by_shares(amount_fen: int, shares: list[int]) -> list[int]:
    """Split `amount_fen` in proportion to positive integer `shares`, to the fen: the parts
    always add up to the amount exactly (largest remainder goes first, ties to the earlier)."""
    if amount_fen < 0 or not shares or any(share <= 0 for share in shares):
        raise ValueError("a non-negative amount and positive shares are needed")
    total = sum(shares)
    exact = [amount_fen * share for share in shares]
    parts = [value // total for value in exact]
    left = amount_fen - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(exact[i] % total), i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return parts
