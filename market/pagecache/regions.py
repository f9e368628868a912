"""The personal parts of a stored page (REGIONS), between `cache_mark(name)` and
`cache_mark("/" + name)` comments in base.html and catalog/home.html: cut out when a page is
stored, drawn again for each visitor who needs their own."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable

from flask import Flask, current_app, render_template, session
from markupsafe import Markup

from market.pagecache.placeholders import fill_token, is_storing, storing

_MARK = "<!--pagecache:" + secrets.token_hex(6) + ":{}-->"

# Each is rendered again, from its own template, for every signed-in visitor (and the messages for
# every visitor who has some); the anonymous menu and sections are stored with the page.
REGIONS = {
    "nav": "_nav.html",  # who is signed in, their unread count, their menus
    "flashes": "_flashes.html",  # the visitor's messages: never stored
    "unit": "groupbuy/_home_section.html",  # the home page: the employee's unit's group-buys
}
_MARK_PATTERN = re.compile(re.escape(_MARK).replace(r"\{\}", r"(/?)(\w+)"))


def draw_region_with(app: Flask, name: str, draw: Callable[[], str]) -> None:
    """Draw a region for a visitor with `draw()` rather than its template: the layer above
    registers it (the nav: market/accounts/menu.py, the person's stored menu), so the page cache
    imports nothing of it."""
    if name not in REGIONS:
        raise ValueError(f"no such region of a stored page: {name}")
    app.extensions.setdefault("pagecache_regions", {})[name] = draw


def render_region(name: str) -> str:
    """A region as this visitor sees it."""
    if name == "flashes" and "_flashes" not in session:
        return ""
    draw = current_app.extensions.get("pagecache_regions", {}).get(name)
    if draw is not None:
        return draw()
    return render_template(REGIONS[name])


def anonymous_regions(regions: Iterable[str]) -> dict[str, str]:
    """The regions as every anonymous visitor sees them, with the token placeholder."""
    with storing():
        return {name: render_template(REGIONS[name]) for name in regions if name != "flashes"}


def assemble(parts: tuple[str, ...], regions: tuple[str, ...], shown: dict[str, str]) -> str:
    pieces = [parts[0]]
    for name, part in zip(regions, parts[1:], strict=True):
        pieces += [shown[name], part]
    return fill_token("".join(pieces))


def split(html: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None:
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


def unmark(html: str) -> str:
    return fill_token(_MARK_PATTERN.sub("", html))


def cache_mark(name: str) -> Markup:
    """For templates: where a personal part (REGIONS) begins (`name`) and ends (`/name`), only
    while a page is stored."""
    return Markup(_MARK.format(name)) if is_storing() else Markup("")
