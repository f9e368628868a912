"""Rate limits (Flask-Limiter): Redis when REDIS_URL is set, so every web process shares the
counts; memory in the embedded shop. Counting happens before the work it limits, with the
storage's atomic operations, so concurrent requests cannot slip past a limit.

Routes take `@limit(...)` with the address as key. Sign-in is limited in the service, per
(account, address) with growing windows (a few tries a minute, fewer per hour, per day), and per
address by the route: nobody can lock an account out from another address.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Flask, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse_many

from market.errors import DomainError

limiter = Limiter(key_func=get_remote_address, strategy="moving-window")


class TooManyAttempts(DomainError):
    status_code = 429

    def __init__(self, retry_after: int, message: str | None = None):
        self.retry_after = retry_after
        super().__init__(
            message or _("尝试次数过多，请 %(wait)s后再试", wait=wait_text(retry_after))
        )


def wait_text(seconds: int) -> str:
    """How long to wait, in words: "45 秒", "3 分钟", "2 小时"."""
    if seconds < 60:
        return ngettext("%(num)d 秒", "%(num)d 秒", max(seconds, 1))
    if seconds < 3600:
        return ngettext("%(num)d 分钟", "%(num)d 分钟", math.ceil(seconds / 60))
    return ngettext("%(num)d 小时", "%(num)d 小时", math.ceil(seconds / 3600))


def limit(config_key: str, **options) -> Callable:
    """A route limit read from the configuration at request time (e.g. "30/minute;300/hour"),
    keyed on the client's address (right behind a proxy: see TRUSTED_PROXIES)."""

    def value() -> str:
        from flask import current_app

        return current_app.config[config_key]

    return limiter.limit(value, **options)


def consume(config_key: str, *identifiers: str) -> None:
    """Count one attempt against the windows of a limit in the configuration, shortest first,
    atomically, and refuse with how long to wait at the first full window. A refused attempt
    counts in no longer window, so a burst waits out the short window, not the day."""
    from flask import current_app

    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    strategy = limiter.limiter
    keys = _keys(config_key, identifiers)
    for item in sorted(parse_many(current_app.config[config_key]), key=lambda i: i.get_expiry()):
        if not strategy.hit(item, *keys):
            # The wait is the longest of the windows that are full, counted or not.
            resets = [
                strategy.get_window_stats(other, *keys).reset_time
                for other in parse_many(current_app.config[config_key])
                if other is item or not strategy.test(other, *keys)
            ]
            raise TooManyAttempts(max(1, math.ceil(max(resets) - time.time())))


def _keys(config_key: str, identifiers: tuple[str, ...]) -> tuple[str, ...]:
    # This app's prefix first: two shops on one Redis never share counts.
    from flask import current_app

    return (current_app.config["RATELIMIT_KEY_PREFIX"], config_key, *identifiers)


def forget(config_key: str, *identifiers: str) -> None:
    """Clear the counts of a limit (a successful sign-in clears that account's failures)."""
    from flask import current_app

    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    keys = _keys(config_key, identifiers)
    for item in parse_many(current_app.config[config_key]):
        limiter.limiter.clear(item, *keys)


def retry_after_of_request() -> int:
    """Seconds until the route limit this request broke lets it through again."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, math.ceil(current.reset_at - time.time()))


def client_address() -> str:
    return request.remote_addr or "unknown"


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "market-limits")
    # No X-RateLimit-* headers on every answer (they tell the limits); a refusal says
    # Retry-After itself (market/errorpages.py).
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    limiter.init_app(app)
