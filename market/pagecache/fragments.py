"""A personal part of a page that many visitors share (the home page's group-buys of a unit):
stored, like a page, under the version keys it depends on, and kept at most `timeout` seconds
for text that ages by itself (the time left). A change bumps its keys after commit; a part drawn
while one was committing is served but not stored (its versions passed the sequence read before
drawing), as pages.render does."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import current_app
from flask_babel import get_locale

from market.extensions import cache
from market.pagecache.versions import versions

PREFIX = "frag:"


def fragment(key: str, draw: Callable[[], tuple[str, Iterable[str]]], timeout: int) -> str:
    """The part named `key` (per release and language): the stored one while every version it
    was drawn under holds, else `draw()` -> (html, the version keys it depends on)."""
    stored_as = f"{PREFIX}{current_app.extensions['pagecache_release']}:{get_locale()}:{key}"
    try:
        entry = cache.get(stored_as)
        if entry is not None:
            deps, found, html = entry
            if tuple(versions().get(list(deps))) == found:
                return html
        seq = versions().seq()
    except Exception:  # a cache outage: draw it, store nothing
        current_app.logger.exception("page cache: could not read the part %s", key)
        return draw()[0]
    html, wanted = draw()
    deps = tuple(sorted(set(wanted)))
    try:
        found = tuple(versions().get(list(deps)))
        if all(value <= seq for value in found):
            cache.set(stored_as, (deps, found, html), timeout=timeout)
    except Exception:
        current_app.logger.exception("page cache: could not store the part %s", key)
    return html
