"""Celery: the deadlines of production (group-buys closing, unpaid orders expiring) and the daily
reconciliation against Stripe run on workers, sent by beat. Redis (REDIS_URL) is broker and
result backend. Without REDIS_URL (the embedded default) tasks run eagerly in the calling
process, and `make run` runs the same deadline functions from its in-process thread instead
(market/jobs.py).

    celery -A market.tasks worker --loglevel=INFO
    celery -A market.tasks beat --loglevel=INFO      # exactly one beat per deployment

`celery -A market.tasks` looks up the attribute `app` (then `celery`) of this module. Both are
built on first access by the module's `__getattr__`, from `create_app()` and the environment
(DATABASE_URL, REDIS_URL, SECRET_KEY ...), so a web process that imports this module for
`make_celery` or the task functions does not build a second Flask app.

The tasks keep no state and the services lock the rows they change, so a task that runs twice at
once, or again after a worker was lost, changes nothing the second time.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task
from celery.schedules import crontab
from flask import Flask

log = logging.getLogger(__name__)

CLOSE_DUE_GROUP_BUYS = "market.close_due_group_buys"
EXPIRE_UNPAID_ORDERS = "market.expire_unpaid_orders"
RECONCILE_AGAINST_PROVIDER = "market.reconcile_against_provider"
SEND_MAIL = "market.send_mail"
MAIL_RETRIES = 5
PURGE_SESSIONS = "market.purge_sessions"
RUN_EXPORT = "market.run_export"
EXPIRE_EXPORTS = "market.expire_exports"
RECORD_REFERRAL_VISIT = "market.record_referral_visit"

# Group-buys close "within a minute" of their deadline, so beat sends the close every 30 s. A
# message that waits longer than its interval (no worker up) is dropped rather than piled up:
# the next one does the same work.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "close-due-group-buys": {
        "task": CLOSE_DUE_GROUP_BUYS,
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    "expire-unpaid-orders": {
        "task": EXPIRE_UNPAID_ORDERS,
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Sessions ended or idle for over 35 days are of no further use (daily, 04:00 Beijing).
    "purge-sessions": {
        "task": PURGE_SESSIONS,
        "schedule": crontab(hour=20, minute=0),
        "options": {"expires": 6 * 3600},
    },
    # Export jobs whose worker was lost are marked failed (retryable); old files are removed.
    "expire-exports": {
        "task": EXPIRE_EXPORTS,
        "schedule": 300.0,
        "options": {"expires": 300},
    },
    # Daily at 03:30 Beijing time (19:30 UTC), when few buyers are paying.
    "reconcile-against-provider": {
        "task": RECONCILE_AGAINST_PROVIDER,
        "schedule": crontab(hour=19, minute=30),
        "options": {"expires": 6 * 3600},
    },
}


class FlaskTask(Task):
    """Runs the task inside an app context of the Flask app its Celery app was made for, so the
    services get `db.session` (removed again when the context ends) and the configuration."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.flask_app.app_context():  # type: ignore[attr-defined]
            return super().__call__(*args, **kwargs)


def close_due_group_buys() -> int:
    """Close every open group-buy whose closing time has passed (market.groupbuy.closing)."""
    from market.groupbuy.closing import close_due_group_buys as close_due

    return close_due()


def expire_unpaid_orders() -> int:
    """Close unpaid orders past their deadline and give their stock back (and a presale's
    units its unpaid reservations held)."""
    from market.payments.background import expire_unpaid_orders as expire_unpaid
    from market.presales.services import release_lapsed_reservations

    closed = expire_unpaid()
    release_lapsed_reservations()
    return closed


def reconcile_against_provider() -> dict[str, int] | None:
    """Compare every card payment with Stripe and record refunds made in its dashboard
    (market.payments.reconciliation); the organizer's reconciliation page shows the result.
    Nothing to do (None) where card payments are not configured."""
    from flask import current_app

    from market.payments.reconciliation import reconcile_against_provider as reconcile

    if not current_app.config.get("STRIPE_SECRET_KEY"):
        log.info("no STRIPE_SECRET_KEY: no card payments to reconcile")
        return None
    result = reconcile()
    if result.unexplained:
        log.warning(
            "reconciliation against Stripe: %d unexplained differences", len(result.unexplained)
        )
    return {
        "checked": result.checked,
        "differences": len(result.differences),
        "unexplained": len(result.unexplained),
        "refunds_recorded": result.refunds_recorded,
    }


