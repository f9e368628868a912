"""The 爱心团购 blueprint, with what its every page's templates get: the progress and time left
as template globals, and the home page's section of the employee's unit's open group-buys.

Its routes are in `views` (employees), `coordinator_views` (the unit's coordinator) and
`coop_views` (the co-op and the organizers), each importing `bp` from here; the app factory
imports the three, so no view module imports another."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

import market.groupbuy.models  # noqa: F401  (the models are part of the app's metadata)
from market import pagecache
from market.groupbuy import queries
from market.groupbuy.display import progress, time_left
from market.groupbuy.models import GroupBuy

bp = Blueprint("groupbuy", __name__)


def _unit_group_buys() -> list[GroupBuy]:
    """The home page's section: the open group-buys of the signed-in employee's unit."""
    unit = current_user.unit if current_user.is_authenticated else None
    return queries.open_for_unit(unit.id) if unit is not None else []


@bp.app_context_processor
def group_buy_context() -> dict:
    # A function, not a list: only the page that shows the section pays for the query. The home
    # page (catalog, a lower layer) includes groupbuy/_home_section.html when this exists.
    return {"unit_group_buys": _unit_group_buys}


# The section for a signed-in visitor of a cached home page (the page cache draws its "unit"
# region with this): one stored copy per unit and language, renewed by any group-buy, directory
# or its products' change, and at least every SECTION_SECONDS for its "剩余 …" text.
SECTION = "groupbuy/_home_section.html"
SECTION_SECONDS = 60


def _draw_unit_section() -> str:
    unit = current_user.unit if current_user.is_authenticated else None
    if unit is None:
        return render_template(SECTION, unit_group_buys=list)

    def draw() -> tuple[str, list[str]]:
        group_buys = queries.open_for_unit(unit.id)
        html = render_template(SECTION, unit_group_buys=lambda: group_buys)
        products = {item.sku.product_id for gb in group_buys for item in gb.items}
        return html, [
            pagecache.GROUP_BUYS,
            pagecache.DIRECTORY,
            *(pagecache.product_key(p) for p in products),
        ]

    return pagecache.fragment(f"unit-group-buys:{unit.id}", draw, SECTION_SECONDS)


@bp.record_once
def _draw_region(state) -> None:
    pagecache.draw_region_with(state.app, "unit", _draw_unit_section)


# Globals rather than context: the macros in groupbuy/_macros.html are imported without context.
bp.add_app_template_global(progress, "group_buy_progress")
bp.add_app_template_global(time_left, "group_buy_time_left")
