"""The storefront's page cache (issue 13): anonymous and signed-in storefront pages from a cache,
never older than the last change to what they show.

What is stored, per language, day and full path (with its query): the rendered page cut into the
parts that are the same for everyone and the personal parts (REGIONS: the header menu, the flashed
messages, the home page's group-buys of the employee's unit; between `cache_mark` comments in
base.html and catalog/home.html). Every CSRF token in it is a placeholder,
replaced by the visitor's own token when the page is served. An anonymous visitor without flashed
messages gets the whole stored page (the anonymous menu is stored too): one cache read, one
version read, no SQL, no template. A signed-in visitor (or one with flashed messages) gets the
stored parts around a fresh render of the personal parts (the catalog part needs no SQL).

When a stored page is still good: each entry names the versions it was rendered under, e.g. the
directory's, the catalog's (which products are listed where) and one per product it shows (price,
stock, pictures). A change bumps those versions after its transaction commits (`_Tracker`):
- ORM flushes, from the objects the session flushed (after_flush), by class;
- `session.execute(update(...))` and friends (do_orm_execute): the conditional stock UPDATE of
  order placement names its SKU, so a checkout bumps that product's version only; a statement
  whose rows cannot be told bumps the whole catalog;
- anything else that writes those tables on any connection (engine events: text SQL, bulk loads
  outside the session) bumps the whole of what that table feeds.
Versions come from one counter (`v:seq`): a page is stored only when none of its versions moved
past the counter as read before its queries ran, so a page rendered from data older than a
concurrent commit is never stored under that commit's versions.

SimpleCache (no REDIS_URL) is one process's memory: correct for the embedded shop (one process);
several processes (gunicorn workers) need REDIS_URL (or another shared CACHE_TYPE), as in
production.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import wraps
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Flask,
    Response,
    current_app,
    g,
    has_app_context,
    render_template,
    request,
    session,
)
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, TextClause
from sqlalchemy.sql.schema import Column

from market.extensions import cache

SHANGHAI = ZoneInfo("Asia/Shanghai")
CSRF_PLACEHOLDER = "__pagecache_csrf_" + secrets.token_hex(6) + "__"
_MARK = "<!--pagecache:" + secrets.token_hex(6) + ":{}-->"
MAX_KEY_PATH = 400  # longer paths (fuzzers, junk) are answered uncached

# Version keys: what a page's entry depends on.
DIRECTORY = "dir"  # towns, villages, co-ops, units, pairings, categories
CATALOG = "cat"  # which products are listed where, and in which order; synonyms
ALL_PRODUCTS = "prods"  # every product at once (a change whose rows cannot be told)
CAMPAIGN = "camp"  # campaigns, targets, the ledger and its rollups
SEQ = "seq"

DIRECTORY_TABLES = frozenset({"categories", "towns", "villages", "coops", "units", "pairings"})
PRODUCT_PART_TABLES = frozenset({"skus", "product_images", "bundle_parts"})
CAMPAIGN_TABLES = frozenset({"campaigns", "unit_targets"})
CAMPAIGN_PREFIX = "attribution_"


def product_key(product_id: int) -> str:
    return f"p:{product_id}"


def coarse_keys(table: str) -> set[str]:
    """What a change of unknown rows of `table` may alter."""
    if table in DIRECTORY_TABLES:
        return {DIRECTORY}
    if table == "products" or table in PRODUCT_PART_TABLES:
        return {CATALOG, ALL_PRODUCTS}
    if table == "search_synonyms":
        return {CATALOG}
    if table in CAMPAIGN_TABLES or table.startswith(CAMPAIGN_PREFIX):
        return {CAMPAIGN}
    return set()


def is_tracked(table: str) -> bool:
    return bool(coarse_keys(table))


TRACKED_NAMES = (
    DIRECTORY_TABLES
    | PRODUCT_PART_TABLES
    | CAMPAIGN_TABLES
    | {"products", "search_synonyms", "attribution"}
)
_DML = re.compile(r"^\s*(?:insert|update|delete|replace|merge|copy|truncate)\b", re.I)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def keys_of_sql(sql: str) -> set[str]:
    """Coarse keys for a statement known only by its text: every tracked table it names."""
    keys: set[str] = set()
    for word in set(_WORD.findall(sql.lower())):
        keys |= coarse_keys(word)
    return keys


# -- versions ---------------------------------------------------------------------------------
class LocalVersions:
    """Versions in this process's memory, beside a SimpleCache (which may prune its entries, and
    so cannot hold versions). Never pruned: a few ints per product."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._values: dict[str, int] = {}

    def seq(self) -> int:
        return self._seq

    def get(self, keys: list[str]) -> list[int]:
        values = self._values
        return [values.get(key, 0) for key in keys]

    def bump(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._seq += 1
            for key in keys:
                self._values[key] = self._seq


class CacheVersions:
    """Versions in the shared cache (Redis): `v:seq` is INCRed, each bumped key set to it. A key
    missing (never bumped, or evicted) is created at the current counter, which is above every
    value an entry could have recorded for it before; the counter itself starts at the clock's
    milliseconds, so a lost counter never comes back below a recorded value.

    On Redis a bump is one Lua script (atomic): two bumps at once can never leave a key at the
    older one's value (which would let a page rendered between them be kept under it)."""

    PREFIX = "v:"
    BUMP_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
local value = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do redis.call('SET', KEYS[i], value) end
return value
"""

    def __init__(self) -> None:
        self._scripts: dict[int, Any] = {}

    def _start_seq(self) -> None:
        cache.add(self.PREFIX + SEQ, int(time.time() * 1000), timeout=0)

    def seq(self) -> int:
        value = cache.get(self.PREFIX + SEQ)
        if value is None:
            self._start_seq()
            value = cache.get(self.PREFIX + SEQ)
        return int(value or 0)

    def get(self, keys: list[str]) -> list[int]:
        names = [self.PREFIX + key for key in keys]
        values = cache.get_many(*names)
        missing = [name for name, value in zip(names, values, strict=True) if value is None]
        if missing:
            now = self.seq()
            for name in missing:
                cache.add(name, now, timeout=0)
            values = cache.get_many(*names)
        return [int(value or 0) for value in values]

    def bump(self, keys: Iterable[str]) -> None:
        backend = cache.cache  # this app's backend (Flask-Caching's Cache has no inc of its own)
        client = getattr(backend, "_write_client", None)
        if client is not None and hasattr(client, "register_script"):
            script = self._scripts.get(id(client))
            if script is None:
                script = self._scripts[id(client)] = client.register_script(self.BUMP_SCRIPT)
            prefix = backend._get_prefix() + self.PREFIX
            names = [prefix + SEQ, *(prefix + key for key in sorted(keys))]
            script(keys=names, args=[int(time.time() * 1000)])
            return
        # Another shared backend (memcached ...): not atomic as a whole.
        self._start_seq()
        value = int(backend.inc(self.PREFIX + SEQ))
        cache.set_many({self.PREFIX + key: value for key in keys}, timeout=0)


def versions() -> LocalVersions | CacheVersions:
    return current_app.extensions["pagecache_versions"]


def bump(keys: Iterable[str]) -> None:
    keys = set(keys)
    if keys and has_app_context() and "pagecache_versions" in current_app.extensions:
        try:
            versions().bump(keys)
        except Exception:  # a cache outage must not fail a committed change; pages expire
            current_app.logger.exception("page cache: could not bump %s", sorted(keys))
            _drop_everything()


def _drop_everything() -> None:
    try:
        cache.clear()
    except Exception:
        current_app.logger.exception("page cache: could not clear either")


# -- what changed: session and engine events --------------------------------------------------
_PENDING = "pagecache_pending"
_SEEN = "market_pagecache_seen"  # execution option: this statement's keys are already counted
_session_of_connection: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pending(session: Session) -> set[str]:
    return session.info.setdefault(_PENDING, set())


def _table_name(obj: Any) -> str:
    table = getattr(type(obj), "__table__", None)
    return getattr(table, "name", "") if table is not None else ""


def _keys_of_object(obj: Any) -> set[str]:
    from sqlalchemy import inspect

    table = _table_name(obj)
    if table == "products":
        return {CATALOG, product_key(obj.id)} if obj.id is not None else coarse_keys(table)
    if table in PRODUCT_PART_TABLES:
        state = inspect(obj)
        history = state.attrs.product_id.history
        ids = {i for i in (*history.added, *history.unchanged, *history.deleted) if i is not None}
        if not ids and "product_id" in state.dict:
            ids = {state.dict["product_id"]}
        if not ids:
            return coarse_keys(table)
        return {product_key(i) for i in ids}
    return coarse_keys(table)


def _after_flush(session: Session, flush_context) -> None:
    keys: set[str] = set()
    for obj in session.new:
        keys |= _keys_of_object(obj)
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=False):
            keys |= _keys_of_object(obj)
    for obj in session.deleted:
        keys |= _keys_of_object(obj)
    if keys:
        _pending(session).update(keys)


def _ids_in_where(statement: Any, table_name: str) -> set[int] | None:
    """The ids a DML statement's WHERE restricts it to (`id = x`, `id IN (...)`, ANDed with
    anything), or None when it does not say."""
    where = getattr(statement, "whereclause", None)
    if where is None:
        return None
    clauses = (
        list(where.clauses)
        if isinstance(where, BooleanClauseList) and where.operator is operators.and_
        else [where]
    )
    for clause in clauses:
        if not isinstance(clause, BinaryExpression):
            continue
        left, right = clause.left, clause.right
        if not (
            isinstance(left, Column) and left.name == "id" and left.table.name == table_name
        ) or not isinstance(right, BindParameter):
            continue
        value = right.effective_value
        if clause.operator is operators.eq and isinstance(value, int):
            return {value}
        if (
            clause.operator is operators.in_op
            and isinstance(value, list | tuple)
            and all(isinstance(v, int) for v in value)
        ):
            return set(value)
    return None


def _product_ids_of_parts(session: Session, table_name: str, ids: set[int]) -> set[int] | None:
    from market.catalog.models import BundlePart, ProductImage, Sku

    model = {"skus": Sku, "product_images": ProductImage, "bundle_parts": BundlePart}[table_name]
    found: set[int] = set()
    unknown: set[int] = set()
    for row_id in ids:
        obj = session.identity_map.get(identity_key(model, row_id))
        product_id = obj.__dict__.get("product_id") if obj is not None else None
        if product_id is None:
            unknown.add(row_id)
        else:
            found.add(product_id)
    if unknown:
        from sqlalchemy import select

        found |= set(
            session.execute(
                select(model.product_id).where(model.id.in_(unknown)),
                execution_options={_SEEN: True, "autoflush": False},
            ).scalars()
        )
    return found


def _keys_of_statement(session: Session, statement: Any) -> set[str]:
    if isinstance(statement, TextClause):
        return keys_of_sql(statement.text) if _DML.match(statement.text) else set()
    table = getattr(statement, "table", None)
    name = getattr(table, "name", "")
    if not is_tracked(name):
        return set()
    if name == "products" or name in PRODUCT_PART_TABLES:
        if getattr(statement, "is_insert", False):
            return coarse_keys(name)
        ids = _ids_in_where(statement, name)
        if ids is None:
            return coarse_keys(name)
        if name == "products":
            return {CATALOG} | {product_key(i) for i in ids}
        product_ids = _product_ids_of_parts(session, name, ids)
        return {product_key(i) for i in product_ids} if product_ids else set()
    return coarse_keys(name)


def _do_orm_execute(state) -> None:
    if state.is_select:
        return
    statement = state.statement
    keys = _keys_of_statement(state.session, statement)
    if keys:
        _pending(state.session).update(keys)
    state.update_execution_options(**{_SEEN: True})


def _after_begin(session: Session, transaction, connection) -> None:
    _session_of_connection[connection] = session


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a released savepoint: the outer transaction may still roll back
    keys = session.info.pop(_PENDING, None)
    if keys:
        bump(keys)


def _after_transaction_end(session: Session, transaction) -> None:
    # The outermost transaction ended: committed keys were bumped, rolled back ones are dropped.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    """The net under everything else: a write to a tracked table on any connection that neither
    a flush nor do_orm_execute accounted for."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None and not isinstance(compiled.statement, TextClause):
        if not (context.isinsert or context.isupdate or context.isdelete):
            return
    elif not _DML.match(statement):
        return
    if context is not None and context.execution_options.get(_SEEN):
        return
    owner = _session_of_connection.get(conn)
    if owner is not None and owner._flushing:
        return  # after_flush names the rows
    keys = keys_of_sql(statement)
    if not keys:
        return
    if owner is not None and owner.in_transaction():
        _pending(owner).update(keys)
    else:
        conn.info.setdefault(_PENDING, set()).update(keys)


