"""One effect per submitted money form, however often it is sent.

A form that moves money, stock or rights carries a one-time token (`form_token_field()` in the
template). The view is wrapped in `@one_effect_per_form`: the token is written in the same
transaction as the action the service commits, under a unique key, so of five identical
concurrent POSTs the first does the work and the other four wait for it (the database's unique
index) and then get its outcome — a redirect to where the first one went — instead of a second
refund, a second payout or a 500. A token whose action was refused (rolled back) is free again,
so the person can correct the form and send it once more.

Forms posted without a token (an old page, a script) still meet each service's own guards
(row locks and states), which make repeats of the same confirmation or payout harmless.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from flask import flash, redirect, request
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from market.extensions import db
from market.models import UTCDateTime, utcnow

TOKEN = re.compile(r"^[0-9a-f]{32}$")


class SubmittedForm(db.Model):
    """A money form's one-time token, once its action went through."""

    __tablename__ = "submitted_forms"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    endpoint: Mapped[str] = mapped_column(String(80))
    # Where the first submission sent the person: the repeats go there too.
    location: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def form_token_field() -> Markup:
    """The hidden one-time token of a money form (a Jinja global)."""
    return Markup('<input type="hidden" name="form_token" value="%s">') % secrets.token_hex(16)


def _first_outcome(token: str):
    db.session.rollback()
    location = db.session.scalar(select(SubmittedForm.location).where(SubmittedForm.token == token))
    flash(_("这项操作已经提交过，没有重复办理"), "info")
    target = location or request.referrer or "/"
    if not target.startswith(("/", request.host_url)):
        target = "/"
    return redirect(target, 303)


def one_effect_per_form(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a POST view whose form carries `form_token`: a repeat gets the first outcome."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = request.form.get("form_token", "")
        if not TOKEN.match(token):
            return view(*args, **kwargs)
        if db.session.get(SubmittedForm, token) is not None:
            return _first_outcome(token)
        db.session.add(
            SubmittedForm(
                token=token,
                user_id=current_user.id if current_user.is_authenticated else None,
                endpoint=(request.endpoint or "")[:80],
            )
        )
        try:
            # A concurrent twin waits here until the first commits, then fails on the key.
            db.session.flush()
        except IntegrityError:
            return _first_outcome(token)
        try:
            response = view(*args, **kwargs)
        except IntegrityError:
            return _first_outcome(token)
        # Services commit their work; whatever is left uncommitted (a refused action's token)
        # is dropped, so the token is only kept when the action went through.
        db.session.rollback()
        location = getattr(response, "location", None) or ""
        if location:
            db.session.execute(
                update(SubmittedForm)
                .where(SubmittedForm.token == token)
                .values(location=location[:500])
            )
            db.session.commit()
        return response

    return wrapper
