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
import cProfile
import http.client
import io
import os
import platform
import pstats
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from flask import Flask
from sqlalchemy import create_engine, event, func, insert, select, text, update
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
from storefront import WRK, Rate, build_app, gunicorn, load, load_wrk, normalise_url, seed

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
    with_pay_page: bool = True  # follow the checkout's 303 to the pay page, as a browser does
    measuring: bool = False  # record each request's time (not during sign-in and warm-up)
    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Around each request of an order: its wall time, as the client waits for it."""
        if not self.measuring:
            yield
            return
        began = time.perf_counter()
        yield
        self.timings[name].append((time.perf_counter() - began) * 1000)

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

    def add(self, sku_id: int, quantity: int) -> None:
        form = {"csrf_token": self.csrf, "sku_id": sku_id, "quantity": quantity}
        status, _, _ = self.request("POST", "/cart/add", form)
        if status != 303:
            raise BenchError(f"POST /cart/add answered {status}")

    def open_checkout(self) -> str:
        status, _, page = self.request("GET", "/checkout")
        if status != 200:
            raise BenchError(f"GET /checkout answered {status}")
        return page

    def submit(self, page: str) -> str:
        """Submit the checkout page as shown; the new order's number."""
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

    def open_pay(self, number: str) -> None:
        """The page the checkout's 303 leads to, as a browser follows it."""
        status, _, page = self.request("GET", f"/orders/{number}/pay")
        if status != 200 or number not in page:
            raise BenchError(f"GET /orders/{number}/pay answered {status}")

    def buy(self, sku_id: int, quantity: int) -> str:
        """Add to cart, open the checkout, submit it, open the pay page; the order's number."""
        with self.step("POST /cart/add"):
            self.add(sku_id, quantity)
        with self.step("GET /checkout"):
            page = self.open_checkout()
        with self.step("POST /checkout"):
            number = self.submit(page)
        if self.with_pay_page:
            with self.step("GET /orders/<n>/pay"):
                self.open_pay(number)
        return number

    def buy_counted(self, sku_id: int, quantity: int) -> bool:
        try:
            number = self.buy(sku_id, quantity)
        except (OSError, http.client.HTTPException, BenchError) as error:
            self.errors.append(f"{type(error).__name__}: {error}")
            return False
        self.orders.append(number)
        self.bought[sku_id] += quantity
        return True


