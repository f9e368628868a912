"""Batch pages: the co-op's batches (record, receive, inspection, close, label sheet) and the
public trace page a parcel's QR leads to.

The trace page is not kept in the page cache: it is reached one parcel at a time (no hot page to
spare), and what it shows (the inspection, the certificates) changes with tables the cache does
not track; one lookup by a unique code stays within the query budget uncached.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from market.accounts.forms import ActionForm
from market.batches import labels, services
from market.batches.forms import BatchForm, InspectionForm, ReceiveForm
from market.batches.models import Batch
from market.catalog import queries as catalog_queries
from market.catalog.models import Product
from market.catalog.services import coop_products
from market.clock import today
from market.errors import DomainError
from market.security.access import Access, requires
from market.uploads import send_private
from market.web import flash_form_errors, reraise_access_errors, show_error

bp = Blueprint("batches", __name__)

MAX_LABEL_BATCHES = 10


def _batch_form(products: list[Product], form: BatchForm | None = None) -> BatchForm:
    form = form or BatchForm()
    form.sku_id.choices = [
        (sku.id, f"{product.name} · {sku.spec}")
        for product in products
        for sku in product.skus
        if sku.active
    ]
    return form


def _product_filter() -> int | None:
    product_id = request.args.get("product", type=int)
    return product_id if product_id is not None and 0 < product_id < 2**31 else None


def _index(form: BatchForm | None = None, status: int = 200):
    products = coop_products(current_user)
    product_id = _product_filter()
    form = _batch_form(products, form)
    if request.method == "GET" and product_id:
        skus = [s.id for p in products if p.id == product_id for s in p.skus]
        if skus:
            form.sku_id.data = skus[0]
    return (
        render_template(
            "batches/coop_index.html",
            batches=services.coop_batches(current_user, product_id),
            products=products,
            product_id=product_id,
            form=form,
            receive_form=ReceiveForm(),
            inspection_form=InspectionForm(),
            action_form=ActionForm(),
        ),
        status,
    )


@bp.get("/coop/batches")
@requires(Access.COOP_MANAGER)
def coop_index():
    return _index()


@bp.post("/coop/batches")
@requires(Access.COOP_MANAGER)
def record():
    form = _batch_form(coop_products(current_user))
    if form.validate_on_submit():
        try:
            batch = services.record_batch(
                current_user,
                form.sku_id.data,
                harvested_on=form.harvested_on.data,
                plot=form.plot.data or "",
                quantity=form.quantity.data,
                inspection_result=form.inspection_result.data,
                notes=form.notes.data or "",
                report=request.files.get(form.report.name),
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error)
        else:
            flash(_("已记录批次 %(code)s，库存已增加", code=batch.code), "success")
            return redirect(url_for(".coop_index"), 303)
    return _index(form, 400)


def _act(batch_id: int, act, done: str):
    try:
        act()
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
    else:
        flash(done, "success")
    return redirect(url_for(".coop_index") + f"#batch-{batch_id}", 303)


@bp.post("/coop/batches/<int:batch_id>/receive")
@requires(Access.COOP_MANAGER)
def receive(batch_id: int):
    form = ReceiveForm()
    if not form.validate_on_submit():
        services.coop_batch(current_user, batch_id)  # someone else's stays a 404
        flash_form_errors(form)
        return redirect(url_for(".coop_index"), 303)
    return _act(
        batch_id,
        lambda: services.receive_stock(current_user, batch_id, form.quantity.data),
        _("已入库 %(n)d", n=form.quantity.data),
    )


@bp.post("/coop/batches/<int:batch_id>/inspection")
@requires(Access.COOP_MANAGER)
def inspection(batch_id: int):
    form = InspectionForm()
    if not form.validate_on_submit():
        services.coop_batch(current_user, batch_id)
        flash_form_errors(form)
        return redirect(url_for(".coop_index"), 303)
    return _act(
        batch_id,
        lambda: services.set_inspection(
            current_user,
            batch_id,
            form.inspection_result.data,
            request.files.get(form.report.name),
        ),
        _("检测结果已更新"),
    )


@bp.post("/coop/batches/<int:batch_id>/close")
@requires(Access.COOP_MANAGER)
def close(batch_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    return _act(batch_id, lambda: services.close_batch(current_user, batch_id), _("批次已结束"))


@bp.get("/coop/batches/<int:batch_id>/report")
@requires(Access.COOP_MANAGER)
def coop_report(batch_id: int):
    return send_private(services.coop_batch(current_user, batch_id).inspection_path)


@bp.get("/coop/batches/<int:batch_id>/labels")
@requires(Access.COOP_MANAGER)
def batch_labels(batch_id: int):
    """One A4 sheet of 3×8 labels of one batch."""
    return _label_sheets([services.coop_batch(current_user, batch_id)])


@bp.get("/coop/batches/labels")
@requires(Access.COOP_MANAGER)
def label_sheet():
    """One A4 sheet of 3×8 labels per chosen batch (`?batch=ID`, repeated for several)."""
    ids = request.args.getlist("batch", type=int)[:MAX_LABEL_BATCHES]
    ids = [batch_id for batch_id in dict.fromkeys(ids) if 0 < batch_id < 2**31]
    if not ids:
        flash(_("请先勾选要打印标签的批次"), "warning")
        return redirect(url_for(".coop_index"), 303)
    return _label_sheets([services.coop_batch(current_user, batch_id) for batch_id in ids])


def _label_sheets(chosen: list[Batch]):
    sheets = [
        (
            batch,
            Markup(labels.qr_svg(url_for(".trace", code=batch.code, _external=True))),
        )
        for batch in chosen
    ]
    return render_template(
        "batches/labels.html", sheets=sheets, per_sheet=labels.PER_SHEET, columns=labels.COLUMNS
    )


# -- public ------------------------------------------------------------------------------------
@bp.get("/t/<code>")
@requires(Access.PUBLIC)
def trace(code: str):
    batch = services.batch_by_code(code)
    product = batch.sku.product
    village = product.coop.village
    return render_template(
        "batches/trace.html",
        batch=batch,
        sku=batch.sku,
        product=product,
        coop=product.coop,
        village=village,
        units=catalog_queries.units_paired_with(village.id, today()),
    )


@bp.get("/t/<code>/report")
@requires(Access.PUBLIC)
def report(code: str):
    """The inspection report, to anyone holding the batch's code (it is printed on the
    parcel), and to no one by a path."""
    return send_private(services.batch_by_code(code).inspection_path)
