"""The co-op's own pages: my products, create, edit, SKUs, stock, photos, list and delist."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from market.accounts.forms import ActionForm
from market.catalog import services
from market.catalog.forms import (
    BundleForm,
    NewProductForm,
    ProductForm,
    SkuForm,
    StatusForm,
    StockForm,
)
from market.catalog.models import Category, Product, ProductStatus, months_to_mask
from market.directory.models import Coop, Village
from market.errors import DomainError
from market.extensions import db
from market.security.access import Access, requires
from market.web import flash_form_errors, show_error

bp = Blueprint("coop", __name__, url_prefix="/coop")


def _categories():
    return [
        (c.id, c.label) for c in db.session.scalars(select(Category).order_by(Category.sort_order))
    ]


def _prepare(form: ProductForm) -> ProductForm:
    form.category_id.choices = _categories()
    form.coop_id.choices = [(c.id, c.name) for c in current_user.managed_coops()]
    return form


def _product_data(form: ProductForm) -> services.ProductData:
    return services.ProductData(
        name=form.name.data,
        category_id=form.category_id.data,
        description=form.description.data or "",
        origin_story=form.origin_story.data or "",
        season_mask=months_to_mask(form.season_months.data or []),
        shelf_life_days=form.shelf_life_days.data,
    )


@bp.get("/products")
@requires(Access.COOP_MANAGER)
def products():
    return render_template(
        "catalog/coop_products.html", products=services.coop_products(current_user)
    )


@bp.route("/products/new", methods=["GET", "POST"])
@requires(Access.COOP_MANAGER)
def new_product():
    form = _prepare(NewProductForm())
    if form.validate_on_submit():
        try:
            product = services.create_product(
                current_user,
                form.coop_id.data,
                _product_data(form),
                services.SkuData(
                    spec=form.spec.data,
                    price_fen=form.price.data,
                    stock=form.stock.data,
                    weight_g=form.weight_g.data,
                ),
                request.files.getlist(form.images.name),
            )
        except DomainError as error:
            show_error(form, error)
        else:
            flash(_("已保存为草稿，确认无误后请上架"), "success")
            return redirect(url_for(".edit_product", product_id=product.id))
    status = 400 if form.errors or request.method == "POST" else 200
    return render_template("catalog/coop_product_form.html", form=form, product=None), status


def _bundle_form(product: Product, form: BundleForm | None = None) -> BundleForm:
    if form is None:
        form = BundleForm(
            parts=[{"coop_id": p.coop_id, "share": p.share} for p in product.bundle_parts]
        )
    coops = db.session.scalars(
        select(Coop)
        .join(Coop.village)
        .options(contains_eager(Coop.village))
        .where(Coop.approved)
        .order_by(Village.name, Coop.name)
    )
    form.set_coop_choices([(c.id, f"{c.village.name} · {c.name}") for c in coops])
    return form


def _edit_page(product: Product, form: ProductForm | None = None, status: int = 200, **forms):
    form = form or _prepare(ProductForm(obj=product, season_months=product.season_months))
    return (
        render_template(
            "catalog/coop_product_form.html",
            form=form,
            product=product,
            sku_form=forms.get("sku_form") or SkuForm(),
            stock_form=forms.get("stock_form") or StockForm(),
            status_form=StatusForm(),
            action_form=ActionForm(),
            bundle_form=_bundle_form(product, forms.get("bundle_form")),
        ),
        status,
    )


@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
@requires(Access.COOP_MANAGER)
def edit_product(product_id: int):
    product = services.own_product(current_user, product_id)
    if request.method == "GET":
        return _edit_page(product)
    form = _prepare(ProductForm())
    form.coop_id.data = product.coop_id  # a product does not move between co-ops
    if form.validate_on_submit():
        try:
            services.update_product(
                current_user,
                product.id,
                _product_data(form),
                request.files.getlist(form.images.name),
            )
        except DomainError as error:
            show_error(form, error)
        else:
            flash(_("已保存"), "success")
            return redirect(url_for(".edit_product", product_id=product.id))
    return _edit_page(product, form, 400)


@bp.post("/products/<int:product_id>/skus")
@requires(Access.COOP_MANAGER)
def add_sku(product_id: int):
    product = services.own_product(current_user, product_id)
    form = SkuForm()
    if form.validate_on_submit():
        try:
            services.add_sku(
                current_user,
                product.id,
                services.SkuData(
                    spec=form.spec.data,
                    price_fen=form.price.data,
                    stock=form.stock.data or 0,
                    weight_g=form.weight_g.data,
                ),
            )
        except DomainError as error:
            show_error(form, error)
        else:
            flash(_("已添加规格"), "success")
            return redirect(url_for(".edit_product", product_id=product.id))
    return _edit_page(product, status=400, sku_form=form)


@bp.post("/skus/<int:sku_id>")
@requires(Access.COOP_MANAGER)
def update_sku(sku_id: int):
    sku = services.own_sku(current_user, sku_id)
    form = SkuForm()
    if form.validate_on_submit():
        try:
            services.update_sku(
                current_user,
                sku.id,
                spec=form.spec.data,
                price_fen=form.price.data,
                weight_g=form.weight_g.data,
                active=form.active.data,
            )
        except DomainError as error:
            show_error(None, error)
            return _edit_page(sku.product, status=400)
        flash(_("已更新规格 %(spec)s", spec=sku.spec), "success")
        return redirect(url_for(".edit_product", product_id=sku.product_id))
    flash_form_errors(form)
    return _edit_page(sku.product, status=400)


@bp.post("/skus/<int:sku_id>/stock")
@requires(Access.COOP_MANAGER)
def adjust_stock(sku_id: int):
    sku = services.own_sku(current_user, sku_id)
    form = StockForm()
    if form.validate_on_submit():
        try:
            sku = services.adjust_stock(current_user, sku.id, form.delta.data)
        except DomainError as error:
            show_error(None, error)
            return _edit_page(sku.product, status=400)
        flash(_("%(spec)s 库存现为 %(stock)d", spec=sku.spec, stock=sku.stock), "success")
        return redirect(url_for(".edit_product", product_id=sku.product_id))
    flash_form_errors(form)
    return _edit_page(sku.product, status=400)


@bp.post("/products/<int:product_id>/status")
@requires(Access.COOP_MANAGER)
def change_status(product_id: int):
    product = services.own_product(current_user, product_id)
    form = StatusForm()
    if form.validate_on_submit():
        try:
            services.change_status(current_user, product.id, ProductStatus(form.status.data))
        except DomainError as error:
            show_error(None, error)
        else:
            flash(_("已上架") if form.status.data == "listed" else _("已下架"), "success")
    return redirect(url_for(".edit_product", product_id=product.id))


@bp.post("/products/<int:product_id>/bundle")
@requires(Access.COOP_MANAGER)
def set_bundle(product_id: int):
    """礼盒分成: the co-ops whose goods the gift box holds, and their shares of its price."""
    product = services.own_product(current_user, product_id)
    form = _bundle_form(product, BundleForm())
    if form.validate_on_submit():
        try:
            services.set_bundle_parts(current_user, product.id, form.chosen_parts())
        except DomainError as error:
            show_error(form, error, on_form=True)
        else:
            flash(_("已保存礼盒分成"), "success")
            return redirect(url_for(".edit_product", product_id=product.id))
    return _edit_page(product, status=400, bundle_form=form)


@bp.post("/products/<int:product_id>/images/<int:image_id>/delete")
@requires(Access.COOP_MANAGER)
def delete_image(product_id: int, image_id: int):
    if ActionForm().validate_on_submit():
        services.remove_image(current_user, product_id, image_id)
        flash(_("已删除图片"), "info")
    return redirect(url_for(".edit_product", product_id=product_id))
