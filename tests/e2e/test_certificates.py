"""A co-op's certificate becomes a badge, in the browser: 古丁村's co-op uploads an 有机
certificate for its 藿香 on a phone; an organizer verifies it at the desk; a buyer on a phone
filters the storefront by 有机 and finds 藿香 with its badge and the certificate's details."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from market import clock
from tests.e2e.steps import open_menu_link, sign_in

pytestmark = pytest.mark.e2e

COOP_MANAGER = "coop@example.com"  # 高州市古丁南药种植专业合作社 of 古丁村
ORGANIZER = "organizer@example.com"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def test_an_uploaded_certificate_verified_shows_as_a_badge(
    e2e_open_page: Callable[..., Page], e2e_console_errors: list[str]
) -> None:
    number = f"OG-E2E-{uuid.uuid4().hex[:6].upper()}"
    last_day = clock.today() + timedelta(days=365)

    coop = e2e_open_page()
    sign_in(coop, COOP_MANAGER)
    open_menu_link(coop, "合作社工作台", "资质证书")
    expect(coop.get_by_role("heading", name="资质证书")).to_be_visible()
    form = coop.locator("#certificate-form")
    form.get_by_label("证书类型").select_option(label="有机")
    form.get_by_label("证书编号").fill(number)
    form.get_by_label("发证机关").fill("示例有机产品认证中心")
    form.get_by_label("有效期至").fill(last_day.isoformat())
    form.locator("label", has_text=re.compile("^藿香$")).click()
    form.get_by_label(re.compile("证书扫描件")).set_input_files(
        {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    form.get_by_role("button", name="上传，提交核验").click()
    expect(coop.get_by_role("alert").filter(has_text="等待组织方核验")).to_be_visible()
    mine = coop.locator(".certificate").filter(has_text=number)
    expect(mine.locator(".certificate-status")).to_have_text("待审核")

    organizer = e2e_open_page(mobile=False)
    sign_in(organizer, ORGANIZER)
    open_menu_link(organizer, "组织方", "证书核验")
    row = organizer.locator(".certificate").filter(has_text=number)
    expect(row).to_contain_text("藿香")
    row.get_by_role("button", name="核验通过").click()
    expect(organizer.get_by_role("alert").filter(has_text="证书已核验")).to_be_visible()
    expect(organizer.locator(".certificate").filter(has_text=number)).to_have_count(0)

    buyer = e2e_open_page()
    buyer.goto("/products")
    buyer.locator("#filter-cert").get_by_role("link", name="有机", exact=True).click()
    expect(buyer).to_have_url(re.compile(r"/products\?cert=organic$"))
    card = buyer.locator("a.product-card").filter(has_text="藿香")
    expect(card.locator(".cert-badges")).to_contain_text("有机")
    card.first.click()
    certificates = buyer.locator("#product-certificates")
    expect(certificates).to_contain_text(number)
    expect(certificates).to_contain_text(f"有效期至 {last_day.isoformat()}")

    assert e2e_console_errors == []
