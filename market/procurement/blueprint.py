"""The 以买代帮 / 产品定制 blueprint. Its routes are in `views` (the unit's purchases and their
documents), `custom_views` (产品定制) and `billing_views` (先货后款 and invoices), each importing
`bp` from here; the app factory imports the three, so no view module imports another."""

from __future__ import annotations

from flask import Blueprint, abort
from flask_login import current_user

import market.procurement.models  # noqa: F401  (the models are part of the app's metadata)
from market.directory.models import Unit

bp = Blueprint("procurement", __name__)


def own_unit() -> Unit:
    """The signed-in person's unit; someone without one (an admin, say) has nothing here."""
    unit = current_user.unit
    if unit is None:
        abort(404)
    return unit
