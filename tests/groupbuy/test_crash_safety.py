"""Fault injection: a group-buy's closer is killed with SIGKILL at a random participant while it
captures (the CLI `groupbuy close-due`, then a Celery worker), and is rerun at once. Every
participant must end up charged exactly the tier price × quantity, once: localstripe's captured
− refunded == the shop's payment == the attribution ledger, per participant; and the money
reconciliation finds no difference. The same for a pay-at-pickup group-buy (no provider calls:
every order repriced once).

PostgreSQL only: the closer runs in other processes on the same database."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from market import ROOT
from market.campaign.models import AttributionEntry
from market.campaign.reconciliation import money_reconcile
from market.extensions import db
from market.groupbuy.models import GroupBuy, GroupBuyStatus, Participation, ParticipationStatus
from market.groupbuy.proposals import ItemData, TierData
from market.models import utcnow
from market.payments.models import Payment
from market.tasks import CLOSE_DUE_GROUP_BUYS, make_celery
from tests.groupbuy.conftest import Kit
from tests.payments.conftest import GOOD_CARD

pytestmark = pytest.mark.postgres_only

PARTICIPANTS = 50
PICKUP_PARTICIPANTS = 200
# ¥80 each; from 20 in all ¥75; from 40 ¥70. Fifty reach ¥70.
PRICE, TIERS, TIER_PRICE = 8000, [TierData(20, 7500), TierData(40, 7000)], 7000
KILL_WAIT_SECONDS = 60
RERUN_SECONDS = 120
REDIS_URL = os.environ.get("REDIS_URL", "")


def _env(app) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "UPLOAD_DIR": app.config["UPLOAD_DIR"],
    }
    for key in ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET"):
        if app.config.get(key):
            env[key] = app.config[key]
        else:
            env.pop(key, None)
    env.pop("MARKET_IN_PROCESS_JOBS", None)
    return env


def _flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "market", *args]


def _open_due_group_buy(kit: Kit, *, card_token=None, count: int = PARTICIPANTS) -> int:
    """A group-buy with `count` members of one each (authorised by card when a card_token
    maker is given, else to pay at pickup), whose deadline has just passed."""
    from market.groupbuy.models import PaymentMode

    sku = kit.new_sku(price_fen=9900)
    group_buy_id = kit.open(
        min_quantity=10,
        payment_mode=PaymentMode.CARD if card_token else PaymentMode.PICKUP,
        items=[ItemData(sku, PRICE, None, TIERS)],
    )
    for user_id in kit.members(count):
        kit.join(user_id, group_buy_id, 1)
        if card_token:
            kit.pay_by_card(user_id, group_buy_id, card_token(GOOD_CARD))
    with kit.ctx():
        db.session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_buy_id)
            .values(closes_at=utcnow() - timedelta(seconds=5))
        )
        db.session.commit()
    return group_buy_id


def _ready(kit: Kit, group_buy_id: int) -> int:
    with kit.ctx():
        return db.session.scalar(
            select(func.count())
            .select_from(Participation)
            .where(
                Participation.group_buy_id == group_buy_id,
                Participation.status == ParticipationStatus.READY,
            )
        )


def _kill_when(kit: Kit, group_buy_id: int, process: subprocess.Popen, at: int) -> int:
    # (`at` is drawn at random per run; the assertion messages say which one was used.)
    """SIGKILL `process` once `at` participants are settled; returns how many were then."""
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the closer ended by itself (exit {process.returncode}) before the kill")
        settled = _ready(kit, group_buy_id)
        if settled >= at:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)  # reaped: its pid no longer exists
            return settled
        time.sleep(0.01)
    process.kill()
    process.wait()
    pytest.fail(f"fewer than {at} participants were settled in {KILL_WAIT_SECONDS} s")


def _rerun(kit: Kit) -> str:
    done = subprocess.run(
        _flask("groupbuy", "close-due"),
        cwd=ROOT,
        env=_env(kit.app),
        capture_output=True,
        text=True,
        timeout=RERUN_SECONDS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _provider_net(stripe_client, intent_id: str) -> int:
    """What localstripe kept of the intent: captured less refunded."""
    intent = stripe_client.v1.payment_intents.retrieve(intent_id).to_dict()
    charge = intent.get("latest_charge") or {}
    if not charge or not charge.get("captured"):
        return 0
    return charge["amount"] - (charge.get("amount_refunded") or 0)


def _assert_each_paid_once(
    kit: Kit, group_buy_id: int, stripe_client=None, count: int = PARTICIPANTS
) -> None:
    with kit.ctx():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert group_buy.status == GroupBuyStatus.SUCCEEDED
        participations = list(
            db.session.scalars(
                select(Participation).where(Participation.group_buy_id == group_buy_id)
            )
        )
        assert len(participations) == count
        for participation in participations:
            assert participation.status == ParticipationStatus.READY, participation.id
            order = participation.order
            assert order.total_fen == TIER_PRICE, order.number
            shop = sum(
                p.received_fen - p.refunded_fen
                for p in db.session.scalars(select(Payment).where(Payment.order_id == order.id))
            )
            ledger = db.session.scalar(
                select(func.coalesce(func.sum(AttributionEntry.amount_fen), 0)).where(
                    AttributionEntry.order_id == order.id
                )
            )
            if stripe_client is None:  # pay at pickup: nothing is taken before the pickup
                assert (shop, ledger) == (0, 0), order.number
                continue
            payment = db.session.scalar(
                select(Payment).where(Payment.order_id == order.id, Payment.provider == "stripe")
            )
            assert payment.held_by == ""
            provider = _provider_net(stripe_client, payment.provider_ref)
            assert provider == shop == ledger == TIER_PRICE, (order.number, provider, shop, ledger)
        result = money_reconcile()
        assert result.differences == []


def test_a_card_closer_killed_mid_capture_is_resumed_at_once_and_charges_everyone_once(
    kit: Kit, stripe_app, stripe_client, card_token
):
    group_buy_id = _open_due_group_buy(kit, card_token=card_token)
    at = random.Random(f"cli-{uuid.uuid4()}").randint(1, PARTICIPANTS - 2)
    closer = subprocess.Popen(
        _flask("groupbuy", "close-due"),
        cwd=ROOT,
        env=_env(kit.app),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    settled = _kill_when(kit, group_buy_id, closer, at)
    assert settled < PARTICIPANTS, "killed too late to test anything"
    with kit.ctx():
        assert db.session.get(GroupBuy, group_buy_id).status == GroupBuyStatus.CLOSING
    output = _rerun(kit)  # at once: the killed closer's lease is not waited out
    assert f"resumed group-buy {group_buy_id}" in output and "is gone" in output, output
    assert "closed 1 group-buys" in output
    _assert_each_paid_once(kit, group_buy_id, stripe_client)


@pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis for a real worker")
def test_a_celery_worker_killed_mid_capture_is_resumed_at_once(
    kit: Kit, stripe_app, stripe_client, card_token, monkeypatch, tmp_path
):
    group_buy_id = _open_due_group_buy(kit, card_token=card_token)
    at = random.Random(f"celery-{uuid.uuid4()}").randint(1, PARTICIPANTS - 2)
    monkeypatch.setitem(kit.app.config, "REDIS_URL", REDIS_URL)
    monkeypatch.setitem(kit.app.config, "CELERY_TASK_ALWAYS_EAGER", False)
    celery_app = make_celery(kit.app)
    queue = f"market-crash-{uuid.uuid4().hex}"
    env = {**_env(kit.app), "REDIS_URL": REDIS_URL}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "market.tasks",
        "worker",
        "--pool=solo",  # the task runs in the worker process: the kill hits the closer itself
        "--concurrency=1",
        "--without-mingle",
        "--without-gossip",
        "--hostname",
        f"{queue}@%h",
        "-Q",
        queue,
    ]
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            result = celery_app.tasks[CLOSE_DUE_GROUP_BUYS].apply_async(queue=queue)
            settled = _kill_when(kit, group_buy_id, worker, at)
            result.forget()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            celery_app.close()
    assert settled < PARTICIPANTS, "killed too late to test anything"
    output = _rerun(kit)
    assert f"resumed group-buy {group_buy_id}" in output, output + log_path.read_text()[-2000:]
    _assert_each_paid_once(kit, group_buy_id, stripe_client)


def test_a_pay_at_pickup_closer_killed_midway_reprices_each_order_once(kit: Kit):
    # No provider calls make each participant quick to settle: more of them, for a window.
    group_buy_id = _open_due_group_buy(kit, count=PICKUP_PARTICIPANTS)
    at = random.Random(f"pickup-{uuid.uuid4()}").randint(1, PICKUP_PARTICIPANTS - 20)
    closer = subprocess.Popen(
        _flask("groupbuy", "close-due"),
        cwd=ROOT,
        env=_env(kit.app),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _kill_when(kit, group_buy_id, closer, at)
    output = _rerun(kit)
    assert "closed 1 group-buys" in output, output
    _assert_each_paid_once(kit, group_buy_id, count=PICKUP_PARTICIPANTS)
