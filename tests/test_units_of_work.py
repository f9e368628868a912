"""One unit of work per request (market/transactions.py): a service that refuses rolls its own
changes back, so the page that says why shows what is stored, and nothing of the refused change
is kept. Views neither commit nor roll back."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from market.catalog.models import Product
from market.extensions import db
from market.transactions import unit_of_work


def _title(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.get_data(as_text=True), re.S).group(1)


def test_a_refused_product_edit_shows_and_keeps_the_stored_product(app, client_as, world):
    """The new name is valid, the photo is not: the service changed the name, then refused the
    photo. Its rollback means the edit page (heading and title from the product) shows the
    stored name, next to the typed one in the form, and the database keeps the stored one."""
    manager = client_as("coop_manager")
    response = manager.post(
        f"/coop/products/{world.honey_product}/edit",
        data={
            "name": "古丁原生态蜂蜜",
            "category_id": world.honey,
            "images": [(io.BytesIO(b"not an image"), "bad.jpg")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "文件不是有效的图片" in body
    assert _title(response).startswith("原生态蜂蜜 ·")
    assert 'value="古丁原生态蜂蜜"' in body  # what was typed stays in the form to correct
    with app.app_context():
        assert db.session.get(Product, world.honey_product).name == "原生态蜂蜜"
    assert _title(manager.get(f"/coop/products/{world.honey_product}/edit")).startswith(
        "原生态蜂蜜 ·"
    )


def test_views_neither_commit_nor_roll_back():
    """The rule as the code says it: the session's commit and rollback live in services (and
    market/transactions.py), never in a blueprint's views."""
    market = Path(__file__).resolve().parent.parent / "market"
    views = sorted(market.rglob("*views*.py"))
    assert views, "no views found"
    offending = [
        f"{path.relative_to(market)}:{number}"
        for path in views
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"db\.session\.(commit|rollback)\(", line)
    ]
    assert offending == []


def test_unit_of_work_rolls_back_what_the_refused_service_changed(app, world):
    @unit_of_work
    def rename_then_refuse(product_id: int) -> None:
        db.session.get(Product, product_id).name = "改了一半"
        db.session.flush()
        raise ValueError("refused")

    with app.app_context():
        with pytest.raises(ValueError):
            rename_then_refuse(world.honey_product)
        # The same session, still open: it reads the stored row again, not the flushed change.
        assert db.session.get(Product, world.honey_product).name == "原生态蜂蜜"
