"""Cart, checkout, stock and fulfilment. Money moves in market.payments.services.

Stock rule: taken when the order is placed, in one conditional UPDATE per SKU (never read-then-
write), all or nothing; given back exactly once when an unpaid order expires or is cancelled.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from market.accounts.models import User
from market.catalog.models import Product, ProductStatus, Sku
from market.directory.models import Coop
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import split_by_shares
from market.orders.models import (
    Address,
    Cart,
    CartItem,
    DeliveryMethod,
    Order,
    OrderLine,
    OrderMode,
    OrderStatus,
    Shipment,
    ShipmentStatus,
)

MAX_QUANTITY = 9999
SHANGHAI = ZoneInfo("Asia/Shanghai")


class SoldOut(Conflict):
    pass


# -- cart --------------------------------------------------------------------------------------
def cart_for(user: User | None, guest_cart_id: int | None) -> Cart | None:
    if user is not None and user.is_authenticated:
        return db.session.scalar(select(Cart).where(Cart.user_id == user.id))
    if guest_cart_id:
        cart = db.session.get(Cart, guest_cart_id)
        return cart if cart is not None and cart.user_id is None else None
    return None


def _ensure_cart(user: User | None, guest_cart_id: int | None) -> Cart:
    cart = cart_for(user, guest_cart_id)
    if cart is None:
        cart = Cart(user_id=user.id if user is not None and user.is_authenticated else None)
        db.session.add(cart)
        db.session.flush()
    return cart


def _sellable_sku(sku_id: int) -> Sku:
    sku = db.session.get(Sku, sku_id)
    if sku is None or not sku.active or sku.product.status != ProductStatus.LISTED:
        raise NotFound(_("该商品已下架或不存在"))
    return sku


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise DomainError(_("数量应在 1 到 %(n)d 之间", n=MAX_QUANTITY), field="quantity")


def _check_stock(sku: Sku, quantity: int) -> None:
    if sku.stock <= 0:
        raise SoldOut(_("%(name)s（%(spec)s）已售罄", name=sku.product.name, spec=sku.spec))
    if quantity > sku.stock:
        raise SoldOut(
            _(
                "%(name)s（%(spec)s）库存只有 %(stock)d 件",
                name=sku.product.name,
                spec=sku.spec,
                stock=sku.stock,
            ),
            field="quantity",
        )


def add_to_cart(user: User | None, guest_cart_id: int | None, sku_id: int, quantity: int) -> Cart:
    """Add a listed SKU; the cart's quantity for it never exceeds the stock on hand."""
    check_quantity(quantity)
    sku = _sellable_sku(sku_id)
    cart = _ensure_cart(user, guest_cart_id)
    item = next((i for i in cart.items if i.sku_id == sku.id), None)
    wanted = quantity + (item.quantity if item else 0)
    check_quantity(wanted)
    _check_stock(sku, wanted)
    if item is None:
        cart.items.append(CartItem(sku=sku, quantity=wanted))
    else:
        item.quantity = wanted
    db.session.commit()
    return cart


def set_cart_quantity(
    user: User | None, guest_cart_id: int | None, item_id: int, quantity: int
) -> Cart:
    """Change a line's quantity; 0 removes it."""
    cart = cart_for(user, guest_cart_id)
    item = db.session.get(CartItem, item_id)
    if cart is None or item is None or item.cart_id != cart.id:
        raise NotFound(_("购物车里没有这件商品"))
    if quantity == 0:
        cart.items.remove(item)
    else:
        check_quantity(quantity)
        _check_stock(item.sku, quantity)
        item.quantity = quantity
    db.session.commit()
    return cart


def merge_guest_cart(user: User, guest_cart_id: int | None) -> None:
    """At sign-in the guest's cart joins the user's; quantities of the same SKU add up (capped
    by stock)."""
    guest = cart_for(None, guest_cart_id)
    if guest is None or not guest.items:
        return
    cart = _ensure_cart(user, None)
    for guest_item in list(guest.items):
        item = next((i for i in cart.items if i.sku_id == guest_item.sku_id), None)
        if item is None:
            cart.items.append(CartItem(sku_id=guest_item.sku_id, quantity=guest_item.quantity))
        else:
            item.quantity = min(item.quantity + guest_item.quantity, max(item.sku.stock, 1))
    db.session.delete(guest)
    db.session.commit()


@dataclass(frozen=True)
class CartGroup:
    coop: Coop
    items: list[CartItem]

    @property
    def subtotal_fen(self) -> int:
        return sum(i.sku.price_fen * i.quantity for i in self.items)


def cart_groups(cart: Cart | None) -> list[CartGroup]:
    """The cart as it will ship: one group per co-op."""
    if cart is None:
        return []
    groups: dict[int, list[CartItem]] = defaultdict(list)
    coops: dict[int, Coop] = {}
    for item in cart.items:
        coop = item.sku.product.coop
        coops[coop.id] = coop
        groups[coop.id].append(item)
    return [CartGroup(coops[coop_id], items) for coop_id, items in groups.items()]


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


def addresses_of(user: User) -> list[Address]:
    return list(
        db.session.scalars(
            select(Address)
            .where(Address.user_id == user.id)
            .order_by(Address.is_default.desc(), Address.id.desc())
        )
    )


# -- placing an order --------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    method: DeliveryMethod
    recipient: str
    phone: str
    address: str


@dataclass(frozen=True)
class WantedLine:
    sku_id: int
    quantity: int


def new_order_number(at: datetime) -> str:
    # Readable and unguessable enough: the Shanghai date and eight random digits.
    return at.astimezone(SHANGHAI).strftime("%y%m%d") + f"{secrets.randbelow(10**8):08d}"


