"""The laggard list (提醒约谈名单): the units behind their target pro-rated to a day.

A unit *lags* on a day when what it counted from the campaign's start through that day is below
`laggard_threshold_pct` of its target pro-rated to the day:
target × (day − starts_on + 1) / (ends_on − starts_on + 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from market.campaign.models import Campaign
from market.campaign.read.dashboard import unit_rows
from market.campaign.read.filters import Filters


@dataclass
class Laggard:
    unit_id: int
    name: str
    target_fen: int
    expected_fen: int  # the target pro-rated to the day (rounded down to the fen)
    threshold_fen: int  # what the unit needed by the day not to be listed (rounded up)
    counted_fen: int

    @property
    def pct_of_expected(self) -> float:
        return self.counted_fen * 100 / self.expected_fen if self.expected_fen else 0.0

    @property
    def shortfall_fen(self) -> int:
        return self.threshold_fen - self.counted_fen


@dataclass
class LaggardList:
    campaign: Campaign
    on: date
    elapsed_days: int
    total_days: int
    laggards: list[Laggard] = field(default_factory=list)

    @property
    def elapsed_pct(self) -> float:
        return self.elapsed_days * 100 / self.total_days


def laggards_on(campaign: Campaign, on: date) -> LaggardList:
    """Units with a target whose counted sales from the start through `on` are below the
    threshold of their pro-rated target. Integer arithmetic: exact at the boundary."""
    total_days = (campaign.ends_on - campaign.starts_on).days + 1
    elapsed = min(max((on - campaign.starts_on).days + 1, 0), total_days)
    result = LaggardList(campaign, on, elapsed, total_days)
    if elapsed == 0:
        return result
    rows = unit_rows(campaign, Filters(campaign.id, end=on), with_counts=False)
    threshold = campaign.laggard_threshold_pct
    for row in rows:
        if not row.target_fen:
            continue
        expected = row.target_fen * elapsed // total_days
        needed = -(-threshold * row.target_fen * elapsed // (100 * total_days))  # ceiling
        if row.counted_fen < needed:
            result.laggards.append(
                Laggard(row.unit_id, row.name, row.target_fen, expected, needed, row.counted_fen)
            )
    result.laggards.sort(
        key=lambda lag: (Fraction(lag.counted_fen, lag.target_fen), lag.counted_fen, lag.name)
    )
    return result
