"""A co-op's own sales: net of refunds, by product and by the unit credited."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from market.campaign.models import AttributionEntry, AttributionRollup, Campaign
from market.campaign.read.filters import SalesRow, as_int
from market.catalog.models import Product
from market.directory.models import Unit
from market.extensions import db

R = AttributionRollup
E = AttributionEntry


@dataclass
class CoopSales:
    campaign: Campaign | None
    net_fen: int
    by_product: list[SalesRow]
    by_unit: list[SalesRow]  # key 0: sales credited to no unit


def sales_of(coop_ids: list[int], campaign: Campaign | None) -> CoopSales:
    """A co-op's sales (net of refunds) by product and by the unit credited; all campaigns and
    sales outside any campaign when `campaign` is None."""
    by_product_query = (
        select(Product.id, Product.name, func.sum(E.amount_fen), func.sum(E.quantity))
        .join(Product, Product.id == E.product_id)
        .where(E.coop_id.in_(coop_ids))
        .group_by(Product.id, Product.name)
    )
    by_unit_query = (
        select(R.unit_id, func.sum(R.amount_fen), func.sum(R.quantity))
        .where(R.coop_id.in_(coop_ids))
        .group_by(R.unit_id)
    )
    if campaign is not None:
        by_product_query = by_product_query.where(E.campaign_id == campaign.id)
        by_unit_query = by_unit_query.where(R.campaign_id == campaign.id)
    by_product = [
        SalesRow(pid, name, as_int(net), as_int(qty))
        for pid, name, net, qty in db.session.execute(by_product_query)
    ]
    units = dict(db.session.execute(select(Unit.id, Unit.name)).all())
    by_unit = [
        SalesRow(unit_id, units.get(unit_id, ""), as_int(net), as_int(qty))
        for unit_id, net, qty in db.session.execute(by_unit_query)
    ]
    by_product.sort(key=lambda r: (-r.net_fen, r.name))
    by_unit.sort(key=lambda r: (r.key == 0, -r.net_fen, r.name))
    return CoopSales(campaign, sum(r.net_fen for r in by_unit), by_product, by_unit)
