"""Group-buy close: how long `close_group_buy` takes for N participants, and how its cost per
participant grows with N.

Two scenarios, each on a fresh database (a temporary SQLite file by default, or a fresh
PostgreSQL database created on `--database-url` and dropped afterwards):

- pay at pickup (offline, no network): 100 and 10,000 participants. At close every order is
  repriced to the tier reached and each participation is made ready, one at a time.
- card, authorised (manual capture) through localstripe: 100 and 1,000 participants. At close
  each authorisation is captured in part (the tier price) with one API call each.

Setup is not measured: the world, the coordinator and the group-buy go through the real services
(`open_group_buy`), then the participants (users, orders, shipments, lines, participations and,
for cards, AUTHORIZED payments) are bulk-inserted as `join` would have made them; for cards the
PaymentIntents are created and confirmed at localstripe first (one call each, bounded by
`--setup-seconds`, with progress). The close itself always goes through `close_group_buy`.

    .venv/bin/python bench/groupbuy_close.py [--offline 100,10000] [--card 100,1000]
    .venv/bin/python bench/groupbuy_close.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432
    .venv/bin/python bench/groupbuy_close.py --card ''          # offline only

Prints each close time, SQL statements, the per-participant cost and the ratio of per-participant
costs (largest N against the smallest), and checks the outcome (every participant ready, charged
the tier price once, the parcel worth the sum). Exits non-zero only if that check fails, never
because something is slow.
"""

from __future__ import annotations

import argparse
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy
import stripe
from flask import Flask
from sqlalchemy import create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.localstripe

