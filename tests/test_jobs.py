"""The embedded setup's background jobs do the same work as the cron commands."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from market import jobs
from market.extensions import db
from market.models import utcnow
from market.orders.models import Order, OrderStatus
from tests.orders.conftest import buy, sku_of, stock_of


def test_a_round_of_jobs_expires_overdue_orders(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    number = buy(client_as("buyer"), honey, 4)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        order.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    jobs.run_once(app)
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order.status == OrderStatus.EXPIRED
    assert stock_of(app, honey) == 50


def test_a_failing_job_does_not_stop_the_others(app, monkeypatch, caplog):
    ran = []

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(jobs, "JOBS", [("broken", broken), ("fine", lambda: ran.append(1))])
    jobs.run_once(app)
    assert ran == [1]
    assert "background job broken failed" in caplog.text
