"""Domain errors carry a message a user can read; views turn them into a flash or a 4xx body."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the shop was not met. `str(error)` is shown to the user as it is."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return str(self.message)


class NotFound(DomainError):
    status_code = 404


class NotAllowed(DomainError):
    status_code = 403


class InvalidTransition(DomainError):
    status_code = 409


class Conflict(DomainError):
    status_code = 409


class RowErrors(DomainError):
    """Several numbered problems at once, e.g. the bad lines of an imported roster."""

    def __init__(self, message: str, errors: list[tuple[int, str]]):
        super().__init__(message)
        self.errors = errors
