"""The page cache's version keys (what a stored page depends on) and the versions themselves: in
this process's memory beside a SimpleCache, or in the shared cache (Redis, one Lua script a bump).
A change bumps its keys once its transaction commits (market/pagecache/tracking.py); a stored page
is good while every version it names is the one it was rendered under."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from flask import current_app, has_app_context

from market.extensions import cache

# Version keys: what a page's entry depends on.
DIRECTORY = "dir"  # towns, villages, co-ops, units, pairings, categories
CATALOG = "cat"  # which products are listed where, and in which order; synonyms
ALL_PRODUCTS = "prods"  # every product at once (a change whose rows cannot be told)
CAMPAIGN = "camp"  # campaigns, targets, the ledger and its rollups
GROUP_BUYS = "gb"  # group-buys, their items, tiers and participations (the home page's section)
SEQ = "seq"

DIRECTORY_TABLES = frozenset({"categories", "towns", "villages", "coops", "units", "pairings"})
PRODUCT_PART_TABLES = frozenset({"skus", "product_images", "bundle_parts"})
# Certificates show as badges on product cards and pages (market/certificates/): a decision is
# rare, so it renews every storefront page. Their expiry needs no bump: pages are kept per day.
CERTIFICATE_TABLES = frozenset({"certificates", "certificate_products"})
CAMPAIGN_TABLES = frozenset({"campaigns", "unit_targets"})
GROUP_BUY_TABLES = frozenset(
    {"group_buys", "group_buy_items", "group_buy_tiers", "participations", "participation_lines"}
)
CAMPAIGN_PREFIX = "attribution_"


def product_key(product_id: int) -> str:
    return f"p:{product_id}"


def coarse_keys(table: str) -> set[str]:
    """What a change of unknown rows of `table` may alter."""
    if table in DIRECTORY_TABLES:
        return {DIRECTORY}
    if table == "products" or table in PRODUCT_PART_TABLES or table in CERTIFICATE_TABLES:
        return {CATALOG, ALL_PRODUCTS}
    if table == "search_synonyms":
        return {CATALOG}
    if table in CAMPAIGN_TABLES or table.startswith(CAMPAIGN_PREFIX):
        return {CAMPAIGN}
    if table in GROUP_BUY_TABLES:
        return {GROUP_BUYS}
    return set()


def is_tracked(table: str) -> bool:
    return bool(coarse_keys(table))


TRACKED_NAMES = (
    DIRECTORY_TABLES
    | PRODUCT_PART_TABLES
    | CAMPAIGN_TABLES
    | CERTIFICATE_TABLES
    | GROUP_BUY_TABLES
    | {"products", "search_synonyms", "attribution"}
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def keys_of_sql(sql: str) -> set[str]:
    """Coarse keys for a statement known only by its text: every tracked table it names."""
    keys: set[str] = set()
    for word in set(_WORD.findall(sql.lower())):
        keys |= coarse_keys(word)
    return keys


def listing_deps(products: Iterable[Any]) -> list[str]:
    """A listing: the directory, which products are listed, and each product it shows."""
    return [DIRECTORY, CATALOG, ALL_PRODUCTS, *(product_key(p.id) for p in products)]


def product_deps(product_id: int) -> list[str]:
    return [DIRECTORY, ALL_PRODUCTS, product_key(product_id)]


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
