"""What the co-ops sell. Prices are integer fen; stock never goes below zero."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from market.directory.models import Coop
from market.extensions import db
from market.models import StateMachine, TimestampMixin, UTCDateTime, text_enum, utcnow


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    LISTED = "listed"
    DELISTED = "delisted"


PRODUCT_STATUS_LABELS = {
    ProductStatus.DRAFT: _l("草稿"),
    ProductStatus.LISTED: _l("在售"),
    ProductStatus.DELISTED: _l("已下架"),
}


class Category(db.Model):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True)
    # The name the English UI shows ("" = show the Chinese name there too).
    name_en: Mapped[str] = mapped_column(String(40), default="", server_default="")
    slug: Mapped[str] = mapped_column(String(30), unique=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def label(self) -> str:
        """The name in the page's language: name_en when the locale is English and it is set."""
        locale = get_locale()
        if self.name_en and locale is not None and locale.language == "en":
            return self.name_en
        return self.name


class SearchSynonym(db.Model):
    """One group of names people use for the same thing (红薯 番薯 地瓜), kept by the organizer:
    a search for any of them finds products named with any other."""

    __tablename__ = "search_synonyms"

    id: Mapped[int] = mapped_column(primary_key=True)
    terms: Mapped[str] = mapped_column(String(200))  # separated by single spaces

    @property
    def term_list(self) -> list[str]:
        return self.terms.split()


class Product(StateMachine, TimestampMixin, db.Model):
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_status_category", "status", "category_id"),
        CheckConstraint("season_mask >= 0 AND season_mask < 4096", name="season_mask_range"),
        CheckConstraint("shelf_life_days IS NULL OR shelf_life_days > 0", name="shelf_life"),
    )

    # draft -> listed -> delisted -> listed ...; a listed product is never taken back to draft.
    TRANSITIONS: ClassVar[dict[ProductStatus, set[ProductStatus]]] = {
        ProductStatus.DRAFT: {ProductStatus.LISTED},
        ProductStatus.LISTED: {ProductStatus.DELISTED},
        ProductStatus.DELISTED: {ProductStatus.LISTED},
    }
    STATUS_LABELS = PRODUCT_STATUS_LABELS
    TRANSITION_MESSAGE = _l("商品当前为“%(current)s”，不能改为“%(target)s”")

    id: Mapped[int] = mapped_column(primary_key=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text, default="")
    origin_story: Mapped[str] = mapped_column(Text, default="")
    # Bit m-1 set: in season in month m (1..12). 0: all year.
    season_mask: Mapped[int] = mapped_column(Integer, default=0)
    shelf_life_days: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[ProductStatus] = mapped_column(
        text_enum(ProductStatus, "product_status"), default=ProductStatus.DRAFT
    )
    featured: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    coop: Mapped[Coop] = relationship()
    category: Mapped[Category] = relationship()
    skus: Mapped[list[Sku]] = relationship(
        back_populates="product", order_by="Sku.id", cascade="all, delete-orphan"
    )
    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product", order_by="ProductImage.position", cascade="all, delete-orphan"
    )
    # A gift box (礼盒) made of several co-ops' goods: its price is split among them by share;
    # the product's own co-op packs and ships it.
    bundle_parts: Mapped[list[BundlePart]] = relationship(
        back_populates="product",
        cascade="all, delete-orphan",
        order_by="BundlePart.id",
        foreign_keys="BundlePart.product_id",
    )

    @property
    def season_months(self) -> list[int]:
        return [m for m in range(1, 13) if self.season_mask & (1 << (m - 1))]

    @property
    def cover(self) -> ProductImage | None:
        return self.images[0] if self.images else None

    @property
    def price_range_fen(self) -> tuple[int, int] | None:
        prices = [s.price_fen for s in self.skus if s.active]
        return (min(prices), max(prices)) if prices else None

    @property
    def total_stock(self) -> int:
        return sum(s.stock for s in self.skus if s.active)


def months_to_mask(months: list[int]) -> int:
    mask = 0
    for month in months:
        if not 1 <= month <= 12:
            raise ValueError(month)
        mask |= 1 << (month - 1)
    return mask


class Sku(TimestampMixin, db.Model):
    """A sellable variant: '5斤装' at a price with its own stock."""

    __tablename__ = "skus"
    __table_args__ = (
        CheckConstraint("price_fen >= 0", name="price_fen_nonnegative"),
        CheckConstraint("stock >= 0", name="stock_nonnegative"),
        CheckConstraint("weight_g IS NULL OR weight_g > 0", name="weight_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    spec: Mapped[str] = mapped_column(String(60))
    price_fen: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)
    weight_g: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    product: Mapped[Product] = relationship(back_populates="skus")


class ProductImage(TimestampMixin, db.Model):
    __tablename__ = "product_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    path: Mapped[str] = mapped_column(String(200))
    thumb_path: Mapped[str] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)

    product: Mapped[Product] = relationship(back_populates="images")


class BundlePart(db.Model):
    """One co-op's share of a gift box's price (shares are weights, e.g. percentages)."""

    __tablename__ = "bundle_parts"
    __table_args__ = (
        UniqueConstraint("product_id", "coop_id"),
        CheckConstraint("share > 0", name="share_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    coop_id: Mapped[int] = mapped_column(ForeignKey("coops.id"))
    share: Mapped[int] = mapped_column(Integer)

    product: Mapped[Product] = relationship(back_populates="bundle_parts")
    coop: Mapped[Coop] = relationship()
