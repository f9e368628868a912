"""Who may use a page: every view carries exactly one `requires(...)`.

A test walks the URL map and fails for any view without it, so "who may use this page" is never
left to a template or forgotten.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from market.accounts.models import UnitRole, User

F = TypeVar("F", bound=Callable[..., Any])


class Access(enum.StrEnum):
    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    EMPLOYEE = "employee"  # a confirmed member of a unit, whatever the role
    COORDINATOR = "coordinator"
    APPROVER = "approver"
    COOP_MANAGER = "coop_manager"
    ORGANIZER = "organizer"
    FINANCE = "finance"  # 财务 of the service centre: the only one who books money
    ADMIN = "admin"


def allows(user: User, access: Access) -> bool:
    if access is Access.PUBLIC:
        return True
    if not user.is_authenticated:
        return False
    if user.is_admin or access is Access.SIGNED_IN:
        return True
    match access:
        case Access.EMPLOYEE:
            return user.confirmed_unit_membership() is not None
        case Access.COORDINATOR:
            return user.has_unit_role(UnitRole.COORDINATOR)
        case Access.APPROVER:
            return user.has_unit_role(UnitRole.APPROVER)
        case Access.COOP_MANAGER:
            return bool(user.managed_coops())
        case Access.ORGANIZER:
            return user.is_organizer
        case Access.FINANCE:
            return user.is_finance
    return False


def requires(*accesses: Access) -> Callable[[F], F]:
    """Allow the view to anyone holding one of `accesses`; anonymous visitors go to login,
    signed-in users without the right get 403."""
    if not accesses:
        raise ValueError("say who may use the view")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if Access.PUBLIC not in accesses:
                if not current_user.is_authenticated:
                    from market.extensions import login_manager

                    return login_manager.unauthorized()
                if not any(allows(current_user, access) for access in accesses):
                    abort(403)
            return view(*args, **kwargs)

        wrapper.access = frozenset(accesses)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def can(access: Access) -> bool:
    """For templates: whether to show a link (the view still checks)."""
    return allows(current_user, access)
