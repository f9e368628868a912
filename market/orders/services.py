"""Placing an order, addresses, stock and fulfilment; the cart and the prices shown are in
market.orders.cart. Money moves in market.payments.services.

Stock rule: taken when the order is placed, in one conditional UPDATE per SKU (never read-then-
write), all or nothing; given back exactly once when an unpaid order expires or is cancelled.

Price rule: prices never change silently. The checkout page sends back the unit prices it showed
(`shown_prices`); the order is placed only if every line's current price is the one shown, checked
in the same conditional UPDATE that takes the stock, so a co-op's price change that commits while
the order is being placed is caught too. Otherwise nothing is placed, and the page shows old ->
new for the buyer to confirm.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from market.accounts.models import User
from market.catalog.models import Product, ProductStatus, Sku
from market.clock import local_day
from market.directory.models import Coop
from market.errors import DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import split_by_shares
from market.orders.carts import PricesChanged, SoldOut, cart_for, check_quantity, check_stock
from market.orders.models import (
    Address,
    Cart,
    CartItem,
    DeliveryMethod,
    Order,
    OrderLine,
    OrderMode,
    Shipment,
)
from market.transactions import commit_keeping_loaded, unit_of_work


# -- addresses ---------------------------------------------------------------------------------
def save_address(user: User, *, recipient: str, phone: str, region: str, detail: str) -> Address:
    address = Address(
        user_id=user.id,
        recipient=recipient.strip(),
        phone=phone.strip(),
        region=region.strip(),
        detail=detail.strip(),
    )
    existing = db.session.scalars(select(Address).where(Address.user_id == user.id)).all()
    address.is_default = not existing
    db.session.add(address)
    db.session.flush()
    return address


# The statements of every checkout are built once and bound per request (`bindparam`):
# building a statement and its cache key costs about as much as running it.
@cache
def _addresses_query():
    return (
        select(Address)
        .where(Address.user_id == bindparam("user_id"))
        .order_by(Address.is_default.desc(), Address.id.desc())
    )


def addresses_of(user: User) -> list[Address]:
    return list(db.session.scalars(_addresses_query(), {"user_id": user.id}))


# -- placing an order --------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    method: DeliveryMethod
    recipient: str
    phone: str
    address: str
    note: str = ""  # the buyer's 备注 at checkout, for the co-op


def delivery_for(
    user: User,
    *,
    method: DeliveryMethod | str,
    address_id: int | None,
    recipient: str | None,
    phone: str | None,
    region: str | None,
    detail: str | None,
    note: str | None,
    addresses: list[Address],
) -> Delivery:
    """How the order reaches the buyer (the checkout page and the API): pickup at the buyer's
    own unit (members only, with a recipient and phone), one of the buyer's saved `addresses`,
    or a new address, which is saved. Raises a DomainError naming the field to fix."""
    note = (note or "").strip()
    if method == DeliveryMethod.PICKUP:
        unit = user.unit
        if unit is None:
            raise DomainError(_("加入单位后才能到单位自提"), field="delivery_method")
        if not recipient or not phone:
            raise DomainError(_("请填写取货人和手机号"), field="recipient")
        return Delivery(
            DeliveryMethod.PICKUP, recipient, phone, f"{unit.name} {unit.address}".strip(), note
        )
    if address_id:
        address = next((a for a in addresses if a.id == address_id), None)
        if address is None:
            raise DomainError(_("请选择收货地址"), field="address_id")
        return Delivery(
            DeliveryMethod.DELIVERY, address.recipient, address.phone, address.one_line, note
        )
    wanted = {"recipient": recipient, "phone": phone, "region": region, "detail": detail}
    for name, value in wanted.items():
        if not value:
            raise DomainError(_("请填写完整的收货地址"), field=name)
    save_address(user, recipient=recipient, phone=phone, region=region, detail=detail)
    return Delivery(DeliveryMethod.DELIVERY, recipient, phone, f"{region}{detail}", note)


@dataclass(frozen=True)
class WantedLine:
    sku_id: int
    quantity: int


def new_order_number(at: datetime) -> str:
    # Readable and unguessable enough: the Shanghai date and eight random digits.
    return local_day(at).strftime("%y%m%d") + f"{secrets.randbelow(10**8):08d}"


@cache
def _take_stock_statement(at_price: bool):
    quantity = bindparam("take_quantity")
    condition = [Sku.id == bindparam("take_sku_id"), Sku.stock >= quantity]
    if at_price:
        condition.append(Sku.price_fen == bindparam("at_price_fen"))
    return (
        update(Sku)
        .where(*condition)
        .values(stock=Sku.stock - quantity)
        .execution_options(synchronize_session=False)
    )


def take_stock(sku_id: int, quantity: int, *, price_fen: int | None = None) -> bool:
    """Atomically take `quantity` from a SKU; False when not enough is left, or (with
    `price_fen`) when its price is no longer that one."""
    values = {"take_sku_id": sku_id, "take_quantity": quantity}
    if price_fen is not None:
        values["at_price_fen"] = price_fen
    result = db.session.execute(_take_stock_statement(price_fen is not None), values)
    return result.rowcount == 1


def give_back_stock(order: Order) -> None:
    for line in order.lines:
        if line.holds_stock and not line.stock_returned:
            db.session.execute(
                update(Sku)
                .where(Sku.id == line.sku_id)
                .values(stock=Sku.stock + line.quantity)
                .execution_options(synchronize_session=False)
            )
            line.stock_returned = True


def _price_parts(product: Product, price_fen: int) -> list[tuple[Coop, int]]:
    """(co-op, price) pairs adding up to the price: the product's own co-op alone, or a gift
    box's co-ops by share."""
    if not product.bundle_parts:
        return [(product.coop, price_fen)]
    parts = product.bundle_parts
    amounts = split_by_shares(price_fen, [part.share for part in parts])
    return [(part.coop, amount) for part, amount in zip(parts, amounts, strict=True)]


