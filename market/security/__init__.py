"""The shop's defences, one module each: the proxy in front of it (here), rate limits
(throttle), safe redirects (redirects), bounded input (inputs), and the headers that keep
private pages private (headers)."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    """Called by create_app before the blueprints are registered (URL converters must exist
    before the routes that use them)."""
    from market.security import headers, inputs, throttle

    hops = app.config.get("TRUSTED_PROXIES", 0)
    if hops > 0:
        # Client address, scheme and host as the proxies saw them: rate limits key on the
        # real address, and QR posters and mail links name the public https address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    throttle.init_app(app)
    inputs.init_app(app)
    headers.init_app(app)