def _connection_commit(conn) -> None:
    keys = conn.info.pop(_PENDING, None)
    if keys:
        # Bumped now and again once the commit is done (checkin), so that a page rendered in
        # between from the old rows is not kept.
        conn.info["pagecache_committed"] = keys
        bump(keys)


def _connection_rollback(conn) -> None:
    conn.info.pop(_PENDING, None)


def _checkin(dbapi_connection, connection_record) -> None:
    keys = connection_record.info.pop("pagecache_committed", None)
    if keys:
        bump(keys)


_installed = False


def install_listeners() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _do_orm_execute)
    event.listen(Session, "after_begin", _after_begin)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_transaction_end", _after_transaction_end)
    event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
    event.listen(Engine, "commit", _connection_commit)
    event.listen(Engine, "rollback", _connection_rollback)
    from sqlalchemy.pool import Pool

    event.listen(Pool, "checkin", _checkin)


# -- serving pages ----------------------------------------------------------------------------
# The personal parts of a page, between `cache_mark(name)` and `cache_mark("/" + name)`: each is
# rendered again, from its own template, for every signed-in visitor (and the messages for every
# visitor who has some); the anonymous menu and sections are stored with the page.
REGIONS = {
    "nav": "_nav.html",  # who is signed in, their unread count, their menus
    "flashes": "_flashes.html",  # the visitor's messages: never stored
    "unit": "groupbuy/_home_section.html",  # the home page: the employee's unit's group-buys
}
_MARK_PATTERN = re.compile(re.escape(_MARK).replace(r"\{\}", r"(/?)(\w+)"))


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
    days = f"{date.today().isoformat()}/{datetime.now(UTC).astimezone(SHANGHAI).date()}"
    release = current_app.extensions["pagecache_release"]
    return f"page:{release}:{get_locale()}:{days}:{path}?{query}"