def build_order(
    buyer: User,
    wanted: list[WantedLine],
    delivery: Delivery,
    idempotency_key: str,
    *,
    mode: OrderMode = OrderMode.RETAIL,
    unit_id: int | None = None,
    referral_unit_id: int | None = None,
    prices: dict[int, int] | None = None,
    take_stock_for: set[int] | None = None,
    expires: bool = True,
    allow_unlisted: bool = False,
    shown_prices: Mapping[int, int] | None = None,
    skus: Mapping[int, Sku] | None = None,
) -> Order:
    """Create an order with its lines and one shipment per co-op, taking the stock. Prices are
    the server's (`prices` only for modes where a price was agreed, e.g. a group-buy's).
    `take_stock_for` limits which SKUs take stock here (a group-buy's capped SKUs come out of
    its reservation); `allow_unlisted` admits a hidden product made for one buyer (a custom
    product's agreed quote). `shown_prices` (sku id -> the unit price the buyer confirmed):
    any line whose price is not that one, or that is no longer for sale though it was shown for
    sale, raises PricesChanged; a line neither for sale nor shown (the page showed it as gone)
    is left out. `skus` (sku id -> Sku with its product, co-op and gift-box parts loaded, e.g.
    the cart's) spares reading them again. Flushes only: the caller commits."""
    if not wanted:
        raise DomainError(_("购物车是空的"))
    merged: dict[int, int] = defaultdict(int)
    for line in wanted:
        check_quantity(line.quantity)
        merged[line.sku_id] += line.quantity
    if skus is None or not set(merged) <= set(skus):
        skus = {
            sku.id: sku
            for sku in db.session.scalars(
                select(Sku)
                .where(Sku.id.in_(merged))
                .options(selectinload(Sku.product).selectinload(Product.coop))
            )
        }

    def price_of(sku: Sku) -> int:
        return prices.get(sku.id, sku.price_fen) if prices else sku.price_fen

    def for_sale(sku: Sku | None) -> bool:
        listed = sku is not None and sku.product.status == ProductStatus.LISTED
        return sku is not None and sku.active and (listed or allow_unlisted)

    if shown_prices is not None:
        changed = {
            sku_id
            for sku_id in merged
            if (price_of(skus[sku_id]) if for_sale(skus.get(sku_id)) else None)
            != shown_prices.get(sku_id)
        }
        if changed:
            raise PricesChanged(changed)
        merged = {sku_id: q for sku_id, q in merged.items() if sku_id in shown_prices}
        if not merged:
            raise NotFound(_("有商品已下架，请返回购物车查看"))
    now = utcnow()
    order = Order(
        number=new_order_number(now),
        buyer_id=buyer.id,
        mode=mode,
        unit_id=unit_id,
        referral_unit_id=referral_unit_id,
        delivery_method=delivery.method,
        recipient=delivery.recipient,
        phone=delivery.phone,
        address=delivery.address,
        note=delivery.note,
        idempotency_key=idempotency_key,
        total_fen=0,
        expires_at=(
            now + timedelta(minutes=current_app.config["UNPAID_ORDER_MINUTES"]) if expires else None
        ),
    )
    shipments: dict[int, Shipment] = {}
    # Lock order by SKU id, so that two orders of the same SKUs never wait on each other.
    for sku_id in sorted(merged):
        quantity = merged[sku_id]
        sku = skus.get(sku_id)
        if not for_sale(sku):
            raise NotFound(_("有商品已下架，请返回购物车查看"))
        holds_stock = take_stock_for is None or sku.id in take_stock_for
        # The price shown is checked again in the UPDATE that takes the stock: a price change
        # committed since the read above is caught here, under the row's lock.
        expected = shown_prices[sku.id] if shown_prices is not None and not prices else None
        if holds_stock and not take_stock(sku.id, quantity, price_fen=expected):
            db.session.refresh(sku)
            if expected is not None and sku.price_fen != expected:
                raise PricesChanged({sku.id})
            check_stock(sku, quantity)  # names what is left
            raise SoldOut(_("%(name)s 已售罄", name=sku.product.name))
        if holds_stock:
            db.session.expire(sku, ["stock"])  # taken in SQL: read it again if asked
        product = sku.product
        shipment = shipments.get(product.coop_id)
        if shipment is None:
            shipment = shipments[product.coop_id] = Shipment(coop_id=product.coop_id)
            order.shipments.append(shipment)
        price = expected if expected is not None else price_of(sku)
        for index, (coop, part_price) in enumerate(_price_parts(product, price)):
            # A gift box of several co-ops: one line per co-op at its share of the price, so that
            # each co-op's and village's revenue follows the split; the box ships as one parcel.
            line = OrderLine(
                sku_id=sku.id,
                product_id=product.id,
                coop_id=coop.id,
                village_id=coop.village_id,
                category_id=product.category_id,
                product_name=product.name,
                spec=sku.spec,
                unit_price_fen=part_price,
                quantity=quantity,
                amount_fen=part_price * quantity,
                holds_stock=holds_stock and index == 0,
            )
            order.lines.append(line)
            shipment.lines.append(line)
    order.total_fen = sum(line.amount_fen for line in order.lines)
    db.session.add(order)
    db.session.flush()
    return order


