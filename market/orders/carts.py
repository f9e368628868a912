"""The cart and what a buyer may put in it: quantities (1 to MAX_QUANTITY), stock at the time of
asking (the stock that counts is taken when the order is placed, in orders.services), the
guest's cart merged at sign-in, the lines grouped by co-op; and the prices a page showed
(`shown_prices`), which the checkout sends back so that a price never changes silently: the
checkout summary says, line by line, what changed since (PricesChanged when placing finds one).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from flask_babel import gettext as _
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from market.accounts.models import User
from market.catalog.models import BundlePart, Product, ProductStatus, Sku
from market.directory.models import Coop
from market.errors import Conflict, DomainError, NotFound
from market.extensions import db
from market.orders.models import (
    Cart,
    CartItem,
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


@cache
def _cart_of_user_query(lines: bool, for_order: bool):
    """Built once and bound per request: building a select with its loader options (and its
    cache key) costs about as much as running it, on every cart and checkout request."""
    return (
        select(Cart)
        .where(Cart.user_id == bindparam("user_id"))
        .options(*_cart_options(lines, for_order))
    )


def cart_for(
    user: User | None,
    guest_cart_id: int | None,
    *,
    lines: bool = False,
    for_order: bool = False,
) -> Cart | None:
    """The signed-in user's cart, or the guest's (by the id the cookie session keeps); loaded
    in one query with its items (and, see `_cart_options`, what they show)."""
    if user is not None and user.is_authenticated:
        query = _cart_of_user_query(lines, for_order)
        return db.session.execute(query, {"user_id": user.id}).unique().scalar_one_or_none()
    if guest_cart_id:
        options = _cart_options(lines, for_order)
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


@cache
def _sku_query():
    return select(Sku).where(Sku.id == bindparam("sku_id")).options(joinedload(Sku.product))


def _sellable_sku(sku_id: int) -> Sku:
    sku = db.session.scalar(_sku_query(), {"sku_id": sku_id})
    if sku is None or not sku.active or sku.product.status != ProductStatus.LISTED:
        raise NotFound(_("该商品已下架或不存在"))
    return sku


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise DomainError(_("数量应在 1 到 %(n)d 之间", n=MAX_QUANTITY), field="quantity")


def check_stock(sku: Sku, quantity: int) -> None:
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
    check_stock(sku, wanted)
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
        check_stock(item.sku, quantity)
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
