"""The organizer dashboard's queries at 10k, 100k and 1M ledger entries on PostgreSQL.

    .venv/bin/python bench/dashboard.py [--sizes 10000,100000,1000000] [--repeat 5]
                                        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432]

A throwaway database `market_bench_<hex>` is created on the server (and dropped on every exit
path) with the demo directory and catalog (108 units, 54 villages, their co-ops and products), a
campaign of 365 days ending today and a target for every unit. Ledger entries are generated in
Python with a fixed seed and written with COPY; the rollups are then rebuilt from the ledger in one
INSERT ... SELECT ... GROUP BY, the dashboard rollups (market.campaign.rollups: sums per unit,
unit and day, village, category, product, day; first sales and counters of orders and buyers)
with `rollups.rebuild()` (what `flask campaign rebuild-rollups` runs), and the tables are
ANALYZEd. The data is shaped like the campaign's: 80 % of entries credited to a unit (a few units
much busier than most), 70 % of those from the unit's own paired villages, 1-3 lines an order,
about 15 entries per buyer, 3 % refunds, four modes, days spread over the year.

The entries' foreign keys to orders, order lines, payments and users are dropped in the throwaway
database: the bench does not create a million orders, and no dashboard query joins those tables.

For each size (entries are added to reach it) every query that the dashboard page runs is timed:
the median of --repeat runs after one warm-up, in one process, without HTTP or templates. The
script prints each time, the number of rollup rows, and the ratio of the largest size's times to
the smallest's; with --exports it also times the XLSX workbook and the full ledger CSV once per
size. It never fails because something is slow.
"""

from __future__ import annotations

import argparse
import bisect
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from market import clock, create_app  # noqa: E402
from market.campaign import rollups  # noqa: E402
from market.campaign.models import AttributionRollup, Campaign, UnitTarget  # noqa: E402
from market.campaign.read.dashboard import (  # noqa: E402
    category_rows,
    dashboard_of,
    totals,
    town_rows,
    unit_rows,
    village_rows,
    weekly_trend,
)
from market.campaign.read.filters import Filters  # noqa: E402
from market.campaign.read.laggards import laggards_on  # noqa: E402
from market.campaign.read.public import public_summary  # noqa: E402
from market.catalog.models import Product, ProductStatus  # noqa: E402
from market.clock import SHANGHAI  # noqa: E402
from market.demo import default_data_dir, seed_demo  # noqa: E402
from market.directory.models import Coop, Pairing, Unit, Village  # noqa: E402
from market.extensions import db  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
CAMPAIGN_DAYS = 365
MODES = (("retail", 0.70), ("group_buy", 0.15), ("unit_purchase", 0.10), ("custom", 0.05))
ENTRY_COLUMNS = (
    "campaign_id",
    "order_id",
    "order_line_id",
    "payment_id",
    "refund_id",
    "buyer_id",
    "unit_id",
    "village_id",
    "coop_id",
    "product_id",
    "category_id",
    "mode",
    "basis",
    "paired",
    "amount_fen",
    "quantity",
    "at",
    "day",
)


