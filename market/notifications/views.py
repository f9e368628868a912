"""The notification centre: the list, marking read, and the unread count in the header."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from market.accounts import sessions
from market.accounts.forms import ActionForm
from market.notifications import services
from market.security.access import Access, requires
from market.security.inputs import page_arg

bp = Blueprint("notifications", __name__)


@bp.get("/notifications")
@requires(Access.SIGNED_IN)
def index():
    page = services.recent(current_user.id, page_arg())
    return render_template("notifications/list.html", page=page)


@bp.post("/notifications/<int:notification_id>/read")
@requires(Access.SIGNED_IN)
def read(notification_id: int):
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".index"), 303)
    notification = services.mark_read(current_user, notification_id)
    link = notification.link
    # Only a path of ours: a notification never sends anyone to another site.
    return redirect(link if services.is_local_path(link) else url_for(".index"), 303)


@bp.post("/notifications/read-all")
@requires(Access.SIGNED_IN)
def read_all():
    if ActionForm().validate_on_submit():
        services.mark_all_read(current_user)
        flash(_("已全部标为已读"), "success")
    return redirect(url_for(".index"), 303)


LOADED_AS = "unread_notifications"
sessions.LOADED_WITH_SESSION[LOADED_AS] = services.unread_count_of


def unread_notification_count() -> int:
    """The header's badge, only for a signed-in user: as the session's query read it at the
    start of the request, or counted again if the request changed their notifications (or the
    person was signed in otherwise). A failing count (say, on the error page of a broken
    transaction) shows no badge rather than no page."""
    if not current_user.is_authenticated:
        return 0
    shown = g.get(services.UNREAD_SHOWN)
    if shown is None:
        loaded = (current_user.loaded_with_session or {}).get(LOADED_AS)
        if loaded is not None and not g.get(services.UNREAD_CHANGED):
            shown = loaded
        else:
            try:
                shown = services.unread_count(current_user.id)
            except SQLAlchemyError:
                current_app.logger.exception("could not count unread notifications")
                shown = 0
        setattr(g, services.UNREAD_SHOWN, shown)
    return shown


@bp.app_context_processor
def header_context() -> dict:
    # A function, not a number: pages that don't show the header (packing lists) cost nothing.
    return {"unread_notification_count": unread_notification_count}
