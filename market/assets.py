"""Static files for phones on 4G: `make assets` (scripts/build_assets.py) copies every file under
static/ into static/dist/ under a name carrying a hash of its content, with gzip and brotli
variants beside it, plus an SVG sprite of the icons the templates use, and writes
static/dist/manifest.json. WhiteNoise serves static/ in every setup (the embedded shop and
gunicorn): the fingerprinted files for a year as immutable, each in the encoding the browser
accepts; any other static URL (an old bookmark, a page not yet using `asset_url`) for a minute.

Templates name files by their source path: `asset_url('css/market.css')`, and icons by their
Bootstrap Icons name: `icon('cart3')`. A missing manifest, or a file or icon it does not list, is
an error, not a silent fall-back to an unhashed (and uncached, uncompressed) URL: run
`make assets`.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import brotli
from flask import Flask, current_app, request, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from markupsafe import Markup, escape
from whitenoise import WhiteNoise

from market.security.headers import PUBLIC_FILE_ENDPOINTS
from market.uploads import GALLERY_SIZES, card_srcset, gallery_srcset

DIST = "dist"
MANIFEST = "manifest.json"
SPRITE = "icons.svg"
# How templates (and Python code) name an icon; the build collects the names with this pattern.
ICON_CALL = re.compile(r"""\bicon\(\s*["']([a-z0-9-]+)["']""")
# A fingerprinted name: stem.<12 hex digits>.ext under /static/dist/.
FINGERPRINTED = re.compile(r"/dist/.+\.[0-9a-f]{12}\.[A-Za-z0-9]+$")
# How wide a product card is (templates/_macros.html: two across on phones, then 3 and 4 in
# Bootstrap's containers), so that the browser picks the thumbnail it needs before layout. A
# column is (container - 24 px padding + 16 px gutter) / columns - 16 px: on a phone the
# container is the screen, 50vw - 20px; from 576 px it is 540, 720, 960, 1140 and 1320 px wide.
CARD_SIZES = (
    "(min-width: 1400px) 312px, (min-width: 1200px) 267px, (min-width: 768px) 222px, "
    "(min-width: 576px) 250px, calc(50vw - 20px)"
)
ONE_YEAR = 365 * 24 * 60 * 60
# Unhashed static URLs may change with any deploy: browsers keep them a minute.
SHORT_MAX_AGE = 60


COMPRESSIBLE_KEY = "market.compressible_page"


class AssetsMissing(RuntimeError):
    pass


class StaticFiles(WhiteNoise):
    # WhiteNoise's "forever" is ten years; a year is what the HTTP spec and browsers honour.
    FOREVER = ONE_YEAR


def _immutable(path: str, url: str) -> bool:
    return bool(FINGERPRINTED.search(url))


def _nosniff(headers, path: str, url: str) -> None:
    headers["X-Content-Type-Options"] = "nosniff"


class PublicFileSessions(SecureCookieSessionInterface):
    """A public picture (/media) is the same for everyone: its response neither renews the session
    cookie nor says `Vary: Cookie` (Flask-Login reads the session after every request, which adds
    it). With it, a browser asked again for every card picture on each visit, because the cookie
    had been renewed by the page in between."""

    def save_session(self, app, session, response) -> None:
        if request.endpoint in PUBLIC_FILE_ENDPOINTS and not session.modified:
            return
        super().save_session(app, session, response)


class CompressedPages:
    """HTML pages in brotli or gzip, as the browser accepts (~16 KB of home page with photos
    travels as ~3 KB). Only pages shown to someone not signed in are compressed (the app marks
    them, `_mark_compressible`): a signed-in page's CSRF token is worth stealing, and
    compressing a secret beside text an attacker can put in the page (a search) leaks the secret
    by the response's size (BREACH). An anonymous visitor's token is renewed at sign-in
    (market/accounts/sessions.py), so it opens nothing. Static files never reach this:
    WhiteNoise serves their precompressed variants."""

    MINIMUM = 1024  # below this, the encoding costs more than it saves

    def __init__(self, application) -> None:
        self.application = application

    @staticmethod
    def _encoding(accept: str) -> str | None:
        offered = {}
        for part in accept.split(","):
            name, _, params = part.strip().partition(";")
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    quality = 0.0
            offered[name.strip().lower()] = quality
        for encoding in ("br", "gzip"):
            if offered.get(encoding, 0) > 0:
                return encoding
        return None

    @staticmethod
    def _compressible(environ, status: str, headers: list[tuple[str, str]]) -> bool:
        values = {name.lower(): value for name, value in headers}
        return (
            environ.get(COMPRESSIBLE_KEY) is True
            and status.startswith("200")
            and "content-encoding" not in values
            and values.get("content-type", "").startswith("text/html")
        )

    def __call__(self, environ, start_response):
        encoding = self._encoding(environ.get("HTTP_ACCEPT_ENCODING", ""))
        if environ.get("REQUEST_METHOD") != "GET":
            return self.application(environ, start_response)
        held: dict[str, Any] = {}

        def hold(status, headers, exc_info=None):
            if not self._compressible(environ, status, headers):
                return start_response(status, headers, exc_info)
            held.update(status=status, headers=headers, exc_info=exc_info)
            return held.setdefault("written", []).append

        body = self.application(environ, hold)
        if not held:
            return body
        try:
            data = b"".join([*held["written"], *body])
        finally:
            if hasattr(body, "close"):
                body.close()
        headers = [
            (n, v) for n, v in held["headers"] if n.lower() not in ("content-length", "vary")
        ]
        vary = [v for n, v in held["headers"] if n.lower() == "vary"]
        headers.append(("Vary", ", ".join([*vary, "Accept-Encoding"])))
        if encoding is not None and len(data) >= self.MINIMUM:
            if encoding == "br":
                data = brotli.compress(data, quality=5, mode=brotli.MODE_TEXT)
            else:
                data = gzip.compress(data, compresslevel=6, mtime=0)
            headers = [
                (n, f"W/{v}" if n.lower() == "etag" and not v.startswith("W/") else v)
                for n, v in headers
            ]
            headers.append(("Content-Encoding", encoding))
        headers.append(("Content-Length", str(len(data))))
        start_response(held["status"], headers, held["exc_info"])
        return [data]


class Manifest:
    """static/dist/manifest.json, read once (re-read in debug mode when the build rewrites it)."""

    def __init__(self, static_folder: Path, reload: bool) -> None:
        self.path = static_folder / DIST / MANIFEST
        self.reload = reload
        self._data: dict[str, Any] | None = None
        self._mtime = 0.0

    def data(self) -> dict[str, Any]:
        if self._data is None or self.reload:
            try:
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                raise AssetsMissing(
                    f"{self.path} is missing: run `make assets` (scripts/build_assets.py)"
                ) from None
            if self._data is None or mtime != self._mtime:
                self._data = json.loads(self.path.read_text(encoding="utf-8"))
                self._mtime = mtime
        return self._data

    def file(self, name: str) -> str:
        try:
            return self.data()["files"][name]
        except KeyError:
            raise AssetsMissing(
                f"static/{name} is not in {self.path}: is it spelt right? run `make assets`"
            ) from None

    def icons(self) -> frozenset[str]:
        return frozenset(self.data()["icons"])


def _manifest() -> Manifest:
    return current_app.extensions["market_assets"]


def asset_url(name: str) -> str:
    """The fingerprinted URL of static/<name>, e.g. asset_url('css/market.css')."""
    return url_for("static", filename=_manifest().file(name))


def icon(name: str, label: str | None = None, class_: str = "") -> Markup:
    """An icon from the sprite, sized like the text around it. Decorative (hidden from screen
    readers) unless it carries a `label`, which is then its accessible name."""
    manifest = _manifest()
    if name not in manifest.icons():
        raise AssetsMissing(f"icon {name!r} is not in the sprite: run `make assets`")
    href = f"{asset_url(SPRITE)}#i-{name}"
    classes = f"bi {class_}".strip()
    a11y = f'role="img" aria-label="{escape(label)}"' if label else 'aria-hidden="true"'
    return Markup(
        f'<svg class="{escape(classes)}" {a11y} focusable="false">'
        f'<use href="{escape(href)}"/></svg>'
    )


def _mark_compressible(response):
    # Only pages ask who is signed in: asking loads the session, which would add `Vary: Cookie`
    # to pictures and files, and a browser would then revalidate them when the cookie changes.
    page = response.mimetype == "text/html" and response.status_code == 200
    if page and not current_user.is_authenticated:
        request.environ[COMPRESSIBLE_KEY] = True
    return response


def init_app(app: Flask) -> None:
    static = Path(app.static_folder or "static")
    app.extensions["market_assets"] = Manifest(static, reload=app.debug)
    app.jinja_env.globals["asset_url"] = asset_url
    app.jinja_env.globals["icon"] = icon
    app.jinja_env.globals["card_srcset"] = card_srcset
    app.jinja_env.globals["CARD_SIZES"] = CARD_SIZES
    app.jinja_env.globals["gallery_srcset"] = gallery_srcset
    app.jinja_env.globals["GALLERY_SIZES"] = GALLERY_SIZES
    app.session_interface = PublicFileSessions()
    # Outermost: a static file is answered before the app (and ProxyFix) sees the request; pages
    # keep their security headers from the app's after_request hooks.
    pages = app.wsgi_app
    if app.config.get("COMPRESS_PAGES", True):
        app.after_request(_mark_compressible)
        pages = CompressedPages(pages)
    app.wsgi_app = StaticFiles(
        pages,
        root=str(static),
        prefix=app.static_url_path,
        max_age=SHORT_MAX_AGE,
        autorefresh=app.debug,
        allow_all_origins=False,
        immutable_file_test=_immutable,
        add_headers_function=_nosniff,
    )
