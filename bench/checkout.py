"""Checkout throughput: orders per second placed through the HTTP checkout (add to cart, open the
checkout page, submit it) by N concurrent signed-in clients against gunicorn (sync workers) and
PostgreSQL, beside a trivial route served by the same gunicorn in the same run; then a check in the
database that every order the clients were told about exists and that stock went down by exactly
the quantities ordered.

    .venv/bin/python bench/checkout.py [--clients 8] [--seconds 5] [--workers 4]
                                       [--database-url postgresql+psycopg://postgres@127.0.0.1:5432]

--database-url names the PostgreSQL server: a fresh database `market_bench_<random>` is created on
it, seeded, and dropped at the end. `--database-url sqlite` uses a fresh SQLite file instead.

Exits non-zero on errors only (failed requests or checkouts, an inconsistent database), never
because something is slow.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from flask import Flask
from sqlalchemy import create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from market.accounts.models import User
from market.catalog.models import Product, ProductStatus, Sku
from market.directory.models import Coop
from market.extensions import db
from market.orders.models import Order, OrderLine

# bench/ is not a package: reuse the storefront bench's gunicorn runner and load loop.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wsgi import TRIVIAL
from storefront import build_app, gunicorn, load, normalise_url, seed

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BENCH_STOCK = 1_000_000  # per benchmarked SKU: the run must never sell out
BENCH_PASSWORD = "bench-pass-2026"
HOT_SKUS = 4  # SKUs of as many co-ops that the clients buy, in turn
MAX_SECONDS = 60.0

ORDER_PAY = re.compile(r"^/orders/(\d+)/pay$")
INPUT = re.compile(r"<input\b[^>]*>", re.S)
SELECT_ADDRESS = re.compile(r'<select\b[^>]*name="address_id"[^>]*>(.*?)</select>', re.S)
OPTION = re.compile(r"<option\b([^>]*)>", re.S)


# -- database ----------------------------------------------------------------------------------
@contextmanager
def fresh_database(server_url: str, tmp: Path) -> Iterator[str]:
    """A new, empty database for this run, dropped afterwards (SQLite: a file in `tmp`)."""
    if server_url == "sqlite" or server_url.startswith("sqlite:"):
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
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
                # FORCE (PostgreSQL 13+): a connection left over by a killed worker cannot block it.
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def hot_skus(app: Flask) -> list[int]:
    """The first active SKU of listed products of HOT_SKUS different co-ops, the 古丁村 honey's
    co-op first; their stock is raised so that the run never sells out."""
    with app.app_context():
        rows = db.session.execute(
            select(Sku.id, Product.coop_id)
            .join(Product, Sku.product_id == Product.id)
            .join(Coop, Product.coop_id == Coop.id)
            .where(Product.status == ProductStatus.LISTED, Sku.active)
            .order_by((Product.name == "原生态蜂蜜").desc(), Coop.id, Product.id, Sku.id)
        ).all()
        chosen: dict[int, int] = {}
        for sku_id, coop_id in rows:
            chosen.setdefault(coop_id, sku_id)
            if len(chosen) == HOT_SKUS:
                break
        sku_ids = list(chosen.values())
        db.session.execute(update(Sku).where(Sku.id.in_(sku_ids)).values(stock=BENCH_STOCK))
        db.session.commit()
    if len(sku_ids) < 2:
        raise RuntimeError("the demo data has too few listed products")
    return sku_ids


def add_users(app: Flask, count: int) -> list[str]:
    """`count` plain buyers in one INSERT; hashing the password once keeps this instant."""
    emails = [f"bench-{i}@example.com" for i in range(count)]
    password_hash = generate_password_hash(BENCH_PASSWORD)
    with app.app_context():
        db.session.execute(
            insert(User),
            [
                {"email": email, "name": f"压测买家{i}", "password_hash": password_hash}
                for i, email in enumerate(emails)
            ],
        )
        db.session.commit()
    return emails


def stock_of(app: Flask, sku_ids: list[int]) -> dict[int, int]:
    with app.app_context():
        rows = db.session.execute(select(Sku.id, Sku.stock).where(Sku.id.in_(sku_ids)))
        return {sku_id: stock for sku_id, stock in rows}


@dataclass
class Consistency:
    orders: int
    order_numbers_missing: int
    ordered: dict[int, int]
    stock_taken: dict[int, int]

    def ok(self, expected_orders: int, expected: Counter[int]) -> bool:
        return (
            self.orders == expected_orders
            and self.order_numbers_missing == 0
            and self.ordered == dict(expected)
            and self.stock_taken == dict(expected)
        )


def check_database(
    app: Flask, sku_ids: list[int], numbers: list[str], before: dict[int, int]
) -> Consistency:
    with app.app_context():
        orders = db.session.scalar(select(func.count()).select_from(Order))
        found = set(db.session.scalars(select(Order.number).where(Order.number.in_(numbers))))
        rows = db.session.execute(
            select(OrderLine.sku_id, func.sum(OrderLine.quantity)).group_by(OrderLine.sku_id)
        )
        ordered = {sku_id: int(units) for sku_id, units in rows}
    after = stock_of(app, sku_ids)
    taken = {sku: before[sku] - after[sku] for sku in sku_ids if before[sku] != after[sku]}
    return Consistency(orders, len(set(numbers) - found), ordered, taken)


# -- one client ----------------------------------------------------------------------------------
class BenchError(Exception):
    pass


def hidden_value(html: str, name: str) -> str:
    for tag in INPUT.findall(html):
        if f'name="{name}"' in tag:
            value = re.search(r'value="([^"]*)"', tag)
            if value:
                return value.group(1)
    raise BenchError(f"no {name} in the page")


def selected_address(html: str) -> int:
    """The address the checkout page preselects (0: none saved yet, a new one is typed)."""
    box = SELECT_ADDRESS.search(html)
    if box is None:
        raise BenchError("no address_id select on the checkout page")
    for attributes in OPTION.findall(box.group(1)):
        if re.search(r"\bselected\b", attributes):
            return int(re.search(r'value="(\d+)"', attributes).group(1))
    return 0


@dataclass
class Client:
    """A buyer with their own keep-alive connection (http.client reconnects by itself when
    gunicorn's sync worker closes it) and cookie jar."""

    port: int
    email: str
    csrf: str = ""  # the session's CSRF token, valid for every form of the session
    cookies: dict[str, str] = field(default_factory=dict)
    orders: list[str] = field(default_factory=list)
    bought: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            content = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        for header in response.msg.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        location = urlsplit(response.getheader("Location") or "").path
        return response.status, location, content

    def sign_in(self) -> None:
        status, _, page = self.request("GET", "/login")
        if status != 200:
            raise BenchError(f"GET /login answered {status}")
        form = {
            "csrf_token": hidden_value(page, "csrf_token"),
            "email": self.email,
            "password": BENCH_PASSWORD,
            "next": "/cart",
        }
        status, location, _ = self.request("POST", "/login", form)
        if status not in (302, 303) or location != "/cart":
            raise BenchError(f"POST /login answered {status} {location}")
        self.csrf = hidden_value(self.request("GET", "/cart")[2], "csrf_token")

    def buy(self, sku_id: int, quantity: int) -> str:
        """Add to cart, open the checkout, submit it; the new order's number."""
        form = {"csrf_token": self.csrf, "sku_id": sku_id, "quantity": quantity}
        status, _, _ = self.request("POST", "/cart/add", form)
        if status != 303:
            raise BenchError(f"POST /cart/add answered {status}")
        status, _, page = self.request("GET", "/checkout")
        if status != 200:
            raise BenchError(f"GET /checkout answered {status}")
        address_id = selected_address(page)
        form = {
            "csrf_token": hidden_value(page, "csrf_token"),
            "idempotency_key": hidden_value(page, "idempotency_key"),
            "shown_prices": hidden_value(page, "shown_prices"),  # the prices it showed
            "delivery_method": "delivery",
            "address_id": address_id,
        }
        if not address_id:
            form |= {
                "recipient": "压测买家",
                "phone": "13800001234",
                "region": "广东省茂名市高州市",
                "detail": "人民路 1 号",
            }
        status, location, _ = self.request("POST", "/checkout", form)
        paid = ORDER_PAY.match(location)
        if status != 303 or paid is None:
            raise BenchError(f"POST /checkout answered {status} {location}")
        return paid.group(1)

    def buy_counted(self, sku_id: int, quantity: int) -> bool:
        try:
            number = self.buy(sku_id, quantity)
        except (OSError, http.client.HTTPException, BenchError) as error:
            self.errors.append(f"{type(error).__name__}: {error}")
            return False
        self.orders.append(number)
        self.bought[sku_id] += quantity
        return True


@dataclass
class CheckoutRate:
    orders: int
    errors: int
    seconds: float
    first_errors: list[str]

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def run_checkouts(clients: list[Client], sku_ids: list[int], duration: float) -> CheckoutRate:
    """Each client signs in and places one warm-up order (not timed), then all start together and
    place orders back to back for `duration` seconds; client i buys SKU (i + n) mod k, 1-3 units."""
    for index, client in enumerate(clients):
        client.sign_in()
        if not client.buy_counted(sku_ids[index % len(sku_ids)], 1):
            raise BenchError(f"the warm-up order failed: {client.errors[-1]}")
    timed = [0] * len(clients)
    start = threading.Barrier(len(clients) + 1)
    stop_at = 0.0

    def drive(index: int) -> None:
        client = clients[index]
        start.wait()
        n = 0
        while time.monotonic() < stop_at:
            sku_id = sku_ids[(index + n) % len(sku_ids)]
            if client.buy_counted(sku_id, 1 + n % 3):
                timed[index] += 1
            n += 1

    errors_before = sum(len(c.errors) for c in clients)
    threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at = began + duration
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    errors = [e for c in clients for e in c.errors]
    return CheckoutRate(sum(timed), len(errors) - errors_before, seconds, errors[:5])


# -- report ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help=f"measured seconds (default 5, max {MAX_SECONDS:g})",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_SERVER", DEFAULT_SERVER),
        help=f"PostgreSQL server to create the bench database on (default {DEFAULT_SERVER}), "
        "or `sqlite`",
    )
    args = parser.parse_args(argv)
    duration = min(max(args.seconds, 0.5), MAX_SECONDS)
    clients_n = min(max(args.clients, 1), 256)

    with (
        tempfile.TemporaryDirectory(prefix="market-bench-") as tmp_name,
        fresh_database(args.database_url, Path(tmp_name)) as database_url,
    ):
        tmp = Path(tmp_name)
        upload_dir = tmp / "uploads"
        app = build_app(database_url, upload_dir)
        try:
            seed(app)
            sku_ids = hot_skus(app)
            emails = add_users(app, clients_n)
            before = stock_of(app, sku_ids)

            backend = make_url(database_url).get_backend_name()
            print(
                f"market checkout bench: {backend}, gunicorn {args.workers} sync workers, "
                f"{clients_n} clients, {duration:g} s, SKUs {sku_ids}, "
                f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
            )
            with gunicorn(database_url, upload_dir, args.workers, tmp / "gunicorn.log") as port:
                clients = [Client(port, email) for email in emails]
                try:
                    checkout = run_checkouts(clients, sku_ids, duration)
                finally:
                    for client in clients:
                        client.connection.close()
                trivial = load(port, TRIVIAL, clients_n, duration)

            numbers = [number for client in clients for number in client.orders]
            expected: Counter[int] = Counter()
            for client in clients:
                expected.update(client.bought)
            found = check_database(app, sku_ids, numbers, before)
            consistent = found.ok(len(numbers), expected)
        finally:
            with app.app_context():
                db.engine.dispose()

    ratio = checkout.per_second / trivial.per_second if trivial.per_second else 0.0
    print()
    print(f"{'what':<28} {'count':>7} {'per s':>8} {'ratio':>7} {'errors':>7}")
    print(
        f"{'trivial ' + TRIVIAL:<28} {trivial.requests:>7} {trivial.per_second:>8.1f} "
        f"{1:>7.2f} {trivial.errors:>7}"
    )
    print(
        f"{'orders (checkout)':<28} {checkout.orders:>7} {checkout.per_second:>8.1f} "
        f"{ratio:>7.3f} {checkout.errors:>7}"
    )
    print(
        f"\nHTTP requests per order: 3 (POST /cart/add, GET /checkout, POST /checkout); "
        f"{checkout.per_second * 3:.1f} req/s"
    )
    print(
        f"database: {found.orders} orders for {len(numbers)} successful checkouts "
        f"({clients_n} warm-up), {sum(found.ordered.values())} units on order lines, "
        f"{sum(found.stock_taken.values())} taken from stock, "
        f"{sum(expected.values())} bought by the clients"
    )
    print(f"consistent: {'yes' if consistent else 'no'}")
    for error in checkout.first_errors:
        print(f"  error: {error}", file=sys.stderr)
    if not consistent:
        print(f"\nERROR: database and clients disagree: {found}", file=sys.stderr)
    failed = checkout.errors or trivial.errors
    if failed:
        print(
            f"\nERROR: {checkout.errors} checkouts and {trivial.errors} trivial requests failed",
            file=sys.stderr,
        )
    return 1 if failed or not consistent else 0


if __name__ == "__main__":
    sys.exit(main())
