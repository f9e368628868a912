"""What the presale pages read: the open presales (all, or one product's), one presale with
its SKU, a co-op's presales, a presale's reservations in the harvest queue's order, and what
each presale parcel in a co-op's inbox waits for."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import aliased, joinedload

from market.accounts.models import User
from market.catalog.models import Product, Sku
from market.errors import NotFound
from market.extensions import db
from market.orders.models import Order
from market.presales.models import Presale, PresaleReservation, PresaleStatus, ReservationStatus

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


def harvest_notes(order_ids: list[int]) -> dict[int, str]:
    """For the co-op's inbox: what each presale order's parcel waits for — the presale's
    harvest window, the 尾款 order the goods go with once harvested, or next season's presale
    for a rolled-over one. One query for the page (a rolled-over order's latest season wins)."""
    balance = aliased(Order)
    rows = db.session.execute(
        select(
            PresaleReservation.order_id,
            PresaleReservation.status,
            Presale.harvest_from,
            Presale.harvest_to,
            balance.number,
        )
        .join(Presale, Presale.id == PresaleReservation.presale_id)
        .outerjoin(balance, balance.id == PresaleReservation.balance_order_id)
        .where(
            PresaleReservation.order_id.in_(order_ids),
            PresaleReservation.status.in_(
                (
                    ReservationStatus.RESERVED,
                    ReservationStatus.SERVED,
                    ReservationStatus.ROLLED_OVER,
                )
            ),
        )
        .order_by(PresaleReservation.id)
    ).all()
    notes: dict[int, str] = {}
    for order_id, status, start, end, balance_number in rows:
        if status == ReservationStatus.SERVED and balance_number:
            notes[order_id] = _("已采收：货随尾款订单 %(number)s 发出", number=balance_number)
        elif status == ReservationStatus.ROLLED_OVER:
            notes[order_id] = _("歉收顺延：等下一季预售开启后转入")
        else:
            notes[order_id] = _(
                "预计采收 %(start)s 至 %(end)s", start=start.isoformat(), end=end.isoformat()
            )
    return notes
