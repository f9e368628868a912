"""The OpenAPI document and Swagger UI, served from the swagger-ui-bundle package's own files
(no CDN): the page's script is a file of ours, so the shop's CSP (script-src 'self') holds."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, jsonify, render_template_string, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from market.security.access import Access, requires

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")

ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>market API v1</title>
<link rel="stylesheet" href="{{ url_for('api_docs.asset', filename='swagger-ui.css') }}">
</head><body><div id="swagger-ui" data-spec="{{ url_for('api_docs.openapi_json') }}"></div>
<script src="{{ url_for('api_docs.asset', filename='swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('api_docs.asset', filename='swagger-ui-standalone-preset.js') }}"></script>
<script src="{{ url_for('api_docs.asset', filename='init.js') }}"></script>
</body></html>
"""

INIT = """window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.dataset.spec,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
});
"""


def spec_dict() -> dict:
    from market.api.blueprint import api

    return api.spec.to_dict()


@bp.get("/openapi.json")
@requires(Access.PUBLIC)
def openapi_json():
    return jsonify(spec_dict())


@bp.get("/docs")
@requires(Access.PUBLIC)
def docs():
    return render_template_string(PAGE)


@bp.get("/docs/<path:filename>")
@requires(Access.PUBLIC)
def asset(filename: str):
    if filename == "init.js":
        return Response(INIT, mimetype="text/javascript", headers={"Cache-Control": "max-age=3600"})
    if filename not in ASSETS:
        abort(404)
    return send_from_directory(Path(swagger_ui_path), filename, max_age=86400)
