"""Fixtures the security tests share with other suites."""

from tests.notifications.test_notifications import mailbox  # noqa: F401  (a real SMTP server)
