"""Who may use a page: every view carries exactly one `requires(...)`.

A test walks the URL map and fails for any view without it, so "who may use this page" is never
left to a template or forgotten.

This sits below every domain, so that each one's pages (the directory's as much as the
campaign's) can say who may use them without importing the domain of people: what an access means
for a person is answered by the signed-in user itself (`User.may`, market.accounts.models).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps
from typing import Any, Protocol, TypeVar

from flask import abort
from flask_login import current_user

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


class Person(Protocol):
    """A signed-in user (market.accounts.models.User) or Flask-Login's anonymous one."""

    @property
    def is_authenticated(self) -> bool: ...

    def may(self, access: Access) -> bool: ...


def allows(user: Person, access: Access) -> bool:
    if access is Access.PUBLIC:
        return True
    if not user.is_authenticated:
        return False
    return user.may(access)


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