def _token(text: str) -> str:
    return text.replace(CSRF_PLACEHOLDER, generate_csrf()) if CSRF_PLACEHOLDER in text else text


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


def _render_region(name: str) -> str:
    if name == "flashes" and "_flashes" not in session:
        return ""
    if name == "nav":
        from market.accounts.menu import render_menu

        return render_menu()  # the person's stored menu (market/accounts/menu.py)
    return render_template(REGIONS[name])


def _anonymous_regions(regions: Iterable[str]) -> dict[str, str]:
    """The regions as every anonymous visitor sees them, with the token placeholder."""
    g.pagecache_capture = True
    try:
        return {name: render_template(REGIONS[name]) for name in regions if name != "flashes"}
    finally:
        g.pagecache_capture = False


def _assemble(parts: tuple[str, ...], regions: tuple[str, ...], shown: dict[str, str]) -> str:
    pieces = [parts[0]]
    for name, part in zip(regions, parts[1:], strict=True):
        pieces += [shown[name], part]
    return _token("".join(pieces))


def _serve(entry: Entry, capture: Capture) -> Response:
    if capture.anonymous and entry.anonymous is None:
        entry.anonymous = _anonymous_regions(entry.regions)
        cache.set(capture.key, entry)
    stored = entry.anonymous if capture.anonymous else None
    shown = {
        name: stored[name] if stored is not None and name in stored else _render_region(name)
        for name in entry.regions
    }
    body = _assemble(entry.parts, entry.regions, shown)
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
    g.pagecache_capture = True
    try:
        html = render_template(template, **context)
    finally:
        g.pagecache_capture = False
    split = _split(html)
    if split is None:  # a template without (well-formed) marks: serve it, store nothing
        g.pagecache_served = True
        return _unmark(html)
    parts, regions, shown = split
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
    return _assemble(parts, regions, dict(zip(regions, shown, strict=True)))


