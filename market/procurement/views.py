"""以买代帮 pages: the unit's overview and yearly target, drafting, submitting, approving or
rejecting a purchase, paying its orders, and the printable purchase order and delivery note (of a
unit purchase's or a custom request's order).

The procurement blueprint is defined here; the 产品定制 pages (`custom_views`) and the 先货后款
and invoice pages (`billing_views`) register their routes on it (imported last, below)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.accounts.forms import ActionForm
from market.accounts.models import UnitRole
from market.catalog.models import Sku
from market.clock import today
from market.directory.models import Unit
from market.errors import DomainError
from market.groupbuy.queries import candidate_skus
from market.money import format_fen
from market.orders import carts
from market.orders.models import Order, OrderLine, OrderStatus
from market.payments import providers
from market.payments import services as payments
from market.payments.models import Payment
from market.procurement import (
    documents,
    order_links,  # noqa: F401  (the orders' pages link here: market.orders.elsewhere)
)
from market.procurement import purchases as purchasing  # `purchases` is the list page's name
from market.procurement.blueprint import bp, own_unit
from market.procurement.forms import PurchaseForm, RejectForm, TargetForm
from market.procurement.models import PURCHASE_STATUS_LABELS, PurchaseStatus, Purpose, UnitPurchase
from market.security.access import Access, requires
from market.web import flash_form_errors, reraise_access_errors, run_action, show_error


def _this_year() -> int:
    return today().year


# -- the unit's purchases ---------------------------------------------------------------------
@bp.get("/unit/purchases")
@requires(Access.COORDINATOR, Access.APPROVER)
def purchases():
    unit = own_unit()
    year = _this_year()
    summary = purchasing.overview(unit.id, year)
    rows = [
        (status, PURCHASE_STATUS_LABELS[status], *summary.by_status.get(status.value, (0, 0)))
        for status in PurchaseStatus
    ]
    return render_template(
        "procurement/purchases.html",
        unit=unit,
        year=year,
        summary=summary,
        rows=rows,
        purchases=purchasing.unit_purchases(unit.id),
        target_form=TargetForm(
            amount=summary.target.amount_fen if summary.target is not None else None
        ),
        is_coordinator=current_user.has_unit_role(UnitRole.COORDINATOR),
    )


@bp.post("/unit/purchases/target")
@requires(Access.COORDINATOR)
def set_target():
    form = TargetForm()
    if form.validate_on_submit():
        try:
            purchasing.set_target(current_user, _this_year(), form.amount.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("已设定年度采购目标"), "success")
    else:
        flash_form_errors(form)
    return redirect(url_for(".purchases"), 303)


def _sku_label(sku: Sku, paired: bool) -> str:
    product = sku.product
    label = _(
        "%(village)s · %(name)s %(spec)s · %(price)s · 库存 %(stock)d",
        village=product.coop.village.name,
        name=product.name,
        spec=sku.spec,
        price=format_fen(sku.price_fen),
        stock=sku.stock,
    )
    return _("【结对村】%(label)s", label=label) if paired else label


def _purchase_form(unit: Unit, purchase: UnitPurchase | None = None) -> PurchaseForm:
    """The purchase form, filled from `purchase` when showing it for editing."""
    showing = request.method == "GET"
    form = PurchaseForm(obj=purchase) if purchase is not None and showing else PurchaseForm()
    choices = [(sku.id, _sku_label(sku, paired)) for sku, paired in candidate_skus(unit)]
    if purchase is not None:
        # A line whose product was delisted since stays visible; saving it is refused by name.
        offered = {sku_id for sku_id, _label in choices}
        choices += [
            (line.sku_id, f"{line.sku.product.name} {line.sku.spec}")
            for line in purchase.lines
            if line.sku_id not in offered
        ]
    form.set_sku_choices(choices)
    if purchase is None and showing:
        form.recipient.data = current_user.name
        form.phone.data = current_user.phone or unit.contact_phone
        form.address.data = f"{unit.name} {unit.address}".strip()
        form.invoice_title.data = unit.name
    return form


def _card_payments() -> bool:
    return "stripe" in providers.available()


def _purchase_data(form: PurchaseForm) -> purchasing.PurchaseData:
    return purchasing.PurchaseData(
        purpose=Purpose(form.purpose.data),
        purpose_note=form.purpose_note.data or "",
        recipient=form.recipient.data,
        phone=form.phone.data,
        address=form.address.data,
        invoice_title=form.invoice_title.data,
        invoice_tax_id=form.invoice_tax_id.data,
        # Only offered when the shop takes cards (STRIPE_SECRET_KEY set).
        pay_online=bool(form.pay_online.data) and _card_payments(),
        lines=form.chosen_lines(),
    )


def _save_purchase(form: PurchaseForm, save, purchase: UnitPurchase | None):
    if form.validate_on_submit():
        try:
            saved = save(_purchase_data(form))
        except DomainError as error:
            if error.status_code == 403:
                raise
            # A SKU gone from the shop is a NotFound here, said on the form like any refusal.
            show_error(form, error, on_form=True)
        else:
            flash(_("采购单已保存，确认无误后请提交审批"), "success")
            return redirect(url_for(".purchase", purchase_id=saved.id), 303)
    status = 400 if request.method == "POST" else 200
    return render_template(
        "procurement/purchase_form.html",
        form=form,
        purchase=purchase,
        card_payments=_card_payments(),
    ), status


@bp.route("/unit/purchases/new", methods=["GET", "POST"])
@requires(Access.COORDINATOR)
def new_purchase():
    form = _purchase_form(own_unit())
    return _save_purchase(form, lambda data: purchasing.draft_purchase(current_user, data), None)


@bp.route("/unit/purchases/<int:purchase_id>/edit", methods=["GET", "POST"])
@requires(Access.COORDINATOR)
def edit_purchase(purchase_id: int):
    purchase = purchasing.purchase_for(current_user, purchase_id)
    if not purchasing.may_edit(purchase):
        flash(_("只有草稿或被驳回的采购单可以修改"), "warning")
        return redirect(url_for(".purchase", purchase_id=purchase.id))
    form = _purchase_form(purchase.unit, purchase)
    return _save_purchase(
        form,
        lambda data: purchasing.update_purchase(current_user, purchase.id, data),
        purchase,
    )


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str
    actor: str


def _timeline(purchase: UnitPurchase, orders: list[Order]) -> list[TimelineEntry]:
    """The purchase's own events, then what happened to each of its orders, by time."""
    entries = [
        TimelineEntry(event.at, event.text, event.actor.name if event.actor else "")
        for event in purchase.events
    ]
    for order in orders:
        coops = "、".join(shipment.coop.name for shipment in order.shipments)
        if order.paid_at is not None:
            entries.append(
                TimelineEntry(
                    order.paid_at,
                    _("订单 %(number)s（%(coops)s）已付款", number=order.number, coops=coops),
                    "",
                )
            )
        for shipment in order.shipments:
            if shipment.shipped_at is not None:
                entries.append(
                    TimelineEntry(
                        shipment.shipped_at,
                        _("%(coop)s 已发货", coop=shipment.coop.name),
                        "",
                    )
                )
            if shipment.delivered_at is not None:
                entries.append(
                    TimelineEntry(
                        shipment.delivered_at,
                        _("%(coop)s 的货已签收", coop=shipment.coop.name),
                        "",
                    )
                )
        if order.closed_at is not None and order.status in (
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        ):
            entries.append(
                TimelineEntry(
                    order.closed_at,
                    _(
                        "订单 %(number)s %(status)s",
                        number=order.number,
                        status=order.status_label,
                    ),
                    "",
                )
            )
    return sorted(entries, key=lambda entry: entry.at)


