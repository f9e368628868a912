"""Serving storefront pages from the cache: `cached_page` around a view, `render` inside it.

An anonymous visitor without flashed messages gets the whole stored page (the anonymous menu is
stored too): one cache read, one version read, no SQL, no template. A signed-in visitor (or one
with flashed messages) gets the stored parts around a fresh render of the personal parts
(market/pagecache/regions.py; the catalog part needs no SQL).

A page is stored only when none of its versions moved past the counter as read before its queries
ran, so a page rendered from data older than a concurrent commit is never stored under that
commit's versions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Response, current_app, g, render_template, request, session
from flask_babel import get_locale

from market.clock import today
from market.extensions import cache
from market.pagecache.placeholders import storing
from market.pagecache.regions import anonymous_regions, assemble, render_region, split, unmark
from market.pagecache.versions import versions

MAX_KEY_PATH = 400  # longer paths (fuzzers, junk) are answered uncached


@dataclass
class Entry:
    deps: tuple[str, ...]
    versions: tuple[int, ...]
    parts: tuple[str, ...]  # what is the same for everyone: one more than the regions
    regions: tuple[str, ...]  # the personal parts' names, in page order, between the parts
    anonymous: dict[str, str] | None  # the regions (but flashes) as anonymous visitors see them


@dataclass
class Capture:
    key: str
    seq: int
    anonymous: bool
    status: str = "miss"


STATS = {"hit": 0, "miss": 0, "bypass": 0}  # this process's counts
STATS_KEY = "pagecache_stats:"  # + status: counts shared by every process, when counted at all


def _count(status: str) -> None:
    """One served page, by how: this process's STATS, and with PAGECACHE_STATS on (the storefront
    benchmark's hit rate over several workers) one INCR in the shared cache as well."""
    STATS[status] = STATS.get(status, 0) + 1
    if current_app.config.get("PAGECACHE_STATS"):
        with contextlib.suppress(Exception):  # counting must never fail a page
            cache.cache.inc(STATS_KEY + status)


def _looks_anonymous() -> bool:
    """Signed out for sure, without loading anyone: no user in the session, no remember-me."""
    return "_user_id" not in session and (
        current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") not in request.cookies
    )


def _page_key() -> str | None:
    if request.method != "GET":
        return None
    path = request.path
    query = request.query_string.decode("latin-1")
    if len(path) + len(query) > MAX_KEY_PATH:
        return None
    # A page showing "today" (pairings, the campaign) is kept for that Beijing day only.
    day = today().isoformat()
    release = current_app.extensions["pagecache_release"]
    return f"page:{release}:{get_locale()}:{day}:{path}?{query}"


def _finish(response: Response, capture: Capture) -> Response:
    response.vary.add("Cookie")
    response.vary.add("Accept-Language")
    if capture.anonymous:
        # Private: every page carries the visitor's own CSRF token (and may set their session
        # cookie), so no shared cache may keep it; the browser asks again each time.
        response.headers["Cache-Control"] = "private, no-cache"
    # Signed in: market/security/headers.py makes it no-store, as every signed-in page.
    response.headers["X-Cache"] = capture.status
    _count(capture.status)
    return response


def _serve(entry: Entry, capture: Capture) -> Response:
    if capture.anonymous and entry.anonymous is None:
        entry.anonymous = anonymous_regions(entry.regions)
        cache.set(capture.key, entry)
    stored = entry.anonymous if capture.anonymous else None
    shown = {
        name: stored[name] if stored is not None and name in stored else render_region(name)
        for name in entry.regions
    }
    body = assemble(entry.parts, entry.regions, shown)
    return _finish(Response(body, 200, mimetype="text/html"), capture)


def cached_page(view: Callable) -> Callable:
    """Serve the view's page from the cache when it is still good; otherwise the view renders
    it with `render` (which stores it) or answers otherwise (not stored)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = _page_key()
        if key is None:
            _count("bypass")
            return view(*args, **kwargs)
        anonymous = _looks_anonymous()
        capture = Capture(key=key, seq=0, anonymous=anonymous)
        try:
            entry = cache.get(key)
            if entry is not None and tuple(versions().get(list(entry.deps))) == entry.versions:
                capture.status = "hit"
                return _serve(entry, capture)
            capture.seq = versions().seq()  # read before the view's queries
        except Exception:  # the cache is down: the page is rendered as without one
            current_app.logger.exception("page cache unavailable")
            capture.status = "bypass"
            _count("bypass")
            return view(*args, **kwargs)
        g.pagecache = capture
        response = current_app.make_response(view(*args, **kwargs))
        if getattr(g, "pagecache_served", False):
            return _finish(response, capture)
        return response

    return wrapper


def render(template: str, deps: Iterable[str], **context: Any) -> Response | str:
    """Render a storefront page that is the same for everyone (status 200) and store it under
    `deps`; outside `cached_page` (or when the cache is off) this is render_template."""
    capture: Capture | None = g.get("pagecache")
    if capture is None:
        return render_template(template, **context)
    with storing():
        html = render_template(template, **context)
    cut = split(html)
    if cut is None:  # a template without (well-formed) marks: serve it, store nothing
        g.pagecache_served = True
        return unmark(html)
    parts, regions, shown = cut
    deps = tuple(sorted(set(deps)))
    try:
        found = tuple(versions().get(list(deps)))
        if all(v <= capture.seq for v in found):
            anonymous = (
                {name: html for name, html in zip(regions, shown, strict=True) if name != "flashes"}
                if capture.anonymous
                else None
            )
            cache.set(capture.key, Entry(deps, found, parts, regions, anonymous))
    except Exception:
        current_app.logger.exception("page cache: could not store %s", capture.key)
    g.pagecache_served = True
    return assemble(parts, regions, dict(zip(regions, shown, strict=True)))