def _split(html: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
    """(the parts that are the same for everyone, the regions' names, the regions as rendered),
    or None unless every region is opened and closed in turn, once, with no other inside."""
    parts: list[str] = []
    regions: list[str] = []
    shown: list[str] = []
    position, open_name, open_at = 0, None, 0
    for match in _MARK_PATTERN.finditer(html):
        closing, name = match.group(1) == "/", match.group(2)
        if name not in REGIONS:
            return None
        if not closing:
            if open_name is not None or name in regions:
                return None
            parts.append(html[position : match.start()])
            open_name, open_at = name, match.end()
        else:
            if open_name != name:
                return None
            regions.append(name)
            shown.append(html[open_at : match.start()])
            open_name, position = None, match.end()
    if open_name is not None or not regions:
        return None
    parts.append(html[position:])
    return tuple(parts), tuple(regions), tuple(shown)


def _unmark(html: str) -> str:
    return _token(_MARK_PATTERN.sub("", html))


def cache_mark(name: str) -> Markup:
    """For templates: where a personal part (REGIONS) begins (`name`) and ends (`/name`), only
    while a page is stored."""
    return Markup(_MARK.format(name)) if g.get("pagecache_capture") else Markup("")


def _csrf_token() -> str:
    return CSRF_PLACEHOLDER if g.get("pagecache_capture") else generate_csrf()


def listing_deps(products: Iterable[Any]) -> list[str]:
    """A listing: the directory, which products are listed, and each product it shows."""
    return [DIRECTORY, CATALOG, ALL_PRODUCTS, *(product_key(p.id) for p in products)]


def product_deps(product_id: int) -> list[str]:
    return [DIRECTORY, ALL_PRODUCTS, product_key(product_id)]


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
    # Flask-WTF offers its csrf_token both as a global (macros) and from a context processor.
    app.jinja_env.globals["csrf_token"] = _csrf_token
    app.context_processor(lambda: {"csrf_token": _csrf_token})
    app.jinja_env.globals["cache_mark"] = cache_mark
