"""Read-side look-ups of the directory that several pages share."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from market.directory.models import Village
from market.extensions import db


def village_with_coops(village_id: int) -> Village | None:
    """A village with its town and co-ops loaded (its page, on the web and in the API)."""
    return db.session.scalar(
        select(Village)
        .where(Village.id == village_id)
        .options(joinedload(Village.town), selectinload(Village.coops))
    )
