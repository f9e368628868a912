"""Certificate pages: the co-op's list, upload and correction; the organizers' review queue with
verify and reject; the scan, to the co-op and organizers only (private, never cached). The
storefront's badges and ?cert= filter are installed into the catalog's pages from here."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from market.catalog import queries as catalog_queries
from market.catalog.models import Product
from market.certificates import queries, services
from market.certificates.forms import CertificateForm, CertificateRejectForm
from market.certificates.models import (
    CERTIFICATE_STATUS_LABELS,
    KIND_LABELS,
    CertificateKind,
    CertificateStatus,
)
from market.errors import DomainError
from market.extensions import db
from market.security.access import Access, requires
from market.security.inputs import page_arg
from market.uploads import send_private
from market.web import reraise_access_errors, run_action, run_form, show_error

bp = Blueprint("certificates", __name__)


@bp.record_once
def _install(state) -> None:
    """The badges (template global `product_badges(product)`, used by the product card and
    page) and the storefront's ?cert=<kind> filter."""
    state.app.jinja_env.globals["product_badges"] = queries.badges_for
    catalog_queries.add_listing_filter(
        catalog_queries.ListingFilter(
            arg="cert",
            label=_l("认证"),
            choices=lambda: [(kind.value, str(label)) for kind, label in KIND_LABELS.items()],
            product_ids=lambda value: queries.product_ids_with(CertificateKind(value)),
        )
    )


# -- the co-op -------------------------------------------------------------------------------------
def _prepare(form: CertificateForm) -> CertificateForm:
    coops = current_user.managed_coops()
    form.coop_id.choices = [(coop.id, coop.name) for coop in coops]
    names = {coop.id: coop.name for coop in coops}
    products = db.session.scalars(
        select(Product).where(Product.coop_id.in_(names)).order_by(Product.coop_id, Product.id)
    )
    form.product_ids.choices = [
        (p.id, f"{names[p.coop_id]} · {p.name}" if len(names) > 1 else p.name) for p in products
    ]
    return form


def _data(form: CertificateForm) -> services.CertificateData:
    return services.CertificateData(
        coop_id=form.coop_id.data,
        kind=form.kind.data,
        number=form.number.data,
        issuer=form.issuer.data,
        valid_until=form.valid_until.data,
        covers_all_products=bool(form.covers_all_products.data),
        product_ids=list(form.product_ids.data or []),
    )


@bp.route("/coop/certificates", methods=["GET", "POST"])
@requires(Access.COOP_MANAGER)
def coop_index():
    """The co-op's certificates with their review status, and the upload form."""
    form = _prepare(CertificateForm())
    if form.validate_on_submit():
        try:
            services.upload_certificate(
                current_user, _data(form), request.files.get(form.file.name)
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error)
        else:
            flash(_("证书已上传，等待组织方核验"), "success")
            return redirect(url_for(".coop_index"), 303)
    return render_template(
        "certificates/coop.html",
        form=form,
        certificates=queries.coop_certificates(current_user),
        labels=CERTIFICATE_STATUS_LABELS,
    ), (400 if request.method == "POST" else 200)


@bp.route("/coop/certificates/<int:certificate_id>/edit", methods=["GET", "POST"])
@requires(Access.COOP_MANAGER)
def coop_edit(certificate_id: int):
    """Correct a pending or rejected certificate; a rejected one goes back to the queue."""
    certificate = queries.own_certificate(current_user, certificate_id)
    if request.method == "GET":
        form = CertificateForm(
            obj=certificate,
            kind=certificate.kind.value,
            product_ids=[p.id for p in certificate.products],
        )
    else:
        form = CertificateForm()
    _prepare(form)
    if form.validate_on_submit():
        try:
            services.correct_certificate(
                current_user, certificate_id, _data(form), request.files.get(form.file.name)
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error)
        else:
            flash(_("证书已修改，等待组织方核验"), "success")
            return redirect(url_for(".coop_index"), 303)
    return render_template("certificates/edit.html", form=form, certificate=certificate), (
        400 if request.method == "POST" else 200
    )


@bp.get("/certificates/<int:certificate_id>/file")
@requires(Access.COOP_MANAGER, Access.ORGANIZER)
def scan(certificate_id: int):
    """The certificate's scan, to its co-op's managers and to organizers; others get a 404."""
    certificate = queries.visible_certificate(current_user, certificate_id)
    response = send_private(certificate.file_path)
    extension = certificate.file_path.rsplit(".", 1)[-1]
    response.headers["Content-Disposition"] = (
        f"inline; filename=certificate-{certificate.id}.{extension}"
    )
    return response


# -- the organizers --------------------------------------------------------------------------------
@bp.get("/admin/certificates")
@requires(Access.ORGANIZER)
def review():
    """Pending certificates to verify (the oldest first); ?status= the decided ones."""
    status = CertificateStatus._value2member_map_.get(
        request.args.get("status") or "", CertificateStatus.PENDING
    )
    return render_template(
        "certificates/review.html",
        page=queries.review_queue(status, page_arg()),
        status=status,
        labels=CERTIFICATE_STATUS_LABELS,
        reject_form=CertificateRejectForm(),
    )


def _back() -> str:
    return url_for(".review")


@bp.post("/admin/certificates/<int:certificate_id>/verify")
@requires(Access.ORGANIZER)
def verify(certificate_id: int):
    return run_action(
        lambda: services.verify_certificate(current_user, certificate_id),
        _("证书已核验，商品页将展示认证标识"),
        _back(),
    )


@bp.post("/admin/certificates/<int:certificate_id>/reject")
@requires(Access.ORGANIZER)
def reject(certificate_id: int):
    form = CertificateRejectForm()
    run_form(
        form,
        lambda: services.reject_certificate(current_user, certificate_id, form.reason.data),
        _("已驳回，合作社会收到通知"),
    )
    return redirect(_back(), 303)
