"""The organizer keeps the list of categories and the search synonyms."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from market.accounts.forms import ActionForm
from market.catalog import services, synonyms
from market.catalog.forms import CategoryForm, SynonymForm
from market.catalog.models import Category, Product
from market.extensions import db
from market.security.access import Access, requires
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
        name_en=form.name_en.data or "",
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


# -- search synonyms ---------------------------------------------------------------------------
@bp.get("/synonyms")
@requires(Access.ORGANIZER)
def synonyms_index():
    return render_template(
        "admin/synonyms.html", groups=synonyms.groups(), action_form=ActionForm()
    )


@bp.route("/synonyms/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_synonyms():
    form = SynonymForm()
    return edit_form_page(
        form, _l("新增同义词"), lambda: synonyms.save_group(form.terms.data), ".synonyms_index"
    )


@bp.route("/synonyms/<int:group_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_synonyms(group_id: int):
    group = synonyms.group_or_404(group_id)
    form = SynonymForm(obj=group)
    return edit_form_page(
        form,
        _l("编辑同义词"),
        lambda: synonyms.save_group(form.terms.data, group),
        ".synonyms_index",
    )


@bp.post("/synonyms/<int:group_id>/delete")
@requires(Access.ORGANIZER)
def delete_synonyms(group_id: int):
    if ActionForm().validate_on_submit():
        synonyms.delete_group(group_id)  # a missing group is the 404 page
        flash(_("已删除这组同义词"), "success")
    return redirect(url_for(".synonyms_index"), 303)
