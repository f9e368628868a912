"""gunicorn's settings for the shop in production: `gunicorn -c gunicorn.conf.py` (gunicorn reads
./gunicorn.conf.py by itself when started from the repository root).

Environment:
  GUNICORN_BIND       address to listen on (default 127.0.0.1:8000: the reverse proxy's side only)
  WEB_CONCURRENCY     worker processes (default 2 × CPUs + 1)
  GUNICORN_TIMEOUT    seconds a worker may take for one request (default 30)
  TRUSTED_PROXIES     hops of reverse proxies in front (as for the app, market/config.py). 0: no
                      proxy, so gunicorn believes no forwarded scheme header from anyone; > 0:
                      it believes them from FORWARDED_ALLOW_IPS only (default loopback, the proxy
                      on the same machine). The app's ProxyFix reads the same hops.
  GUNICORN_ACCESS_LOG access log file, "-" for stdout (default), "" for none
  GUNICORN_LOG_LEVEL  error log level (default info)
"""

from __future__ import annotations

import multiprocessing
import os

import gunicorn
import gunicorn.http.wsgi

wsgi_app = "market:create_app()"

bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5

_hops = int(os.environ.get("TRUSTED_PROXIES", "0"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1") if _hops > 0 else ""

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The client as the proxy saw it, and the path without its query string (search words, `next`
# targets and the like stay out of the log).
access_log_format = (
    '%(h)s %({x-forwarded-for}i)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'
)

# No server software named in responses. gunicorn writes `Server: <gunicorn.http.wsgi.SERVER>`
# itself on every response (Response.default_headers; "gunicorn", or "gunicorn/<version>"
# before 22) and puts SERVER_SOFTWARE into each request's environ, both read from module
# globals when each response is made, so renaming them here (before the workers fork) is enough.
SERVER_NAME = "market"
gunicorn.SERVER = gunicorn.SERVER_SOFTWARE = SERVER_NAME
gunicorn.http.wsgi.SERVER = gunicorn.http.wsgi.SERVER_SOFTWARE = SERVER_NAME


def on_starting(server) -> None:
    # The arbiter copies gunicorn's own name into the process environment when it starts.
    os.environ["SERVER_SOFTWARE"] = SERVER_NAME
