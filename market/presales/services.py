"""Presales (预售): opening one, reserving against its limit, stopping orders; the harvest is
in market/presales/harvest.py.

Quantity rule: a reservation counts against the presale's limit, never against the SKU's stock
(the goods are not harvested yet): it is taken with one conditional UPDATE of the presale's
`reserved_quantity`, under the presale's row lock, and given back exactly once when its order
closes unpaid (`release_lapsed`, run under the same lock before every reservation and harvest,
and by the periodic job).

Payment rule: a reservation is paid through its order on the ordinary pay page (card now, or a
unit's bank transfer confirmed by finance); the payments hook tells `on_money_moved` when money
arrived, and that moment is the reservation's place in the harvest queue. Attribution happens
there too, as for any order; refunds at the harvest reverse it through the same hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, joinedload

from market.accounts.models import UnitRole, User
from market.audit import services as audit
from market.catalog.models import ProductStatus, Sku
from market.clock import today
from market.errors import Conflict, DomainError, NotFound
from market.extensions import db
from market.models import utcnow
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import carts, parcels
from market.orders import queries as order_queries
from market.orders import services as orders
from market.orders.models import Order, OrderStatus, ShipmentStatus
from market.payments import hook
from market.presales import balances, queries
from market.presales.models import (
    MAX_LIMIT,
    PaymentKind,
    Presale,
    PresaleReservation,
    PresaleStatus,
    ReservationStatus,
)
from market.transactions import commit_unique, unit_of_work

ACTIVE = (PresaleStatus.OPEN, PresaleStatus.CLOSED)
CLOSED_UNPAID = (OrderStatus.EXPIRED, OrderStatus.CANCELLED)


class OverLimit(Conflict):
    pass


# -- who may touch what -------------------------------------------------------------------------
def _manages(user: User, coop_id: int) -> bool:
    return user.is_admin or coop_id in {coop.id for coop in user.managed_coops()}


def presale_of_coop(user: User, presale_id: int, *, for_update: bool = False) -> Presale:
    """A presale of the user's co-op; another co-op's (or none) is a 404."""
    presale = db.session.get(
        Presale, presale_id, with_for_update=for_update, populate_existing=for_update
    )
    if presale is None or not _manages(user, presale.coop_id):
        raise NotFound(_("找不到该预售"))
    return presale


def _coop_sku(user: User, sku_id: int | None) -> Sku:
    sku = db.session.get(Sku, sku_id, options=[joinedload(Sku.product)]) if sku_id else None
    if sku is None or not _manages(user, sku.product.coop_id):
        raise NotFound(_("找不到该商品规格"))
    return sku


# -- opening ------------------------------------------------------------------------------------
def _check_terms(
    harvest_from: date | None,
    harvest_to: date | None,
    price_fen,
    limit,
    payment_kind: PaymentKind = PaymentKind.FULL,
    deposit_fen=None,
) -> None:
    if harvest_from is None or harvest_to is None:
        raise DomainError(_("请填写预计采收期"), field="harvest_from")
    if harvest_to < harvest_from:
        raise DomainError(_("采收期的结束日不能早于开始日"), field="harvest_to")
    if harvest_to < today():
        raise DomainError(_("预计采收期已经过去"), field="harvest_to")
    if price_fen is None or price_fen <= 0:
        raise DomainError(_("请填写预售价"), field="price")
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise DomainError(_("限量应在 1 到 %(n)d 之间", n=MAX_LIMIT), field="limit_quantity")
    if payment_kind == PaymentKind.DEPOSIT:
        if deposit_fen is None or deposit_fen <= 0:
            raise DomainError(_("请填写每份定金"), field="deposit")
        if deposit_fen >= price_fen:
            raise DomainError(_("定金应低于预售价"), field="deposit")


@unit_of_work
def open_presale(
    user: User,
    *,
    sku_id: int | None,
    harvest_from: date | None,
    harvest_to: date | None,
    price_fen: int | None,
    limit_quantity: int | None,
    note: str = "",
    payment_kind: PaymentKind | str = PaymentKind.FULL,
    deposit_fen: int | None = None,
) -> Presale:
    """A co-op opens a presale for one of its listed SKUs: a future harvest window, a price per
    unit and a limit. One presale of a SKU runs at a time. Reservations last season's buyers
    asked to roll over are carried into it at once (in their payment order), and count against
    its limit. A deposit presale (定金) takes `deposit_fen` per unit when ordering and the rest
    (尾款) once the harvest is in."""
    try:
        payment_kind = PaymentKind(payment_kind)
    except ValueError:
        raise DomainError(_("请选择付款方式"), field="payment_kind") from None
    sku = _coop_sku(user, sku_id)
    # The SKU's row lock: two co-op managers opening its presale at once open one.
    db.session.get(Sku, sku.id, with_for_update=True, populate_existing=True)
    if sku.product.status != ProductStatus.LISTED or not sku.active:
        raise DomainError(_("请先上架该商品"), field="sku_id")
    _check_terms(harvest_from, harvest_to, price_fen, limit_quantity, payment_kind, deposit_fen)
    if payment_kind == PaymentKind.FULL:
        deposit_fen = None
    running = db.session.scalar(
        select(Presale.id).where(Presale.sku_id == sku.id, Presale.status.in_(ACTIVE)).limit(1)
    )
    if running is not None:
        raise Conflict(_("该规格已有进行中的预售"), field="sku_id")
    successor = aliased(PresaleReservation)
    carried = list(
        db.session.scalars(
            select(PresaleReservation)
            .join(Presale, Presale.id == PresaleReservation.presale_id)
            .where(
                Presale.sku_id == sku.id,
                PresaleReservation.status == ReservationStatus.ROLLED_OVER,
                ~exists().where(successor.rolled_from_id == PresaleReservation.id),
            )
            .order_by(PresaleReservation.paid_at, PresaleReservation.id)
        )
    )
    carried_quantity = sum(r.quantity for r in carried)
    if carried_quantity > limit_quantity:
        raise DomainError(
            _("限量不能少于从上一季顺延来的 %(n)d 件", n=carried_quantity),
            field="limit_quantity",
        )
    presale = Presale(
        sku_id=sku.id,
        coop_id=sku.product.coop_id,
        harvest_from=harvest_from,
        harvest_to=harvest_to,
        price_fen=price_fen,
        payment_kind=payment_kind,
        deposit_fen=deposit_fen,
        limit_quantity=limit_quantity,
        reserved_quantity=carried_quantity,
        note=(note or "").strip()[:300],
        created_by_id=user.id,
        rolled_over_from_id=carried[0].presale_id if carried else None,
    )
    db.session.add(presale)
    db.session.flush()
    for old in carried:
        db.session.add(
            PresaleReservation(
                presale_id=presale.id,
                buyer_id=old.buyer_id,
                unit_id=old.unit_id,
                order_id=old.order_id,
                quantity=old.quantity,
                deposit_fen=old.deposit_fen,
                rollover_wanted=old.rollover_wanted,
                status=ReservationStatus.RESERVED,
                paid_at=old.paid_at,
                rolled_from_id=old.id,
            )
        )
    if carried:
        notify(
            sorted({r.buyer_id for r in carried}),
            "presale.carried",
            _l("您顺延的预订已转入新一季预售"),
            _l(
                "%(product)s 新一季预计 %(start)s 至 %(end)s 采收，采收后按付款先后发货。",
                product=sku.product.name,
                start=harvest_from.isoformat(),
                end=harvest_to.isoformat(),
            ),
            recipients.link_to("presales.detail", presale_id=presale.id),
        )
    audit.record(
        user,
        "presale.opened",
        presale,
        after={
            "sku_id": sku.id,
            "price_fen": price_fen,
            "payment_kind": payment_kind.value,
            "deposit_fen": deposit_fen,
            "limit": limit_quantity,
            "harvest_from": harvest_from,
            "harvest_to": harvest_to,
            "carried": carried_quantity,
        },
    )
    commit_unique(_("该规格已有进行中的预售"), field="sku_id")
    return presale


@unit_of_work
def close_presale(user: User, presale_id: int) -> Presale:
    """The co-op stops taking orders; reservations made stay, waiting for the harvest."""
    presale = presale_of_coop(user, presale_id, for_update=True)
    presale.move_to(PresaleStatus.CLOSED)
    audit.record(user, "presale.closed", presale, after={"reserved": presale.reserved_quantity})
    db.session.commit()
    return presale


# -- reserving ----------------------------------------------------------------------------------
def _lock(presale_id: int) -> Presale:
    presale = db.session.get(Presale, presale_id, with_for_update=True, populate_existing=True)
    if presale is None:
        raise NotFound(_("找不到该预售"))
    return presale


def release_lapsed(presale: Presale) -> int:
    """Reservations whose order closed unpaid (expired, cancelled) give their quantity back,
    each once. The caller holds the presale's row lock. Flushes only."""
    lapsed = list(
        db.session.scalars(
            select(PresaleReservation)
            .join(Order, Order.id == PresaleReservation.order_id)
            .where(
                PresaleReservation.presale_id == presale.id,
                PresaleReservation.status == ReservationStatus.AWAITING_PAYMENT,
                Order.status.in_(CLOSED_UNPAID),
            )
        )
    )
    for reservation in lapsed:
        reservation.move_to(ReservationStatus.CANCELLED)
        reservation.decided_at = utcnow()
        presale.reserved_quantity -= reservation.quantity
    db.session.flush()
    return sum(r.quantity for r in lapsed)