class InProcessClient(Client):
    """The same buyer, served in this process by the app's test client (no server, no network):
    what each request of an order costs the app itself, in time and SQL statements."""

    def __init__(self, app: Flask, email: str, with_pay_page: bool) -> None:
        super().__init__(0, email, with_pay_page=with_pay_page)
        self.app = app
        self.browser = app.test_client()
        self.statements: dict[str, list[int]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.profiles: dict[str, cProfile.Profile] = {}
        self.profiling = False
        self._count = 0
        self.last_statements: dict[str, list[str]] = {}  # of the last order, per request
        self._seen: list[str] = []
        event.listen(db.engine, "before_cursor_execute", self._on_execute)

    def __post_init__(self) -> None:  # no connection
        pass

    def _on_execute(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self._count += 1
        self._seen.append(" ".join(statement.split())[:160])

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str, str]:
        response = self.browser.open(path, method=method, data=form)
        location = urlsplit(response.headers.get("Location") or "").path
        return response.status_code, location, response.get_data(as_text=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if not self.measuring:
            yield
            return
        profile = self.profiles.setdefault(name, cProfile.Profile()) if self.profiling else None
        self._count = 0
        self._seen = []
        began, began_cpu = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        try:
            yield
        finally:
            if profile is not None:
                profile.disable()
            self.timings[name].append((time.perf_counter() - began) * 1000)
            self.cpu[name].append((time.process_time() - began_cpu) * 1000)
            self.statements[name].append(self._count)
            self.last_statements[name] = self._seen

    def close(self) -> None:
        event.remove(db.engine, "before_cursor_execute", self._on_execute)


def profile_in_process(
    app: Flask, email: str, sku_ids: list[int], orders: int, *, with_pay_page: bool, top: int
) -> InProcessClient:
    """One buyer places `orders` orders in this process, one after another; each request's
    median time and SQL statements, and with `top` > 0 a cProfile of each (`top` lines)."""
    with app.app_context():
        client = InProcessClient(app, email, with_pay_page)
    try:
        client.sign_in()
        for n in range(3 + orders):  # 3 warm-ups: template compilation, first address, pool
            if n == 3:
                client.measuring = True
                client.profiling = top > 0
            if not client.buy_counted(sku_ids[n % len(sku_ids)], 1 + n % 3):
                raise BenchError(f"an in-process order failed: {client.errors[-1]}")
    finally:
        with app.app_context():
            client.close()
    return client


def print_profile(client: InProcessClient, top: int, statements: bool) -> None:
    print(f"\nin process, one buyer, {len(next(iter(client.timings.values())))} orders:")
    print(f"{'request':<24} {'median ms':>10} {'CPU ms':>7} {'SQL':>5}")
    total_ms = total_cpu = total_sql = 0.0
    for name, times in client.timings.items():
        ms = statistics.median(times)
        cpu = statistics.median(client.cpu[name])
        sql = statistics.median(client.statements[name])
        total_ms += ms
        total_cpu += cpu
        total_sql += sql
        print(f"{name:<24} {ms:>10.1f} {cpu:>7.1f} {sql:>5g}")
    print(f"{'one order':<24} {total_ms:>10.1f} {total_cpu:>7.1f} {total_sql:>5g}")
    print("(CPU ms: this process's, i.e. the app's Python and the test client; not PostgreSQL's)")
    if statements:
        for name, seen in client.last_statements.items():
            print(f"\n-- SQL of {name} (the last order) --")
            for statement in seen:
                print(f"  {statement}")
    for name, profile in client.profiles.items():
        stats = pstats.Stats(profile)
        print(f"\n-- cProfile of {name}: own time by package --")
        by_package = own_time_by_package(stats)
        total = sum(by_package.values()) or 1.0
        for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
            print(f"  {package:<28} {seconds * 100 / total:>5.1f}%")
        print(f"-- cProfile of {name}: cumulative, top {top} --")
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats("cumulative").print_stats(top)
        print(out.getvalue().split("\n\n", 1)[-1].rstrip())


def own_time_by_package(stats: pstats.Stats) -> dict[str, float]:
    """Each function's own time (not its callees'), summed by where it lives: a site-package,
    the shop's code, its templates, the standard library."""
    sums: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in stats.stats.items():
        if "site-packages/" in filename:
            package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
            if package == "psycopg" and function in ("wait", "_execute_send"):
                package = "psycopg (waiting for PostgreSQL)"
        elif "/templates/" in filename:
            package = "templates (Jinja)"
        elif "/market/" in filename:
            package = "market"
        elif filename.startswith("~") or filename.startswith("<"):
            package = "builtins"
        else:
            package = "standard library / other"
        sums[package] += own
    return sums


@dataclass
class CheckoutRate:
    orders: int
    errors: int
    seconds: float
    first_errors: list[str]

    @property
    def per_second(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


# -- CPU used, by whom ---------------------------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone or not on this host)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _ppid(pid: str) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


@dataclass
class CpuMeter:
    """CPU seconds spent while the orders are placed, by the gunicorn workers, by the
    PostgreSQL backends serving them, and by this process (the client threads). Unlike a rate,
    CPU per order hardly depends on what else the machine is doing."""

    app: Flask
    port: int
    workers: list[int] = field(default_factory=list)
    backends: list[int] = field(default_factory=list)
    started: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def _find(self) -> None:
        bind = f"127.0.0.1:{self.port}".encode()
        masters = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if bind in command and b"_wsgi:make_app()" in command:
                    masters.add(int(entry.name))
        self.workers = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _ppid(entry.name) in masters
        ]
        self.backends = []
        with self.app.app_context():
            if db.engine.dialect.name == "postgresql":
                self.backends = list(
                    db.session.scalars(
                        text(
                            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> pg_backend_pid()"
                        )
                    )
                )
                db.session.rollback()

    def _sample(self) -> dict[str, float]:
        return {
            "gunicorn workers": sum(_cpu_of(pid) for pid in self.workers),
            "PostgreSQL": sum(_cpu_of(pid) for pid in self.backends),
            "client (this process)": sum(os.times()[:2]),
        }

    def start(self) -> None:
        self._find()
        self.started = self._sample()

    def stop(self) -> None:
        """Add what was used since `start` (so one meter sums several rounds)."""
        now = self._sample()
        for name in now:
            self.used[name] = self.used.get(name, 0.0) + now[name] - self.started[name]


def run_checkouts(
    clients: list[Client], sku_ids: list[int], duration: float, meter: CpuMeter | None = None
) -> CheckoutRate:
    """Each client signs in and places one warm-up order (not timed), then all start together and
    place orders back to back for `duration` seconds; client i buys SKU (i + n) mod k, 1-3 units."""
    for index, client in enumerate(clients):
        if client.measuring:  # signed in and warmed up in an earlier round
            continue
        client.sign_in()
        if not client.buy_counted(sku_ids[index % len(sku_ids)], 1):
            raise BenchError(f"the warm-up order failed: {client.errors[-1]}")
        client.measuring = True
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
    if meter is not None:
        meter.start()
    began = time.monotonic()
    stop_at = began + duration
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    if meter is not None:
        meter.stop()
    errors = [e for c in clients for e in c.errors]
    return CheckoutRate(sum(timed), len(errors) - errors_before, seconds, errors[:5])


# -- report ----------------------------------------------------------------------------------------
def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help=f"measured seconds (default 5, max {MAX_SECONDS:g})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="checkout and wrk's trivial route in turn, this many times (default 3): the ratio "
        "of each round is printed, so that the machine's drift shows",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_SERVER", DEFAULT_SERVER),
        help=f"PostgreSQL server to create the bench database on (default {DEFAULT_SERVER}), "
        "or `sqlite`",
    )
    parser.add_argument(
        "--no-pay-page",
        action="store_true",
        help="stop each order at the checkout's 303 instead of opening the pay page it leads to",
    )
    parser.add_argument(
        "--profile-orders",
        type=int,
        default=20,
        help="orders one buyer places in-process first, timed per request (default 20; 0: none)",
    )
    parser.add_argument(
        "--cprofile",
        type=int,
        default=0,
        metavar="TOP",
        help="also print a cProfile of each in-process request, TOP lines each (default 0: none)",
    )
    parser.add_argument(
        "--cprofile-dir",
        type=Path,
        metavar="DIR",
        help="with --cprofile, also write each request's profile to DIR/<request>.prof "
        "(for pstats or snakeviz)",
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="also print the SQL statements of each in-process request (of the last order)",
    )
    parser.add_argument(
        "--in-process-only",
        action="store_true",
        help="only the in-process profile: no gunicorn, no concurrent run",
    )
    args = parser.parse_args(argv)
    duration = min(max(args.seconds, 0.5), MAX_SECONDS)
    clients_n = min(max(args.clients, 1), 256)
    profile_orders = min(max(args.profile_orders, 0), 1000)
    rounds = min(max(args.rounds, 1), 20)
    rounds_run: list[tuple[CheckoutRate, Rate | None]] = []
    with_pay_page = not args.no_pay_page
    steps = "POST /cart/add, GET /checkout, POST /checkout" + (
        ", GET /orders/<n>/pay" if with_pay_page else ""
    )

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
            emails = add_users(app, clients_n + 1)  # the last one: the in-process buyer
            before = stock_of(app, sku_ids)

            backend = make_url(database_url).get_backend_name()
            print(
                f"market checkout bench: {backend}, gunicorn {args.workers} sync workers, "
                f"{clients_n} clients, {duration:g} s, SKUs {sku_ids}, "
                f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
                f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            print(f"an order: {steps}")
            clients: list[Client] = []
            if profile_orders:
                profiled = profile_in_process(
                    app,
                    emails[-1],
                    sku_ids,
                    profile_orders,
                    with_pay_page=with_pay_page,
                    top=args.cprofile,
                )
                clients.append(profiled)
                print_profile(profiled, args.cprofile, args.statements)
                if args.cprofile_dir and profiled.profiles:
                    args.cprofile_dir.mkdir(parents=True, exist_ok=True)
                    for name, profile in profiled.profiles.items():
                        slug = re.sub(r"[^a-z]+", "-", name.lower()).strip("-")
                        profile.dump_stats(args.cprofile_dir / f"{slug}.prof")
            if not args.in_process_only:
                with gunicorn(database_url, upload_dir, args.workers, tmp / "gunicorn.log") as port:
                    buyers = [Client(port, e, with_pay_page=with_pay_page) for e in emails[:-1]]
                    clients.extend(buyers)
                    meter = CpuMeter(app, port)
                    try:
                        for _round in range(rounds):
                            rounds_run.append(
                                (
                                    run_checkouts(buyers, sku_ids, duration, meter),
                                    # As the issue measured it (wrk -t2 -c32), right after.
                                    load_wrk(port, TRIVIAL, 2, 32, duration) if WRK else None,
                                )
                            )
                    finally:
                        for client in buyers:
                            client.connection.close()
                    # The Python clients cannot drive the trivial route as fast as gunicorn
                    # serves it, which flatters that ratio; measured once, after the rounds.
                    trivial = load(port, TRIVIAL, clients_n, duration)
                    checkout = CheckoutRate(
                        sum(c.orders for c, _w in rounds_run),
                        sum(c.errors for c, _w in rounds_run),
                        sum(c.seconds for c, _w in rounds_run),
                        [e for c, _w in rounds_run for e in c.first_errors][:5],
                    )
                    trivial_wrk = None
                    if WRK:
                        walls = [w for _c, w in rounds_run]
                        trivial_wrk = Rate(
                            TRIVIAL,
                            sum(w.requests for w in walls),
                            sum(w.errors for w in walls),
                            sum(w.seconds for w in walls),
                        )

            numbers = [number for client in clients for number in client.orders]
            expected: Counter[int] = Counter()
            for client in clients:
                expected.update(client.bought)
            found = check_database(app, sku_ids, numbers, before)
            consistent = found.ok(len(numbers), expected)
        finally:
            with app.app_context():
                db.engine.dispose()

    failed = 0
    if not args.in_process_only:
        ratio = checkout.per_second / trivial.per_second if trivial.per_second else 0.0
        print()
        print(f"{'what':<34} {'count':>7} {'per s':>8} {'% trivial':>10} {'errors':>7}")
        print(
            f"{'trivial, ' + str(clients_n) + ' Python clients':<34} {trivial.requests:>7} "
            f"{trivial.per_second:>8.1f} {100:>9.1f}% {trivial.errors:>7}"
        )
        print(
            f"{'orders (checkout)':<34} {checkout.orders:>7} {checkout.per_second:>8.1f} "
            f"{ratio * 100:>9.2f}% {checkout.errors:>7}"
        )
        if trivial_wrk is not None:
            wrk_ratio = (
                checkout.per_second / trivial_wrk.per_second if trivial_wrk.per_second else 0.0
            )
            print(
                f"{'trivial, wrk -t2 -c32':<34} {trivial_wrk.requests:>7} "
                f"{trivial_wrk.per_second:>8.1f} {100:>9.1f}% {trivial_wrk.errors:>7}"
            )
            print(
                f"{'orders / trivial (wrk)':<34} {'':>7} {'':>8} {wrk_ratio * 100:>9.2f}%"
                f" <- the issue's measure (all {len(rounds_run)} rounds)"
            )
            print(f"\n{'round':<8} {'orders/s':>9} {'trivial (wrk) req/s':>20} {'ratio':>8}")
            for number, (rate, wall) in enumerate(rounds_run, 1):
                each = rate.per_second / wall.per_second if wall and wall.per_second else 0.0
                print(
                    f"{number:<8} {rate.per_second:>9.1f} {wall.per_second:>20.1f} "
                    f"{each * 100:>7.2f}%"
                )
        requests_per_order = 4 if with_pay_page else 3
        print(
            f"\nHTTP requests per order: {requests_per_order} ({steps}); "
            f"{checkout.per_second * requests_per_order:.1f} req/s"
        )
        print(f"\nunder load ({clients_n} clients), as each client waited for it:")
        print(f"{'request':<24} {'p50 ms':>8} {'p90 ms':>8}")
        waits: dict[str, list[float]] = defaultdict(list)
        for client in clients:
            if not isinstance(client, InProcessClient):
                for name, times in client.timings.items():
                    waits[name].extend(times)
        for name, times in waits.items():
            print(f"{name:<24} {percentile(times, 0.5):>8.1f} {percentile(times, 0.9):>8.1f}")
        if checkout.orders and meter.used:
            print("\nCPU per order while ordering (ms; the same whatever else the machine does):")
            for name, seconds in meter.used.items():
                print(f"  {name:<24} {seconds * 1000 / checkout.orders:>7.1f}")
            server = meter.used["gunicorn workers"] + meter.used["PostgreSQL"]
            print(f"  {'server (workers + DB)':<24} {server * 1000 / checkout.orders:>7.1f}")
        for error in checkout.first_errors:
            print(f"  error: {error}", file=sys.stderr)
        failed = checkout.errors or trivial.errors or (trivial_wrk.errors if trivial_wrk else 0)
        if failed:
            print(
                f"\nERROR: {checkout.errors} checkouts and {trivial.errors} trivial requests "
                "failed",
                file=sys.stderr,
            )
    print(
        f"\ndatabase: {found.orders} orders for {len(numbers)} successful checkouts "
        f"(warm-ups included), {sum(found.ordered.values())} units on order lines, "
        f"{sum(found.stock_taken.values())} taken from stock, "
        f"{sum(expected.values())} bought by the clients"
    )
    print(f"consistent: {'yes' if consistent else 'no'}")
    if not consistent:
        print(f"\nERROR: database and clients disagree: {found}", file=sys.stderr)
    return 1 if failed or not consistent else 0


if __name__ == "__main__":
    sys.exit(main())
