"""The quantities a group-buy holds: what participants join is counted against each item's cap
(one conditional UPDATE each, never past it), and what the co-op reserved at acceptance and did
not sell goes back to its SKUs. Flushing helpers of joining, cancelling and closing; none
commits."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import or_, update

from market.catalog.models import Sku
from market.errors import DomainError
from market.extensions import db
from market.groupbuy import presale
from market.groupbuy.models import GroupBuy, GroupBuyItem, Participation


def hold_quantities(group_buy: GroupBuy, quantities: dict[int, int]) -> None:
    """Count the quantities in, never past an item's cap (one conditional UPDATE each)."""
    items = {item.id: item for item in group_buy.items}
    for item_id, quantity in quantities.items():
        item = items[item_id]
        held = db.session.execute(
            update(GroupBuyItem)
            .where(
                GroupBuyItem.id == item_id,
                or_(
                    GroupBuyItem.cap.is_(None),
                    GroupBuyItem.joined_quantity + quantity <= GroupBuyItem.cap,
                ),
            )
            .values(joined_quantity=GroupBuyItem.joined_quantity + quantity)
            .execution_options(synchronize_session=False)
        )
        if held.rowcount != 1:
            db.session.refresh(item)
            left = (item.cap or 0) - item.joined_quantity
            raise DomainError(
                _(
                    "超出团购上限：%(name)s 还剩 %(left)d 件",
                    name=item.sku.product.name,
                    left=max(left, 0),
                ),
                field="quantity",
            )


def let_go_quantities(participation: Participation) -> None:
    for line in participation.lines:
        db.session.execute(
            update(GroupBuyItem)
            .where(GroupBuyItem.id == line.item_id)
            .values(joined_quantity=GroupBuyItem.joined_quantity - line.quantity)
            .execution_options(synchronize_session=False)
        )


def give_back_reserved_stock(group_buy: GroupBuy, sold: dict[int, int]) -> None:
    """What a group-buy reserved and did not sell goes back to the SKUs: a capped item keeps
    `sold[item.id]` for the consolidated parcel, everything else returns (one UPDATE per item,
    adding to the stock, never read-then-write). Shared by cancelling (nothing sold) and the
    closer's last step. Flushes nothing itself; the caller commits."""
    for item in group_buy.items:
        keep = sold.get(item.id, 0) if item.cap is not None else 0
        give_back = item.reserved_stock - keep
        if give_back > 0 and item.presale_id is not None:
            presale.give_back(item, give_back)  # presale units, not stock
            item.reserved_stock = keep
        elif give_back > 0:
            db.session.execute(
                update(Sku)
                .where(Sku.id == item.sku_id)
                .values(stock=Sku.stock + give_back)
                .execution_options(synchronize_session=False)
            )
            item.reserved_stock = keep
