"""Public village pages: the story, the co-ops, their products and the pairing units."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from market import pagecache
from market.accounts.permissions import Access, requires
from market.catalog import queries
from market.directory.models import Town, Village
from market.directory.names import pinyin_key
from market.extensions import db

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
    return pagecache.render("directory/villages.html", [pagecache.DIRECTORY], towns=listing)


@bp.get("/villages/<int:village_id>")
@requires(Access.PUBLIC)
@pagecache.cached_page
def village(village_id: int):
    found = db.session.scalar(
        select(Village)
        .where(Village.id == village_id)
        .options(joinedload(Village.town), selectinload(Village.coops))
    )
    if found is None:
        abort(404)
    page = queries.search_products(village_id=found.id, page=1)
    units = queries.units_paired_with(found.id, date.today())
    return pagecache.render(
        "directory/village.html",
        pagecache.listing_deps(page.items),
        village=found,
        page=page,
        units=units,
    )