@dataclass(frozen=True)
class OrderRow:
    order: Order
    coops: str
    transfer: Payment | None  # the open bank-transfer payment, once the unit chose to transfer


def _order_rows(orders: list[Order]) -> list[OrderRow]:
    return [
        OrderRow(
            order,
            "、".join(shipment.coop.name for shipment in order.shipments),
            payments.open_payment(order, "offline") if order.awaits_payment else None,
        )
        for order in orders
    ]


@bp.get("/unit/purchases/<int:purchase_id>")
@requires(Access.COORDINATOR, Access.APPROVER)
def purchase(purchase_id: int):
    found = purchasing.purchase_for(current_user, purchase_id)
    orders = sorted(found.orders, key=lambda order: order.id)
    rows = _order_rows(orders)
    return render_template(
        "procurement/purchase.html",
        purchase=found,
        rows=rows,
        timeline=_timeline(found, orders),
        unpaid=[row for row in rows if row.order.awaits_payment],
        transfers=[row for row in rows if row.transfer is not None],
        is_coordinator=current_user.has_unit_role(UnitRole.COORDINATOR),
        card_payments=_card_payments(),
        may_decide=purchasing.may_decide(current_user, found),
        action_form=ActionForm(),
        reject_form=RejectForm(),
        shown_prices=carts.encode_prices(purchasing.purchase_prices(found)),
    )


