"""Where the orders' pages point to procurement (registered in market.orders.elsewhere, below):
a coordinator's or approver's own orders page to the unit's purchases and custom requests, and a
co-op's parcel of a unit's order to its delivery note."""

from __future__ import annotations

from flask import url_for
from flask_babel import gettext as _

from market.accounts.models import UnitRole, User
from market.orders import elsewhere
from market.orders.models import OrderMode, Shipment


def unit_orders(user: User) -> list[elsewhere.Link]:
    """What a unit buys is not on its coordinator's own orders page: where it is."""
    links = []
    if user.has_unit_role(UnitRole.COORDINATOR, UnitRole.APPROVER):
        links.append((_("单位采购"), url_for("procurement.purchases")))
    if user.has_unit_role(UnitRole.COORDINATOR):
        links.append((_("产品定制"), url_for("procurement.custom_requests")))
    return links


def delivery_note(shipment: Shipment) -> list[elsewhere.Link]:
    """A parcel of a unit purchase or custom order goes with a delivery note (送货单)."""
    if shipment.order.mode not in (OrderMode.UNIT_PURCHASE, OrderMode.CUSTOM):
        return []
    number = shipment.order.number
    url = url_for("procurement.coop_document", number=number, kind="delivery-note")
    return [(_("送货单"), url)]


elsewhere.register(elsewhere.OWN_ORDERS, unit_orders)
elsewhere.register(elsewhere.SHIPMENT, delivery_note)
