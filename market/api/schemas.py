"""Shapes every part of the API shares: errors, money, paging."""

from __future__ import annotations

from datetime import datetime

from marshmallow import Schema, fields, validate

from market.clock import SHANGHAI
from market.money import format_fen

MAX_PER_PAGE = 100
MAX_PAGE = 10_000


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True, metadata={"description": "in the request's language"})
    fields = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        required=True,
        metadata={"description": "problems per input field"},
    )


class MoneySchema(Schema):
    fen = fields.Integer(required=True, metadata={"description": "integer fen (1/100 CNY)"})
    formatted = fields.String(required=True, metadata={"example": "¥88.00"})


def money(fen: int | None) -> dict | None:
    if fen is None:
        return None
    return {"fen": fen, "formatted": format_fen(fen)}


def local_time(value: datetime | None) -> datetime | None:
    """Aware UTC from the database -> the same instant in Beijing time (+08:00)."""
    return value.astimezone(SHANGHAI) if value is not None else None


class PageArgsSchema(Schema):
    page = fields.Integer(
        load_default=1, validate=validate.Range(1, MAX_PAGE), metadata={"example": 1}
    )
    per_page = fields.Integer(
        load_default=20, validate=validate.Range(1, MAX_PER_PAGE), metadata={"example": 20}
    )


class PaginationSchema(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class MessageSchema(Schema):
    message = fields.String(required=True)


def paged(item_schema: type[Schema], name: str) -> type[Schema]:
    """A page of `item_schema`: {"items": [...], "pagination": {...}}."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema), required=True),
            "pagination": fields.Nested(PaginationSchema, required=True),
        },
        name=name,
    )
