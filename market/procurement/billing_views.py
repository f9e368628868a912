"""先货后款 and invoices (发票) pages, on the procurement blueprint: the unit's bills (its orders,
payment terms, what is overdue) and invoice requests and downloads; the co-op's or finance's
issuing of an invoice; finance's overdue list and invoice desk. Private files are sent only to
those who may see them, never cached (Cache-Control: private, no-store)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from market.errors import DomainError
from market.orders import invoices
from market.orders.models import INVOICE_STATUS_LABELS, Invoice, InvoiceStatus, Order
from market.payments import services as payments
from market.procurement import documents
from market.procurement.blueprint import bp
from market.procurement.forms import InvoiceIssueForm, InvoiceRequestForm
from market.security.access import Access, requires
from market.security.inputs import page_arg
from market.security.redirects import safe_target
from market.uploads import send_private
from market.web import reraise_access_errors, run_form, show_error


def _unit_id() -> int:
    unit_id = invoices.unit_of(current_user)
    if unit_id is None:
        abort(404)
    return unit_id


def _send_invoice(invoice: Invoice):
    if not invoice.file_path:
        abort(404)
    response = send_private(invoice.file_path)
    extension = invoice.file_path.rsplit(".", 1)[-1]
    response.headers["Content-Disposition"] = (
        f"attachment; filename=invoice-{invoice.order.number}.{extension}"
    )
    return response


# -- the unit ------------------------------------------------------------------------------------
BILL_TABS = ("all", "overdue")


@bp.get("/unit/bills")
@requires(Access.COORDINATOR, Access.APPROVER)
def unit_bills():
    """The unit's orders with their payment terms and invoices; `?tab=overdue` lists only
    orders shipped on credit and past their due date."""
    unit_id = _unit_id()
    tab = request.args.get("tab") if request.args.get("tab") in BILL_TABS else "all"
    if tab == "overdue":
        page = invoices.on_credit_orders(unit_id=unit_id, overdue_only=True, page=page_arg())
    else:
        page = invoices.unit_orders(unit_id, page_arg())
    return render_template(
        "procurement/bills.html",
        page=page,
        tab=tab,
        invoices=invoices.invoices_by_order([order.id for order in page.items]),
        labels=INVOICE_STATUS_LABELS,
        active="bills",
    )


def _invoice_defaults(order: Order, form: InvoiceRequestForm) -> None:
    """What the unit already said when it ordered: the purchase's 抬头 and 税号, the address."""
    said = documents.invoice_details_of(order)
    form.title.data, form.tax_id.data, form.address.data = said.title, said.tax_id, said.address


@bp.route("/unit/orders/<number>/invoice", methods=["GET", "POST"])
@requires(Access.COORDINATOR, Access.APPROVER)
def unit_invoice(number: str):
    order = invoices.unit_order(current_user, number[:20])
    invoice = invoices.invoice_of(order)
    form = InvoiceRequestForm(obj=invoice if request.method == "GET" else None)
    if request.method == "GET" and invoice is None:
        _invoice_defaults(order, form)
    if form.validate_on_submit():
        try:
            invoices.request_invoice(
                current_user, order.number, form.title.data, form.tax_id.data, form.address.data
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("已申请发票，合作社或服务中心开具后可在此下载"), "success")
            return redirect(url_for(".unit_invoice", number=order.number), 303)
    status = 400 if request.method == "POST" else 200
    return render_template(
        "procurement/invoice.html",
        order=order,
        invoice=invoice,
        form=form,
        transfer=payments.open_payment(order, "offline") if order.awaits_payment else None,
    ), status


@bp.get("/unit/orders/<number>/invoice/file")
@requires(Access.COORDINATOR, Access.APPROVER)
def unit_invoice_file(number: str):
    order = invoices.unit_order(current_user, number[:20])
    invoice = invoices.invoice_of(order)
    if invoice is None:
        abort(404)
    return _send_invoice(invoice)


# -- the co-op or finance issues ---------------------------------------------------------------
@bp.post("/invoices/<int:invoice_id>/issue")
@requires(Access.COOP_MANAGER, Access.FINANCE)
def issue_invoice(invoice_id: int):
    invoice = invoices.issuable_invoice(current_user, invoice_id)  # 404 for someone else's
    form = InvoiceIssueForm()
    run_form(
        form,
        lambda: invoices.issue_invoice(
            current_user, invoice.id, form.number.data or "", request.files.get(form.file.name)
        ),
        _("发票已登记开具，单位可下载"),
    )
    fallback = (
        url_for(".finance_invoices")
        if current_user.is_finance
        else url_for("orders.coop_inbox", tab="invoice")
    )
    return redirect(safe_target(request.form.get("next"), fallback), 303)


@bp.get("/invoices/<int:invoice_id>/file")
@requires(Access.COOP_MANAGER, Access.FINANCE)
def invoice_file(invoice_id: int):
    return _send_invoice(invoices.issuable_invoice(current_user, invoice_id))


# -- finance -------------------------------------------------------------------------------------
@bp.get("/finance/overdue")
@requires(Access.FINANCE)
def finance_overdue():
    """Orders shipped on credit (先货后款) and not paid: the overdue ones, or all of them."""
    tab = "all" if request.args.get("tab") == "all" else "overdue"
    page = invoices.on_credit_orders(overdue_only=tab == "overdue", page=page_arg())
    return render_template(
        "procurement/finance_overdue.html",
        page=page,
        tab=tab,
        transfers={order.id: payments.open_payment(order, "offline") for order in page.items},
        invoices=invoices.invoices_by_order([order.id for order in page.items]),
    )


INVOICE_TABS = {"requested": InvoiceStatus.REQUESTED, "issued": InvoiceStatus.ISSUED}


@bp.get("/finance/invoices")
@requires(Access.FINANCE)
def finance_invoices():
    tab = request.args.get("tab") if request.args.get("tab") in INVOICE_TABS else "requested"
    return render_template(
        "procurement/finance_invoices.html",
        page=invoices.invoices(INVOICE_TABS[tab], page_arg()),
        tab=tab,
    )
