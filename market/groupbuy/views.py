"""爱心团购 pages: employees see, join, change, leave and pay; the unit's coordinator proposes a
group-buy, extends it once, lowers its minimum, cancels it, marks the parcel arrived and ticks off
pickups; the co-op accepts or declines proposals, cancels, packs and ships its one consolidated
parcel; organizers see every proposed and open group-buy and may cancel one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import market.groupbuy.models  # noqa: F401  (the models are part of the app's metadata)
from market.accounts.forms import ActionForm
from market.catalog.models import Sku
from market.errors import DomainError
from market.extensions import db
from market.groupbuy import fulfilment, services
from market.groupbuy.forms import (
    ExtendForm,
    GroupBuyForm,
    MinimumForm,
    QuantitiesForm,
    ReasonForm,
    ShipForm,
    payment_mode_choices,
    quantities_form,
)
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
    Visibility,
)
from market.models import utcnow
from market.money import format_fen
from market.payments import providers
from market.payments import services as payments
from market.security.access import Access, requires
from market.web import (
    flash_form_errors,
    reraise_access_errors,
    run_action,
    run_form,
    show_error,
)

bp = Blueprint("groupbuy", __name__)


# -- what every group-buy page shows: time left and progress --------------------------------------
def time_left(closes_at: datetime, now: datetime | None = None) -> str:
    """'剩余 2 天 5 小时' (whole units, rounded down), worked out on the server: no script."""
    seconds = int((closes_at - (now or utcnow())).total_seconds())
    if seconds <= 0:
        return _("已截止")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return _("剩余 %(days)d 天 %(hours)d 小时", days=days, hours=hours)
    if hours:
        return _("剩余 %(hours)d 小时 %(minutes)d 分钟", hours=hours, minutes=minutes)
    return _("剩余 %(minutes)d 分钟", minutes=max(minutes, 1))


@dataclass(frozen=True)
class Progress:
    total: int  # joined so far; once closed, what was reached
    minimum: int
    next_tier: str | None  # "还差 3 件到下一档 ¥80.00"

    @property
    def percent(self) -> int:
        return min(100, self.total * 100 // self.minimum) if self.minimum else 100

    @property
    def to_minimum(self) -> int:
        return max(self.minimum - self.total, 0)


def _next_tier_text(group_buy: GroupBuy, total: int) -> str | None:
    thresholds = sorted(
        {
            tier.min_total_quantity
            for item in group_buy.items
            for tier in item.tiers
            if tier.min_total_quantity > total
        }
    )
    if not thresholds or group_buy.status != GroupBuyStatus.OPEN:
        return None
    threshold = thresholds[0]
    drops = [
        (item, item.price_at(threshold))
        for item in group_buy.items
        if item.price_at(threshold) < item.price_at(total)
    ]
    if len(group_buy.items) == 1:
        return _(
            "还差 %(n)d 件到下一档 %(price)s", n=threshold - total, price=format_fen(drops[0][1])
        )
    prices = "、".join(f"{item.sku.product.name} {format_fen(price)}" for item, price in drops)
    return _("还差 %(n)d 件到下一档：%(prices)s", n=threshold - total, prices=prices)


def progress(group_buy: GroupBuy) -> Progress:
    total = (
        group_buy.reached_quantity
        if group_buy.reached_quantity is not None
        else group_buy.total_quantity
    )
    return Progress(total, group_buy.min_quantity, _next_tier_text(group_buy, total))


def _unit_group_buys() -> list[GroupBuy]:
    """The home page's section: the open group-buys of the signed-in employee's unit."""
    unit = current_user.unit if current_user.is_authenticated else None
    return services.open_for_unit(unit.id) if unit is not None else []


@bp.app_context_processor
def group_buy_context() -> dict:
    # A function, not a list: only the page that shows the section pays for the query. The home
    # page (catalog, a lower layer) includes groupbuy/_home_section.html when this exists.
    return {"unit_group_buys": _unit_group_buys}


# Globals rather than context: the macros in groupbuy/_macros.html are imported without context.
bp.add_app_template_global(progress, "group_buy_progress")
bp.add_app_template_global(time_left, "group_buy_time_left")


# -- employees ------------------------------------------------------------------------------------
def _my_participations(user_id: int) -> list[Participation]:
    return list(
        db.session.scalars(
            select(Participation)
            .where(
                Participation.user_id == user_id,
                Participation.status != ParticipationStatus.LEFT,
            )
            .options(selectinload(Participation.lines))
            .order_by(Participation.id.desc())
            .limit(50)
        )
    )


def _group_buy_cards(group_buy_ids: list[int]) -> list[GroupBuy]:
    """The group-buys of these ids, in this order, loaded for their cards."""
    if not group_buy_ids:
        return []
    found = db.session.scalars(
        select(GroupBuy)
        .where(GroupBuy.id.in_(group_buy_ids))
        .options(*services.GROUP_BUY_CARD_LOADS)
    )
    by_id = {g.id: g for g in found}
    return [by_id[i] for i in group_buy_ids if i in by_id]


@bp.get("/group-buys")
@requires(Access.SIGNED_IN)
def index():
    unit = current_user.unit
    open_here = services.open_for_unit(unit.id) if unit is not None else []
    mine = {p.group_buy_id: p for p in _my_participations(current_user.id)}
    shown = {g.id for g in open_here}
    # Only the group-buys not already on the page are loaded again (with their items' cards).
    joined_elsewhere = _group_buy_cards([i for i in mine if i not in shown])
    return render_template(
        "groupbuy/index.html", open_here=open_here, joined=joined_elsewhere, mine=mine, unit=unit
    )


def _detail_page(group_buy: GroupBuy, form: QuantitiesForm | None = None, status: int = 200):
    participation = services.participation_of(group_buy.id, current_user.id)
    active = participation is not None and participation.status == ParticipationStatus.ACTIVE
    if form is None:
        current = {line.item_id: line.quantity for line in participation.lines} if active else None
        form = quantities_form(group_buy.items, current)
    needs_payment = (
        active
        and group_buy.payment_mode == PaymentMode.CARD
        and not services.is_secured(participation)
    )
    return render_template(
        "groupbuy/detail.html",
        group_buy=group_buy,
        participation=participation,
        active=active,
        needs_payment=needs_payment,
        form=form,
        action_form=ActionForm(),
        progress=progress(group_buy),
        time_left=time_left(group_buy.closes_at),
        not_started=group_buy.status == GroupBuyStatus.OPEN and utcnow() < group_buy.opens_at,
    ), status


@bp.get("/group-buys/<int:group_buy_id>")
@requires(Access.SIGNED_IN)
def detail(group_buy_id: int):
    # Someone outside a members-only group-buy's unit gets the 403 page with the reason.
    return _detail_page(services.group_buy_for(current_user, group_buy_id))


def _into_card_flow(group_buy_id: int):
    """Card group-buys: start (or resume) the card payment, then our card page, which comes back
    to the group-buy when done."""
    try:
        order = services.start_card_payment(current_user, group_buy_id)
    except DomainError as error:
        reraise_access_errors(error)
        show_error(None, error)
        return redirect(url_for(".detail", group_buy_id=group_buy_id), 303)
    back = url_for(".detail", group_buy_id=group_buy_id)
    return redirect(
        url_for("payments.method", number=order.number, provider="stripe", next=back), 303
    )


def _quantities_post(group_buy_id: int, save, done: str):
    """Join or change: the same quantities form, the same outcomes."""
    group_buy = services.group_buy_for(current_user, group_buy_id)
    form = quantities_form(group_buy.items)
    if not form.validate_on_submit():
        return _detail_page(group_buy, form, 400)
    try:
        save(current_user, group_buy.id, form.quantities())
    except DomainError as error:
        reraise_access_errors(error)
        show_error(form, error, on_form=True)
        return _detail_page(group_buy, form, 400)
    flash(done, "success")
    if group_buy.payment_mode == PaymentMode.CARD:
        # Joining a card group-buy is only secured once the card goes through: straight on.
        return _into_card_flow(group_buy.id)
    return redirect(url_for(".detail", group_buy_id=group_buy.id), 303)


@bp.post("/group-buys/<int:group_buy_id>/join")
@requires(Access.SIGNED_IN)
def join(group_buy_id: int):
    return _quantities_post(group_buy_id, services.join, _("已参团"))


@bp.post("/group-buys/<int:group_buy_id>/change")
@requires(Access.SIGNED_IN)
def change(group_buy_id: int):
    return _quantities_post(group_buy_id, services.change, _("已修改参团数量"))


@bp.post("/group-buys/<int:group_buy_id>/leave")
@requires(Access.SIGNED_IN)
def leave(group_buy_id: int):
    return run_action(
        lambda: services.leave(current_user, group_buy_id),
        _("已退出团购，已付款项将原路退回"),
        url_for(".detail", group_buy_id=group_buy_id),
    )


@bp.post("/group-buys/<int:group_buy_id>/pay")
@requires(Access.SIGNED_IN)
def pay(group_buy_id: int):
    if not ActionForm().validate_on_submit():
        return redirect(url_for(".detail", group_buy_id=group_buy_id), 303)
    return _into_card_flow(group_buy_id)


# -- the unit's coordinator -----------------------------------------------------------------------
@bp.get("/unit/group-buys")
@requires(Access.COORDINATOR)
def unit_index():
    unit = current_user.unit
    group_buys = fulfilment.unit_group_buys(unit.id) if unit is not None else []
    return render_template("groupbuy/unit_index.html", group_buys=group_buys, unit=unit)


def _sku_label(sku: Sku, paired: bool) -> str:
    product = sku.product
    label = f"{product.coop.village.name} · {product.name} {sku.spec} · {format_fen(sku.price_fen)}"
    return _("【结对村】%(label)s", label=label) if paired else label


def _local(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _group_buy_data(form: GroupBuyForm) -> services.GroupBuyData:
    items = [
        services.ItemData(
            sku_id=row.sku_id.data,
            price_fen=row.price.data,
            cap=row.cap.data,
            tiers=[
                services.TierData(tier.form.min_total_quantity.data, tier.form.price.data)
                for tier in row.tiers
                if tier.form.min_total_quantity.data is not None
            ],
        )
        for row in form.chosen_items()
    ]
    return services.GroupBuyData(
        title=form.title.data,
        description=form.description.data or "",
        opens_at=_local(form.opens_at.data) or utcnow(),
        closes_at=_local(form.closes_at.data),
        min_quantity=form.min_quantity.data,
        payment_mode=PaymentMode(form.payment_mode.data),
        visibility=Visibility(form.visibility.data),
        pickup_address=form.pickup_address.data,
        pickup_contact=form.pickup_contact.data or "",
        pickup_window=form.pickup_window.data or "",
        items=items,
    )


@bp.route("/unit/group-buys/new", methods=["GET", "POST"])
@requires(Access.COORDINATOR)
def new():
    form = GroupBuyForm()
    skus = services.candidate_skus(services.coordinated_unit(current_user))
    form.set_sku_choices([(sku.id, _sku_label(sku, paired)) for sku, paired in skus])
    # Card payments only where the shop takes cards; otherwise everyone pays at pickup.
    form.payment_mode.choices = payment_mode_choices("stripe" in providers.available())
    if request.method == "GET" and current_user.unit is not None:
        unit = current_user.unit
        form.pickup_address.data = f"{unit.name} {unit.address or ''}".strip()
    if form.validate_on_submit():
        try:
            group_buy = services.open_group_buy(current_user, _group_buy_data(form))
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
        else:
            flash(_("团购已发起，等待合作社确认团购价、上限和时间后职工才能参团"), "success")
            return redirect(url_for(".manage", group_buy_id=group_buy.id), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("groupbuy/new.html", form=form), status


def _manage_page(
    group_buy: GroupBuy,
    extend_form: ExtendForm | None = None,
    minimum_form: MinimumForm | None = None,
    status: int = 200,
    cancel_form: ReasonForm | None = None,
):
    participations = [p for p in group_buy.participations if p.status != ParticipationStatus.LEFT]
    secured = services.secured_by_participation(
        [p for p in participations if p.status == ParticipationStatus.ACTIVE]
    )
    return render_template(
        "groupbuy/manage.html",
        group_buy=group_buy,
        participations=participations,
        secured=secured,
        quantities=fulfilment.quantities_by_status(group_buy),
        extend_form=extend_form or ExtendForm(closes_at=group_buy.closes_at),
        latest_extension=services.latest_extension(group_buy)
        if group_buy.status == GroupBuyStatus.OPEN
        else None,
        minimum_form=minimum_form or MinimumForm(),
        cancel_form=cancel_form or ReasonForm(),
        progress=progress(group_buy),
        time_left=time_left(group_buy.closes_at),
    ), status


@bp.get("/unit/group-buys/<int:group_buy_id>")
@requires(Access.COORDINATOR)
def manage(group_buy_id: int):
    return _manage_page(services.own_group_buy(current_user, group_buy_id))


@bp.post("/unit/group-buys/<int:group_buy_id>/extend")
@requires(Access.COORDINATOR)
def extend(group_buy_id: int):
    form = ExtendForm()
    if form.validate_on_submit():
        try:
            services.extend(current_user, group_buy_id, _local(form.closes_at.data))
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
        else:
            flash(_("已延期"), "success")
            return redirect(url_for(".manage", group_buy_id=group_buy_id), 303)
    group_buy = services.own_group_buy(current_user, group_buy_id)
    return _manage_page(group_buy, extend_form=form, status=400)


@bp.post("/unit/group-buys/<int:group_buy_id>/minimum")
@requires(Access.COORDINATOR)
def lower_minimum(group_buy_id: int):
    form = MinimumForm()
    if form.validate_on_submit():
        try:
            services.lower_minimum(current_user, group_buy_id, form.min_quantity.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
        else:
            flash(_("已调低成团量"), "success")
            return redirect(url_for(".manage", group_buy_id=group_buy_id), 303)
    group_buy = services.own_group_buy(current_user, group_buy_id)
    return _manage_page(group_buy, minimum_form=form, status=400)


@bp.post("/unit/group-buys/<int:group_buy_id>/cancel")
@requires(Access.COORDINATOR)
def cancel(group_buy_id: int):
    form = ReasonForm()
    status = 400
    if form.validate_on_submit():
        try:
            services.cancel_group_buy(current_user, group_buy_id, form.reason.data)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(form, error, on_form=True)
            status = error.status_code  # 409: cancelled already, or closing
        else:
            flash(
                _("团购已取消：参团者卡上冻结的金额已释放、不会扣款，已付的款项全额原路退回给他们"),
                "success",
            )
            return redirect(url_for(".manage", group_buy_id=group_buy_id), 303)
    group_buy = services.own_group_buy(current_user, group_buy_id)
    if not group_buy.cancellable:  # the form is gone from the page: say why on its own
        for message in (*form.form_errors, *form.reason.errors):
            flash(message, "danger")
    return _manage_page(group_buy, cancel_form=form, status=status)


@bp.post("/unit/group-buys/<int:group_buy_id>/arrived")
@requires(Access.COORDINATOR)
def mark_arrived(group_buy_id: int):
    return run_action(
        lambda: fulfilment.mark_arrived(current_user, group_buy_id),
        _("已标记到货，已通知参团职工取货"),
        url_for(".pickup_list", group_buy_id=group_buy_id),
    )


@bp.get("/unit/group-buys/<int:group_buy_id>/pickup-list")
@requires(Access.COORDINATOR)
def pickup_list(group_buy_id: int):
    group_buy = services.own_group_buy(current_user, group_buy_id)
    return render_template(
        "groupbuy/pickup_list.html",
        group_buy=group_buy,
        participations=fulfilment.pickup_list(group_buy),
        cash_held_fen=payments.cash_held_by(current_user.id),
    )


@bp.post("/unit/group-buys/<int:group_buy_id>/pickups/<int:participation_id>")
@requires(Access.COORDINATOR)
def mark_picked_up(group_buy_id: int, participation_id: int):
    if ActionForm().validate_on_submit():
        try:
            participation = fulfilment.mark_picked_up(current_user, group_buy_id, participation_id)
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("%(name)s 已取货", name=participation.user.name), "success")
    return redirect(url_for(".pickup_list", group_buy_id=group_buy_id), 303)


# -- the co-op ------------------------------------------------------------------------------------
@bp.get("/coop/group-buys")
@requires(Access.COOP_MANAGER)
def coop_index():
    return render_template(
        "groupbuy/coop_index.html",
        lists=fulfilment.coop_group_buys(current_user),
        ship_form=ShipForm(),
    )


def _reason_action(act, done: str, back: str):
    """A small inline form with a reason (decline, cancel): its refusal or a missing reason as a
    flash message; someone else's group-buy stays a 403/404."""
    form = ReasonForm()
    run_form(form, lambda: act(form.reason.data), done)
    return redirect(back, 303)


