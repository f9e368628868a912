"""The API's flask-smorest `Api` and the blueprint every view module registers its routes on, in
a module of their own: the view modules import this, and `market.api.init_app` imports the view
modules afterwards, so no view module imports the package that imports it back."""

from __future__ import annotations

from flask_smorest import Api, Blueprint

from market.api import errors
from market.api.schemas import ErrorSchema

API_PREFIX = "/api/v1"


class MarketApi(Api):
    """flask-smorest's Api without its app-wide HTTPException handler: the HTML pages keep
    theirs (market/errorpages.py); the API's blueprints register their own."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass


api = MarketApi()
blueprints: list[Blueprint] = []


def blueprint(name: str, description: str) -> Blueprint:
    """A blueprint of the API: under /api/v1, CSRF-exempt, errors in the API's shape, and
    sign-in refused with 401 (not a redirect to the login page)."""
    blp = Blueprint(name, "market.api", url_prefix=API_PREFIX, description=description)
    errors.register(blp)
    blueprints.append(blp)
    return blp
