"""Read side of the storefront. Each listing loads its products with a fixed number of queries,
however many products a page shows (eager loading, no per-row lazy loads)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from flask import current_app
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from market.catalog import synonyms
from market.catalog.models import Category, Product, ProductStatus
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.extensions import db
from market.models import contains


def _with_card_data(query: Select) -> Select:
    return query.options(
        joinedload(Product.coop).joinedload(Coop.village).joinedload(Village.town),
        joinedload(Product.category),
        selectinload(Product.skus),
        selectinload(Product.images),
    )


def _listed() -> Select:
    return select(Product).where(Product.status == ProductStatus.LISTED)


CATEGORY = (Category.name, Category.name_en)  # "honey" finds 蜂蜜 too


@dataclass(frozen=True)
class ListingFilter:
    """A filter of the storefront listing that a package beside the catalog adds (the
    certificates' ?cert=organic), registered with `add_listing_filter` when its blueprint is:
    the catalog names none of them. `product_ids(value)` is a subquery of the products a
    choice keeps; a value not among `choices()` is ignored."""

    arg: str
    label: object  # a lazy string
    choices: Callable[[], list[tuple[str, str]]]
    product_ids: Callable[[str], Select]


LISTING_FILTERS: dict[str, ListingFilter] = {}


def add_listing_filter(listing_filter: ListingFilter) -> None:
    LISTING_FILTERS[listing_filter.arg] = listing_filter


def chosen_filters(args: Mapping[str, str]) -> dict[str, str]:
    """The registered filters the query string asks for with a value they offer."""
    chosen = {}
    for arg, listing_filter in LISTING_FILTERS.items():
        value = args.get(arg) or ""
        if value and value in dict(listing_filter.choices()):
            chosen[arg] = value
    return chosen


def search_products(
    q: str | None = None,
    *,
    category: Category | None = None,
    village_id: int | None = None,
    filters: Mapping[str, str] | None = None,
    page: int = 1,
    per_page: int | None = None,
):
    """Listed products matching words in the product, co-op, village, town or category name.
    Works for Chinese text: a plain substring match, every word must match somewhere; a word
    in a synonym group (红薯 番薯 地瓜) matches any term of the group. `filters`: the
    registered listing filters' choices (`chosen_filters`)."""
    query = (
        _listed().join(Product.coop).join(Coop.village).join(Village.town).join(Product.category)
    )
    for word in (q or "").split()[:5]:
        query = query.where(
            or_(
                *(
                    contains(column, term)
                    for term in synonyms.expand(word)
                    for column in (Product.name, Coop.name, Village.name, Town.name, *CATEGORY)
                )
            )
        )
    if category is not None:
        query = query.where(Product.category_id == category.id)
    if village_id is not None:
        query = query.where(Coop.village_id == village_id)
    for arg, value in (filters or {}).items():
        query = query.where(Product.id.in_(LISTING_FILTERS[arg].product_ids(value)))
    query = _with_card_data(query.order_by(Product.featured.desc(), Product.id.desc()))
    return db.paginate(
        query,
        page=page,
        per_page=per_page or current_app.config["PRODUCTS_PER_PAGE"],  # the API chooses
        max_per_page=100,
        error_out=False,
    )


def featured_products(limit: int = 8) -> list[Product]:
    query = _with_card_data(
        _listed().order_by(Product.featured.desc(), Product.id.desc()).limit(limit)
    )
    return list(db.session.scalars(query).unique())


def categories_with_counts() -> list[tuple[Category, int]]:
    rows = db.session.execute(
        select(Category, func.count(Product.id))
        .outerjoin(
            Product,
            (Product.category_id == Category.id) & (Product.status == ProductStatus.LISTED),
        )
        .group_by(Category.id)
        .order_by(Category.sort_order, Category.id)
    )
    return [(category, count) for category, count in rows]


def villages_with_products(limit: int = 12) -> list[tuple[Village, int]]:
    count = func.count(Product.id)
    rows = db.session.execute(
        select(Village, count)
        .join(Coop, Coop.village_id == Village.id)
        .join(Product, (Product.coop_id == Coop.id) & (Product.status == ProductStatus.LISTED))
        .options(joinedload(Village.town))
        .group_by(Village.id)
        .order_by(Village.is_typical.desc(), count.desc(), Village.id)
        .limit(limit)
    )
    return [(village, n) for village, n in rows]


def product_for_page(product_id: int) -> Product | None:
    return db.session.scalar(_with_card_data(select(Product).where(Product.id == product_id)))


def seen_by(user, product: Product) -> bool:
    """A listed product is everyone's to see; a draft or a delisted one only its own co-op's
    (and an admin's). The page and the API say 404 to anyone else, or 410 for a delisted one."""
    if product.status == ProductStatus.LISTED:
        return True
    return user.is_authenticated and (user.is_admin or product.coop_id in user.coop_ids())


def units_paired_with(village_id: int, on: date) -> list[Unit]:
    return list(
        db.session.scalars(
            select(Unit)
            .join(Pairing, Pairing.unit_id == Unit.id)
            .where(
                Pairing.village_id == village_id,
                Pairing.since <= on,
                or_(Pairing.until.is_(None), Pairing.until >= on),
            )
            .order_by(Unit.name)
        )
    )
