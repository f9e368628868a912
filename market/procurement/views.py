"""Unit purchase and custom-product pages (being written)."""

from __future__ import annotations

from flask import Blueprint

import market.procurement.models  # noqa: F401  (the models are part of the app's metadata)

bp = Blueprint("procurement", __name__)
