"""What a page being stored holds in place of the visitor's own: the CSRF token. Used by the page
cache and by the signed-in menu (market/accounts/menu.py), which stores its menus the same way; it
imports this module, and the page cache imports nothing of the menu's (it registers its drawing
with `draw_region_with`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from flask import g
from flask_wtf.csrf import generate_csrf

CSRF_PLACEHOLDER = "__pagecache_csrf_" + secrets.token_hex(6) + "__"


def is_storing() -> bool:
    """A page (or a menu) is being rendered to be stored: per-visitor parts are placeholders."""
    return bool(g.get("pagecache_capture"))


@contextmanager
def storing() -> Iterator[None]:
    """Render what is inside to be stored (`is_storing()`), then back to as it was."""
    was = g.get("pagecache_capture", False)
    g.pagecache_capture = True
    try:
        yield
    finally:
        g.pagecache_capture = was


def fill_token(text: str) -> str:
    """The stored text with this visitor's CSRF token in place of the placeholder."""
    return text.replace(CSRF_PLACEHOLDER, generate_csrf()) if CSRF_PLACEHOLDER in text else text


def csrf_token() -> str:
    """The templates' csrf_token(): the placeholder while storing, else the visitor's token."""
    return CSRF_PLACEHOLDER if is_storing() else generate_csrf()
