"""The signed-in header menu (templates/_nav.html), drawn once per person and page, not per request.

What the menu shows of a signed-in person is read from the request's own, freshly loaded user
(market/accounts/sessions.py `load`): their id and name, and which `Access` they hold (from their
flags and memberships). Those, the language, the page's endpoint and the script root are the
cache key, so a change of name or role shows on the very next request without anything to bump,
and a person is only ever served a menu drawn for their own id. What changes from one request to
the next is left out of the stored menu as placeholders and filled in per request: the unread
badge (`_nav_unread.html`, kept per language and count), the search box's `q`, the path the
language switch returns to, and the CSRF token (the page cache's placeholder). Anonymous visitors
get `_nav.html` rendered as before (their stored pages carry it already).

Anything else the menu comes to depend on must join the key (`_key`), or be a placeholder.
"""

from __future__ import annotations

import secrets
import threading

from flask import Flask, current_app, g, render_template, request
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup, escape

from market import pagecache
from market.pagecache import placeholders
from market.security.access import Access, allows

MAX_ENTRIES = 2000  # menus kept per process (a few KB each); all dropped when full
_TOKEN = secrets.token_hex(6)
UNREAD = f"__menu_unread_{_TOKEN}__"
QUERY = f"__menu_q_{_TOKEN}__"
PATH = f"__menu_path_{_TOKEN}__"
_ACCESSES = tuple(Access)


class _Store:
    def __init__(self) -> None:
        self.menus: dict[tuple, str] = {}
        self.badges: dict[tuple, str] = {}
        self.lock = threading.Lock()

    def put(self, table: dict, key: tuple, value: str) -> None:
        with self.lock:
            if len(table) >= MAX_ENTRIES:
                table.clear()
            table[key] = value


def _store() -> _Store:
    return current_app.extensions["menu_cache"]


def _capturing() -> bool:
    return g.get("menu_capture", False)


def menu_unread() -> Markup:
    """For _nav.html: the notifications link with its unread badge."""
    if _capturing():
        return Markup(UNREAD)
    return _badge()


def menu_query() -> str:
    """For _nav.html: what the search box shows (the `q` of this request)."""
    return Markup(QUERY) if _capturing() else request.args.get("q", "")


def menu_path() -> str:
    """For _nav.html: where the language switch returns to (this request's path and query)."""
    return Markup(PATH) if _capturing() else request.full_path


def _badge() -> Markup:
    from market.notifications.views import unread_notification_count

    unread = unread_notification_count()
    key = (str(get_locale()), request.script_root, unread)
    store = _store()
    html = store.badges.get(key)
    if html is None:
        html = render_template("_nav_unread.html", unread=unread)
        store.put(store.badges, key, html)
    return Markup(html)


def _key(user) -> tuple:
    return (
        user.id,
        user.name,
        tuple(allows(user, access) for access in _ACCESSES),
        str(get_locale()),
        request.endpoint,
        request.script_root,
    )


def _draw() -> str:
    """_nav.html with the per-request parts as placeholders (the CSRF token too)."""
    g.menu_capture = True
    try:
        with placeholders.storing():
            return render_template("_nav.html")
    finally:
        g.menu_capture = False


def render_menu() -> Markup:
    """The header menu of this request (base.html, and the page cache's `nav` region)."""
    user = current_user
    if not user.is_authenticated:
        return Markup(render_template("_nav.html"))
    key = _key(user)
    store = _store()
    html = store.menus.get(key)
    if html is None:
        html = _draw()
        store.put(store.menus, key, html)
    html = (
        html.replace(UNREAD, _badge())
        .replace(QUERY, escape(request.args.get("q", "")))
        .replace(PATH, escape(request.full_path))
    )
    if not placeholders.is_storing():  # a page being stored keeps the placeholder
        html = placeholders.fill_token(html)
    return Markup(html)


def init_app(app: Flask) -> None:
    app.extensions["menu_cache"] = _Store()
    pagecache.draw_region_with(app, "nav", render_menu)  # a signed-in page's menu, from here
    app.jinja_env.globals.update(
        personal_menu=render_menu,
        menu_unread=menu_unread,
        menu_query=menu_query,
        menu_path=menu_path,
    )
