"""Storefront throughput (issue 13): requests per second of each storefront page, anonymous and
signed in, served by gunicorn (sync workers) on the demo data with the page cache in a Redis shared
by the workers, beside a trivial route served by the same gunicorn in the same run; the SQL each
page makes (rendered, and from the cache), the page cache's hit rate, and proof that a listing's
query count does not grow with the number of products it shows.

    .venv/bin/python bench/storefront.py [--duration 5] [--rounds 2] [--threads 2]
        [--connections 32] [--workers 4] [--database-url postgresql://postgres@host:5432 | sqlite]
        [--redis-url redis://127.0.0.1:6379/15]

Exits non-zero on errors only (failed or non-2xx requests, a query count that grows with the page
size), never because something is slow.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode

from flask import Flask
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from market import create_app
from market.catalog.models import Category, Product, ProductStatus
from market.demo import DEMO_PASSWORD, default_data_dir, seed_demo
from market.directory.models import Coop
from market.extensions import db

# bench/ is not a package: import its gunicorn entry module from beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wsgi import TRIVIAL, add_trivial_route

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
WRK = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None)
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"  # a db of its own: flushed before and after the run
CACHE_PREFIX = "market:"  # CACHE_KEY_PREFIX (market/config.py)
STATS_KEY = "pagecache_stats:"  # market/pagecache/, counted with PAGECACHE_STATS on
PRODUCT_CARD = re.compile(r'class="[^"]*\bproduct-card\b')
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SMALL_PAGE = 4  # products per page for the "does the query count grow" comparison
SIGNED_IN_EMAIL = "employee@example.com"  # the demo 单位职工
SIGNED_IN_NAME = "刘职工"
# Search has a per-address rate limit; every bench client shares one address, so it is raised (the
# limiter still counts each request in Redis, as in production).
BENCH_LIMIT_SEARCH = "100000000/minute"


@dataclass
class Rate:
    path: str
    requests: int
    errors: int
    seconds: float
    non_2xx: int = 0
    socket_errors: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def hit_rate(self) -> float | None:
        served = sum(self.hits.values())
        return self.hits.get("hit", 0) / served if served else None


# -- database --------------------------------------------------------------------------------------
def normalise_url(url: str) -> str:
    # The app's driver is psycopg 3; accept the usual postgres:// spellings as the app does.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


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


def build_app(database_url: str, upload_dir: Path, **overrides: object) -> Flask:
    # The same app and trivial route that gunicorn serves, so the query counts are of those pages.
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "UPLOAD_DIR": str(upload_dir),
            "SECRET_KEY": "bench",
            **overrides,
        }
    )
    return add_trivial_route(app)


def seed(app: Flask) -> None:
    # seed_demo does nothing on a database that already has the demo data.
    with app.app_context():
        db.create_all()
        seed_demo(default_data_dir())


def pick_paths(app: Flask) -> list[str]:
    """The trivial route, the home page, the category with the most listed products, and the page
    of a listed product (the honey of the e2e journey when it is there)."""
    pages = storefront_pages(app)
    return [TRIVIAL, pages["home"], pages["category"], pages["product"]]


def storefront_pages(app: Flask) -> dict[str, str]:
    """Every storefront page, by name: home, the biggest category, the honey's product page, its
    village, the search for 蜂蜜 and the public campaign page (the market has no public co-op
    page: a co-op is shown on its village's page)."""
    with app.app_context():
        listed = Product.status == ProductStatus.LISTED
        biggest = db.session.scalar(
            select(Category.slug)
            .join(Product, (Product.category_id == Category.id) & listed)
            .group_by(Category.id)
            .order_by(func.count(Product.id).desc(), Category.id)
            .limit(1)
        )
        row = db.session.execute(
            select(Product.id, Coop.village_id)
            .join(Coop, Coop.id == Product.coop_id)
            .where(listed)
            .order_by((Product.name == "原生态蜂蜜").desc(), Product.id)
            .limit(1)
        ).first()
    if biggest is None or row is None:
        raise RuntimeError("the demo data has no listed products")
    product_id, village_id = row
    return {
        "home": "/",
        "category": f"/category/{biggest}",
        "product": f"/products/{product_id}",
        "village": f"/villages/{village_id}",
        "search 蜂蜜": "/products?" + urlencode({"q": "蜂蜜"}, quote_via=quote),
        "campaign": "/campaign",
    }


# -- SQL query counts (in-process) -----------------------------------------------------------------
@contextmanager
def counting_queries(app: Flask) -> Iterator[list[str]]:
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def queries_for(app: Flask, path: str, client=None) -> tuple[int, int]:
    """(SQL statements, product cards shown) for one GET of `path`, after one warm-up GET: from
    the cache if the app has one, else rendered."""
    client = client or app.test_client()
    client.get(path)
    with counting_queries(app) as statements:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code} in-process")
    cards = len(PRODUCT_CARD.findall(response.get_data(as_text=True)))
    return len(statements), cards


