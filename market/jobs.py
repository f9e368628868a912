"""Periodic work for the embedded setup (`make run`): a daemon thread that runs each registered
job every interval inside an app context. Production runs the same functions from Celery beat
and workers instead (market/tasks.py; or cron with `flask --app market orders expire`), so this
thread stays off unless MARKET_IN_PROCESS_JOBS=1."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

Job = tuple[str, Callable[[], object]]


def _expire_unpaid() -> object:
    from market.payments.background import expire_unpaid_orders
    from market.presales.services import release_lapsed_reservations

    closed = expire_unpaid_orders()
    release_lapsed_reservations()  # a presale's units held by the orders just closed
    return closed


def _close_due_group_buys() -> object:
    from market.groupbuy.closing import close_due_group_buys

    return close_due_group_buys()


def _expire_exports() -> object:
    from market.exports.services import expire_exports

    return expire_exports()


JOBS: list[Job] = [
    ("expire unpaid orders", _expire_unpaid),
    ("close due group-buys", _close_due_group_buys),
    ("expire export jobs", _expire_exports),
]


def run_once(app: Flask) -> None:
    for name, job in JOBS:
        with app.app_context():
            try:
                result = job()
            except Exception:  # one failing job must not stop the others or the thread
                log.exception("background job %s failed", name)
                from market.extensions import db

                db.session.rollback()
            else:
                if result:
                    log.info("background job %s: %s", name, result)


def start(app: Flask, interval_seconds: float = 30.0) -> threading.Thread:
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_seconds):
            run_once(app)

    thread = threading.Thread(target=loop, name="market-jobs", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