from market import create_app  # noqa: E402
from market.accounts.models import (  # noqa: E402
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.catalog.models import Category, Product, ProductStatus, Sku  # noqa: E402
from market.directory.models import Coop, Pairing, Town, Unit, Village  # noqa: E402
from market.extensions import db  # noqa: E402
from market.groupbuy import closing, fulfilment, proposals  # noqa: E402
from market.groupbuy.models import (  # noqa: E402
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    ParticipationLine,
    ParticipationStatus,
    PaymentMode,
    Visibility,
)
from market.models import utcnow  # noqa: E402
from market.orders.models import (  # noqa: E402
    DeliveryMethod,
    Order,
    OrderLine,
    OrderMode,
    OrderStatus,
    Shipment,
    ShipmentStatus,
)
from market.payments import stripe_provider  # noqa: E402
from market.payments.models import Payment, PaymentStatus  # noqa: E402
from tests.localstripe import running_localstripe  # noqa: E402

SECRET_KEY = "sk_test_bench"
PUBLISHABLE_KEY = "pk_test_bench"
GOOD_CARD = "4242424242424242"
GROUP_PRICE = 8000
BATCH = 1000  # rows per bulk INSERT


# -- databases ---------------------------------------------------------------------------------
@contextmanager
def fresh_database(server_url: str | None, tmp: Path, label: str) -> Iterator[str]:
    """An empty database for one scenario: a SQLite file in `tmp`, or a new PostgreSQL
    database on `server_url`, dropped afterwards."""
    if not server_url:
        yield f"sqlite:///{tmp / f'{label}.db'}"
        return
    server = make_url(server_url)
    if server.drivername in ("postgresql", "postgres"):
        server = server.set(drivername="postgresql+psycopg")
    name = f"market_bench_gb_{secrets.token_hex(4)}"
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


def build_app(url: str, tmp: Path, stripe_base: str | None = None) -> Flask:
    config = {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "UPLOAD_DIR": str(tmp)}
    if stripe_base:
        config |= {
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "STRIPE_API_BASE": stripe_base,
        }
    app = create_app(config)
    with app.app_context():
        db.create_all()
    return app


# -- setup (not measured) ----------------------------------------------------------------------
@dataclass(frozen=True)
class Seeded:
    group_buy_id: int
    item_id: int
    sku_id: int
    quantities: list[int]


def quantity_of(n: int) -> int:
    return 1 + n % 3  # 1, 2, 3, 1, 2, 3, ...


def seed(app: Flask, participants: int, mode: PaymentMode) -> tuple[int, int, int, dict]:
    """A unit, its coordinator, a co-op's honey and an open group-buy whose tiers the
    participants will reach. Returns (group_buy_id, item_id, sku_id, facts for the lines)."""
    total = sum(quantity_of(n) for n in range(participants))
    with app.test_request_context():
        town = Town(name="古丁镇")
        village = Village(town=town, name="古丁村", story="南药之乡")
        coop = Coop(village=village, name="古丁南药合作社", approved=True)
        unit = Unit(name="高州市市场监管局")
        category = Category(name="蜂蜜", slug="honey", sort_order=1)
        product = Product(
            coop=coop, category=category, name="原生态蜂蜜", status=ProductStatus.LISTED
        )
        product.skus.append(Sku(spec="500g", price_fen=8800, stock=10 * total + 100))
        coordinator = User(name="李联络", email="coordinator@bench.example", password_hash="x")
        manager = User(name="黄社长", email="coop@bench.example", password_hash="x")
        db.session.add_all([town, village, coop, unit, category, product, coordinator, manager])
        db.session.add(CoopMembership(user=manager, coop=coop, role=CoopRole.MANAGER))
        db.session.add(Pairing(unit=unit, village=village, since=date(2024, 9, 3)))
        db.session.add(
            UnitMembership(
                user=coordinator,
                unit=unit,
                role=UnitRole.COORDINATOR,
                status=MembershipStatus.CONFIRMED,
                confirmed_at=utcnow(),
            )
        )
        db.session.commit()
        sku = product.skus[0]
        now = utcnow()
        data = proposals.GroupBuyData(
            title=f"基准团购 {participants} 人",
            opens_at=now - timedelta(minutes=1),
            closes_at=now + timedelta(hours=1),
            min_quantity=max(1, total // 4),
            payment_mode=mode,
            visibility=Visibility.LINK,
            pickup_address="一楼大厅",
            pickup_contact="李联络",
            pickup_window="周五中午",
            items=[
                proposals.ItemData(
                    sku.id,
                    GROUP_PRICE,
                    None,
                    [proposals.TierData(total // 2, 7000), proposals.TierData(total, 6000)],
                )
            ],
        )
        group_buy = proposals.open_group_buy(coordinator, data)
        group_buy = proposals.accept_group_buy(manager, group_buy.id)  # the co-op agrees: open
        facts = dict(
            unit_id=unit.id,
            coop_id=coop.id,
            village_id=village.id,
            category_id=category.id,
            product_id=product.id,
            address=f"{group_buy.pickup_address}（{group_buy.title}）",
        )
        return group_buy.id, group_buy.items[0].id, sku.id, facts


def bulk_participants(
    app: Flask, participants: int, mode: PaymentMode, intents: list[str] | None = None
) -> Seeded:
    """Insert what `join` (and, for cards, an authorised card) would have left, in bulk."""
    group_buy_id, item_id, sku_id, facts = seed(app, participants, mode)
    quantities = [quantity_of(n) for n in range(participants)]
    password = generate_password_hash("bench-not-for-login")
    now = utcnow()
    tag = secrets.token_hex(3)
    with app.app_context():
        for start in range(0, participants, BATCH):
            batch = range(start, min(start + BATCH, participants))
            user_ids = db.session.scalars(
                insert(User).returning(User.id, sort_by_parameter_order=True),
                [
                    {"name": f"职工{n}", "email": f"p{n}@bench.example", "password_hash": password}
                    for n in batch
                ],
            ).all()
            order_ids = db.session.scalars(
                insert(Order).returning(Order.id, sort_by_parameter_order=True),
                [
                    {
                        "number": f"B{tag}{n:09d}",
                        "buyer_id": user_id,
                        "mode": OrderMode.GROUP_BUY,
                        "unit_id": facts["unit_id"],
                        "status": OrderStatus.PENDING_PAYMENT,
                        "total_fen": GROUP_PRICE * quantities[n],
                        "delivery_method": DeliveryMethod.PICKUP,
                        "recipient": f"职工{n}",
                        "phone": "",
                        "address": facts["address"],
                        "idempotency_key": f"groupbuy-{group_buy_id}-{user_id}",
                        "expires_at": None,
                        "created_at": now,
                    }
                    for n, user_id in zip(batch, user_ids, strict=True)
                ],
            ).all()
            shipment_ids = db.session.scalars(
                insert(Shipment).returning(Shipment.id, sort_by_parameter_order=True),
                [
                    {
                        "order_id": order_id,
                        "coop_id": facts["coop_id"],
                        "status": ShipmentStatus.AWAITING_PAYMENT,
                    }
                    for order_id in order_ids
                ],
            ).all()
            db.session.execute(
                insert(OrderLine),
                [
                    {
                        "order_id": order_id,
                        "shipment_id": shipment_id,
                        "sku_id": sku_id,
                        "product_id": facts["product_id"],
                        "coop_id": facts["coop_id"],
                        "village_id": facts["village_id"],
                        "category_id": facts["category_id"],
                        "product_name": "原生态蜂蜜",
                        "spec": "500g",
                        "unit_price_fen": GROUP_PRICE,
                        "quantity": quantities[n],
                        "amount_fen": GROUP_PRICE * quantities[n],
                        "holds_stock": True,  # no cap: the order took the stock
                    }
                    for n, order_id, shipment_id in zip(batch, order_ids, shipment_ids, strict=True)
                ],
            )
            participation_ids = db.session.scalars(
                insert(Participation).returning(Participation.id, sort_by_parameter_order=True),
                [
                    {
                        "group_buy_id": group_buy_id,
                        "user_id": user_id,
                        "status": ParticipationStatus.ACTIVE,
                        "order_id": order_id,
                        "created_at": now,
                    }
                    for user_id, order_id in zip(user_ids, order_ids, strict=True)
                ],
            ).all()
            db.session.execute(
                insert(ParticipationLine),
                [
                    {"participation_id": pid, "item_id": item_id, "quantity": quantities[n]}
                    for n, pid in zip(batch, participation_ids, strict=True)
                ],
            )
            if intents is not None:
                db.session.execute(
                    insert(Payment),
                    [
                        {
                            "order_id": order_id,
                            "provider": "stripe",
                            "provider_ref": intents[n],
                            "status": PaymentStatus.AUTHORIZED,
                            "amount_fen": GROUP_PRICE * quantities[n],
                            "created_at": now,
                        }
                        for n, order_id in zip(batch, order_ids, strict=True)
                    ],
                )
        total = sum(quantities)
        db.session.execute(
            update(GroupBuyItem).where(GroupBuyItem.id == item_id).values(joined_quantity=total)
        )
        db.session.execute(update(Sku).where(Sku.id == sku_id).values(stock=Sku.stock - total))
        db.session.commit()
    return Seeded(group_buy_id, item_id, sku_id, quantities)


def authorise(base: str, participants: int, bound: float) -> list[str]:
    """Create and confirm one manual-capture PaymentIntent per participant at localstripe (the
    group price × quantity), each with one API call. Stops at `bound` seconds."""
    client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": base})
    browser = stripe.StripeClient(PUBLISHABLE_KEY, base_addresses={"api": base})
    card = {"number": GOOD_CARD, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    card_id = browser.v1.tokens.create({"card": card, "key": PUBLISHABLE_KEY}).card.id
    started = time.perf_counter()
    intents: list[str] = []
    step = max(1, participants // 10)
    for n in range(participants):
        intent = client.v1.payment_intents.create(
            {
                "amount": GROUP_PRICE * quantity_of(n),
                "currency": "cny",
                "payment_method_types": ["card"],
                "capture_method": "manual",
                "payment_method": card_id,
                "confirm": True,
            }
        )
        if intent.status != "requires_capture":
            raise SystemExit(f"localstripe did not authorise: {intent.status}")
        intents.append(intent.id)
        elapsed = time.perf_counter() - started
        if (n + 1) % step == 0 or n + 1 == participants:
            print(f"    authorised {n + 1}/{participants} in {elapsed:.1f} s", flush=True)
        if elapsed > bound and n + 1 < participants:
            print(f"    stopped at the {bound:.0f} s bound: {n + 1} authorised", flush=True)
            break
    return intents


# -- the measured close -----------------------------------------------------------------------
@dataclass
class Result:
    scenario: str
    participants: int
    seconds: float
    statements: int
    provider_seconds: float
    consistent: bool

    @property
    def per_participant_ms(self) -> float:
        return 1000 * self.seconds / self.participants

    @property
    def app_ms(self) -> float:
        """Per participant, without the time spent waiting for the payment provider."""
        return 1000 * (self.seconds - self.provider_seconds) / self.participants


@contextmanager
def counting_statements(app: Flask) -> Iterator[list[int]]:
    count = [0]

    def before(*_args) -> None:
        count[0] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", before)


@contextmanager
def timing_provider_calls() -> Iterator[list[float]]:
    """Time spent inside StripeProvider.capture/cancel (the HTTP round trips)."""
    spent = [0.0]
    cls = stripe_provider.StripeProvider
    originals = {name: getattr(cls, name) for name in ("capture", "cancel")}

    def timed(original):
        def call(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - started

        return call

    for name, original in originals.items():
        setattr(cls, name, timed(original))
    try:
        yield spent
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def close_and_check(app: Flask, seeded: Seeded, scenario: str, card: bool) -> Result:
    participants = len(seeded.quantities)
    with app.app_context():
        closes_at = db.session.get(GroupBuy, seeded.group_buy_id).closes_at
    with (
        counting_statements(app) as statements,
        timing_provider_calls() as provider,
        app.test_request_context(),
    ):
        started = time.perf_counter()
        closed = closing.close_group_buy(seeded.group_buy_id, closes_at + timedelta(seconds=1))
        seconds = time.perf_counter() - started
    return Result(
        scenario,
        participants,
        seconds,
        statements[0],
        provider[0],
        closed and check(app, seeded, card),
    )


def check(app: Flask, seeded: Seeded, card: bool) -> bool:
    """Every participant ready and charged the tier price once; the parcel worth the sum."""
    total = sum(seeded.quantities)
    with app.test_request_context():
        group_buy = db.session.get(GroupBuy, seeded.group_buy_id)
        item = group_buy.items[0]
        tier = item.price_at(total)
        ready = db.session.scalar(
            select(func.count())
            .select_from(Participation)
            .where(
                Participation.group_buy_id == group_buy.id,
                Participation.status == ParticipationStatus.READY,
            )
        )
        orders = db.session.execute(
            select(func.count(), func.sum(Order.total_fen)).where(Order.mode == OrderMode.GROUP_BUY)
        ).one()
        parcel = sum(line.amount_fen for line in fulfilment.consolidated_lines(group_buy))
        ok = (
            group_buy.status == GroupBuyStatus.SUCCEEDED
            and group_buy.reached_quantity == total
            and tier == 6000
            and ready == len(seeded.quantities)
            and tuple(orders) == (len(seeded.quantities), tier * total)
            and parcel == tier * total
        )
        if card:
            captured = db.session.execute(
                select(func.count(), func.sum(Payment.received_fen)).where(
                    Payment.status == PaymentStatus.SUCCEEDED
                )
            ).one()
            paid = db.session.scalar(
                select(func.count()).select_from(Order).where(Order.status == OrderStatus.PAID)
            )
            ok = ok and tuple(captured) == (len(seeded.quantities), tier * total)
            ok = ok and paid == len(seeded.quantities)
        return ok


# -- the run ----------------------------------------------------------------------------------
def sizes(value: str) -> list[int]:
    return [int(part) for part in value.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite files)")
    parser.add_argument("--offline", type=sizes, default=[100, 10_000], help="e.g. 100,10000")
    parser.add_argument("--card", type=sizes, default=[100, 1_000], help="e.g. 100,1000")
    parser.add_argument(
        "--setup-seconds",
        type=float,
        default=600.0,
        help="bound on authorising at localstripe, per size (the close uses what was authorised)",
    )
    args = parser.parse_args()

    backend = "PostgreSQL" if args.database_url else "SQLite (temporary file)"
    print(f"group-buy close bench on {backend}")
    print(
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"stripe {stripe.VERSION}"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-groupbuy-") as tmp_name:
        tmp = Path(tmp_name)
        for n in args.offline:
            label = f"offline-{n}"
            with fresh_database(args.database_url, tmp, label) as url:
                app = build_app(url, tmp)
                print(f"  pay at pickup, {n} participants: setting up ...", flush=True)
                seeded = bulk_participants(app, n, PaymentMode.PICKUP)
                results.append(close_and_check(app, seeded, "pay at pickup", card=False))
                report(results[-1])
                with app.app_context():
                    db.engine.dispose()
        for n in args.card:
            label = f"card-{n}"
            with (
                running_localstripe(tmp / label) as base,
                fresh_database(args.database_url, tmp, label) as url,
            ):
                app = build_app(url, tmp, stripe_base=base)
                print(f"  card, {n} participants: authorising at localstripe ...", flush=True)
                intents = authorise(base, n, args.setup_seconds)
                seeded = bulk_participants(app, len(intents), PaymentMode.CARD, intents)
                results.append(close_and_check(app, seeded, "card (authorised)", card=True))
                report(results[-1])
                with app.app_context():
                    db.engine.dispose()

    print()
    print(
        "| scenario | participants | close s | ms/participant | provider ms/participant | "
        "app+DB ms/participant | SQL/participant | consistent |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.scenario} | {r.participants} | {r.seconds:.2f} | {r.per_participant_ms:.2f} | "
            f"{1000 * r.provider_seconds / r.participants:.2f} | {r.app_ms:.2f} | "
            f"{r.statements / r.participants:.1f} | {'yes' if r.consistent else 'NO'} |"
        )
    for scenario in dict.fromkeys(r.scenario for r in results):
        runs = sorted((r for r in results if r.scenario == scenario), key=lambda r: r.participants)
        if len(runs) >= 2:
            small, large = runs[0], runs[-1]
            ratio = large.per_participant_ms / small.per_participant_ms
            app_ratio = large.app_ms / small.app_ms
            print(
                f"{scenario}: per-participant cost at {large.participants} / at "
                f"{small.participants} = {ratio:.2f} (without provider calls: {app_ratio:.2f})"
            )
    return 0 if all(r.consistent for r in results) else 1


def report(result: Result) -> None:
    print(
        f"    closed {result.participants} in {result.seconds:.2f} s "
        f"({result.per_participant_ms:.2f} ms each, {result.statements} SQL statements, "
        f"{result.provider_seconds:.2f} s in provider calls); "
        f"consistent: {'yes' if result.consistent else 'NO'}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
