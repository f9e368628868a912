"""Response headers that keep private pages and files private.

- A page shown to a signed-in person is never stored by a browser or a shared cache
  (`Cache-Control: no-store`), unless its view chose a private policy of its own (the money
  documents: `private, no-store`). Static files and public pictures keep their long caching.
- The public /media route never serves the folders of money documents, even files stored there
  before they became private (market/uploads.py serves those through checked views).
- The app names no server software: no `Server` header of its own (gunicorn.conf.py renames
  gunicorn's; the reverse proxy should hide its version too).
"""

from __future__ import annotations

from flask import Flask, Response, abort, request
from flask_login import current_user

from market.uploads import is_private_path

# Files the same for everyone: their own caching headers stay, signed in or not.
PUBLIC_FILE_ENDPOINTS = frozenset({"static", "web.media"})
PUBLIC_MEDIA_ENDPOINT = "web.media"


def refuse_private_media() -> None:
    if request.endpoint == PUBLIC_MEDIA_ENDPOINT:
        filename = (request.view_args or {}).get("filename") or ""
        if is_private_path(filename):
            abort(404)


def _chose_private(response: Response) -> bool:
    directives = {
        part.strip().split("=", 1)[0].lower()
        for part in response.headers.get("Cache-Control", "").split(",")
    }
    return bool(directives & {"private", "no-store"})


def private_headers(response: Response) -> Response:
    response.headers.remove("Server")
    if request.endpoint in PUBLIC_FILE_ENDPOINTS or _chose_private(response):
        return response
    if current_user.is_authenticated:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.before_request(refuse_private_media)
    app.after_request(private_headers)
