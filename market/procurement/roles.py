"""Who acts for a unit in procurement: a confirmed member of it in one of the roles asked for
(its coordinator drafts purchases and custom requests; its approver decides on purchases)."""

from __future__ import annotations

from flask_babel import gettext as _

from market.accounts.models import UnitMembership, UnitRole, User
from market.errors import NotAllowed


def unit_membership(user: User, *roles: UnitRole) -> UnitMembership:
    membership = user.confirmed_unit_membership()
    if membership is None or membership.role not in roles:
        raise NotAllowed(_("只有本单位的联络员或审批人可以操作"))
    return membership
