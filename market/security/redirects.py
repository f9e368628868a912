"""The one safe-redirect rule, for every `next`, `done` and similar URL a client hands us: only
a path on this site. A browser reads "/\\evil", "/\t/evil" or "//evil" as another host, so
backslashes, control characters (which browsers drop) and scheme-relative forms are refused,
as is anything with a scheme or a host."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request, url_for

MAX_LENGTH = 2000


def is_safe(target: object) -> bool:
    if not isinstance(target, str) or not target or len(target) > MAX_LENGTH:
        return False
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in target) or "\\" in target:
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_target(target: object, default: str) -> str:
    """`target` if it is a path on this site, else `default`."""
    return target if is_safe(target) else default  # type: ignore[return-value]


def next_url(default_endpoint: str = "catalog.home") -> str:
    """The request's `next` (query or form), if safe; else the default page."""
    target = request.args.get("next") or request.form.get("next")
    return safe_target(target, url_for(default_endpoint))