def normalise_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    server = make_url(normalise_url(server_url))
    name = f"market_bench_{secrets.token_hex(4)}"
    admin = create_engine(
        server.set(database=server.database or "postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# -- the world ---------------------------------------------------------------------------------
class World:
    """What the generator draws from: units with their paired villages, villages with their
    listed products (product, co-op, category, price)."""

    def __init__(self, today) -> None:
        self.campaign = db.session.scalar(select(Campaign))
        self.units = list(db.session.scalars(select(Unit.id).order_by(Unit.id)))
        self.paired: dict[int, list[int]] = {}
        for unit_id, village_id in db.session.execute(select(Pairing.unit_id, Pairing.village_id)):
            self.paired.setdefault(unit_id, []).append(village_id)
        self.products: dict[int, list[tuple[int, int, int, int]]] = {}
        rows = db.session.execute(
            select(Coop.village_id, Product.id, Product.coop_id, Product.category_id)
            .join(Product.coop)
            .where(Product.status == ProductStatus.LISTED)
        )
        for village_id, product_id, coop_id, category_id in rows:
            price = 1000 + (product_id * 1237) % 15000
            self.products.setdefault(village_id, []).append(
                (product_id, coop_id, category_id, price)
            )
        self.villages = sorted(self.products)
        self.today = today
        # A few units are far busier than most (Zipf-like weights).
        weights = [1 / (rank + 1) ** 0.8 for rank in range(len(self.units))]
        total = sum(weights)
        running, self.unit_cdf = 0.0, []
        for weight in weights:
            running += weight / total
            self.unit_cdf.append(running)


class Generator:
    def __init__(self, world: World, seed: int = 2026) -> None:
        self.world = world
        self.random = random.Random(seed)
        self.order_id = 0
        self.line_id = 0
        self.made = 0
        self.sales: list[tuple] = []  # recent sales, for refunds to reverse

    def _unit(self) -> int | None:
        if self.random.random() >= 0.8:
            return None
        index = bisect.bisect_left(self.world.unit_cdf, self.random.random())
        return self.world.units[min(index, len(self.world.units) - 1)]

    def _mode(self) -> str:
        pick, running = self.random.random(), 0.0
        for mode, share in MODES:
            running += share
            if pick < running:
                return mode
        return MODES[0][0]

    def rows(self, count: int) -> Iterator[tuple]:
        world, rnd = self.world, self.random
        start = world.campaign.starts_on
        self.made += count
        buyers = max(200, self.made // 15)
        while count > 0:
            if self.sales and rnd.random() < 0.03:
                original = rnd.choice(self.sales)
                refund = list(original)
                refund[4] = self.line_id  # refund_id: any number, FKs are dropped
                refund[14] = -min(original[14], rnd.choice((500, 1000, original[14])))
                refund[15] = 0 if refund[14] != -original[14] else -original[15]
                day = min(original[17] + timedelta(days=rnd.randint(0, 20)), world.today)
                refund[16], refund[17] = self._moment(day), day
                yield tuple(refund)
                count -= 1
                continue
            self.order_id += 1
            unit_id = self._unit()
            buyer_id = rnd.randint(1, buyers)
            mode = self._mode() if unit_id else "retail"
            basis = "none"
            if unit_id:
                basis = "unit_order" if mode != "retail" else rnd.choice(("member", "referral"))
            day = start + timedelta(days=min(int(rnd.triangular(0, CAMPAIGN_DAYS, 300)), 364))
            day = min(day, world.today)
            at = self._moment(day)
            for _line in range(rnd.choice((1, 1, 2, 3))):
                if count <= 0:
                    break
                paired_villages = world.paired.get(unit_id, []) if unit_id else []
                paired_villages = [v for v in paired_villages if v in world.products]
                if paired_villages and rnd.random() < 0.7:
                    village_id, paired = rnd.choice(paired_villages), True
                else:
                    village_id = rnd.choice(world.villages)
                    paired = village_id in paired_villages
                product_id, coop_id, category_id, price = rnd.choice(world.products[village_id])
                quantity = rnd.choice((1, 1, 1, 2, 2, 3, 5, 10 if mode != "retail" else 1))
                self.line_id += 1
                row = (
                    world.campaign.id,
                    self.order_id,
                    self.line_id,
                    self.order_id,
                    None,
                    buyer_id,
                    unit_id,
                    village_id,
                    coop_id,
                    product_id,
                    category_id,
                    mode,
                    basis,
                    paired,
                    price * quantity,
                    quantity,
                    at,
                    day,
                )
                if len(self.sales) < 50_000:
                    self.sales.append(row)
                else:
                    self.sales[rnd.randrange(len(self.sales))] = row
                yield row
                count -= 1

    def _moment(self, day) -> datetime:
        seconds = self.random.randint(8 * 3600, 22 * 3600)
        local = datetime.combine(day, dtime.min, tzinfo=SHANGHAI) + timedelta(seconds=seconds)
        return local.astimezone(UTC)


# -- setup -------------------------------------------------------------------------------------
def prepare(app) -> None:
    today = clock.today()
    with app.app_context():
        db.create_all()
        seed_demo(default_data_dir())
        campaign = Campaign(
            name="压测活动",
            year=today.year,
            starts_on=today - timedelta(days=CAMPAIGN_DAYS - 1),
            ends_on=today,
            paired_only=False,
            laggard_threshold_pct=60,
        )
        db.session.add(campaign)
        db.session.flush()
        rnd = random.Random(7)
        for unit_id in db.session.scalars(select(Unit.id)):
            db.session.add(
                UnitTarget(
                    campaign_id=campaign.id,
                    unit_id=unit_id,
                    amount_fen=rnd.choice((5, 10, 20, 50)) * 1_000_000,
                )
            )
        db.session.commit()
        # The entries point at orders, lines, payments and buyers that are not created here.
        for name in db.session.scalars(
            text(
                "SELECT conname FROM pg_constraint "
                "WHERE conrelid = 'attribution_entries'::regclass AND contype = 'f'"
            )
        ).all():
            db.session.execute(text(f'ALTER TABLE attribution_entries DROP CONSTRAINT "{name}"'))
        db.session.commit()


def add_entries(app, generator: Generator, count: int) -> float:
    started = time.perf_counter()
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            columns = ", ".join(ENTRY_COLUMNS)
            with cursor.copy(f"COPY attribution_entries ({columns}) FROM STDIN") as copy:
                for row in generator.rows(count):
                    copy.write_row(row)
            raw.driver_connection.commit()
        finally:
            raw.close()
    return time.perf_counter() - started


def rebuild_rollups(app) -> tuple[int, int, float]:
    started = time.perf_counter()
    key = "coalesce(campaign_id, 0), coalesce(unit_id, 0), village_id, coop_id, category_id, "
    key += "mode, paired, day"
    with app.app_context():
        db.session.execute(text("TRUNCATE attribution_rollups"))
        db.session.execute(
            text(
                "INSERT INTO attribution_rollups (campaign_id, unit_id, village_id, coop_id, "
                "category_id, mode, paired, day, amount_fen, quantity, entries) "
                f"SELECT {key}, sum(amount_fen), sum(quantity), count(*) "
                f"FROM attribution_entries GROUP BY {key}"
            )
        )
        # The dashboard rollups, with the SELECTs `flask campaign rebuild-rollups` uses.
        dashboard_rows = rollups.rebuild()
        db.session.commit()
        for table in ("attribution_entries", "attribution_rollups"):
            db.session.execute(text(f"ANALYZE {table}"))
        for model in rollups.ALL_MODELS:
            db.session.execute(text(f"ANALYZE {model.__tablename__}"))
        db.session.commit()
        rows = db.session.scalar(select(func.count(AttributionRollup.id)))
    return rows, dashboard_rows, time.perf_counter() - started


# -- the timed queries -------------------------------------------------------------------------
def timed_queries(app) -> dict[str, Callable[[], object]]:
    with app.app_context():
        campaign = db.session.scalar(select(Campaign))
        town_id = db.session.scalar(
            select(Village.town_id)
            .join(Pairing, Pairing.village_id == Village.id)
            .group_by(Village.town_id)
            .order_by(func.count().desc())
            .limit(1)
        )
        db.session.expunge(campaign)
    today = clock.today()
    everything = Filters(campaign.id)
    narrowed = Filters(
        campaign.id, start=today - timedelta(days=89), end=today, mode="retail", town_id=town_id
    )

    def units():
        return unit_rows(campaign, everything)

    def villages():
        return village_rows(everything)

    return {
        "dashboard (whole page)": lambda: dashboard_of(campaign, everything, today),
        "  units table": units,
        "  villages + towns": lambda: town_rows(villages()),
        "  categories": lambda: category_rows(everything),
        "  weekly trend": lambda: weekly_trend(campaign, everything, today),
        "  totals (distinct)": lambda: totals(everything, [], []),
        "dashboard, filtered": lambda: dashboard_of(campaign, narrowed, today),
        "laggard list": lambda: laggards_on(campaign, today),
        "public page": lambda: public_summary(campaign, today),
    }


def measure_exports(app) -> dict[str, float]:
    """One run each: the XLSX workbook (its ledger sheet capped, see exports.py) written to its
    temporary file, and the whole ledger CSV generated (as the streamed response would)."""
    from market.campaign import exports

    results = {}
    with app.test_request_context():
        campaign = db.session.scalar(select(Campaign))
        filters = Filters(campaign.id)
        today = clock.today()
        started = time.perf_counter()
        handle, _name = exports.workbook(campaign, filters, today, today)
        handle.close()
        results["xlsx export"] = time.perf_counter() - started
        started = time.perf_counter()
        stream, _name = exports.ledger_csv(campaign, filters)
        size = sum(len(chunk) for chunk in stream)
        results[f"ledger csv ({size / 1e6:.0f} MB)"] = time.perf_counter() - started
        db.session.remove()
    return results


def measure(app, repeat: int) -> dict[str, float]:
    results = {}
    for name, run in timed_queries(app).items():
        times = []
        for attempt in range(repeat + 1):
            with app.app_context():
                started = time.perf_counter()
                run()
                elapsed = time.perf_counter() - started
                db.session.remove()
            if attempt:  # the first run warms caches
                times.append(elapsed)
        results[name] = statistics.median(times)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in DEFAULT_SIZES),
        help="ledger sizes to measure, comma-separated, increasing",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--exports", action="store_true", help="also time the XLSX and ledger CSV exports once"
    )
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))
    if not args.database_url.startswith(("postgres", "postgresql")):
        parser.error("the dashboard bench runs on PostgreSQL")

    with fresh_database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "UPLOAD_DIR": tmp, "SECRET_KEY": "bench"})
        try:
            prepare(app)
            with app.app_context():
                generator = Generator(World(clock.today()))
            print(f"PostgreSQL database {make_url(url).database}; repeat {args.repeat}, median")
            measured: dict[int, dict[str, float]] = {}
            have = 0
            for size in sizes:
                load = add_entries(app, generator, size - have)
                have = size
                fine, coarse, rebuild = rebuild_rollups(app)
                print(
                    f"\n{size:>9,} entries: generated+COPY {load:.1f} s, rollups {fine:,} rows "
                    f"+ dashboard rollups {coarse:,} rows rebuilt in {rebuild:.1f} s"
                )
                measured[size] = measure(app, args.repeat)
                for name, seconds in measured[size].items():
                    print(f"  {name:<26} {seconds * 1000:9.1f} ms")
                if args.exports:
                    for name, seconds in measure_exports(app).items():
                        print(f"  {name:<26} {seconds:9.1f} s")
            first, last = sizes[0], sizes[-1]
            if last != first:
                print(f"\nratio {last:,} / {first:,} entries:")
                for name in measured[first]:
                    ratio = measured[last][name] / measured[first][name]
                    print(f"  {name:<26} {ratio:9.1f}x")
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