def release_lapsed_reservations() -> int:
    """The periodic job: every running presale gives back what unpaid, closed orders held;
    every served deposit reservation whose 尾款 order closed unpaid is cancelled and its deposit
    refunded. One presale (or reservation) at a time, each committed on its own (a batch, like
    expire_unpaid_orders)."""
    released = 0
    ids = db.session.scalars(select(Presale.id).where(Presale.status.in_(ACTIVE))).all()
    for presale_id in ids:
        released += release_lapsed(_lock(presale_id))
        db.session.commit()  # a batch: each presale on its own (a rerun does the rest)
    released += balances.release_lapsed_balances()
    return released


def _claim(presale: Presale, quantity: int) -> None:
    """Take `quantity` from the presale's limit in one conditional UPDATE (never past it)."""
    result = db.session.execute(
        update(Presale)
        .where(
            Presale.id == presale.id,
            Presale.status == PresaleStatus.OPEN,
            Presale.reserved_quantity + quantity <= Presale.limit_quantity,
        )
        .values(reserved_quantity=Presale.reserved_quantity + quantity)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.refresh(presale)
        if presale.available <= 0:
            raise OverLimit(_("预售已约满"), field="quantity")
        raise OverLimit(_("预售只剩 %(n)d 件，请减少数量", n=presale.available), field="quantity")
    db.session.expire(presale, ["reserved_quantity"])


# -- in bulk, for a group-buy (market/groupbuy/presale.py) ----------------------------------------
def claim_for_group_buy(presale_id: int, quantity: int) -> Presale:
    """A group-buy's cap taken from the presale when the co-op accepts it, all or nothing,
    exactly as a buyer's reservation is; the presale may have stopped taking orders since the
    proposal (its SKU and payment kind were checked then, and never change). Flushes only."""
    presale = _lock(presale_id)
    if not presale.is_open or presale.harvest_to < today():
        raise DomainError(_("该预售已截止预订，不能再确认该团购"))
    release_lapsed(presale)
    _claim(presale, quantity)
    return presale


def give_back(presale_id: int, quantity: int) -> None:
    """What a group-buy claimed and did not sell goes back to the presale's limit (one UPDATE,
    never read-then-write). Flushes only."""
    if quantity > 0:
        db.session.execute(
            update(Presale)
            .where(Presale.id == presale_id)
            .values(reserved_quantity=Presale.reserved_quantity - quantity)
            .execution_options(synchronize_session=False)
        )


def reserve_paid(presale_id: int, buyer_id: int, order: Order, quantity: int) -> None:
    """A group-buy participant charged at the closing: a paid reservation of `quantity` units
    (already claimed by the group-buy), its place in the harvest queue the moment of payment.
    Once per order. Flushes only."""
    if db.session.scalar(
        select(PresaleReservation.id).where(PresaleReservation.order_id == order.id).limit(1)
    ):
        return
    db.session.add(
        PresaleReservation(
            presale_id=presale_id,
            buyer_id=buyer_id,
            order_id=order.id,
            quantity=quantity,
            status=ReservationStatus.RESERVED,
            paid_at=utcnow(),
        )
    )
    db.session.flush()


def awaiting_harvest(order_ids: list[int]) -> bool:
    """Whether any of these orders still waits for its presale's harvest. Reads only."""
    if not order_ids:
        return False
    return (
        db.session.scalar(
            select(PresaleReservation.id)
            .where(
                PresaleReservation.order_id.in_(order_ids),
                PresaleReservation.status == ReservationStatus.RESERVED,
            )
            .limit(1)
        )
        is not None
    )


@unit_of_work
def reserve(
    buyer: User,
    presale_id: int,
    quantity: int,
    *,
    rollover_wanted: bool,
    for_unit: bool,
    delivery: Mapping[str, str | int | None],
    idempotency_key: str,
    referral_unit_id: int | None = None,
) -> Order:
    """A buyer (or a unit's coordinator, for the unit) reserves units of an open presale: the
    quantity is taken from the presale's limit at once, all or nothing, and an order at the
    presale price is placed whose lines take no stock and whose parcel waits for the harvest.
    The order is paid on the ordinary pay page; unpaid, it expires and gives the units back.
    The same form submitted twice (same idempotency key) is one reservation. `delivery` is
    what the form asked for (`CheckoutForm.delivery_fields`), resolved as at checkout."""
    if not idempotency_key or len(idempotency_key) > 64:
        raise DomainError(_("请刷新页面后再提交"))
    already = orders.existing_order(buyer, idempotency_key)
    if already is not None:
        return already
    carts.check_quantity(quantity)
    presale = _lock(presale_id)
    if not presale.is_open:
        raise DomainError(_("该预售已截止预订"))
    if presale.harvest_to < today():
        raise DomainError(_("该预售已截止预订"))
    unit_id = None
    if for_unit:
        if not buyer.has_unit_role(UnitRole.COORDINATOR):
            raise DomainError(_("只有单位联络员可以为单位预订"), field="for_unit")
        unit_id = buyer.unit.id
    release_lapsed(presale)
    _claim(presale, quantity)
    deposit = presale.takes_deposit
    order = orders.build_order(
        buyer,
        [orders.WantedLine(presale.sku_id, quantity)],
        orders.delivery_for(buyer, **delivery, addresses=orders.addresses_of(buyer)),
        idempotency_key,
        unit_id=unit_id,
        referral_unit_id=None if unit_id else referral_unit_id,
        prices={presale.sku_id: presale.deposit_fen if deposit else presale.price_fen},
        take_stock_for=set(),  # a reservation against the harvest, not today's stock
    )
    if deposit:
        balances.label_lines(order, _("定金"))
    for shipment in order.shipments:
        shipment.move_to(ShipmentStatus.AWAITING_HARVEST)
    db.session.add(
        PresaleReservation(
            presale_id=presale.id,
            buyer_id=buyer.id,
            unit_id=unit_id,
            order=order,
            quantity=quantity,
            deposit_fen=presale.deposit_fen if deposit else None,
            rollover_wanted=rollover_wanted,
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        # A twin submit with the same key won the race: its order is the reservation.
        db.session.rollback()
        already = orders.existing_order(buyer, idempotency_key)
        if already is None:
            raise
        return already
    return order


def on_money_moved(movement: hook.MoneyMovement) -> None:
    """The payments hook: money arrived for a presale order that still awaits it -> the
    reservation is paid, and that moment is its place in the harvest queue. Flushes only."""
    if movement.refund_id is not None or movement.amount_fen <= 0:
        return
    reservation = db.session.scalar(
        select(PresaleReservation).where(
            PresaleReservation.order_id == movement.order_id,
            PresaleReservation.status == ReservationStatus.AWAITING_PAYMENT,
        )
    )
    if reservation is None:
        return
    order = db.session.get(Order, movement.order_id)
    if order is None or order.status != OrderStatus.PENDING_PAYMENT:
        return  # paid too late: the payment goes straight back (payments._receive)
    reservation.move_to(ReservationStatus.RESERVED)
    reservation.paid_at = movement.at


def install() -> None:
    hook.subscribe(on_money_moved)
    parcels.subscribe(balances.follow_parcel)
    order_queries.describe_harvest_with(queries.harvest_notes)  # the co-op inbox's 待采收 tab
