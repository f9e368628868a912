"""Pages of a listing: `page`/`per_page` (bounded), the items with the counts, and a `Link`
header (RFC 8288: first, prev, next, last) so clients page without building URLs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from flask import request, url_for


def link_header(page: int, pages: int) -> str:
    args = {k: v for k, v in request.args.items() if k != "page"}
    endpoint, view_args = request.endpoint, dict(request.view_args or {})

    def url(number: int) -> str:
        return url_for(endpoint, **view_args, **args, page=number)

    last = max(pages, 1)
    links = [(1, "first")]
    if page > 1:
        links.append((min(page - 1, last), "prev"))
    if page < last:
        links.append((page + 1, "next"))
    links.append((last, "last"))
    return ", ".join(f'<{url(number)}>; rel="{rel}"' for number, rel in links)


def page_of(
    items: Sequence, total: int, page: int, per_page: int, dump: Callable
) -> tuple[dict, int, dict]:
    pages = (total + per_page - 1) // per_page
    body = {
        "items": [dump(item) for item in items],
        "pagination": {"page": page, "per_page": per_page, "total": total, "pages": pages},
    }
    headers = {"Link": link_header(page, pages), "X-Total-Count": str(total)}
    return body, 200, headers


def from_pagination(pagination, dump: Callable) -> tuple[dict, int, dict]:
    """A Flask-SQLAlchemy Pagination as an API page."""
    return page_of(
        list(pagination.items), pagination.total or 0, pagination.page, pagination.per_page, dump
    )


def slice_of(items: Iterable, page: int, per_page: int, dump: Callable) -> tuple[dict, int, dict]:
    """A page of a list already in memory (short lists: a person's notifications, group-buys)."""
    items = list(items)
    start = (page - 1) * per_page
    return page_of(items[start : start + per_page], len(items), page, per_page, dump)
