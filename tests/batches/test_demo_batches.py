"""The demo's batches: 古丁村's products have batches within their stock, and their trace pages
show them."""

from __future__ import annotations

from sqlalchemy import select

from market.batches.models import Batch
from market.catalog.models import Product, Sku
from market.demo import default_data_dir, seed_demo
from market.directory.models import Coop, Village
from market.extensions import db


def test_guding_products_have_batches_with_trace_pages(app):
    with app.app_context():
        assert seed_demo(default_data_dir()) is True
        rows = db.session.execute(
            select(Batch, Product.name, Sku.stock, Village.name)
            .join(Sku, Sku.id == Batch.sku_id)
            .join(Product, Product.id == Sku.product_id)
            .join(Coop, Coop.id == Product.coop_id)
            .join(Village, Village.id == Coop.village_id)
        ).all()
        assert {village for *_, village in rows} == {"古丁村"}
        assert {"藿香", "高山红薯", "原生态蜂蜜", "氹仔草鲩"} <= {name for _, name, *_ in rows}
        by_sku: dict[int, int] = {}
        for batch, _name, stock, _village in rows:
            by_sku[batch.sku_id] = by_sku.get(batch.sku_id, 0) + batch.quantity_remaining
            assert by_sku[batch.sku_id] <= stock
        honey = next(batch for batch, name, *_ in rows if name == "原生态蜂蜜")
        code, report = honey.code, honey.inspection_path
    assert report
    page = app.test_client().get(f"/t/{code}").get_data(as_text=True)
    assert "原生态蜂蜜" in page and "古丁镇古丁村" in page and "检测结果：合格" in page
    assert app.test_client().get(f"/t/{code}/report").data.startswith(b"%PDF-")
