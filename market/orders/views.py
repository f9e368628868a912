"""Buyer pages: cart, checkout, my orders; the co-op's inbox and packing lists; the organizer's
order list."""

from __future__ import annotations

import uuid
from datetime import date

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, user_logged_in
from sqlalchemy import select

from market.accounts.forms import ActionForm
from market.batches import forms as batch_forms
from market.batches import services as batch_services
from market.directory.models import Coop, Village
from market.errors import DomainError
from market.extensions import db
from market.orders import carts, elsewhere, invoices, lifecycle, queries, referrals, services
from market.orders.forms import (
    AddToCartForm,
    CartQuantityForm,
    CheckoutForm,
    OrderFilterForm,
    ShipForm,
)
from market.orders.models import (
    ORDER_MODE_LABELS,
    ORDER_STATUS_LABELS,
    OrderMode,
    OrderStatus,
)
from market.payments import queries as payment_queries
from market.security.access import Access, requires
from market.web import back_or, flash_form_errors, reraise_access_errors, show_error

bp = Blueprint("orders", __name__)
# Links to pages above the orders, which register them (market.orders.elsewhere).
bp.add_app_template_global(elsewhere.order_links)

CART_SESSION_KEY = "cart_id"


def _guest_cart_id() -> int | None:
    return session.get(CART_SESSION_KEY)


def _referral_unit_id() -> int | None:
    """The unit whose link the buyer followed last, if within the last 30 days."""
    return referrals.followed_unit_id()


def _viewer():
    return current_user if current_user.is_authenticated else None


@user_logged_in.connect
def _merge_cart_at_login(sender, user, **extra) -> None:
    guest_cart_id = session.pop(CART_SESSION_KEY, None)
    if guest_cart_id:
        carts.merge_guest_cart(user, guest_cart_id)


# -- cart --------------------------------------------------------------------------------------
@bp.get("/cart")
@requires(Access.PUBLIC)
def cart():
    current = carts.cart_for(_viewer(), _guest_cart_id(), lines=True)
    groups = carts.cart_groups(current)
    return render_template(
        "orders/cart.html",
        groups=groups,
        total_fen=sum(g.subtotal_fen for g in groups),
        quantity_form=CartQuantityForm(),
    )


@bp.post("/cart/add")
@requires(Access.PUBLIC)
def add_to_cart():
    form = AddToCartForm()
    back = back_or(url_for("orders.cart"))
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(back, 303)
    try:
        added = carts.add_to_cart(_viewer(), _guest_cart_id(), form.sku_id.data, form.quantity.data)
    except DomainError as error:
        show_error(None, error)
        return redirect(back, 303)
    if _viewer() is None:
        session[CART_SESSION_KEY] = added.id
    flash(_("已加入购物车"), "success")
    return redirect(back, 303)


@bp.post("/cart/items/<int:item_id>")
@requires(Access.PUBLIC)
def update_cart_item(item_id: int):
    form = CartQuantityForm()
    if form.validate_on_submit():
        try:
            carts.set_cart_quantity(_viewer(), _guest_cart_id(), item_id, form.quantity.data)
        except DomainError as error:
            show_error(None, error)
    else:
        flash_form_errors(form)
    return redirect(url_for(".cart"), 303)


# -- checkout ----------------------------------------------------------------------------------
def _checkout_form(addresses: list) -> CheckoutForm:
    form = CheckoutForm()
    form.address_id.choices = [(0, _("使用新地址"))] + [
        (a.id, f"{a.recipient} {a.phone} {a.one_line}") for a in addresses
    ]
    if request.method == "GET":
        form.idempotency_key.data = uuid.uuid4().hex
        form.address_id.data = addresses[0].id if addresses else 0
        form.recipient.data = current_user.name
        form.phone.data = current_user.phone or ""
    return form


def _delivery(form: CheckoutForm, addresses: list) -> services.Delivery:
    """Turn the form into a delivery, or raise a DomainError naming the field to fix."""
    return services.delivery_for(current_user, **form.delivery_fields(), addresses=addresses)


def _order_of_this_form():
    return services.existing_order(current_user, request.form.get("idempotency_key", ""))


def _to_payment(order):
    return redirect(url_for("payments.pay", number=order.number), 303)


@bp.route("/checkout", methods=["GET", "POST"])
@requires(Access.SIGNED_IN)
def checkout():
    posted = request.method == "POST"
    # One query for the cart and all it shows; a submit also loads what placing it needs.
    current = carts.cart_for(current_user, None, lines=True, for_order=posted)
    if not carts.cart_groups(current):
        # A double submit finds the order the first submit made and whose cart it emptied.
        if posted and (already := _order_of_this_form()):
            return _to_payment(already)
        flash(_("购物车是空的"), "info")
        return redirect(url_for(".cart"))
    addresses = services.addresses_of(current_user)
    form = _checkout_form(addresses)
    # What the submitted page showed; a page without it showed nothing, so all is to confirm.
    shown = carts.parse_prices(form.shown_prices.data) if request.method == "POST" else None
    status = 400 if request.method == "POST" else 200
    if form.validate_on_submit():
        try:
            order = services.place_order(
                current_user,
                _delivery(form, addresses),
                form.idempotency_key.data,
                shown_prices=shown,
                referral_unit_id=_referral_unit_id(),
                # Not looked up first: a key that placed an order already fails the unique
                # index, and place_order then returns that order.
                key_is_new=True,
                cart=current,
            )
        except carts.PricesChanged:
            # This form may have placed its order already, with a cart since filled anew.
            if (already := _order_of_this_form()) is not None:
                return _to_payment(already)
            status = 409  # the page below lists old -> new; submitting it again confirms
        except DomainError as error:
            show_error(form, error)
        else:
            return _to_payment(order)
    if status != 200:  # refused and rolled back: what the page shows is read again
        current = carts.cart_for(current_user, None, lines=True)
    summary = carts.checkout_summary(current, shown)
    # The form sends back exactly the prices this page shows (the idempotency key stays).
    form.shown_prices.data = summary.prices_field
    return render_template("orders/checkout.html", form=form, summary=summary), status


