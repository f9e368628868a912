"""The audit log for organizers and finance: a filtered list, newest first, and its CSV."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, render_template, request, stream_with_context

from market.audit import queries
from market.security.access import Access, requires
from market.security.inputs import page_arg

bp = Blueprint("audit", __name__, url_prefix="/admin")


@bp.get("/audit")
@requires(Access.ORGANIZER, Access.FINANCE)
def index():
    filters = queries.filters_from(request.args)
    page = queries.events_page(filters, page_arg())
    return render_template(
        "audit/index.html",
        page=page,
        filters=filters,
        names=queries.object_names(page.items),
        changes=queries.changes,
        actions=queries.action_choices(),
        object_types=queries.object_type_choices(),
        csv_args={k: v for k, v in request.args.items() if k != "page"},
    )


@bp.get("/audit.csv")
@requires(Access.ORGANIZER, Access.FINANCE)
def export_csv():
    filters = queries.filters_from(request.args)
    name = queries.csv_name()
    return Response(
        stream_with_context(queries.csv_stream(filters)),
        mimetype="text/csv",
        headers={
            # An ASCII fallback for old clients, the real (Chinese) name per RFC 6266 / 5987.
            "Content-Disposition": (
                f"attachment; filename=\"audit.csv\"; filename*=UTF-8''{quote(name)}"
            ),
            "Cache-Control": "no-store",
        },
    )