@bp.post("/coop/group-buys/<int:group_buy_id>/accept")
@requires(Access.COOP_MANAGER)
def accept(group_buy_id: int):
    return run_action(
        lambda: services.accept_group_buy(current_user, group_buy_id),
        _("已确认团购，职工现在可以参团了"),
        url_for(".coop_index"),
    )


@bp.post("/coop/group-buys/<int:group_buy_id>/decline")
@requires(Access.COOP_MANAGER)
def decline(group_buy_id: int):
    return _reason_action(
        lambda reason: services.decline_group_buy(current_user, group_buy_id, reason),
        _("已拒绝该团购申请，联络员会收到理由"),
        url_for(".coop_index"),
    )


@bp.post("/coop/group-buys/<int:group_buy_id>/cancel")
@requires(Access.COOP_MANAGER)
def coop_cancel(group_buy_id: int):
    return _reason_action(
        lambda reason: services.cancel_group_buy(current_user, group_buy_id, reason),
        _("团购已取消：参团者卡上冻结的金额已释放、不会扣款，已付的款项全额原路退回给他们"),
        url_for(".coop_index"),
    )


# -- the organizer ----------------------------------------------------------------------------
@bp.get("/admin/group-buys")
@requires(Access.ORGANIZER)
def admin_index():
    return render_template("groupbuy/admin_index.html", group_buys=services.current_group_buys())


