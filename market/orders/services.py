"""Cart, checkout, stock and fulfilment. Money moves in market.payments.services.

Stock rule: taken when the order is placed, in one conditional UPDATE per SKU (never read-then-
write), all or nothing; given back exactly once when an unpaid order expires or is cancelled.

Price rule: prices never change silently. The checkout page sends back the unit prices it showed
(`shown_prices`); the order is placed only if every line's current price is the one shown, checked
in the same conditional UPDATE that takes the stock, so a co-op's price change that commits while
the order is being placed is caught too. Otherwise nothing is placed, and the page shows old ->
new for the buyer to confirm.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from market.accounts.models import User
from market.batches import services as batches
from market.catalog.models import BundlePart, Product, ProductStatus, Sku
from market.clock import local_day
from market.directory.models import Coop
from market.errors import Conflict, DomainError, NotAllowed, NotFound
from market.extensions import db
from market.models import utcnow
from market.money import format_fen, split_by_shares
from market.notifications import recipients
from market.notifications.services import notify
from market.orders import parcels
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
from market.transactions import commit_keeping_loaded, unit_of_work

MAX_QUANTITY = 9999


class SoldOut(Conflict):
    pass


class PricesChanged(Conflict):
    """A price the buyer was shown is no longer the price (or the item is no longer for sale):
    nothing was placed; the checkout page shows what changed, to be confirmed."""

    def __init__(self, changed_sku_ids: set[int], message: str | None = None):
        super().__init__(message or _("价格有变动，订单尚未提交。请核对新的价格和合计后再次提交。"))
        self.changed_sku_ids = changed_sku_ids


# -- cart --------------------------------------------------------------------------------------
def _cart_options(lines: bool, for_order: bool) -> list:
    """The cart with its items in the same query; with `lines` each item's SKU, product and
    co-op too (what the cart and checkout pages show); with `for_order` also a gift box's
    co-op shares (what placing the order splits the price by)."""
    items = joinedload(Cart.items)
    if not (lines or for_order):
        return [items]
    product = items.joinedload(CartItem.sku).joinedload(Sku.product)
    options = [product.joinedload(Product.coop)]
    if for_order:
        options.append(product.joinedload(Product.bundle_parts).joinedload(BundlePart.coop))
    return options


def cart_for(
    user: User | None,
    guest_cart_id: int | None,
    *,
    lines: bool = False,
    for_order: bool = False,
) -> Cart | None:
    """The signed-in user's cart, or the guest's (by the id the cookie session keeps); loaded
    in one query with its items (and, see `_cart_options`, what they show)."""
    options = _cart_options(lines, for_order)
    if user is not None and user.is_authenticated:
        return (
            db.session.execute(select(Cart).where(Cart.user_id == user.id).options(*options))
            .unique()
            .scalar_one_or_none()
        )
    if guest_cart_id:
        cart = db.session.get(Cart, guest_cart_id, options=options)
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
    sku = db.session.get(Sku, sku_id, options=[joinedload(Sku.product)])
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


@unit_of_work
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
    commit_keeping_loaded()  # all changed through the ORM; the redirect needs nothing reloaded
    return cart


@unit_of_work
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


@unit_of_work
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


# -- the prices a page showed -------------------------------------------------------------------
MAX_SHOWN_PRICES = 500  # more lines than any cart holds
_SHOWN_PRICE = re.compile(r"^(\d{1,10}):(\d{1,12})$")


def encode_prices(prices: Mapping[int, int]) -> str:
    """`{12: 6800, 15: 8900}` -> `"12:6800,15:8900"`, the hidden field a page sends back."""
    return ",".join(f"{sku_id}:{price}" for sku_id, price in sorted(prices.items()))


def parse_prices(text: str | None) -> dict[int, int]:
    """The hidden field back into sku id -> unit price (fen). Anything malformed counts as
    nothing shown (so every line asks for confirmation), never as an error page."""
    parts = (text or "").split(",") if text else []
    if len(parts) > MAX_SHOWN_PRICES:
        return {}
    prices: dict[int, int] = {}
    for part in parts:
        match = _SHOWN_PRICE.match(part.strip())
        if match is None:
            return {}
        prices[int(match.group(1))] = int(match.group(2))
    return prices


def _sellable(sku: Sku | None) -> bool:
    return sku is not None and sku.active and sku.product.status == ProductStatus.LISTED


@dataclass(frozen=True)
class CheckoutLine:
    sku: Sku
    quantity: int
    price_fen: int | None  # now; None when it is no longer for sale
    shown_fen: int | None  # what the submitted page showed; None when it did not show it

    @property
    def amount_fen(self) -> int:
        return (self.price_fen or 0) * self.quantity

    @property
    def changed(self) -> bool:
        """Differs from what the buyer was shown: a new price, a line not shown before, or a
        line shown for sale that is gone (a line shown as gone and still gone is no change)."""
        if self.price_fen is None:
            return self.shown_fen is not None
        return self.shown_fen != self.price_fen


@dataclass(frozen=True)
class CheckoutGroup:
    coop: Coop
    lines: list[CheckoutLine]

    @property
    def subtotal_fen(self) -> int:
        return sum(line.amount_fen for line in self.lines)


@dataclass(frozen=True)
class CheckoutSummary:
    groups: list[CheckoutGroup]

    @property
    def lines(self) -> list[CheckoutLine]:
        return [line for group in self.groups for line in group.lines]

    @property
    def total_fen(self) -> int:
        return sum(group.subtotal_fen for group in self.groups)

    @property
    def changes(self) -> list[CheckoutLine]:
        return [line for line in self.lines if line.changed]

    @property
    def short(self) -> list[CheckoutLine]:
        """Lines still for sale but with less stock than the cart wants (售罄 or too few): the
        order cannot be placed until the cart is changed."""
        return [
            line
            for line in self.lines
            if line.price_fen is not None and line.sku.stock < line.quantity
        ]

    @property
    def prices_field(self) -> str:
        """The prices this page shows, for the form to send back."""
        return encode_prices(
            {line.sku.id: line.price_fen for line in self.lines if line.price_fen is not None}
        )


def checkout_summary(cart: Cart | None, shown: Mapping[int, int] | None = None) -> CheckoutSummary:
    """The cart as the checkout page shows it, at today's prices, one group per co-op; with
    `shown` (the prices a submitted page showed), each line says whether it changed since."""
    groups = []
    for group in cart_groups(cart):
        lines = []
        for item in group.items:
            price = item.sku.price_fen if _sellable(item.sku) else None
            shown_fen = price if shown is None else shown.get(item.sku_id)
            lines.append(CheckoutLine(item.sku, item.quantity, price, shown_fen))
        groups.append(CheckoutGroup(group.coop, lines))
    return CheckoutSummary(groups)


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


def take_stock(sku_id: int, quantity: int, *, price_fen: int | None = None) -> bool:
    """Atomically take `quantity` from a SKU; False when not enough is left, or (with
    `price_fen`) when its price is no longer that one."""
    condition = [Sku.id == sku_id, Sku.stock >= quantity]
    if price_fen is not None:
        condition.append(Sku.price_fen == price_fen)
    result = db.session.execute(
        update(Sku)
        .where(*condition)
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
            _check_stock(sku, quantity)  # names what is left
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
    still places the order once the buyer confirms the new prices. A caller that has just, in
    this transaction, looked the key up and found no order says so (`key_is_new`: a twin
    submitted since is still caught, by the unique index on the key), and may pass the buyer's
    cart it loaded with `cart_for(..., for_order=True)`, so neither is read twice."""
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
        db.session.execute(
            delete(CartItem)
            .where(CartItem.cart_id == cart.id)
            .execution_options(synchronize_session=False)
        )
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
    """Money for the whole order arrived: parcels still waiting for it may ship; an order paid
    after delivery (先货后款) whose parcels are all in is completed at once."""
    order.move_to(OrderStatus.PAID)
    order.paid_at = utcnow()
    order.expires_at = None
    to_ship = set()
    for shipment in order.shipments:
        if shipment.status == ShipmentStatus.AWAITING_PAYMENT:
            shipment.move_to(ShipmentStatus.TO_SHIP)
            to_ship.add(shipment.coop_id)
    if order.mode != OrderMode.GROUP_BUY:  # a group-buy's co-op is told once, at its closing
        notify(
            recipients.coop_manager_ids(to_ship),
            "order.paid",
            _l("订单 %(number)s 已付款，请发货", number=order.number),
            _l(
                "金额 %(amount)s，请在订单发货页打印拣货单并发货。",
                amount=format_fen(order.total_fen),
            ),
            recipients.link_to("orders.coop_inbox"),
        )
    _complete_if_done(order)
    db.session.flush()


