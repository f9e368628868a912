"""A referral link (/r/<code>) is a GET: it writes nothing itself. The visit is counted by the
Celery task market.record_referral_visit, sent once the response is built: on a worker in
production (here a real one on Redis), at once in the embedded shop (tests/campaign count the
visits that way)."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import func, select

from market.campaign.models import ReferralVisit
from market.directory.models import Unit
from market.extensions import db
from market.tasks import make_celery
from tests.test_celery import _delete_queue, celery_worker

REDIS_URL = os.environ.get("REDIS_URL", "")


def _visits(app, unit_id: int) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(ReferralVisit).where(ReferralVisit.unit_id == unit_id)
        )


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis for a real worker")
def test_the_link_writes_nothing_itself_and_a_worker_counts_the_visit(
    app, world, monkeypatch, tmp_path
):
    with app.app_context():
        code = db.session.get(Unit, world.unit).referral_code
    queue = f"market-test-{uuid.uuid4().hex}"
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    monkeypatch.setitem(app.config, "CELERY_TASK_ALWAYS_EAGER", False)
    monkeypatch.setitem(app.config, "CELERY_QUEUE", queue)
    eager = app.extensions.pop("celery", None)
    celery_app = make_celery(app)
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": app.config["SECRET_KEY"],
    }
    env.pop("MARKET_IN_PROCESS_JOBS", None)
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    log_path = tmp_path / "worker.log"
    try:
        response = app.test_client().get(f"/r/{code.lower()}")
        assert response.status_code == 302
        assert response.headers["Location"] == "/"
        assert "referral=" in response.headers["Set-Cookie"]
        # The page is answered and nothing is written: the visit waits in the queue.
        assert _visits(app, world.unit) == 0
        with celery_worker(queue, env, log_path) as worker:
            deadline = time.monotonic() + 60
            while _visits(app, world.unit) == 0:
                if worker.poll() is not None or time.monotonic() > deadline:
                    log = log_path.read_text()[-4000:]
                    pytest.fail(f"the visit was not counted; the worker's log:\n{log}")
                time.sleep(0.2)
        assert _visits(app, world.unit) == 1
        assert "market.record_referral_visit" in log_path.read_text()
    finally:
        _delete_queue(celery_app, queue)
        celery_app.close()
        app.extensions.pop("celery", None)
        if eager is not None:
            app.extensions["celery"] = eager
