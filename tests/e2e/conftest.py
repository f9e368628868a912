"""Browser fixtures: the real app with the demo data, served on loopback, driven by Debian's
chromium through Playwright.

Self-contained on purpose: the unit-test fixtures empty the database between tests, while a browser
journey needs a seeded shop served from another thread for the whole session. Fixture names carry
an `e2e_`/`live_` prefix so they never shadow the unit-test ones.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    sync_playwright,
)
from werkzeug.serving import make_server

from market import create_app
from market.demo import default_data_dir, seed_demo
from market.extensions import db
from market.security.throttle import limiter
from tests.localstripe import running_localstripe

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Containers give /dev/shm only 64 MB, too little for renderer processes.
    "--disable-dev-shm-usage",
    # The app is on loopback; a proxy from the environment must never see these requests.
    "--no-proxy-server",
]
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
# Base URL -> the app a live server fixture serves (same process); see `live_app`.
LIVE_APPS: dict[str, Flask] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the test item, so fixture teardown knows whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of the app, seeded with the demo data, served by a threaded werkzeug server."""
    tmp = tmp_path_factory.mktemp("e2e")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/e2e.db",
            "SECRET_KEY": "e2e",
            "UPLOAD_DIR": str(tmp / "uploads"),
            "RATELIMIT_STORAGE_URI": "memory://",
            # The embedded shop of `make run`: tasks (exports, referral visits, mail) run in this
            # process, as there is no worker here even when CI's REDIS_URL is set.
            "CELERY_TASK_ALWAYS_EAGER": True,
        }
    )
    with app.app_context():
        db.create_all()
        seed_demo(default_data_dir())
    # Port 0: the kernel picks a free port, so there is no window in which another process takes it.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    try:
        LIVE_APPS[f"http://127.0.0.1:{server.server_port}"] = app
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Each journey starts with no sign-in counted against the shared loopback address."""
    yield
    limiter.reset()


@pytest.fixture(scope="session")
def live_playwright() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def live_browser(live_playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        # Fail, not skip: a skipped browser test would pass CI without testing anything.
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium and the CJK font with "
            "`apt-get install -y --no-install-recommends chromium fonts-wqy-microhei` "
            "(.ci/run does this). Never `playwright install`.",
            pytrace=False,
        )
    browser = live_playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def e2e_console_errors() -> list[str]:
    """Console errors and uncaught exceptions seen by `mobile_page` during the test."""
    return []


@pytest.fixture
def mobile_page(
    request: pytest.FixtureRequest,
    live_browser: Browser,
    live_server: str,
    e2e_console_errors: list[str],
) -> Iterator[Page]:
    """A fresh page in a phone-sized viewport (most buyers arrive on a phone); a screenshot of it
    is saved to test-artifacts/<test name>.png when the test fails."""
    context = live_browser.new_context(
        base_url=live_server,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url") or ""
        e2e_console_errors.append(f"console: {message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: e2e_console_errors.append(f"pageerror: {error}"))
    try:
        yield page
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()


# -- card payments: a localstripe of the browser tests' own, and a shop that pays through it ------
E2E_STRIPE_SECRET_KEY = "sk_test_e2e"
E2E_STRIPE_PUBLISHABLE_KEY = "pk_test_e2e"


@pytest.fixture(scope="session")
def e2e_localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A localstripe of the browser tests' own (state file apart from the payments tests' one);
    it also serves the Stripe.js stand-in that the payment page loads."""
    with running_localstripe(tmp_path_factory.mktemp("e2e-localstripe")) as url:
        yield url


@pytest.fixture(scope="session")
def live_server_with_stripe(
    tmp_path_factory: pytest.TempPathFactory, e2e_localstripe: str
) -> Iterator[str]:
    """Like `live_server` (its own seeded database and server), with card payments through
    `e2e_localstripe`: the payment page loads localstripe's Stripe.js stand-in."""
    tmp = tmp_path_factory.mktemp("e2e-stripe")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/e2e.db",
            "SECRET_KEY": "e2e-stripe",
            "UPLOAD_DIR": str(tmp / "uploads"),
            "STRIPE_SECRET_KEY": E2E_STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": E2E_STRIPE_PUBLISHABLE_KEY,
            "STRIPE_API_BASE": e2e_localstripe,
            "STRIPE_WEBHOOK_SECRET": "whsec_e2e",
            "STRIPE_JS_URL": f"{e2e_localstripe}/js.stripe.com/v3/",
            "RATELIMIT_STORAGE_URI": "memory://",
            "CELERY_TASK_ALWAYS_EAGER": True,  # the embedded shop, as in `live_server`
        }
    )
    with app.app_context():
        db.create_all()
        seed_demo(default_data_dir())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-stripe-server", daemon=True)
    thread.start()
    try:
        LIVE_APPS[f"http://127.0.0.1:{server.server_port}"] = app
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def e2e_open_page(
    request: pytest.FixtureRequest,
    live_browser: Browser,
    live_server: str,
    e2e_console_errors: list[str],
) -> Iterator[Callable[..., Page]]:
    """open_page(mobile=True) -> a page in a new browser context (its own cookies: another
    person) on `live_server`, recording console errors like `mobile_page`; when the test fails,
    a screenshot of each is saved to test-artifacts/<test name>-<n>.png."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    def open_page(*, mobile: bool = True) -> Page:
        options: dict = {"locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
        if mobile:
            options |= {
                "viewport": {"width": 390, "height": 844},
                "device_scale_factor": 2,
                "is_mobile": True,
                "has_touch": True,
            }
        context = live_browser.new_context(base_url=live_server, **options)
        contexts.append(context)
        page = context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                url = message.location.get("url") or ""
                e2e_console_errors.append(f"console: {message.text} ({url})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: e2e_console_errors.append(f"pageerror: {error}"))
        pages.append(page)
        return page

    try:
        yield open_page
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            for number, page in enumerate(pages, start=1):
                page.screenshot(path=str(ARTIFACTS / f"{name}-{number}.png"), full_page=True)
    finally:
        for context in contexts:
            context.close()


# -- the served app itself, for a journey that moves time on (a deadline) without sleeping --------


@pytest.fixture
def live_app(live_server: str) -> Flask:
    """The app behind `live_server` (same process): `with live_app.app_context():` reaches its
    database, and `live_app.test_cli_runner()` runs its commands."""
    return LIVE_APPS[live_server]
