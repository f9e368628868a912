"""Chinese first, English complete; money in yuan; times in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.pofile import read_po
from flask import render_template_string

ROOT = Path(__file__).resolve().parent.parent


def _catalog(locale: str):
    path = ROOT / "market" / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        return read_po(handle)


def test_every_message_has_an_english_translation_with_the_same_placeholders():
    catalog = _catalog("en")
    assert len(catalog) > 250
    untranslated = [
        m.id
        for m in catalog
        if m.id and not (all(m.string) if isinstance(m.string, tuple) else m.string)
    ]
    assert untranslated == []
    problems = [(m.id, str(error)) for m in catalog for error in m.check(catalog)]
    assert problems == []


def test_the_catalogues_cover_the_same_messages():
    assert {m.id for m in _catalog("en")} == {m.id for m in _catalog("zh_CN")}


def test_times_are_shown_in_shanghai(app):
    with app.test_request_context("/"):
        moment = datetime(2024, 9, 3, 16, 30, tzinfo=UTC)
        shown = render_template_string("{{ moment|localtime }}", moment=moment)
    assert shown == "2024-09-04 00:30"


def test_counts_read_well_in_english(client, world):
    client.post("/lang", data={"lang": "en"})
    page = client.get(f"/products/{world.honey_product}").get_data(as_text=True)
    assert "Paired units" in page
    listing = client.get("/products?q=藿香").get_data(as_text=True)
    assert "1 item" in listing and "1 items" not in listing


def test_prices_are_yuan_with_two_decimals_everywhere(client, world):
    page = client.get("/category/honey").get_data(as_text=True)
    assert "¥88.00" in page