def release_on_credit(order: Order, at: datetime) -> None:
    """先货后款: the order ships before it is paid (the order's state machine says which modes
    may; any other raises). The payment term starts now; the order no longer expires.
    Flushes only."""
    order.move_to(OrderStatus.ON_CREDIT)
    order.expires_at = None
    order.payment_due_at = at + timedelta(days=current_app.config["PAYMENT_TERM_DAYS"])
    for shipment in order.shipments:
        if shipment.status == ShipmentStatus.AWAITING_PAYMENT:
            shipment.move_to(ShipmentStatus.TO_SHIP)
    db.session.flush()


@unit_of_work
def ship(
    user: User,
    shipment_id: int,
    carrier: str,
    tracking_number: str,
    batch_picks: Mapping[int, str | int | None] | None = None,
) -> Shipment:
    """The co-op hands its parcel to a carrier (or it waits at the pickup point). A unit's
    order may go before it is paid (先货后款, see Order.MODE_TRANSITIONS): its payment term
    starts with this shipping; a retail order's unpaid parcel is refused as before. Each line
    gets the batch (批次) it ships from: the one picked per line id, else the oldest open one."""
    shipment = shipment_of_coop(user, shipment_id)
    carrier, tracking_number = (carrier or "").strip(), (tracking_number or "").strip()
    if not carrier:
        raise DomainError(_("请填写快递公司"), field="carrier")
    # The order first, then its parcel: the order the payment side locks them in.
    order = db.session.get(Order, shipment.order_id, with_for_update=True, populate_existing=True)
    shipment = db.session.get(Shipment, shipment.id, with_for_update=True, populate_existing=True)
    now = utcnow()
    if shipment.status == ShipmentStatus.AWAITING_PAYMENT and order.may_move_to(
        OrderStatus.ON_CREDIT
    ):
        release_on_credit(order, now)
    shipment.move_to(ShipmentStatus.SHIPPED)
    shipment.carrier = carrier
    shipment.tracking_number = tracking_number
    shipment.shipped_at = now
    batches.allocate_lines(shipment.lines, batch_picks or {})
    parcels.parcel_moved(shipment)
    notify(
        [order.buyer_id],
        "order.shipped",
        _l("订单 %(number)s 已发货", number=order.number),
        _l(
            "%(coop)s 已交 %(carrier)s 发出，运单号 %(tracking)s。",
            coop=shipment.coop.name,
            carrier=shipment.carrier,
            tracking=shipment.tracking_number,
        )
        if shipment.tracking_number
        else _l(
            "%(coop)s 已交 %(carrier)s 发出。", coop=shipment.coop.name, carrier=shipment.carrier
        ),
        recipients.link_to("orders.detail", number=order.number),
    )
    db.session.commit()
    return shipment


@unit_of_work
def confirm_delivery(user: User, number: str, shipment_id: int) -> Shipment:
    """The buyer confirms a parcel arrived; with every parcel in, the order is completed."""
    order = order_of_buyer(user, number, for_update=True)
    shipment = next((s for s in order.shipments if s.id == shipment_id), None)
    if shipment is None:
        raise NotFound(_("找不到该包裹"))
    shipment.move_to(ShipmentStatus.DELIVERED)
    shipment.delivered_at = utcnow()
    _complete_if_done(order)
    parcels.parcel_moved(shipment)
    db.session.commit()
    return shipment


def _complete_if_done(order: Order) -> None:
    settled = {ShipmentStatus.DELIVERED, ShipmentStatus.CANCELLED}
    if order.status == OrderStatus.PAID and all(s.status in settled for s in order.shipments):
        order.move_to(OrderStatus.COMPLETED)
        order.closed_at = utcnow()
