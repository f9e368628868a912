"""A demo presale (预售): next season's 白糖罂荔枝 from 根子镇元坝村's lychee co-op, open for
reservations with a ¥20 定金 of the ¥79 price, so that the presale pages and the product page's
link have something to show."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from market.accounts.models import CoopMembership, User
from market.catalog.models import Product, Sku
from market.clock import today
from market.directory.models import Coop, Village
from market.extensions import db
from market.presales.models import PaymentKind, Presale

VILLAGE = "元坝村"  # 根子镇
PRODUCT = "白糖罂荔枝"
SPEC = "5斤装"
PRICE_FEN = 7900  # below the 8900 of the SKU: paying ahead is rewarded
DEPOSIT_FEN = 2000  # ¥20 定金 when ordering; the ¥59 尾款 once the lychees are picked
LIMIT = 300


def next_harvest(on: date) -> tuple[date, date]:
    """The coming lychee season (白糖罂 ripens from mid-May to mid-June)."""
    year = on.year if on < date(on.year, 5, 10) else on.year + 1
    return date(year, 5, 10), date(year, 6, 15)


def seed_presales(organizer_email: str) -> Presale | None:
    """The lychee presale, opened by the co-op's manager (else the organizer). Flushes;
    seed_demo commits. None when the village or its lychee is not in the data."""
    sku = db.session.scalar(
        select(Sku)
        .join(Product, Product.id == Sku.product_id)
        .join(Coop, Coop.id == Product.coop_id)
        .join(Village, Village.id == Coop.village_id)
        .where(Village.name == VILLAGE, Product.name == PRODUCT, Sku.spec == SPEC)
    )
    if sku is None:
        return None
    coop_id = sku.product.coop_id
    opener = db.session.scalar(
        select(CoopMembership.user_id).where(CoopMembership.coop_id == coop_id).limit(1)
    ) or db.session.scalar(select(User.id).where(User.email == organizer_email))
    start, end = next_harvest(today())
    presale = Presale(
        sku_id=sku.id,
        coop_id=coop_id,
        harvest_from=start,
        harvest_to=end,
        price_fen=PRICE_FEN,
        payment_kind=PaymentKind.DEPOSIT,
        deposit_fen=DEPOSIT_FEN,
        limit_quantity=LIMIT,
        reserved_quantity=0,
        note="示例数据：来年白糖罂荔枝定金预售，每份定金 ¥20，采收后付尾款 ¥59，按付定金先后发货。",
        created_by_id=opener,
    )
    db.session.add(presale)
    db.session.flush()
    return presale
