"""The catalogue, public like the storefront: categories, products with their SKUs, stock state,
images and certificates, villages and co-ops with the units paired with them, and search with
paging."""

from __future__ import annotations

from flask import abort, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from market.api.blueprint import blueprint
from market.api.errors import error_response
from market.api.paging import from_pagination
from market.api.schemas import ErrorSchema, MoneySchema, PageArgsSchema, money, paged
from market.catalog import queries
from market.catalog.models import Category, Product, ProductStatus
from market.certificates import queries as certificates
from market.certificates.models import CertificateKind
from market.clock import today
from market.directory.models import Coop, Town
from market.directory.names import pinyin_key
from market.directory.queries import village_with_coops
from market.extensions import db
from market.security.access import Access, requires
from market.security.throttle import limit

blp = blueprint("api_catalog", "The catalogue: categories, products, villages, co-ops")

STOCK_STATES = ("in_stock", "low", "sold_out")
LOW_STOCK = 10


def stock_state(stock: int) -> str:
    if stock <= 0:
        return "sold_out"
    return "low" if stock <= LOW_STOCK else "in_stock"


def media(path: str | None) -> str | None:
    return url_for("web.media", filename=path) if path else None


# -- schemas -------------------------------------------------------------------------------
class CategorySchema(Schema):
    id = fields.Integer(required=True)
    slug = fields.String(required=True)
    name = fields.String(required=True, metadata={"description": "in the request's language"})
    name_zh = fields.String(required=True)
    product_count = fields.Integer(required=True)


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema), required=True)


class SkuSchema(Schema):
    id = fields.Integer(required=True)
    spec = fields.String(required=True)
    price = fields.Nested(MoneySchema, required=True)
    stock = fields.Integer(required=True)
    stock_state = fields.String(required=True, validate=validate.OneOf(STOCK_STATES))
    weight_g = fields.Integer(allow_none=True, required=True)


class ImageSchema(Schema):
    url = fields.String(required=True)
    thumb_url = fields.String(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)


class PlaceSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class BadgeSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in CertificateKind]))
    label = fields.String(required=True, metadata={"description": "in the request's language"})


class CertificateSchema(BadgeSchema):
    number = fields.String(required=True)
    issuer = fields.String(required=True)
    valid_until = fields.Date(required=True, metadata={"description": "its last day, inclusive"})


class ProductCardSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    status = fields.String(required=True)
    category = fields.Nested(PlaceSchema, required=True)
    coop = fields.Nested(PlaceSchema, required=True)
    village = fields.Nested(PlaceSchema, required=True)
    town = fields.Nested(PlaceSchema, required=True)
    min_price = fields.Nested(MoneySchema, allow_none=True, required=True)
    max_price = fields.Nested(MoneySchema, allow_none=True, required=True)
    stock_state = fields.String(required=True, validate=validate.OneOf(STOCK_STATES))
    cover = fields.Nested(ImageSchema, allow_none=True, required=True)
    skus = fields.List(fields.Nested(SkuSchema), required=True)
    badges = fields.List(
        fields.Nested(BadgeSchema),
        required=True,
        metadata={
            "description": "the kinds of its verified certificates valid today, as the "
            "storefront's badges (one per kind)"
        },
    )


class UnitRefSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class ProductSchema(ProductCardSchema):
    description = fields.String(required=True)
    origin_story = fields.String(required=True)
    season_months = fields.List(fields.Integer(), required=True)
    shelf_life_days = fields.Integer(allow_none=True, required=True)
    images = fields.List(fields.Nested(ImageSchema), required=True)
    paired_units = fields.List(fields.Nested(UnitRefSchema), required=True)
    certificates = fields.List(
        fields.Nested(CertificateSchema),
        required=True,
        metadata={"description": "its verified certificates valid today (the badges')"},
    )


class SearchArgsSchema(PageArgsSchema):
    q = fields.String(validate=validate.Length(max=50), metadata={"example": "蜂蜜"})
    category = fields.String(validate=validate.Length(max=30), metadata={"example": "honey"})
    village_id = fields.Integer(validate=validate.Range(1, 2**31 - 1))


class CoopSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    intro = fields.String(required=True)
    village = fields.Nested(PlaceSchema, required=True)
    paired_units = fields.List(fields.Nested(UnitRefSchema), required=True)


class VillageSummarySchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    is_typical = fields.Boolean(required=True)


class TownSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    villages = fields.List(fields.Nested(VillageSummarySchema), required=True)


class TownListSchema(Schema):
    items = fields.List(fields.Nested(TownSchema), required=True)


class VillageSchema(VillageSummarySchema):
    story = fields.String(required=True)
    town = fields.Nested(PlaceSchema, required=True)
    photo_url = fields.String(allow_none=True, required=True)
    coops = fields.List(fields.Nested(PlaceSchema), required=True)
    paired_units = fields.List(fields.Nested(UnitRefSchema), required=True)


# -- what they show ------------------------------------------------------------------------
def category_name(category: Category) -> str:
    english = str(get_locale() or "").startswith("en")
    return (category.name_en or category.name) if english else category.name


def dump_sku(sku) -> dict:
    return {
        "id": sku.id,
        "spec": sku.spec,
        "price": money(sku.price_fen),
        "stock": max(sku.stock, 0),
        "stock_state": stock_state(sku.stock),
        "weight_g": sku.weight_g,
    }


def dump_image(image) -> dict:
    return {
        "url": media(image.path),
        "thumb_url": media(image.thumb_path),
        "width": image.width,
        "height": image.height,
    }


def dump_badge(certificate) -> dict:
    return {"kind": certificate.kind.value, "label": certificate.kind_label}


