"""The trace page's facts through the API (`/t/<code>` behind a parcel's QR): a batch's product,
village and its story, co-op, harvest, inspection result, the product's valid certificates and
the units paired with the village. Public, as the page is; the same queries."""

from __future__ import annotations

from flask import url_for
from marshmallow import Schema, fields, validate

from market.api.blueprint import blueprint
from market.api.catalog_views import (
    CertificateSchema,
    PlaceSchema,
    UnitRefSchema,
    dump_certificate,
    paired_units,
)
from market.api.schemas import ErrorSchema
from market.batches import services as batches
from market.batches.models import InspectionResult
from market.certificates import queries as certificates
from market.security.access import Access, requires

blp = blueprint("api_trace", "Traceability: the batch a parcel's QR names")


class TraceVillageSchema(PlaceSchema):
    story = fields.String(required=True)
    town = fields.Nested(PlaceSchema, required=True)


class InspectionSchema(Schema):
    result = fields.String(
        required=True, validate=validate.OneOf([r.value for r in InspectionResult])
    )
    label = fields.String(required=True, metadata={"description": "in the request's language"})
    report_url = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "the inspection report, to whoever holds the code"},
    )


class TraceSchema(Schema):
    code = fields.String(required=True)
    trace_url = fields.String(required=True, metadata={"description": "the page behind the QR"})
    product = fields.Nested(PlaceSchema, required=True)
    spec = fields.String(required=True)
    village = fields.Nested(TraceVillageSchema, required=True)
    coop = fields.Nested(PlaceSchema, required=True)
    harvested_on = fields.Date(required=True)
    plot = fields.String(required=True, metadata={"description": "plot or pond; may be empty"})
    inspection = fields.Nested(InspectionSchema, required=True)
    certificates = fields.List(
        fields.Nested(CertificateSchema),
        required=True,
        metadata={"description": "the product's verified certificates valid today"},
    )
    paired_units = fields.List(fields.Nested(UnitRefSchema), required=True)


@blp.route("/batches/<code>", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, TraceSchema)
@blp.alt_response(404, schema=ErrorSchema)
def batch(code: str):
    """A batch by the code printed on its parcels (any case); an unknown code is a 404."""
    found = batches.batch_by_code(code)
    product = found.sku.product
    village = product.coop.village
    return {
        "code": found.code,
        "trace_url": url_for("batches.trace", code=found.code, _external=True),
        "product": {"id": product.id, "name": product.name},
        "spec": found.sku.spec,
        "village": {
            "id": village.id,
            "name": village.name,
            "story": village.story,
            "town": {"id": village.town.id, "name": village.town.name},
        },
        "coop": {"id": product.coop.id, "name": product.coop.name},
        "harvested_on": found.harvested_on,
        "plot": found.plot,
        "inspection": {
            "result": found.inspection_result.value,
            "label": found.inspection_label,
            "report_url": url_for("batches.report", code=found.code, _external=True)
            if found.inspection_path
            else None,
        },
        "certificates": [dump_certificate(c) for c in certificates.valid_for_product(product.id)],
        "paired_units": paired_units(village.id),
    }
