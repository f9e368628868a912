"""Group-buy pages (being written)."""

from __future__ import annotations

from flask import Blueprint

import market.groupbuy.models  # noqa: F401  (the models are part of the app's metadata)

bp = Blueprint("groupbuy", __name__)
