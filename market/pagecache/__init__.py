"""The storefront's page cache (issue 13): anonymous and signed-in storefront pages from a cache,
never older than the last change to what they show.

What is stored, per language, day and full path (with its query): the rendered page cut into the
parts that are the same for everyone and the personal parts (`regions`: the header menu, the
flashed messages, the home page's group-buys of the employee's unit; between `cache_mark` comments
in base.html and catalog/home.html). Every CSRF token in it is a placeholder (`placeholders`),
replaced by the visitor's own token when the page is served. An anonymous visitor without flashed
messages gets the whole stored page; a signed-in visitor (or one with flashed messages) gets the
stored parts around a fresh render of the personal parts (`pages`: `cached_page`, `render`).

When a stored page is still good: each entry names the versions it was rendered under
(`versions`), e.g. the directory's, the catalog's (which products are listed where) and one per
product it shows (price, stock, pictures). A change bumps those versions after its transaction
commits (`tracking`: session and engine events). Versions come from one counter (`v:seq`).

SimpleCache (no REDIS_URL) is one process's memory: correct for the embedded shop (one process);
several processes (gunicorn workers) need REDIS_URL (or another shared CACHE_TYPE), as in
production.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask

from market.extensions import cache
from market.pagecache.fragments import fragment
from market.pagecache.pages import Capture, cached_page, render
from market.pagecache.placeholders import csrf_token
from market.pagecache.regions import cache_mark, draw_region_with
from market.pagecache.tracking import install_listeners
from market.pagecache.versions import (
    ALL_PRODUCTS,
    CAMPAIGN,
    CATALOG,
    DIRECTORY,
    GROUP_BUYS,
    CacheVersions,
    LocalVersions,
    bump,
    listing_deps,
    product_deps,
    product_key,
    versions,
)

__all__ = [
    "ALL_PRODUCTS",
    "CAMPAIGN",
    "CATALOG",
    "DIRECTORY",
    "GROUP_BUYS",
    "Capture",
    "bump",
    "cached_page",
    "draw_region_with",
    "fragment",
    "init_app",
    "listing_deps",
    "product_deps",
    "product_key",
    "render",
    "versions",
]


def _release(app: Flask) -> str:
    """Changes when templates or translations do, so a deploy never serves an old page's
    markup (or old asset names) from a shared cache."""
    from market import ROOT

    digest = hashlib.sha1()
    templates = Path(app.template_folder or ROOT / "templates")
    for folder in (templates, ROOT / "market" / "translations"):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    for path in sorted(Path(app.static_folder or ROOT / "static").glob("*.json")):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()[:10]


def init_app(app: Flask) -> None:
    """After csrf.init_app (its csrf_token global is wrapped here)."""
    install_listeners()
    backend = app.extensions["cache"][cache]
    local = type(backend).__name__ in ("SimpleCache", "NullCache")
    app.extensions["pagecache_versions"] = LocalVersions() if local else CacheVersions()
    app.extensions["pagecache_release"] = _release(app)
    app.extensions.setdefault("pagecache_regions", {})  # draw_region_with: the layers above
    # Flask-WTF offers its csrf_token both as a global (macros) and from a context processor.
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.context_processor(lambda: {"csrf_token": csrf_token})
    app.jinja_env.globals["cache_mark"] = cache_mark
