"""gunicorn entry point for bench/storefront.py (`_wsgi:make_app()`): the real app on the
benchmark's database, plus a trivial route that measures what gunicorn, Flask and the app's request
hooks cost on their own, so each page's rate can be read as a ratio to it.

Configured by environment variables that storefront.py sets: BENCH_DATABASE_URL, BENCH_UPLOAD_DIR,
and BENCH_PAGECACHE_STATS=1 to count the page cache's hits in the shared cache (PAGECACHE_STATS);
everything else (REDIS_URL, LIMIT_SEARCH ...) as the app reads it from the environment.
"""

from __future__ import annotations

import os

from flask import Flask

from market import create_app
from market.security.access import Access, requires

TRIVIAL = "/_bench/trivial"


def add_trivial_route(app: Flask) -> Flask:
    @app.get(TRIVIAL)
    @requires(Access.PUBLIC)
    def bench_trivial() -> str:
        return "ok"

    return app


def make_app() -> Flask:
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": os.environ["BENCH_DATABASE_URL"],
            "UPLOAD_DIR": os.environ["BENCH_UPLOAD_DIR"],
            "SECRET_KEY": "bench",
            "PAGECACHE_STATS": os.environ.get("BENCH_PAGECACHE_STATS") == "1",
        }
    )
    return add_trivial_route(app)