def take_stock(sku_id: int, quantity: int) -> bool:
    """Atomically take `quantity` from a SKU; False when not enough is left."""
    result = db.session.execute(
        update(Sku)
        .where(Sku.id == sku_id, Sku.stock >= quantity)
        .values(stock=Sku.stock - quantity)
        .execution_options(synchronize_session=False)
    )
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
) -> Order:
    """Create an order with its lines and one shipment per co-op, taking the stock. Prices are
    the server's (`prices` only for modes where a price was agreed, e.g. a group-buy's).
    `take_stock_for` limits which SKUs take stock here (a group-buy's capped SKUs come out of
    its reservation); `allow_unlisted` admits a hidden product made for one buyer (a custom
    product's agreed quote). Flushes only: the caller commits."""
    if not wanted:
        raise DomainError(_("购物车是空的"))
    merged: dict[int, int] = defaultdict(int)
    for line in wanted:
        check_quantity(line.quantity)
        merged[line.sku_id] += line.quantity
    skus = {
        sku.id: sku
        for sku in db.session.scalars(
            select(Sku)
            .where(Sku.id.in_(merged))
            .options(selectinload(Sku.product).selectinload(Product.coop))
        )
    }
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
        listed = sku is not None and sku.product.status == ProductStatus.LISTED
        if sku is None or not sku.active or not (listed or allow_unlisted):
            raise NotFound(_("有商品已下架，请返回购物车查看"))
        holds_stock = take_stock_for is None or sku.id in take_stock_for
        if holds_stock and not take_stock(sku.id, quantity):
            db.session.refresh(sku)
            _check_stock(sku, quantity)  # names what is left
            raise SoldOut(_("%(name)s 已售罄", name=sku.product.name))
        product = sku.product
        shipment = shipments.get(product.coop_id)
        if shipment is None:
            shipment = shipments[product.coop_id] = Shipment(coop_id=product.coop_id)
            order.shipments.append(shipment)
        price = prices.get(sku.id, sku.price_fen) if prices else sku.price_fen
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


def existing_order(buyer: User, idempotency_key: str) -> Order | None:
    return db.session.scalar(
        select(Order).where(Order.buyer_id == buyer.id, Order.idempotency_key == idempotency_key)
    )


def place_order(
    buyer: User,
    delivery: Delivery,
    idempotency_key: str,
    *,
    referral_unit_id: int | None = None,
) -> Order:
    """Checkout: the cart becomes one order, its stock taken at once. Submitting the same form
    twice (same idempotency key) returns the first order and takes nothing more."""
    if not idempotency_key or len(idempotency_key) > 64:
        raise DomainError(_("请刷新结算页后再提交"))
    already = existing_order(buyer, idempotency_key)
    if already is not None:
        return already
    cart = cart_for(buyer, None)
    wanted = [WantedLine(i.sku_id, i.quantity) for i in (cart.items if cart else [])]
    try:
        order = build_order(
            buyer, wanted, delivery, idempotency_key, referral_unit_id=referral_unit_id
        )
        db.session.execute(delete(CartItem).where(CartItem.cart_id == cart.id))
        db.session.commit()
    except IntegrityError:
        # A concurrent submit with the same key won the race: return its order.
        db.session.rollback()
        already = existing_order(buyer, idempotency_key)
        if already is None:
            raise
        return already
    except Exception:
        db.session.rollback()
        raise
    return order


# -- reading and owning orders -----------------------------------------------------------------
def order_of_buyer(user: User, number: str, *, for_update: bool = False) -> Order:
    """The buyer's own order; someone else's is a 404 so numbers cannot be probed."""
    query = select(Order).where(Order.number == number)
    if for_update:
        query = query.with_for_update()
    order = db.session.scalar(query)
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


# -- lifecycle without money -------------------------------------------------------------------
def close_unpaid(order: Order, status: OrderStatus) -> None:
    """Cancel or expire an unpaid order: stock back, shipments cancelled. Flushes only."""
    order.move_to(status)
    order.closed_at = utcnow()
    for shipment in order.shipments:
        shipment.move_to(ShipmentStatus.CANCELLED)
    give_back_stock(order)
    db.session.flush()


def mark_paid(order: Order) -> None:
    order.move_to(OrderStatus.PAID)
    order.paid_at = utcnow()
    order.expires_at = None
    for shipment in order.shipments:
        shipment.move_to(ShipmentStatus.TO_SHIP)
    db.session.flush()


def ship(user: User, shipment_id: int, carrier: str, tracking_number: str) -> Shipment:
    """The co-op hands its parcel to a carrier (or it waits at the pickup point)."""
    shipment = shipment_of_coop(user, shipment_id, for_update=True)
    if not carrier.strip():
        raise DomainError(_("请填写快递公司"), field="carrier")
    shipment.move_to(ShipmentStatus.SHIPPED)
    shipment.carrier = carrier.strip()
    shipment.tracking_number = tracking_number.strip()
    shipment.shipped_at = utcnow()
    db.session.commit()
    return shipment


def confirm_delivery(user: User, number: str, shipment_id: int) -> Shipment:
    """The buyer confirms a parcel arrived; with every parcel in, the order is completed."""
    order = order_of_buyer(user, number, for_update=True)
    shipment = next((s for s in order.shipments if s.id == shipment_id), None)
    if shipment is None:
        raise NotFound(_("找不到该包裹"))
    shipment.move_to(ShipmentStatus.DELIVERED)
    shipment.delivered_at = utcnow()
    _complete_if_done(order)
    db.session.commit()
    return shipment


def _complete_if_done(order: Order) -> None:
    settled = {ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED}
    if order.status == OrderStatus.PAID and all(s.status in settled for s in order.shipments):
        order.move_to(OrderStatus.COMPLETED)
        order.closed_at = utcnow()
