"""The docs page works in a real browser under the shop's CSP: Swagger UI from the package's
own files renders every operation of the document, and the browser reports no blocked script."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, as tests/e2e use it
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server"]

pytestmark = pytest.mark.e2e


def _drive_browser(base_url: str, operations: int) -> list[str]:
    """Open the docs page, wait for every operation; return the CSP complaints of the console."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        problems: list[str] = []
        page.on(
            "console",
            lambda message: (
                problems.append(message.text) if "Content Security Policy" in message.text else None
            ),
        )
        page.goto(f"{base_url}/api/v1/docs")
        page.wait_for_selector(".swagger-ui .info .title")
        # Swagger UI draws the operations after the title, a few at a time: wait for all.
        expect(page.locator(".opblock")).to_have_count(operations, timeout=30_000)
        browser.close()
    return problems


def test_swagger_ui_renders_the_document(app):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operations = sum(
        1 for item in spec["paths"].values() for method in item if method != "parameters"
    )

    server = make_server("127.0.0.1", 0, app, threaded=True)  # the page's files come at once
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    # Playwright's sync API refuses a thread with a running asyncio loop, which an earlier test
    # (an async library) may leave on the main thread: the browser gets a thread of its own.
    outcome: dict[str, object] = {}

    def drive() -> None:
        try:
            outcome["problems"] = _drive_browser(
                f"http://127.0.0.1:{server.server_port}", operations
            )
        except BaseException as error:  # handed to the test's thread, which raises it
            outcome["error"] = error

    try:
        browsing = threading.Thread(target=drive)
        browsing.start()
        browsing.join(timeout=120)
        assert not browsing.is_alive(), "the browser did not finish within 120 s"
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        assert outcome["problems"] == []
    finally:
        server.shutdown()
        serving.join()