# -- my orders ---------------------------------------------------------------------------------
@bp.get("/orders")
@requires(Access.SIGNED_IN)
def my_orders():
    page = queries.buyer_orders(current_user.id, request.args.get("page", 1, type=int))
    return render_template("orders/my_orders.html", page=page)


@bp.get("/orders/<number>")
@requires(Access.SIGNED_IN)
def detail(number: str):
    order = services.order_of_buyer(current_user, number)
    batch_services.preload_batches(line for s in order.shipments for line in s.lines)
    return render_template(
        "orders/detail.html",
        order=order,
        refunds=payment_queries.order_refunds(order.id),
        slips=payment_queries.order_slips(order.id),
        action_form=ActionForm(),
    )


@bp.post("/orders/<number>/shipments/<int:shipment_id>/received")
@requires(Access.SIGNED_IN)
def confirm_delivery(number: str, shipment_id: int):
    if ActionForm().validate_on_submit():
        lifecycle.confirm_delivery(current_user, number, shipment_id)
        flash(_("已确认收货"), "success")
    return redirect(url_for(".detail", number=number))


# -- the co-op's inbox -------------------------------------------------------------------------
INVOICE_TAB = "invoice"  # 发票未开: parcels of orders whose invoice is asked for, not issued


@bp.get("/coop/orders")
@requires(Access.COOP_MANAGER)
def coop_inbox():
    tab = request.args.get("tab", "to_ship")
    if tab not in queries.INBOX_TABS and tab not in (queries.HARVEST_TAB, INVOICE_TAB):
        abort(404)
    coop_ids = [c.id for c in current_user.managed_coops()]
    page = queries.coop_inbox(
        coop_ids,
        tab,
        request.args.get("page", 1, type=int),
        invoice_outstanding=tab == INVOICE_TAB,
    )
    return render_template(
        "orders/coop_inbox.html",
        page=page,
        tab=tab,
        counts=queries.coop_inbox_counts(coop_ids),
        harvest_notes=queries.harvest_notes(page.items),
        ship_form=ShipForm(),
        invoices=invoices.invoices_by_order([shipment.order_id for shipment in page.items]),
        batch_choices=batch_services.open_batches_of(
            line.sku_id
            for shipment in page.items
            if shipment.status.value in ("to_ship", "awaiting_payment")
            for line in shipment.lines
        ),
    )


@bp.get("/coop/shipments/<int:shipment_id>/packing-list")
@requires(Access.COOP_MANAGER)
def packing_list(shipment_id: int):
    shipment = services.shipment_of_coop(current_user, shipment_id)
    batch_services.preload_batches(shipment.lines)
    return render_template("orders/packing_list.html", shipment=shipment, order=shipment.order)


@bp.post("/coop/shipments/<int:shipment_id>/ship")
@requires(Access.COOP_MANAGER)
def ship(shipment_id: int):
    form = ShipForm()
    if form.validate_on_submit():
        try:
            lifecycle.ship(
                current_user,
                shipment_id,
                form.carrier.data,
                form.tracking_number.data,
                batch_forms.picks_from(request.form),
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
            return redirect(url_for(".coop_inbox"), 303)
        flash(_("已发货"), "success")
        return redirect(url_for(".coop_inbox", tab="shipped"), 303)
    flash_form_errors(form)
    return redirect(url_for(".coop_inbox"), 303)


# -- the organizer's order list ----------------------------------------------------------------
def _parse_day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


@bp.get("/admin/orders")
@requires(Access.ORGANIZER)
def admin_orders():
    form = OrderFilterForm(request.args)
    form.status.choices = [("", _("全部状态"))] + [
        (s.value, str(label)) for s, label in ORDER_STATUS_LABELS.items()
    ]
    form.mode.choices = [("", _("全部方式"))] + [
        (m.value, str(label)) for m, label in ORDER_MODE_LABELS.items()
    ]
    form.village.choices = [(0, _("全部村"))] + [
        (v.id, v.name) for v in db.session.scalars(select(Village).order_by(Village.name))
    ]
    form.coop.choices = [(0, _("全部合作社"))] + [
        (c.id, c.name) for c in db.session.scalars(select(Coop).order_by(Coop.name))
    ]
    status = request.args.get("status") or None
    mode = request.args.get("mode") or None
    filters = queries.OrderFilters(
        status=OrderStatus(status) if status in OrderStatus._value2member_map_ else None,
        mode=OrderMode(mode) if mode in OrderMode._value2member_map_ else None,
        village_id=request.args.get("village", type=int) or None,
        coop_id=request.args.get("coop", type=int) or None,
        start=_parse_day(request.args.get("start")),
        end=_parse_day(request.args.get("end")),
        invoice_outstanding=request.args.get("invoice") == "outstanding",
    )
    page = queries.filtered_orders(filters, request.args.get("page", 1, type=int))
    return render_template("orders/admin_orders.html", page=page, form=form)