def dump_certificate(certificate) -> dict:
    return {
        **dump_badge(certificate),
        "number": certificate.number,
        "issuer": certificate.issuer,
        "valid_until": certificate.valid_until,
    }


def dump_card(product: Product, shown: list | None = None) -> dict:
    """A product card; `shown` is its valid certificates when the caller loaded them for a
    whole page (certificates.valid_by_product), else they are asked for now."""
    if shown is None:
        shown = certificates.valid_for_product(product.id)
    prices = product.price_range_fen
    village = product.coop.village
    return {
        "id": product.id,
        "name": product.name,
        "status": product.status.value,
        "category": {"id": product.category.id, "name": category_name(product.category)},
        "coop": {"id": product.coop.id, "name": product.coop.name},
        "village": {"id": village.id, "name": village.name},
        "town": {"id": village.town.id, "name": village.town.name},
        "min_price": money(prices[0]) if prices else None,
        "max_price": money(prices[1]) if prices else None,
        "stock_state": stock_state(product.total_stock),
        "cover": dump_image(product.cover) if product.cover else None,
        "skus": [dump_sku(sku) for sku in product.skus if sku.active],
        "badges": [dump_badge(c) for c in shown],
    }


def paired_units(village_id: int) -> list[dict]:
    return [
        {"id": unit.id, "name": unit.name}
        for unit in queries.units_paired_with(village_id, today())
    ]


# -- views ---------------------------------------------------------------------------------
@blp.route("/categories", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, CategoryListSchema)
def categories():
    """Every category with its number of listed products."""
    return {
        "items": [
            {
                "id": category.id,
                "slug": category.slug,
                "name": category_name(category),
                "name_zh": category.name,
                "product_count": count,
            }
            for category, count in queries.categories_with_counts()
        ]
    }


@blp.route("/products", methods=["GET"])
@requires(Access.PUBLIC)
@limit("LIMIT_SEARCH", exempt_when=lambda: not request.args.get("q"))  # as the page
@blp.doc(security=[])
@blp.arguments(SearchArgsSchema, location="query", unknown=RAISE)
@blp.response(200, paged(ProductCardSchema, "ProductPage"))
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(429, schema=ErrorSchema)
def products(args):
    """Search listed products by product, co-op, village, town or category name (synonyms
    expanded), optionally in one category or village; paged, with a Link header. Each card
    carries its certificate badges' kinds."""
    found = None
    if args.get("category"):
        found = db.session.scalar(select(Category).where(Category.slug == args["category"]))
        if found is None:
            abort(404)
    page = queries.search_products(
        (args.get("q") or "").strip() or None,
        category=found,
        village_id=args.get("village_id"),
        page=args["page"],
        per_page=args["per_page"],
    )
    shown = certificates.valid_by_product(p.id for p in page.items)  # one query for the page
    return from_pagination(page, lambda product: dump_card(product, shown[product.id]))


@blp.route("/products/<int:product_id>", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, ProductSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(410, schema=ErrorSchema)
def product(product_id: int):
    """A product with its SKUs, stock state, images, the units paired with its village, and
    its verified certificates valid today (the storefront's badges). A draft is seen only by
    its own co-op; a delisted product answers 410 to others."""
    item = queries.product_for_page(product_id)
    if item is None:
        abort(404)
    if not queries.seen_by(current_user, item):
        if item.status == ProductStatus.DELISTED:
            return error_response(410, _("该商品已下架"), code="delisted")
        abort(404)
    shown = certificates.valid_for_product(item.id)
    body = dump_card(item, shown)
    body.update(
        description=item.description,
        origin_story=item.origin_story,
        season_months=item.season_months,
        shelf_life_days=item.shelf_life_days,
        images=[dump_image(image) for image in item.images],
        paired_units=paired_units(item.coop.village_id),
        certificates=[dump_certificate(c) for c in shown],
    )
    return body


@blp.route("/villages", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, TownListSchema)
def villages():
    """Towns and their villages, in pinyin order."""
    towns = db.session.scalars(select(Town).options(selectinload(Town.villages))).all()
    return {
        "items": [
            {
                "id": town.id,
                "name": town.name,
                "villages": [
                    {"id": v.id, "name": v.name, "is_typical": v.is_typical}
                    for v in sorted(town.villages, key=lambda v: pinyin_key(v.name))
                ],
            }
            for town in sorted(towns, key=lambda t: pinyin_key(t.name))
        ]
    }


@blp.route("/villages/<int:village_id>", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, VillageSchema)
@blp.alt_response(404, schema=ErrorSchema)
def village(village_id: int):
    """A village with its story, co-ops and the units paired with it today."""
    found = village_with_coops(village_id)
    if found is None:
        abort(404)
    return {
        "id": found.id,
        "name": found.name,
        "is_typical": found.is_typical,
        "story": found.story,
        "town": {"id": found.town.id, "name": found.town.name},
        "photo_url": media(found.photo_path),
        "coops": [{"id": c.id, "name": c.name} for c in found.coops if c.approved],
        "paired_units": paired_units(found.id),
    }


@blp.route("/coops/<int:coop_id>", methods=["GET"])
@requires(Access.PUBLIC)
@blp.doc(security=[])
@blp.response(200, CoopSchema)
@blp.alt_response(404, schema=ErrorSchema)
def coop(coop_id: int):
    """An approved co-op, its village and the units paired with that village."""
    found = db.session.get(Coop, coop_id, options=[joinedload(Coop.village)])
    if found is None or not found.approved:
        abort(404)
    return {
        "id": found.id,
        "name": found.name,
        "intro": found.intro,
        "village": {"id": found.village.id, "name": found.village.name},
        "paired_units": paired_units(found.village_id),
    }
