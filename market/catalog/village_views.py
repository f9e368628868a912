"""Public village pages: the story, the co-ops, their products and the pairing units.

Storefront pages, so they live in the catalog (above the directory, whose villages they show); the
blueprint keeps the name `directory` and its URLs (/villages, /villages/<id>)."""

from __future__ import annotations

from flask import Blueprint, abort
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from market import pagecache
from market.catalog import queries
from market.clock import today
from market.directory.models import Town
from market.directory.names import pinyin_key
from market.directory.queries import village_with_coops
from market.extensions import db
from market.security.access import Access, requires

bp = Blueprint("directory", __name__)


@bp.get("/villages")
@requires(Access.PUBLIC)
@pagecache.cached_page
def villages():
    towns = db.session.scalars(select(Town).options(selectinload(Town.villages))).all()
    # In pinyin order (白 before 曹 before 古), the towns and the villages within each.
    listing = [
        (town, sorted(town.villages, key=lambda v: pinyin_key(v.name)))
        for town in sorted(towns, key=lambda t: pinyin_key(t.name))
    ]
    return pagecache.render("catalog/villages.html", [pagecache.DIRECTORY], towns=listing)


@bp.get("/villages/<int:village_id>")
@requires(Access.PUBLIC)
@pagecache.cached_page
def village(village_id: int):
    found = village_with_coops(village_id)
    if found is None:
        abort(404)
    page = queries.search_products(village_id=found.id, page=1)
    units = queries.units_paired_with(found.id, today())
    return pagecache.render(
        "catalog/village.html",
        pagecache.listing_deps(page.items),
        village=found,
        page=page,
        units=units,
    )