@bp.post("/admin/group-buys/<int:group_buy_id>/cancel")
@requires(Access.ORGANIZER)
def admin_cancel(group_buy_id: int):
    return _reason_action(
        lambda reason: services.cancel_group_buy(current_user, group_buy_id, reason),
        _("团购已取消：参团者卡上冻结的金额已释放、不会扣款，已付的款项全额原路退回给他们"),
        url_for(".admin_index"),
    )


@bp.get("/coop/group-buys/<int:group_buy_id>/packing-list")
@requires(Access.COOP_MANAGER)
def packing_list(group_buy_id: int):
    group_buy = fulfilment.coop_group_buy(
        current_user, group_buy_id, options=fulfilment.PACKING_LIST_LOADS
    )
    lines = fulfilment.consolidated_lines(group_buy)
    return render_template(
        "groupbuy/packing_list.html",
        group_buy=group_buy,
        lines=lines,
        total_fen=sum(line.amount_fen for line in lines),
        ship_form=ShipForm(),
        batch_codes=fulfilment.batch_codes_by_sku(group_buy),
    )


@bp.post("/coop/group-buys/<int:group_buy_id>/ship")
@requires(Access.COOP_MANAGER)
def ship(group_buy_id: int):
    form = ShipForm()
    if form.validate_on_submit():
        try:
            fulfilment.ship_consolidated(
                current_user, group_buy_id, form.carrier.data, form.tracking_number.data or ""
            )
        except DomainError as error:
            reraise_access_errors(error)
            show_error(None, error)
        else:
            flash(_("已发货"), "success")
            return redirect(url_for(".coop_index"), 303)
    else:
        flash_form_errors(form)
    return redirect(url_for(".packing_list", group_buy_id=group_buy_id), 303)
