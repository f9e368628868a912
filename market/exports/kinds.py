"""What each kind of export writes: the file's extension, how many rows it will hold (for the
progress bar), and the writer (market.campaign.exports, which owns the sheets and columns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from market import clock
from market.campaign import exports
from market.campaign.models import Campaign
from market.campaign.read.filters import Filters, clamp_to_campaign
from market.campaign.read.ledger_lines import ledger_extent
from market.errors import NotFound
from market.exports.models import ExportKind
from market.extensions import db


def parameters_of(filters: Filters, on: date | None = None) -> dict[str, Any]:
    """A campaign export's parameters, as stored on the job (JSON)."""
    return {
        "campaign_id": filters.campaign_id,
        "start": filters.start.isoformat() if filters.start else None,
        "end": filters.end.isoformat() if filters.end else None,
        "mode": filters.mode,
        "town_id": filters.town_id,
        "on": on.isoformat() if on else None,
    }


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _campaign(parameters: dict[str, Any]) -> tuple[Campaign, Filters]:
    campaign = db.session.get(Campaign, int(parameters["campaign_id"]))
    if campaign is None:
        raise NotFound("campaign gone")
    filters = Filters(
        campaign_id=campaign.id,
        start=_day(parameters.get("start")),
        end=_day(parameters.get("end")),
        mode=parameters.get("mode") or None,
        town_id=parameters.get("town_id") or None,
    )
    return campaign, filters


def campaign_of(parameters: dict[str, Any]) -> Campaign | None:
    return db.session.get(Campaign, int(parameters.get("campaign_id") or 0))


Progress = Callable[[int], object]


def _extent(parameters: dict[str, Any]) -> tuple[int, int]:
    _campaign_found, filters = _campaign(parameters)
    return ledger_extent(filters)


def _write_workbook(
    path: Path, parameters: dict[str, Any], upto_id: int, on_batch: Progress, batch: int
) -> str:
    campaign, filters = _campaign(parameters)
    today = clock.today()
    on = _day(parameters.get("on")) or clamp_to_campaign(campaign, today)
    return exports.write_workbook(
        str(path), campaign, filters, on, today, upto_id=upto_id, on_batch=on_batch, batch=batch
    )


def _write_ledger_csv(
    path: Path, parameters: dict[str, Any], upto_id: int, on_batch: Progress, batch: int
) -> str:
    campaign, filters = _campaign(parameters)
    with path.open("wb") as handle:
        return exports.write_ledger_csv(
            handle, campaign, filters, upto_id=upto_id, on_batch=on_batch, batch=batch
        )


@dataclass(frozen=True)
class Kind:
    extension: str
    extent: Callable[[dict[str, Any]], tuple[int, int]]  # (rows, last ledger id)
    write: Callable[[Path, dict[str, Any], int, Progress, int], str]  # -> the download name


KINDS: dict[ExportKind, Kind] = {
    ExportKind.CAMPAIGN_XLSX: Kind("xlsx", _extent, _write_workbook),
    ExportKind.LEDGER_CSV: Kind("csv", _extent, _write_ledger_csv),
}
