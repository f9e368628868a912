"""Co-op listing work: products, SKUs, stock and photos. Each function is one transaction.

Ownership: a co-op manager works only on products of the co-ops they belong to (admins on any).
Someone else's product is a 403; a missing one a 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select, update
from werkzeug.datastructures import FileStorage

from market.accounts.models import User
from market.audit import services as audit
from market.catalog.models import Category, Product, ProductImage, ProductStatus, Sku
from market.directory.models import Coop
from market.errors import DomainError, NotAllowed, NotFound
from market.extensions import db
from market.transactions import commit_unique, unit_of_work
from market.uploads import StoredImage, remove_stored, store_image

MAX_IMAGES = 9
MAX_STOCK = 1_000_000


@dataclass(frozen=True)
class ProductData:
    name: str
    category_id: int
    description: str = ""
    origin_story: str = ""
    season_mask: int = 0
    shelf_life_days: int | None = None


@dataclass(frozen=True)
class SkuData:
    spec: str
    price_fen: int
    stock: int = 0
    weight_g: int | None = None


def _may_manage(user: User, coop_id: int) -> bool:
    return user.is_admin or coop_id in {c.id for c in user.managed_coops()}


def own_coop(user: User, coop_id: int) -> Coop:
    coop = db.session.get(Coop, coop_id)
    if coop is None:
        raise NotFound(_("找不到该合作社"))
    if not _may_manage(user, coop.id):
        raise NotAllowed(_("这不是您管理的合作社"))
    return coop


def own_product(user: User, product_id: int) -> Product:
    product = db.session.get(Product, product_id)
    if product is None:
        raise NotFound(_("找不到该商品"))
    if not _may_manage(user, product.coop_id):
        raise NotAllowed(_("这不是您合作社的商品"))
    return product


def own_sku(user: User, sku_id: int) -> Sku:
    sku = db.session.get(Sku, sku_id)
    if sku is None:
        raise NotFound(_("找不到该规格"))
    if not _may_manage(user, sku.product.coop_id):
        raise NotAllowed(_("这不是您合作社的商品"))
    return sku


def _audit_sku(
    user: User | None,
    action: str,
    sku: Sku,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """A price or stock change goes into the audit log, named by product and spec."""
    coop_id = sku.product.coop_id
    managed = user is not None and coop_id in {c.id for c in user.managed_coops()}
    audit.record(
        user,
        action,
        sku,
        before=before,
        after={**(after or {}), "product": sku.product.name, "spec": sku.spec},
        acting_as="coop" if managed else None,
    )


def _check_sku(data: SkuData) -> None:
    if not data.spec.strip():
        raise DomainError(_("请填写规格"), field="spec")
    if data.price_fen <= 0:
        raise DomainError(_("价格必须大于 0"), field="price")
    if not 0 <= data.stock <= MAX_STOCK:
        raise DomainError(_("库存应在 0 到 %(n)d 之间", n=MAX_STOCK), field="stock")


def _apply(product: Product, data: ProductData) -> None:
    if not data.name.strip():
        raise DomainError(_("请填写商品名称"), field="name")
    if db.session.get(Category, data.category_id) is None:
        raise DomainError(_("请选择分类"), field="category_id")
    product.name = data.name.strip()
    product.category_id = data.category_id
    product.description = data.description.strip()
    product.origin_story = data.origin_story.strip()
    product.season_mask = data.season_mask
    product.shelf_life_days = data.shelf_life_days


def _attach_images(product: Product, uploads: list[FileStorage]) -> list[StoredImage]:
    """Store every photo first; if one is refused, remove the ones already written."""
    uploads = [u for u in uploads if u and u.filename]
    if len(product.images) + len(uploads) > MAX_IMAGES:
        raise DomainError(_("每个商品最多 %(n)d 张图片", n=MAX_IMAGES), field="images")
    stored: list[StoredImage] = []
    try:
        for upload in uploads:
            stored.append(store_image(upload, f"products/{product.coop_id}"))
    except DomainError:
        for image in stored:
            remove_stored(image.path, image.thumb_path)
        raise
    start = max((i.position for i in product.images), default=-1) + 1
    for offset, image in enumerate(stored):
        product.images.append(
            ProductImage(
                path=image.path,
                thumb_path=image.thumb_path,
                width=image.width,
                height=image.height,
                position=start + offset,
            )
        )
    return stored


def _commit_or_remove(stored: list[StoredImage]) -> None:
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        for image in stored:
            remove_stored(image.path, image.thumb_path)
        raise


@unit_of_work
def create_product(
    user: User, coop_id: int, data: ProductData, first_sku: SkuData, images: list[FileStorage]
) -> Product:
    """A new product starts as a draft with one SKU; photos are optional."""
    coop = own_coop(user, coop_id)
    _check_sku(first_sku)
    product = Product(coop=coop, status=ProductStatus.DRAFT)
    _apply(product, data)
    product.skus.append(
        Sku(
            spec=first_sku.spec.strip(),
            price_fen=first_sku.price_fen,
            stock=first_sku.stock,
            weight_g=first_sku.weight_g,
        )
    )
    db.session.add(product)
    db.session.flush()
    sku = product.skus[0]
    _audit_sku(user, "sku.added", sku, after={"price_fen": sku.price_fen, "stock": sku.stock})
    stored = _attach_images(product, images)
    _commit_or_remove(stored)
    return product


@unit_of_work
def update_product(
    user: User, product_id: int, data: ProductData, images: list[FileStorage]
) -> Product:
    product = own_product(user, product_id)
    _apply(product, data)
    stored = _attach_images(product, images)
    _commit_or_remove(stored)
    return product


@unit_of_work
def remove_image(user: User, product_id: int, image_id: int) -> None:
    product = own_product(user, product_id)
    image = db.session.get(ProductImage, image_id)
    if image is None or image.product_id != product.id:
        raise NotFound(_("找不到该图片"))
    paths = (image.path, image.thumb_path)
    product.images.remove(image)
    db.session.commit()
    remove_stored(*paths)


@unit_of_work
def add_sku(user: User, product_id: int, data: SkuData) -> Sku:
    product = own_product(user, product_id)
    _check_sku(data)
    sku = Sku(spec=data.spec.strip(), price_fen=data.price_fen, stock=data.stock)
    sku.weight_g = data.weight_g
    product.skus.append(sku)
    db.session.flush()
    _audit_sku(user, "sku.added", sku, after={"price_fen": sku.price_fen, "stock": sku.stock})
    db.session.commit()
    return sku


@unit_of_work
def update_sku(
    user: User, sku_id: int, *, spec: str, price_fen: int, weight_g: int | None, active: bool
) -> Sku:
    """Change a SKU's spec, price and weight; stock changes go through `adjust_stock`. A price
    change is audited."""
    sku = own_sku(user, sku_id)
    _check_sku(SkuData(spec=spec, price_fen=price_fen, stock=sku.stock, weight_g=weight_g))
    if not active and sku.product.status == ProductStatus.LISTED:
        others = [s for s in sku.product.skus if s.id != sku.id and s.active]
        if not others:
            raise DomainError(_("在售商品至少要保留一个规格"))
    old_price_fen = sku.price_fen
    sku.spec, sku.price_fen, sku.weight_g, sku.active = spec.strip(), price_fen, weight_g, active
    if price_fen != old_price_fen:
        _audit_sku(
            user,
            "sku.price_changed",
            sku,
            before={"price_fen": old_price_fen},
            after={"price_fen": price_fen},
        )
    db.session.commit()
    return sku


@unit_of_work
def adjust_stock(user: User, sku_id: int, delta: int) -> Sku:
    """Add (入库) or remove (出库) stock in one conditional UPDATE, so that orders taking stock at
    the same moment are never overwritten and stock never goes below zero. Audited with the
    stock before and after this change (read back from the UPDATE itself)."""
    sku = own_sku(user, sku_id)
    if delta == 0:
        raise DomainError(_("请输入要增加或减少的数量"), field="delta")
    if abs(delta) > MAX_STOCK:
        raise DomainError(_("一次最多调整 %(n)d", n=MAX_STOCK), field="delta")
    stock_after = db.session.execute(
        update(Sku)
        .where(Sku.id == sku.id, Sku.stock + delta >= 0, Sku.stock + delta <= MAX_STOCK)
        .values(stock=Sku.stock + delta)
        .returning(Sku.stock)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if stock_after is None:
        db.session.rollback()
        db.session.refresh(sku)
        raise DomainError(
            _("库存不足以减少 %(n)d，当前库存 %(stock)d", n=-delta, stock=sku.stock),
            field="delta",
        )
    _audit_sku(
        user,
        "sku.stock_adjusted",
        sku,
        before={"stock": stock_after - delta},
        after={"stock": stock_after, "delta": delta},
    )
    db.session.commit()
    db.session.refresh(sku)
    return sku


@unit_of_work
def change_status(user: User, product_id: int, status: ProductStatus) -> Product:
    """List (上架) or delist (下架). Listing needs an approved co-op and a SKU for sale."""
    product = own_product(user, product_id)
    if status == ProductStatus.LISTED:
        if not product.coop.approved:
            raise DomainError(_("合作社尚未通过审核，暂不能上架"))
        if not any(s.active for s in product.skus):
            raise DomainError(_("请先添加至少一个在售规格"))
    product.move_to(status)
    db.session.commit()
    return product


def coop_products(user: User) -> list[Product]:
    coop_ids = [c.id for c in user.managed_coops()]
    from sqlalchemy.orm import selectinload

    return list(
        db.session.scalars(
            select(Product)
            .where(Product.coop_id.in_(coop_ids))
            .options(selectinload(Product.skus), selectinload(Product.images))
            .order_by(Product.updated_at.desc())
        )
    )


@unit_of_work
def save_category(
    *,
    name: str,
    slug: str,
    sort_order: int,
    name_en: str = "",
    category: Category | None = None,
) -> Category:
    """Categories (薯类, 蜂蜜, 南药 ...) are kept by the organizer; names and slugs are unique.
    `name_en` is what the English UI shows."""
    category = category or Category()
    category.name, category.slug, category.sort_order = name.strip(), slug.strip(), sort_order
    category.name_en = name_en.strip()
    db.session.add(category)
    commit_unique(_("已有同名或同代码的分类"), field="name")
    return category


@unit_of_work
def set_bundle_parts(user: User, product_id: int, parts: list[tuple[int, int]]) -> Product:
    """The gift box's own co-op says how its price is shared: (co-op id, share) pairs, each
    co-op once, shares positive. An empty list makes it an ordinary product again."""
    from market.catalog.models import BundlePart

    product = own_product(user, product_id)
    coop_ids = [coop_id for coop_id, _share in parts]
    if len(set(coop_ids)) != len(coop_ids):
        raise DomainError(_("每个合作社只能填一次"), field="parts")
    for coop_id, share in parts:
        coop = db.session.get(Coop, coop_id)
        if coop is None or not coop.approved:
            raise DomainError(_("请选择已审核的合作社"), field="parts")
        if not 1 <= share <= 10_000:
            raise DomainError(_("分成比例应在 1 到 10000 之间"), field="parts")
    if product.bundle_parts:
        # The old parts go first: the new ones may name the same co-ops (unique per product).
        product.bundle_parts.clear()
        db.session.flush()
    product.bundle_parts = [BundlePart(coop_id=c, share=s) for c, s in parts]
    db.session.commit()
    return product
