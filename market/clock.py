"""The shop's one clock: 高州 keeps Beijing time, so "today" is the Asia/Shanghai date everywhere.

A pairing, a campaign, a statement period, a due date or a laggard list all ask "which day is it?";
they ask here, never `date.today()` (the server's zone) or the UTC date, which disagree with
Beijing between 00:00 and 08:00. Stored times are UTC (`market.models.utcnow`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def now() -> datetime:
    """This moment, timezone-aware in UTC (as stored)."""
    return datetime.now(UTC)


def today() -> date:
    """Today's date in 高州 (Asia/Shanghai)."""
    return now().astimezone(SHANGHAI).date()


def local_day(moment: datetime) -> date:
    """The Beijing date of a stored (UTC) moment."""
    return moment.astimezone(SHANGHAI).date()


def day_start(day: date) -> datetime:
    """00:00 Beijing time of a day, as a UTC moment (the lower bound of that day's records)."""
    return datetime.combine(day, time.min, tzinfo=SHANGHAI).astimezone(UTC)


def day_end(day: date) -> datetime:
    """00:00 Beijing time of the next day, as a UTC moment (the exclusive upper bound)."""
    return day_start(day + timedelta(days=1))
