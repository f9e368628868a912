"""The public page: what everyone may see of a campaign: the total helped, the villages and the
products bought most, the weekly trend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select

from market.campaign.models import Campaign, ProductTotal, UnitTotal
from market.campaign.read.dashboard import (
    VillageRow,
    Week,
    campaign_orders_and_buyers,
    trend_chart,
    village_rows,
    weekly_trend,
)
from market.campaign.read.filters import Filters, SalesRow, as_int
from market.catalog.models import Product
from market.extensions import db


@dataclass
class PublicSummary:
    campaign: Campaign
    net_fen: int
    orders: int
    units: int  # units credited with sales
    villages: int  # villages with sales
    top_villages: list[VillageRow]
    top_products: list[SalesRow]
    weeks: list[Week]

    def chart_data(self) -> dict:
        return {"trend": trend_chart(self.weeks)}


def public_summary(campaign: Campaign, today: date, top: int = 10) -> PublicSummary:
    """What everyone may see: the total helped, the villages and products bought most."""
    filters = Filters(campaign.id)
    villages = [v for v in village_rows(filters) if v.net_fen > 0]
    orders, _buyers = campaign_orders_and_buyers(filters)
    units = db.session.scalar(
        select(func.count()).where(
            UnitTotal.campaign_id == campaign.id, UnitTotal.unit_id != 0, UnitTotal.amount_fen > 0
        )
    )
    P = ProductTotal
    best = (
        select(P.product_id, P.amount_fen.label("net"), P.quantity.label("quantity"))
        .where(P.campaign_id == campaign.id, P.amount_fen > 0)
        .order_by(P.amount_fen.desc(), P.product_id)
        .limit(top)
        .subquery()
    )
    products = [
        SalesRow(pid, name, as_int(net), as_int(qty))
        for pid, name, net, qty in db.session.execute(
            select(Product.id, Product.name, best.c.net, best.c.quantity)
            .join(best, best.c.product_id == Product.id)
            .order_by(best.c.net.desc(), Product.name)
        )
    ]
    return PublicSummary(
        campaign=campaign,
        net_fen=sum(v.net_fen for v in villages),
        orders=as_int(orders),
        units=as_int(units),
        villages=len(villages),
        top_villages=villages[:top],
        top_products=products,
        weeks=weekly_trend(campaign, filters, today),
    )
