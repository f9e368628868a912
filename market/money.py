"""Money is integer fen everywhere; this module alone turns it into text and back."""

from __future__ import annotations

import re

MAX_PRICE_FEN = 100_000_000  # ¥1,000,000.00; nothing sold here costs more

_AMOUNT = re.compile(r"^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$")


class InvalidAmount(ValueError):
    pass


def parse_yuan(text: str | None) -> int:
    """Parse '12.5' or '12.50' or '12' (yuan) into fen: 1250. No sign, at most two decimals."""
    if text is None:
        raise InvalidAmount("empty")
    cleaned = str(text).replace("¥", "").replace("￥", "").replace(",", "")
    match = _AMOUNT.match(cleaned)
    if not match:
        raise InvalidAmount(text)
    yuan, cents = match.groups()
    fen = int(yuan) * 100 + int((cents or "0").ljust(2, "0"))
    if fen > MAX_PRICE_FEN:
        raise InvalidAmount(text)
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
