"""What the presale pages read: the open presales (all, or one product's), one presale with
its SKU, a co-op's presales, and a presale's reservations in the harvest queue's order."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from market.accounts.models import User
from market.catalog.models import Product, Sku
from market.errors import NotFound
from market.extensions import db
from market.presales.models import Presale, PresaleReservation, PresaleStatus

_WITH_PRODUCT = joinedload(Presale.sku).joinedload(Sku.product).joinedload(Product.coop)


def open_presales(product_id: int | None = None) -> list[Presale]:
    query = (
        select(Presale)
        .where(Presale.status == PresaleStatus.OPEN)
        .options(_WITH_PRODUCT)
        .order_by(Presale.harvest_from, Presale.id)
    )
    if product_id is not None:
        query = query.join(Sku, Sku.id == Presale.sku_id).where(Sku.product_id == product_id)
    return list(db.session.scalars(query))


def presale(presale_id: int) -> Presale:
    found = db.session.get(Presale, presale_id, options=[_WITH_PRODUCT])
    if found is None:
        raise NotFound(_("找不到该预售"))
    return found


def coop_presales(user: User) -> list[Presale]:
    query = select(Presale).options(_WITH_PRODUCT).order_by(Presale.id.desc())
    if not user.is_admin:
        query = query.where(Presale.coop_id.in_([c.id for c in user.managed_coops()]))
    return list(db.session.scalars(query))


def queue(presale_id: int) -> list[PresaleReservation]:
    """A presale's reservations as the harvest serves them: by payment time, then id (unpaid
    last)."""
    return list(
        db.session.scalars(
            select(PresaleReservation)
            .where(PresaleReservation.presale_id == presale_id)
            .options(
                joinedload(PresaleReservation.order),
                joinedload(PresaleReservation.balance_order),
                joinedload(PresaleReservation.buyer),
            )
            .order_by(
                PresaleReservation.paid_at.is_(None),
                PresaleReservation.paid_at,
                PresaleReservation.id,
            )
        )
    )


def reservations_of(user: User, presale_id: int) -> list[PresaleReservation]:
    return list(
        db.session.scalars(
            select(PresaleReservation)
            .where(
                PresaleReservation.presale_id == presale_id,
                PresaleReservation.buyer_id == user.id,
            )
            .options(
                joinedload(PresaleReservation.order),
                joinedload(PresaleReservation.balance_order),
            )
            .order_by(PresaleReservation.id)
        )
    )


def coop_skus(user: User) -> list[Sku]:
    query = (
        select(Sku)
        .join(Product, Product.id == Sku.product_id)
        .where(Sku.active.is_(True))
        .options(joinedload(Sku.product))
        .order_by(Product.name, Sku.id)
    )
    if not user.is_admin:
        query = query.where(Product.coop_id.in_([c.id for c in user.managed_coops()]))
    return list(db.session.scalars(query))