def sign_in_test_client(app: Flask):
    client = app.test_client()
    response = client.post("/login", data={"email": SIGNED_IN_EMAIL, "password": DEMO_PASSWORD})
    if response.status_code not in (302, 303):
        raise RuntimeError(f"in-process sign-in answered {response.status_code}")
    client.get(TRIVIAL)  # the welcome message is shown once: not on the measured pages
    return client


# -- gunicorn --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(host: str, port: int, path: str, timeout: float = 5.0, headers=None) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@contextmanager
def gunicorn(
    database_url: str,
    upload_dir: Path,
    workers: int,
    log: Path,
    *,
    env: dict[str, str] | None = None,
) -> Iterator[int]:
    port = free_port()
    environment = {
        **os.environ,
        "BENCH_DATABASE_URL": database_url,
        "BENCH_UPLOAD_DIR": str(upload_dir),
        **(env or {}),
    }
    command = [
        str(GUNICORN),
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--pythonpath",
        str(BENCH_DIR),
        "--log-level",
        "warning",
        "_wsgi:make_app()",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            wait_until_serving(process, port, log)
            yield port
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_serving(process: subprocess.Popen, port: int, log: Path) -> None:
    # Polling is fine here: this is start-up of a separate process, not a test's timing.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get("127.0.0.1", port, "/healthz", timeout=2) == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz within 30 s:\n{log.read_text()}")


def sign_in(port: int) -> str:
    """A demo employee's session cookie, through the real sign-in form (GET /login for the CSRF
    token, POST /login), after one page that shows the welcome message once."""
    jar: dict[str, str] = {}

    def request(method: str, path: str, body: str | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            html = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(header)
                for name, morsel in cookie.items():
                    jar[name] = morsel.value
            return response.status, html
        finally:
            connection.close()

    status, html = request("GET", "/login")
    match = CSRF_INPUT.search(html)
    if status != 200 or match is None:
        raise RuntimeError(f"GET /login answered {status} without a csrf_token")
    form = {"csrf_token": match.group(1), "email": SIGNED_IN_EMAIL, "password": DEMO_PASSWORD}
    status, _html = request("POST", "/login", urlencode(form))
    if status not in (302, 303):
        raise RuntimeError(f"POST /login answered {status}")
    request("GET", TRIVIAL)  # the welcome message is flashed once: shown (and gone) here
    status, html = request("GET", "/")
    if status != 200 or SIGNED_IN_NAME not in html:
        raise RuntimeError("the signed-in session cookie does not sign in")
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# -- load ------------------------------------------------------------------------------------------
def warm(port: int, path: str, count: int, headers: dict[str, str] | None = None) -> None:
    for _ in range(count):  # every worker: imports, template compilation, pool, the cache entry
        get("127.0.0.1", port, path, headers=headers)


def load(
    port: int, path: str, clients: int, duration: float, headers: dict[str, str] | None = None
) -> Rate:
    """`clients` threads, each requesting `path` back to back for `duration` seconds. Connections
    are kept alive where the server allows it; gunicorn's sync worker closes each one, and
    http.client then reconnects by itself, as a browser would."""
    warm(port, path, clients * 2, headers)
    counts = [0] * clients
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = 0.0

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        start.wait()
        try:
            while time.monotonic() < stop_at:
                try:
                    connection.request("GET", path, headers=headers or {})
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    errors[index] += 1
                    connection.close()
                    continue
                if response.status == 200:
                    counts[index] += 1
                else:
                    errors[index] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at = began + duration
    start.wait()
    for thread in threads:
        thread.join()
    return Rate(path, sum(counts), sum(errors), time.monotonic() - began)


WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def load_wrk(
    port: int,
    path: str,
    threads: int,
    connections: int,
    duration: float,
    headers: dict[str, str] | None = None,
) -> Rate:
    """wrk on `path` for `duration` seconds. Non-2xx answers (wrk counts 3xx with them) and
    socket errors other than reads count as errors: gunicorn's sync worker closes each connection
    after its answer, which wrk may see as a read error before it reconnects."""
    warm(port, path, connections // 4 + 4, headers)
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    output = done.stdout + done.stderr
    total = WRK_TOTAL.search(output)
    if done.returncode != 0 or total is None:
        raise RuntimeError(f"wrk failed on {path}:\n{output}")
    requests = int(total.group(1))
    seconds = float(total.group(2)) * UNITS[total.group(3)]
    non_2xx = int(m.group(1)) if (m := WRK_NON_2XX.search(output)) else 0
    sockets = [int(n) for n in m.groups()] if (m := WRK_SOCKET.search(output)) else [0, 0, 0, 0]
    connect, _read, write, timeout = sockets
    return Rate(
        path,
        requests - non_2xx,
        non_2xx + connect + write + timeout,
        seconds,
        non_2xx=non_2xx,
        socket_errors=sum(sockets),
    )


class HitCounter:
    """The page cache's shared counts (market/pagecache/, PAGECACHE_STATS): one INCR per page
    served, by hit / miss / bypass, read before and after each URL."""

    def __init__(self, redis_url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(redis_url)

    def read(self) -> dict[str, int]:
        names = ("hit", "miss", "bypass")
        values = self.redis.mget([CACHE_PREFIX + STATS_KEY + name for name in names])
        return {name: int(value or 0) for name, value in zip(names, values, strict=True)}

    def flush(self) -> None:
        self.redis.flushdb()


# -- report ----------------------------------------------------------------------------------------
@dataclass
class Page:
    name: str
    path: str
    signed_in: bool
    sql_cold: int = 0
    sql_warm: int = 0
    rates: list[Rate] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({'signed in' if self.signed_in else 'anonymous'})"


def in_process_counts(app: Flask, cold_app: Flask, pages: list[Page]) -> None:
    """SQL per request, in-process: cold = rendered (an app without a cache, after one warm-up
    request), warm = served from the cache (the second request of an app with one)."""
    anonymous = {False: app.test_client(), True: sign_in_test_client(app)}
    cold = {False: cold_app.test_client(), True: sign_in_test_client(cold_app)}
    for page in pages:
        page.sql_cold = queries_for(cold_app, page.path, cold[page.signed_in])[0]
        page.sql_warm = queries_for(app, page.path, anonymous[page.signed_in])[0]


def run_round(
    port: int,
    pages: list[Page],
    cookie: str,
    args: argparse.Namespace,
    counter: HitCounter | None,
) -> None:
    for page in pages:
        headers = {"Cookie": cookie} if page.signed_in else None
        if counter is not None:
            warm(port, page.path, args.connections // 4 + 4, headers)
            before = counter.read()
        if WRK:
            rate = load_wrk(port, page.path, args.threads, args.connections, args.duration, headers)
        else:
            rate = load(port, page.path, args.connections, args.duration, headers)
        if counter is not None:
            after = counter.read()
            rate.hits = {name: after[name] - before.get(name, 0) for name in after}
        page.rates.append(rate)


def report(pages: list[Page], rounds: int) -> None:
    trivial = pages[0]
    header = f"{'page':<30} " + " ".join(
        f"{'req/s #' + str(r + 1):>10} {'% triv':>7}" for r in range(rounds)
    )
    print()
    print(header + f" {'SQL cold':>8} {'warm':>5} {'errors':>7} {'hit rate':>8}")
    for page in pages:
        cells = []
        for index, rate in enumerate(page.rates):
            base = trivial.rates[index].per_second or 1.0
            cells.append(f"{rate.per_second:>10.0f} {100 * rate.per_second / base:>6.1f}%")
        errors = sum(rate.errors for rate in page.rates)
        hits = [rate.hit_rate for rate in page.rates if rate.hit_rate is not None]
        hit = f"{100 * min(hits):.1f}%" if hits and page.path != TRIVIAL else "-"
        print(
            f"{page.label:<30} {' '.join(cells)} {page.sql_cold:>8} {page.sql_warm:>5} "
            f"{errors:>7} {hit:>8}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per URL (max 60)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every URL")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (-c); threads without wrk"
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="the PostgreSQL server where a throwaway database is created and dropped "
        f"(default {DEFAULT_SERVER}), or 'sqlite' for a file in a temporary folder",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS,
        help=f"the workers' shared page cache; FLUSHED before and after (default {DEFAULT_REDIS})",
    )
    parser.add_argument(
        "--no-hit-counts",
        action="store_true",
        help="do not count the cache's hits (PAGECACHE_STATS costs one Redis INCR per page)",
    )
    args = parser.parse_args(argv)
    args.duration = min(max(args.duration, 1.0), 60.0)
    args.rounds = min(max(args.rounds, 1), 5)

    counter = None if args.no_hit_counts else HitCounter(args.redis_url)
    flush = HitCounter(args.redis_url).flush
    with tempfile.TemporaryDirectory(prefix="market-bench-") as tmp_name:
        tmp = Path(tmp_name)
        upload_dir = tmp / "uploads"
        with fresh_database(args.database_url, tmp) as database_url:
            quiet = {"REDIS_URL": "", "LIMIT_SEARCH": BENCH_LIMIT_SEARCH}
            local = {**quiet, "CACHE_TYPE": "SimpleCache", "WTF_CSRF_ENABLED": False}
            app = build_app(database_url, upload_dir, **local)
            seed(app)
            named = storefront_pages(app)
            cold_app = build_app(database_url, upload_dir, **{**local, "CACHE_TYPE": "NullCache"})
            pages = [Page("trivial route", TRIVIAL, False)]
            for signed_in in (False, True):
                pages += [Page(name, path, signed_in) for name, path in named.items()]
            in_process_counts(app, cold_app, pages)

            backend = make_url(database_url).get_backend_name()
            client = (
                f"wrk -t{args.threads} -c{args.connections}"
                if WRK
                else f"NO wrk FOUND: the Python thread client, {args.connections} threads"
            )
            print(
                f"market storefront bench: {backend}, gunicorn {args.workers} sync workers, "
                f"page cache in Redis {args.redis_url}, {client}, {args.duration:g} s per URL, "
                f"{args.rounds} rounds, Python {platform.python_version()}, {os.cpu_count()} CPUs"
            )
            print("pages: " + ", ".join(f"{name} {path}" for name, path in named.items()))
            print("(no public co-op page: the market shows co-ops on their village's page)")

            env = {
                "REDIS_URL": args.redis_url,
                "LIMIT_SEARCH": BENCH_LIMIT_SEARCH,
                "BENCH_PAGECACHE_STATS": "0" if args.no_hit_counts else "1",
            }
            flush()
            try:
                with gunicorn(
                    database_url, upload_dir, args.workers, tmp / "gunicorn.log", env=env
                ) as port:
                    cookie = sign_in(port)
                    for _ in range(args.rounds):
                        run_round(port, pages, cookie, args, counter)
            finally:
                flush()
            report(pages, args.rounds)
            print(
                "\nSQL cold: rendered (no cache); warm: served from the cache (in-process). "
                "hit rate: the lowest round's share of page-cache hits among the pages served."
            )

            # The same listings at two page sizes, rendered: a lazy load per product would show as
            # more queries.
            small = build_app(
                database_url,
                upload_dir,
                **{**local, "CACHE_TYPE": "NullCache", "PRODUCTS_PER_PAGE": SMALL_PAGE},
            )
            print()
            print(f"{'listing (rendered)':<22} {'per page':>9} {'shown':>7} {'SQL/req':>8}")
            grows = []
            for path in ["/products", named["category"]]:
                rows = []
                for per_page, listing_app in ((SMALL_PAGE, small), (24, cold_app)):
                    statements, shown = queries_for(listing_app, path)
                    rows.append((statements, shown))
                    print(f"{path:<22} {per_page:>9} {shown:>7} {statements:>8}")
                if rows[1][0] > rows[0][0]:
                    grows.append(path)
            for each in (app, cold_app, small):
                with each.app_context():
                    db.engine.dispose()

    failures = sum(rate.errors for page in pages for rate in page.rates)
    if failures:
        print(f"\nERROR: {failures} requests failed or were not 2xx", file=sys.stderr)
    if grows:
        print(f"\nERROR: query count grows with the page size on {grows}", file=sys.stderr)
    return 1 if failures or grows else 0


if __name__ == "__main__":
    sys.exit(main())
