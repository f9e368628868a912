"""Demo data: the real pairings, villages and products named in public reporting, filled up with
clearly marked generated ones (示例) to the programme's size of 108 units and 54 villages.

Everything is created in one transaction and only once: a second call finds the demo organizer and
changes nothing. The tables are in `facts`, the files read in `sources`, the rows made in
`builders`; `flask --app market seed-demo` (market/cli.py) calls `seed_demo`.
"""

from __future__ import annotations

import random
from pathlib import Path

from sqlalchemy import select

from market.accounts.models import User
from market.demo import batches, builders, certificates, presales
from market.demo.facts import (
    DEMO_ACCOUNTS,
    DEMO_COOP_NAME,
    DEMO_COOP_VILLAGE,
    DEMO_PASSWORD,
    DEMO_UNIT_NAME,
    ORGANIZER_EMAIL,
    ROUND_START,
)
from market.demo.sources import Source, default_data_dir
from market.extensions import db

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_COOP_NAME",
    "DEMO_PASSWORD",
    "DEMO_UNIT_NAME",
    "ROUND_START",
    "default_data_dir",
    "seed_demo",
]


def seed_demo(data_dir: Path | None = None) -> bool:
    """Create the demo directory, catalog and accounts once. False, and nothing changed, when
    the demo organizer already exists. `data_dir` holds the facts (default_data_dir())."""
    if db.session.scalar(select(User.id).where(User.email == ORGANIZER_EMAIL)) is not None:
        return False
    source = Source.load(data_dir or default_data_dir())
    rng = random.Random(2024)  # stock levels: varied but the same on every run
    try:
        villages = builders.seed_villages(source)
        units = builders.seed_units(source)
        builders.seed_real_pairings(source, villages, units)
        builders.pair_generated_units(villages, units[len(source.unit_names()) :])
        coops = builders.seed_coops(villages)
        categories = builders.seed_categories()
        builders.seed_products(source, coops, categories, rng)
        builders.seed_accounts(units, coops)
        builders.seed_campaign(units)
        certificates.seed_certificates(DEMO_COOP_NAME, ORGANIZER_EMAIL)
        certificates.seed_geographical_indications(ORGANIZER_EMAIL)
        batches.seed_batches(DEMO_COOP_VILLAGE)
        presales.seed_presales(ORGANIZER_EMAIL)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return True
