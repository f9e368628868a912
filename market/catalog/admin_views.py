"""The organizer keeps the list of categories."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from market.accounts.permissions import Access, requires
from market.catalog import services
from market.catalog.forms import CategoryForm
from market.catalog.models import Category, Product
from market.extensions import db
from market.web import edit_form_page

bp = Blueprint("catalog_admin", __name__, url_prefix="/admin")


@bp.get("/categories")
@requires(Access.ORGANIZER)
def categories():
    rows = db.session.execute(
        select(Category, func.count(Product.id))
        .outerjoin(Product)
        .group_by(Category.id)
        .order_by(Category.sort_order, Category.id)
    ).all()
    return render_template("admin/categories.html", rows=rows)


def _save(form: CategoryForm, category: Category | None = None) -> Category:
    return services.save_category(
        name=form.name.data,
        slug=form.slug.data,
        sort_order=form.sort_order.data or 0,
        category=category,
    )


@bp.route("/categories/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_category():
    form = CategoryForm()
    return edit_form_page(form, _l("新增分类"), lambda: _save(form), ".categories")


@bp.route("/categories/<int:category_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_category(category_id: int):
    category = db.get_or_404(Category, category_id)
    form = CategoryForm(obj=category)
    return edit_form_page(form, _l("编辑分类"), lambda: _save(form, category), ".categories")
