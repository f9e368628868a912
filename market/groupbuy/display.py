"""What every group-buy page shows, and the API too: the time left and the progress towards the
minimum and the next tier, worked out on the server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _

from market.groupbuy.models import GroupBuy, GroupBuyStatus
from market.models import utcnow
from market.money import format_fen


def time_left(closes_at: datetime, now: datetime | None = None) -> str:
    """'剩余 2 天 5 小时' (whole units, rounded down), worked out on the server: no script."""
    seconds = int((closes_at - (now or utcnow())).total_seconds())
    if seconds <= 0:
        return _("已截止")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return _("剩余 %(days)d 天 %(hours)d 小时", days=days, hours=hours)
    if hours:
        return _("剩余 %(hours)d 小时 %(minutes)d 分钟", hours=hours, minutes=minutes)
    return _("剩余 %(minutes)d 分钟", minutes=max(minutes, 1))


@dataclass(frozen=True)
class Progress:
    total: int  # joined so far; once closed, what was reached
    minimum: int
    next_tier: str | None  # "还差 3 件到下一档 ¥80.00"

    @property
    def percent(self) -> int:
        return min(100, self.total * 100 // self.minimum) if self.minimum else 100

    @property
    def to_minimum(self) -> int:
        return max(self.minimum - self.total, 0)


def _next_tier_text(group_buy: GroupBuy, total: int) -> str | None:
    thresholds = sorted(
        {
            tier.min_total_quantity
            for item in group_buy.items
            for tier in item.tiers
            if tier.min_total_quantity > total
        }
    )
    if not thresholds or group_buy.status != GroupBuyStatus.OPEN:
        return None
    threshold = thresholds[0]
    drops = [
        (item, item.price_at(threshold))
        for item in group_buy.items
        if item.price_at(threshold) < item.price_at(total)
    ]
    if len(group_buy.items) == 1:
        return _(
            "还差 %(n)d 件到下一档 %(price)s", n=threshold - total, price=format_fen(drops[0][1])
        )
    prices = "、".join(f"{item.sku.product.name} {format_fen(price)}" for item, price in drops)
    return _("还差 %(n)d 件到下一档：%(prices)s", n=threshold - total, prices=prices)


def progress(group_buy: GroupBuy) -> Progress:
    total = (
        group_buy.reached_quantity
        if group_buy.reached_quantity is not None
        else group_buy.total_quantity
    )
    return Progress(total, group_buy.min_quantity, _next_tier_text(group_buy, total))
