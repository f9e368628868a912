"""From a parcel's QR label to the trace page on a phone: the demo co-op prints the label sheet
of one of its batches, one label's QR is decoded from the printed picture (not read from the
HTML), and a phone opens the decoded address and sees where the goods come from."""

from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect

from tests.e2e.steps import sign_in

pytestmark = pytest.mark.e2e


def test_a_parcels_qr_leads_a_phone_to_the_batchs_trace_page(
    e2e_open_page, mobile_page: Page, live_server: str, e2e_console_errors: list[str]
):
    coop = e2e_open_page(mobile=False)
    sign_in(coop, "coop@example.com")
    coop.goto("/coop/batches")
    honey = coop.locator(".batch").filter(has_text="原生态蜂蜜").first
    expect(honey).to_be_visible()
    code = honey.locator(".batch-code").inner_text()
    honey.get_by_role("link", name="打印标签").click()
    expect(coop).to_have_url(re.compile(r"/coop/batches/\d+/labels$"))
    labels = coop.locator(f'.sheet[data-batch="{code}"] .label')
    expect(labels).to_have_count(24)
    label = labels.nth(7)
    harvested = re.search(r"采收 (\d{4}-\d{2}-\d{2})", label.inner_text()).group(1)

    # The QR as printed: a picture of the drawn label, decoded.
    picture = Image.open(io.BytesIO(label.locator(".label-qr").screenshot()))
    found = zxingcpp.read_barcodes(picture)
    assert len(found) == 1, "one QR code on the label"
    url = found[0].text
    assert url == f"{live_server}/t/{code}"

    # A buyer's phone, signed in as no one, scans the parcel.
    mobile_page.goto(url)
    main = mobile_page.get_by_role("main")
    expect(main.locator("#trace-product")).to_contain_text("原生态蜂蜜")
    expect(main.locator("#trace-village")).to_contain_text("古丁镇古丁村")
    expect(main.locator("#trace-harvested")).to_have_text(harvested)
    expect(main.locator("#trace-inspection")).to_have_text("检测结果：合格")
    expect(main.locator("#trace-units")).to_contain_text("高州市市场监管局")
    # The inspection report opens from the trace page, through the code only.
    report = mobile_page.request.get(main.locator("#trace-report").get_attribute("href"))
    assert report.ok and report.body().startswith(b"%PDF-")
    # It fits the phone: nothing scrolls sideways.
    assert mobile_page.evaluate("document.documentElement.scrollWidth") <= 390
    assert e2e_console_errors == []
