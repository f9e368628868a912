"""预售团购: a group-buy that orders a presale's coming harvest instead of today's stock.

Its one item names an open, full-payment presale of its SKU (a deposit presale's 尾款 has no
place in a group-buy's single charge). Participants pay by card when joining, as in any card
group-buy. The rules, each at the step it belongs to:
- proposing: card payment, one item, a cap within what the presale has left, closing before the
  harvest window ends (`check_item`);
- accepting: the cap is claimed from the presale's limit, all or nothing, instead of stock
  (`claim`); what is not sold goes back at the closing or the cancel (`give_back`);
- closing reached: each charged participant becomes a paid reservation, queued at the harvest
  by the moment it was charged (`reserve_participants`);
- the harvest waits while such a group-buy still takes participants (`_still_gathering`); a
  participant the harvest could not serve is refunded in full by the presale and released here
  (`_release_unserved`); the consolidated parcel leaves only once the harvest is in
  (`ensure_harvested`).
Helpers of the group-buy services; none commits."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from market.clock import local_day
from market.errors import DomainError, NotFound
from market.extensions import db
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyItem,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.presales import seams
from market.presales import services as presales
from market.presales.models import Presale, PresaleReservation


def check_item(
    presale_id: int,
    sku_id: int,
    cap: int | None,
    *,
    items: int,
    payment_mode: PaymentMode,
    closes_at: datetime,
) -> None:
    """A first look when the coordinator proposes; the co-op's acceptance claims the cap and
    may still find the presale full by then."""
    presale = db.session.get(Presale, presale_id)
    if presale is None or presale.sku_id != sku_id:
        raise NotFound(_("找不到该预售"))
    if not presale.is_open:
        raise DomainError(_("该预售已截止预订"), field="items")
    if presale.takes_deposit:
        raise DomainError(_("定金预售不能团购，请个人或单位单独预订"), field="items")
    if payment_mode != PaymentMode.CARD:
        raise DomainError(_("预售团购须在参团时银行卡支付"), field="payment_mode")
    if items != 1:
        raise DomainError(_("预售团购只能包含这一个预售规格（采收后单独发货）"), field="items")
    if cap is None or cap > presale.available:
        raise DomainError(
            _("预售团购须填写上限，且不超过预售余量 %(n)d 件", n=presale.available),
            field="items",
        )
    if local_day(closes_at) > presale.harvest_to:
        raise DomainError(
            _(
                "团购须在预计采收期结束（%(date)s）前截止",
                date=presale.harvest_to.isoformat(),
            ),
            field="closes_at",
        )


def presale_to_order(presale_id: int | None) -> Presale:
    """The presale a coordinator's new group-buy would order: open and paid in full, else 404."""
    found = db.session.get(Presale, presale_id) if presale_id else None
    if found is None or not found.group_buyable:
        raise NotFound(_("找不到可以团购的预售"))
    return found


def fill_form(form, ordered: Presale) -> None:
    """The opening form as a presale group-buy starts: its SKU at the presale price, capped at
    what is left, paid by card, closing before the harvest window ends."""
    row = form.items[0].form
    row.sku_id.data = ordered.sku_id
    row.price.data = ordered.price_fen
    row.cap.data = ordered.available
    form.payment_mode.data = PaymentMode.CARD.value
    form.title.data = _("%(product)s 预售团购", product=ordered.sku.product.name)


def claim(item: GroupBuyItem) -> None:
    """The co-op accepts: the cap comes out of the presale's limit (`reserved_stock` then counts
    presale units held, given back like stock)."""
    presales.claim_for_group_buy(item.presale_id, item.cap)
    item.reserved_stock = item.cap


def give_back(item: GroupBuyItem, quantity: int) -> None:
    presales.give_back(item.presale_id, quantity)


def reserve_participants(group_buy: GroupBuy) -> None:
    """The closing reached its minimum: each charged participant's presale units become a
    paid reservation (their order was captured moments ago)."""
    items = {item.id: item for item in group_buy.items if item.presale_id is not None}
    if not items:
        return
    for participation in sorted(group_buy.participations, key=lambda p: p.id):  # join order
        if participation.status != ParticipationStatus.READY or participation.order is None:
            continue
        for line in participation.lines:
            item = items.get(line.item_id)
            if item is not None:
                presales.reserve_paid(
                    item.presale_id, participation.user_id, participation.order, line.quantity
                )


def ensure_harvested(group_buy: GroupBuy) -> None:
    if not any(item.presale_id for item in group_buy.items):
        return
    order_ids = [
        p.order_id
        for p in group_buy.participations
        if p.status == ParticipationStatus.READY and p.order_id is not None
    ]
    if presales.awaiting_harvest(order_ids):
        raise DomainError(_("预售尚未采收，采收后再发货"))


def _still_gathering(presale: Presale) -> str | None:
    title = db.session.scalar(
        select(GroupBuy.title)
        .join(GroupBuyItem, GroupBuyItem.group_buy_id == GroupBuy.id)
        .where(
            GroupBuyItem.presale_id == presale.id,
            GroupBuy.status.in_((GroupBuyStatus.OPEN, GroupBuyStatus.CLOSING)),
        )
        .limit(1)
    )
    if title is None:
        return None
    return _("该预售还有进行中的团购“%(title)s”，请待其截止后再公布收成", title=title)


def _release_unserved(reservation: PresaleReservation) -> None:
    """The harvest fell short of this participant (refunded in full by the presale): they are
    out of the consolidated parcel and the pickup list."""
    participation = db.session.scalar(
        select(Participation).where(
            Participation.order_id == reservation.order_id,
            Participation.status == ParticipationStatus.READY,
        )
    )
    if participation is None:
        return
    participation.move_to(ParticipationStatus.RELEASED)


def install() -> None:
    seams.blocks_harvest(_still_gathering)
    seams.on_unserved(_release_unserved)