def purge_sessions() -> int:
    """Drop the records of sessions long ended or idle (market.accounts.sessions.purge)."""
    from market.accounts.sessions import purge

    return purge()


def send_mail(letters: list[dict]) -> int:
    """E-mails queued after a commit (market.notifications.services.deliver)."""
    from market.notifications.services import send_queued

    return send_queued(letters)


def run_export(job_id: int) -> str:
    """Write an export job's file (market.exports.services.run_export)."""
    from market.exports.services import run_export as run

    return run(job_id)


def expire_exports() -> int:
    """Fail export jobs whose worker was lost; remove old export files."""
    from market.exports.services import expire_exports as expire

    return expire()


def record_referral_visit(unit_id: int, at: str) -> None:
    """Count a visit through a unit's referral link, sent after the link's response
    (market.campaign.views): the GET itself writes nothing."""
    from datetime import datetime

    from market.campaign.services import record_referral_visit as record

    record(unit_id, datetime.fromisoformat(at))


def celery_for(app: Flask) -> Celery:
    """The Celery app of this Flask app, made on first use."""
    return app.extensions.get("celery") or make_celery(app)


def make_celery(app: Flask) -> Celery:
    """A Celery app for this Flask app: broker and results on REDIS_URL, or eager without it."""
    redis_url = app.config.get("REDIS_URL") or ""
    celery_app = Celery(app.import_name, task_cls=FlaskTask)
    celery_app.flask_app = app  # type: ignore[attr-defined]
    celery_app.conf.update(
        broker_url=redis_url or "memory://",
        # Eager calls hand their result back directly; there is no backend to store it in.
        result_backend=redis_url or None,
        result_expires=3600,
        task_always_eager=bool(app.config.get("CELERY_TASK_ALWAYS_EAGER", not redis_url)),
        task_eager_propagates=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        beat_schedule=BEAT_SCHEDULE,
        # One queue per deployment (or per test run sharing a Redis): CELERY_QUEUE.
        task_default_queue=app.config.get("CELERY_QUEUE") or "celery",
    )
    celery_app.task(name=CLOSE_DUE_GROUP_BUYS)(close_due_group_buys)
    celery_app.task(name=EXPIRE_UNPAID_ORDERS)(expire_unpaid_orders)
    celery_app.task(name=RECONCILE_AGAINST_PROVIDER)(reconcile_against_provider)
    # smtplib's errors are OSErrors: an unreachable server or a refused login is tried again,
    # after 1, 2, 4, 8, 16 s (jittered; each wait at most 10 min), then given up and logged.
    celery_app.task(
        name=SEND_MAIL,
        autoretry_for=(OSError,),
        retry_backoff=True,
        retry_backoff_max=600,
        retry_jitter=True,
        max_retries=MAIL_RETRIES,
    )(send_mail)
    celery_app.task(name=PURGE_SESSIONS)(purge_sessions)
    # No automatic retry: a failed export says so on its page and its owner retries it.
    celery_app.task(name=RUN_EXPORT)(run_export)
    celery_app.task(name=EXPIRE_EXPORTS)(expire_exports)
    celery_app.task(name=RECORD_REFERRAL_VISIT)(record_referral_visit)
    app.extensions["celery"] = celery_app
    return celery_app


_worker_app: Celery | None = None
_worker_app_lock = threading.Lock()


def _celery_from_environment() -> Celery:
    global _worker_app
    with _worker_app_lock:
        if _worker_app is None:
            from market import create_app

            _worker_app = make_celery(create_app())
        return _worker_app


def __getattr__(name: str) -> Any:
    # `celery -A market.tasks ...` asks for `app`, then `celery`: build it on that first access.
    if name in ("app", "celery"):
        return _celery_from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