def _purchase_action(purchase_id: int, act, done: str):
    """Submit, approve, start the transfer: one service call, its refusal flashed."""
    return run_action(
        lambda: act(current_user, purchase_id),
        done,
        url_for(".purchase", purchase_id=purchase_id),
    )


@bp.post("/unit/purchases/<int:purchase_id>/submit")
@requires(Access.COORDINATOR)
def submit_purchase(purchase_id: int):
    return _purchase_action(purchase_id, purchasing.submit_purchase, _("已提交审批"))


@bp.post("/unit/purchases/<int:purchase_id>/approve")
@requires(Access.APPROVER)
def approve_purchase(purchase_id: int):
    # The prices the approver's page showed: approving is agreeing to those amounts (a post
    # without them, from a script, approves at today's prices as before).
    shown = request.form.get("shown_prices")
    shown_prices = carts.parse_prices(shown) if shown is not None else None
    return _purchase_action(
        purchase_id,
        lambda user, pid: purchasing.approve_purchase(user, pid, shown_prices=shown_prices),
        _("已批准，已按合作社生成订单"),
    )


@bp.post("/unit/purchases/<int:purchase_id>/reject")
@requires(Access.APPROVER)
def reject_purchase(purchase_id: int):
    form = RejectForm()
    if form.validate_on_submit():
        try:
            purchasing.reject_purchase(current_user, purchase_id, form.reason.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("已驳回"), "info")
    else:
        flash_form_errors(form)
    return redirect(url_for(".purchase", purchase_id=purchase_id), 303)


@bp.post("/unit/purchases/<int:purchase_id>/transfer")
@requires(Access.COORDINATOR)
def start_transfer(purchase_id: int):
    return _purchase_action(
        purchase_id,
        purchasing.start_transfer,
        _("请按下方账户信息对公转账，到账确认后订单即为已付款"),
    )


# -- printable documents ----------------------------------------------------------------------
@dataclass(frozen=True)
class DocumentLine:
    name: str
    spec: str
    unit_price_fen: int
    quantity: int
    amount_fen: int


def _document_lines(lines: list[OrderLine]) -> list[DocumentLine]:
    """What was bought, one row per SKU: a gift box's per-co-op lines are put back together."""
    rows: dict[int, DocumentLine] = {}
    for line in sorted(lines, key=lambda line: line.id):
        seen = rows.get(line.sku_id)
        rows[line.sku_id] = DocumentLine(
            line.product_name,
            line.spec,
            line.unit_price_fen + (seen.unit_price_fen if seen else 0),
            line.quantity,
            line.amount_fen + (seen.amount_fen if seen else 0),
        )
    return list(rows.values())


def _document(kind: str, order: Order, lines: list[OrderLine], purchase: UnitPurchase | None):
    titles = {"purchase_order": _("采购单"), "delivery_note": _("送货单")}
    rows = _document_lines(lines)
    return render_template(
        "procurement/document.html",
        kind=kind,
        title=titles[kind],
        order=order,
        purchase=purchase,
        unit=purchase.unit if purchase is not None else order.unit,
        shipments=order.shipments,
        rows=rows,
        total_fen=sum(row.amount_fen for row in rows),
    )


DOCUMENT = '<any("purchase-order", "delivery-note"):kind>'


@bp.get(f"/unit/purchases/<int:purchase_id>/orders/<int:order_id>/{DOCUMENT}")
@requires(Access.COORDINATOR, Access.APPROVER)
def unit_document(purchase_id: int, order_id: int, kind: str):
    found, order = purchasing.purchase_order_for(current_user, purchase_id, order_id)
    return _document(kind.replace("-", "_"), order, order.lines, found)


@bp.get(f"/coop/orders/<number>/{DOCUMENT}")
@requires(Access.COOP_MANAGER)
def coop_document(number: str, kind: str):
    """The co-op's copy: only its own parcel's lines; someone else's order is a 403."""
    found = documents.coop_document_of(current_user, number)
    return _document(kind.replace("-", "_"), found.order, found.lines, found.purchase)
