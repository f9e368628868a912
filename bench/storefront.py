"""Storefront throughput: requests per second of the home page, the biggest category listing and a
product page, served by gunicorn (sync workers) on the demo data, beside a trivial route served by
the same gunicorn in the same run; plus the number of SQL queries each page makes, and proof that a
listing's query count does not grow with the number of products it shows.

    .venv/bin/python bench/storefront.py [--duration 3] [--clients 8] [--workers 4]
                                         [--database-url postgresql://...]

Exits non-zero on errors only (failed requests, a query count that grows with the page size),
never because something is slow.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy import event, func, select

from market import create_app
from market.catalog.models import Category, Product, ProductStatus
from market.demo import default_data_dir, seed_demo
from market.extensions import db

# bench/ is not a package: import its gunicorn entry module from beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _wsgi import TRIVIAL, add_trivial_route

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
PRODUCT_CARD = re.compile(r'class="[^"]*\bproduct-card\b')
SMALL_PAGE = 4  # products per page for the "does the query count grow" comparison


@dataclass
class Rate:
    path: str
    requests: int
    errors: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# -- database --------------------------------------------------------------------------------------
def normalise_url(url: str) -> str:
    # The app's driver is psycopg 3; accept the usual postgres:// spellings as the app does.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


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
    with app.app_context():
        listed = Product.status == ProductStatus.LISTED
        biggest = db.session.scalar(
            select(Category.slug)
            .join(Product, (Product.category_id == Category.id) & listed)
            .group_by(Category.id)
            .order_by(func.count(Product.id).desc(), Category.id)
            .limit(1)
        )
        product_id = db.session.scalar(
            select(Product.id)
            .where(listed)
            .order_by((Product.name == "原生态蜂蜜").desc(), Product.id)
            .limit(1)
        )
    if biggest is None or product_id is None:
        raise RuntimeError("the demo data has no listed products")
    return [TRIVIAL, "/", f"/category/{biggest}", f"/products/{product_id}"]


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


def queries_for(app: Flask, path: str) -> tuple[int, int]:
    """(SQL statements, product cards shown) for one GET of `path`, after one warm-up GET."""
    client = app.test_client()
    client.get(path)
    with counting_queries(app) as statements:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code} in-process")
    cards = len(PRODUCT_CARD.findall(response.get_data(as_text=True)))
    return len(statements), cards


# -- gunicorn --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(host: str, port: int, path: str, timeout: float = 5.0) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@contextmanager
def gunicorn(database_url: str, upload_dir: Path, workers: int, log: Path) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": database_url,
        "BENCH_UPLOAD_DIR": str(upload_dir),
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
            command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
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


# -- load ------------------------------------------------------------------------------------------
def load(port: int, path: str, clients: int, duration: float) -> Rate:
    """`clients` threads, each requesting `path` back to back for `duration` seconds. Connections
    are kept alive where the server allows it; gunicorn's sync worker closes each one, and
    http.client then reconnects by itself, as a browser would."""
    for _ in range(clients * 2):  # warm every worker: imports, template compilation, pool
        get("127.0.0.1", port, path)
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
                    connection.request("GET", path)
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


# -- report ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per URL (max 60)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="a dedicated PostgreSQL database (seeded if empty); default: a fresh SQLite file",
    )
    args = parser.parse_args(argv)
    duration = min(max(args.duration, 0.5), 60.0)

    with tempfile.TemporaryDirectory(prefix="market-bench-") as tmp_name:
        tmp = Path(tmp_name)
        database_url = normalise_url(args.database_url or f"sqlite:///{tmp / 'bench.db'}")
        upload_dir = tmp / "uploads"
        app = build_app(database_url, upload_dir)
        seed(app)
        paths = pick_paths(app)
        small = build_app(database_url, upload_dir, PRODUCTS_PER_PAGE=SMALL_PAGE)

        backend = database_url.split(":", 1)[0]
        print(
            f"market storefront bench: {backend}, gunicorn {args.workers} sync workers, "
            f"{args.clients} clients, {duration:g} s per URL, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
        )

        counts = {path: queries_for(app, path)[0] for path in paths}
        with gunicorn(database_url, upload_dir, args.workers, tmp / "gunicorn.log") as port:
            rates = [load(port, path, args.clients, duration) for path in paths]

        trivial = rates[0].per_second or 1.0
        print()
        print(f"{'url':<22} {'requests':>9} {'req/s':>9} {'ratio':>7} {'SQL/req':>8} {'errors':>7}")
        for rate in rates:
            print(
                f"{rate.path:<22} {rate.requests:>9} {rate.per_second:>9.1f} "
                f"{rate.per_second / trivial:>7.2f} {counts[rate.path]:>8} {rate.errors:>7}"
            )

        # The same listings at two page sizes: a lazy load per product would show as more queries.
        print()
        print(f"{'listing':<22} {'per page':>9} {'shown':>7} {'SQL/req':>8}")
        grows = []
        for path in ["/products", paths[2]]:
            rows = []
            for per_page, listing_app in ((SMALL_PAGE, small), (24, app)):
                statements, shown = queries_for(listing_app, path)
                rows.append((statements, shown))
                print(f"{path:<22} {per_page:>9} {shown:>7} {statements:>8}")
            if rows[1][0] > rows[0][0]:
                grows.append(path)

    failures = sum(rate.errors for rate in rates)
    if failures:
        print(f"\nERROR: {failures} requests failed", file=sys.stderr)
    if grows:
        print(f"\nERROR: query count grows with the page size on {grows}", file=sys.stderr)
    return 1 if failures or grows else 0


if __name__ == "__main__":
    sys.exit(main())
