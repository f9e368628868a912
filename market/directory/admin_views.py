"""The organizer's directory pages: towns, villages, co-ops, units, pairings and roster import."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from market.clock import today
from market.directory import services
from market.directory.forms import (
    CoopForm,
    PairingForm,
    RosterForm,
    TownForm,
    UnitForm,
    VillageForm,
)
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.errors import RowErrors
from market.extensions import db
from market.security.access import Access, requires
from market.security.inputs import read_import
from market.web import edit_form_page, flash_form_errors

bp = Blueprint("directory_admin", __name__, url_prefix="/admin")


def _town_choices():
    return [(t.id, t.name) for t in db.session.scalars(select(Town).order_by(Town.name))]


def _village_choices():
    rows = db.session.scalars(
        select(Village)
        .join(Village.town)
        .options(joinedload(Village.town))
        .order_by(Town.name, Village.name)
    )
    return [(v.id, v.full_name) for v in rows]


def _unit_choices():
    return [(u.id, u.name) for u in db.session.scalars(select(Unit).order_by(Unit.name))]


@bp.get("/directory")
@requires(Access.ORGANIZER)
def overview():
    day = today()
    counts = {
        "towns": db.session.scalar(select(func.count(Town.id))),
        "villages": db.session.scalar(select(func.count(Village.id))),
        "coops": db.session.scalar(select(func.count(Coop.id))),
        "units": db.session.scalar(select(func.count(Unit.id))),
        "pairings": db.session.scalar(
            select(func.count(Pairing.id)).where(
                Pairing.since <= day, or_(Pairing.until.is_(None), Pairing.until >= day)
            )
        ),
    }
    return render_template("admin/directory.html", counts=counts)


# -- towns -------------------------------------------------------------------------------------
@bp.get("/towns")
@requires(Access.ORGANIZER)
def towns():
    rows = db.session.execute(
        select(Town, func.count(Village.id))
        .outerjoin(Village)
        .group_by(Town.id)
        .order_by(Town.name)
    ).all()
    return render_template("admin/towns.html", rows=rows)


@bp.route("/towns/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_town():
    form = TownForm()
    return edit_form_page(
        form,
        _l("新增镇（街道）"),
        lambda: services.save_town(form.name.data),
        ".towns",
    )


@bp.route("/towns/<int:town_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_town(town_id: int):
    town = db.get_or_404(Town, town_id)
    form = TownForm(obj=town)
    return edit_form_page(
        form,
        _l("编辑镇（街道）"),
        lambda: services.save_town(form.name.data, town),
        ".towns",
    )


# -- villages ----------------------------------------------------------------------------------
@bp.get("/villages")
@requires(Access.ORGANIZER)
def villages():
    rows = db.session.scalars(
        select(Village)
        .join(Village.town)
        # The page names each village's current units: load them all in one go.
        .options(
            joinedload(Village.town),
            selectinload(Village.pairings).joinedload(Pairing.unit),
        )
        .order_by(Town.name, Village.name)
    ).all()
    return render_template("admin/villages.html", villages=rows, today=today())


def _village_form(village: Village | None = None) -> VillageForm:
    form = VillageForm(obj=village)
    form.town_id.choices = _town_choices()
    return form


def _save_village(form: VillageForm, village: Village | None = None) -> Village:
    return services.save_village(
        town_id=form.town_id.data,
        name=form.name.data,
        is_typical=form.is_typical.data,
        story=form.story.data or "",
        photo=request.files.get(form.photo.name),
        village=village,
    )


@bp.route("/villages/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_village():
    form = _village_form()
    return edit_form_page(
        form,
        _l("新增村"),
        lambda: _save_village(form),
        ".villages",
        multipart=True,
    )


@bp.route("/villages/<int:village_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_village(village_id: int):
    village = db.get_or_404(Village, village_id)
    form = _village_form(village)
    return edit_form_page(
        form,
        _l("编辑村"),
        lambda: _save_village(form, village),
        ".villages",
        multipart=True,
        photo=village.photo_thumb_path,
    )


# -- co-ops ------------------------------------------------------------------------------------
@bp.get("/coops")
@requires(Access.ORGANIZER)
def coops():
    rows = db.session.scalars(
        select(Coop)
        .join(Coop.village)
        .options(joinedload(Coop.village).joinedload(Village.town))
        .order_by(Village.name, Coop.name)
    ).all()
    return render_template("admin/coops.html", coops=rows)


def _coop_form(coop: Coop | None = None) -> CoopForm:
    form = CoopForm(obj=coop)
    form.village_id.choices = _village_choices()
    return form


def _save_coop(form: CoopForm, coop: Coop | None = None) -> Coop:
    return services.save_coop(
        village_id=form.village_id.data,
        name=form.name.data,
        intro=form.intro.data or "",
        contact_phone=form.contact_phone.data or "",
        settlement_account=form.settlement_account.data or "",
        approved=form.approved.data,
        coop=coop,
    )


@bp.route("/coops/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_coop():
    form = _coop_form()
    return edit_form_page(form, _l("新增合作社"), lambda: _save_coop(form), ".coops")


@bp.route("/coops/<int:coop_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_coop(coop_id: int):
    coop = db.get_or_404(Coop, coop_id)
    form = _coop_form(coop)
    return edit_form_page(form, _l("编辑合作社"), lambda: _save_coop(form, coop), ".coops")


# -- units -------------------------------------------------------------------------------------
@bp.get("/units")
@requires(Access.ORGANIZER)
def units():
    rows = db.session.scalars(select(Unit).order_by(Unit.name)).all()
    return render_template("admin/units.html", units=rows)


def _save_unit(form: UnitForm, unit: Unit | None = None) -> Unit:
    return services.save_unit(
        name=form.name.data,
        address=form.address.data or "",
        contact_phone=form.contact_phone.data or "",
        unit=unit,
    )


@bp.route("/units/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_unit():
    form = UnitForm()
    return edit_form_page(form, _l("新增单位"), lambda: _save_unit(form), ".units")


@bp.route("/units/<int:unit_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_unit(unit_id: int):
    unit = db.get_or_404(Unit, unit_id)
    form = UnitForm(obj=unit)
    return edit_form_page(form, _l("编辑单位"), lambda: _save_unit(form, unit), ".units")


# -- pairings ----------------------------------------------------------------------------------
@bp.get("/pairings")
@requires(Access.ORGANIZER)
def pairings():
    rows = db.session.scalars(
        select(Pairing)
        .options(joinedload(Pairing.unit), joinedload(Pairing.village).joinedload(Village.town))
        .order_by(Pairing.since.desc(), Pairing.id)
    ).all()
    return render_template(
        "admin/pairings.html", pairings=rows, today=today(), roster_form=RosterForm()
    )


def _pairing_form(pairing: Pairing | None = None) -> PairingForm:
    form = PairingForm(obj=pairing)
    form.unit_id.choices = _unit_choices()
    form.village_id.choices = _village_choices()
    return form


def _save_pairing(form: PairingForm, pairing: Pairing | None = None) -> Pairing:
    return services.save_pairing(
        unit_id=form.unit_id.data,
        village_id=form.village_id.data,
        since=form.since.data,
        until=form.until.data,
        note=form.note.data or "",
        pairing=pairing,
        actor=current_user,
    )


@bp.route("/pairings/new", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def new_pairing():
    form = _pairing_form()
    return edit_form_page(form, _l("新增结对"), lambda: _save_pairing(form), ".pairings")


@bp.route("/pairings/<int:pairing_id>/edit", methods=["GET", "POST"])
@requires(Access.ORGANIZER)
def edit_pairing(pairing_id: int):
    pairing = db.get_or_404(Pairing, pairing_id)
    form = _pairing_form(pairing)
    return edit_form_page(form, _l("编辑结对"), lambda: _save_pairing(form, pairing), ".pairings")


@bp.post("/pairings/import")
@requires(Access.ORGANIZER)
def import_pairings():
    form = RosterForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for(".pairings"))
    try:
        result = services.import_roster(read_import(form.roster.data), actor=current_user)
    except RowErrors as error:
        return render_template("admin/roster_errors.html", error=error), 400
    flash(
        _(
            "导入完成：新增结对 %(created)d 条，更新 %(updated)d 条，未变 %(same)d 条；"
            "新增单位 %(units)d 个，新增村 %(villages)d 个",
            created=result.pairings_created,
            updated=result.pairings_updated,
            same=result.pairings_unchanged,
            units=len(result.units_created),
            villages=len(result.villages_created),
        ),
        "success",
    )
    return redirect(url_for(".pairings"))
