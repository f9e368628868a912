"""Demo batches (批次) of 古丁村's products, so that the co-op's batch page, the parcel labels and
the trace page (/t/<code>) have something to show: a batch each for 藿香, 高山红薯, 原生态蜂蜜 and
the pond fish, inside the stock the demo already holds. The honey's inspection report is a small
generated PDF that says it is an example."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from market.batches.models import Batch, BatchStatus, InspectionResult
from market.catalog.models import Product, Sku
from market.clock import today
from market.demo.documents import store_demo_pdf
from market.directory.models import Coop, Village
from market.extensions import db

# (product, spec, days before today harvested, plot, share of the SKU's stock, result, report)
DEMO_BATCHES = [
    ("藿香", "干品 250g", 40, "古丁村北坡三号南药地", 1.0, InspectionResult.PASSED, False),
    ("高山红薯", "5斤装", 6, "古丁村高山一号坡地", 0.6, InspectionResult.PASSED, False),
    ("高山红薯", "5斤装", 2, "古丁村高山二号坡地", 0.4, InspectionResult.NOT_TESTED, False),
    ("原生态蜂蜜", "500g 瓶装", 25, "古丁村后山蜂场", 1.0, InspectionResult.PASSED, True),
    ("氹仔草鲩", "约2斤/条", 1, "古丁村三号鱼塘", 1.0, InspectionResult.PASSED, False),
]


def _report(name: str) -> str:
    return store_demo_pdf(f"Demo inspection report: {name}", "inspections")


def seed_batches(village_name: str) -> list[Batch]:
    """The village's products' demo batches, within each SKU's stock (the stock was there; the
    batches say where it came from). Flushes; seed_demo commits."""
    skus = {
        (product_name, spec): sku
        for sku, product_name, spec in db.session.execute(
            select(Sku, Product.name, Sku.spec)
            .join(Product, Product.id == Sku.product_id)
            .join(Coop, Coop.id == Product.coop_id)
            .join(Village, Village.id == Coop.village_id)
            .where(Village.name == village_name)
        )
    }
    made = []
    for name, spec, days_ago, plot, share, result, with_report in DEMO_BATCHES:
        sku = skus.get((name, spec))
        if sku is None:
            continue
        quantity = max(int(sku.stock * share), 0)
        batch = Batch(
            sku_id=sku.id,
            harvested_on=today() - timedelta(days=days_ago),
            plot=plot,
            quantity_received=quantity,
            quantity_remaining=quantity,
            inspection_result=result,
            inspection_path=_report(name) if with_report else None,
            notes="示例数据：演示用的批次。",
            status=BatchStatus.OPEN,
        )
        db.session.add(batch)
        made.append(batch)
    db.session.flush()
    return made