@cache
def _empty_cart_statement():
    return (
        delete(CartItem)
        .where(CartItem.cart_id == bindparam("cart_id"))
        .execution_options(synchronize_session=False)
    )


def existing_order(buyer: User, idempotency_key: str) -> Order | None:
    return db.session.scalar(
        select(Order).where(Order.buyer_id == buyer.id, Order.idempotency_key == idempotency_key)
    )


@unit_of_work
def place_order(
    buyer: User,
    delivery: Delivery,
    idempotency_key: str,
    *,
    shown_prices: Mapping[int, int],
    referral_unit_id: int | None = None,
    key_is_new: bool = False,
    cart: Cart | None = None,
) -> Order:
    """Checkout: the cart becomes one order, its stock taken at once, at exactly the prices the
    checkout page showed (`shown_prices`, see build_order); if any changed, PricesChanged and
    nothing is placed, taken or emptied. Submitting the same form twice (same idempotency key)
    returns the first order and takes nothing more; a refused submit stores nothing, so its key
    still places the order once the buyer confirms the new prices. With `key_is_new` the key is
    not looked up first: a key that placed an order already (or a twin submitted at the same
    time) fails the unique index on the key, everything is rolled back and that order returned,
    so the usual, first submit costs no lookup. A caller may pass the buyer's cart it loaded with
    `cart_for(..., for_order=True)`, so that it is not read twice."""
    if not idempotency_key or len(idempotency_key) > 64:
        raise DomainError(_("请刷新结算页后再提交"))
    if not key_is_new:
        already = existing_order(buyer, idempotency_key)
        if already is not None:
            return already
    if cart is None or cart.user_id != buyer.id:
        cart = cart_for(buyer, None, for_order=True)
    items = cart.items if cart else []
    wanted = [WantedLine(i.sku_id, i.quantity) for i in items]
    try:
        order = build_order(
            buyer,
            wanted,
            delivery,
            idempotency_key,
            referral_unit_id=referral_unit_id,
            shown_prices=shown_prices,
            skus={item.sku_id: item.sku for item in items},
        )
        db.session.execute(_empty_cart_statement(), {"cart_id": cart.id})
        db.session.expire(cart, ["items"])  # emptied in SQL
        # Stock taken in SQL is expired by build_order; the order, its parcels and lines were
        # written through the ORM, so the redirect to the order reads them from memory.
        commit_keeping_loaded()
    except IntegrityError:
        # A concurrent submit with the same key won the race: return its order.
        db.session.rollback()
        already = existing_order(buyer, idempotency_key)
        if already is None:
            raise
        return already
    return order


# -- reading and owning orders -----------------------------------------------------------------
@cache
def _order_query(for_update: bool):
    query = select(Order).where(Order.number == bindparam("number"))
    return query.with_for_update() if for_update else query


def order_of_buyer(user: User, number: str, *, for_update: bool = False) -> Order:
    """The buyer's own order; someone else's is a 404 so numbers cannot be probed."""
    order = db.session.scalar(_order_query(for_update), {"number": number})
    if order is None or (order.buyer_id != user.id and not user.is_admin):
        raise NotFound(_("找不到该订单"))
    return order


def shipment_of_coop(user: User, shipment_id: int, *, for_update: bool = False) -> Shipment:
    shipment = db.session.get(Shipment, shipment_id, with_for_update=for_update)
    if shipment is None:
        raise NotFound(_("找不到该包裹"))
    if not user.is_admin and shipment.coop_id not in {c.id for c in user.managed_coops()}:
        raise NotAllowed(_("这不是您合作社的包裹"))
    return shipment
