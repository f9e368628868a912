"""The storefront: home, search and category listings, product pages. Anyone may browse."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import Blueprint, abort, render_template, request
from flask_login import current_user
from sqlalchemy import select

from market import pagecache
from market.catalog import elsewhere, queries
from market.catalog.models import Category, ProductStatus
from market.clock import today
from market.extensions import db
from market.security.access import Access, requires
from market.security.inputs import int_arg, page_arg
from market.security.throttle import limit

bp = Blueprint("catalog", __name__)
bp.add_app_template_global(elsewhere.product_links)  # links registered by the layers above


def _filters() -> tuple[dict[str, str], list[dict]]:
    """The listing filters asked for (registered beside the catalog: ?cert=organic; an unknown
    value is ignored), and their chips: each choice's link keeps the rest of the query."""
    chosen = queries.chosen_filters(request.args)
    chips = []
    for arg, listing_filter in queries.LISTING_FILTERS.items():
        kept = [(k, v) for k, v in request.args.items(multi=True) if k not in (arg, "page")]

        def link(value: str | None, kept=kept, arg=arg) -> str:
            pairs = [*kept, (arg, value)] if value else kept
            path = quote(request.script_root + request.path)
            return path + (f"?{urlencode(pairs)}" if pairs else "")

        chips.append(
            {
                "arg": arg,
                "label": listing_filter.label,
                "current": chosen.get(arg),
                "all": link(None),
                "choices": [(v, label, link(v)) for v, label in listing_filter.choices()],
            }
        )
    return chosen, chips


@bp.get("/")
@requires(Access.PUBLIC)
@pagecache.cached_page
def home():
    featured = queries.featured_products()
    return pagecache.render(
        "catalog/home.html",
        pagecache.listing_deps(featured),
        featured=featured,
        categories=queries.categories_with_counts(),
        villages=queries.villages_with_products(),
    )


@bp.get("/products")
@requires(Access.PUBLIC)
@limit("LIMIT_SEARCH", exempt_when=lambda: not request.args.get("q"))
@pagecache.cached_page
def search():
    q = request.args.get("q", "").strip()[:50]
    village_id = int_arg("village")
    chosen, chips = _filters()
    page = queries.search_products(
        q or None, village_id=village_id, filters=chosen, page=page_arg()
    )
    return pagecache.render(
        "catalog/listing.html",
        pagecache.listing_deps(page.items),
        page=page,
        q=q,
        category=None,
        filters=chips,
    )


@bp.get("/category/<slug>")
@requires(Access.PUBLIC)
@pagecache.cached_page
def category(slug: str):
    found = db.session.scalar(select(Category).where(Category.slug == slug))
    if found is None:
        abort(404)
    chosen, chips = _filters()
    page = queries.search_products(category=found, filters=chosen, page=page_arg())
    return pagecache.render(
        "catalog/listing.html",
        pagecache.listing_deps(page.items),
        page=page,
        q="",
        category=found,
        filters=chips,
    )


@bp.get("/products/<int:product_id>")
@requires(Access.PUBLIC)
@pagecache.cached_page
def product(product_id: int):
    item = queries.product_for_page(product_id)
    if item is None:
        abort(404)
    if not queries.seen_by(current_user, item):
        if item.status == ProductStatus.DELISTED:
            # An old link (a shared page, a poster): say it is gone and what else the village sells.
            others = queries.search_products(village_id=item.coop.village_id, page=1)
            return render_template("catalog/delisted.html", product=item, others=others), 410
        abort(404)
    units = queries.units_paired_with(item.coop.village_id, today())
    if item.status != ProductStatus.LISTED:  # its own co-op's view: not for everyone
        return render_template("catalog/product.html", product=item, units=units)
    return pagecache.render(
        "catalog/product.html", pagecache.product_deps(item.id), product=item, units=units
    )
