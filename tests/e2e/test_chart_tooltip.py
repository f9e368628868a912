"""Chart tooltips build HTML from names (issue 11, point 8): in chromium, a category named like
an HTML tag shows as that text in the organizer's dashboard tooltip and makes no element."""

from __future__ import annotations

import mimetypes

import pytest

from market.catalog.models import Category
from market.extensions import db
from tests.campaign.conftest import campaign, sales  # noqa: F401  (fixtures)
from tests.e2e.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

EVIL_NAME = "<img src=x onerror=alert(1)>"
SHOP_ORIGIN = "http://market.test"


def test_the_dashboard_tooltip_shows_a_category_name_as_text(
    app,
    client_as,
    world,
    campaign,  # noqa: F811
    sales,  # noqa: F811
    live_browser,
):
    """The organizer's real dashboard page (rendered by the app, with the real charts.js and
    ECharts) in chromium: a co-op's category named like an HTML tag shows as that text in the
    tooltip; no element is made from it."""
    from playwright.sync_api import Route

    with app.app_context():
        db.session.get(Category, world.honey).name = EVIL_NAME
        db.session.commit()
    dashboard = client_as("organizer").get(f"/admin/campaigns/{campaign.id}/dashboard")
    assert dashboard.status_code == 200
    html = dashboard.get_data(as_text=True)
    assert "\\u003cimg" in html  # the name travels in the page's JSON

    static = REPO_ROOT / "static"

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(SHOP_ORIGIN).split("?")[0]
        if path == "/dashboard":
            csp = dashboard.headers["Content-Security-Policy"]
            route.fulfill(
                status=200,
                body=html,
                headers={
                    "Content-Type": "text/html; charset=utf-8",
                    "Content-Security-Policy": csp,
                },
            )
        elif path.startswith("/static/") and (static / path[8:]).is_file():
            kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
            route.fulfill(status=200, body=(static / path[8:]).read_bytes(), content_type=kind)
        else:
            route.fulfill(status=404, body="")

    dialogs: list[str] = []
    # The suite's one Playwright (tests/e2e/conftest.py): a second sync_playwright in the same
    # process cannot start while the browser journeys' one runs.
    context = live_browser.new_context()
    try:
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.route(f"{SHOP_ORIGIN}/**", serve)
        page.goto(f"{SHOP_ORIGIN}/dashboard")
        page.wait_for_function(
            "() => window.echarts &&"
            " echarts.getInstanceByDom(document.getElementById('chart-categories'))",
            timeout=10_000,
        )
        index = page.evaluate(
            """(name) => {
              const element = document.getElementById('chart-categories');
              const chart = echarts.getInstanceByDom(element);
              const data = chart.getOption().series[0].data;
              const index = data.findIndex((item) => item.name === name);
              chart.dispatchAction({ type: 'showTip', seriesIndex: 0, dataIndex: index });
              return index;
            }""",
            EVIL_NAME,
        )
        assert index >= 0, "the renamed category is in the chart"
        # The tooltip is HTML inside the chart's element: "<name><br>¥… (…%)".
        tooltip = page.wait_for_function(
            """() => {
              const text = document.getElementById('chart-categories').textContent;
              return text.includes('%)') && text;
            }""",
            timeout=10_000,
        ).json_value()
        assert EVIL_NAME in tooltip
        assert page.locator("#chart-categories img").count() == 0
        assert page.locator("img[src=x]").count() == 0
    finally:
        context.close()
    assert dialogs == []
