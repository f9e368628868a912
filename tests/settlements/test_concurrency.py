"""Finance at the same moment, twice: two finance users paying one statement make one payout and
the other is told it is paid (no 500, no IntegrityError escaping); five identical retries make
one; `settlements issue` run by two processes at once (cron on two machines) issues each
statement once. PostgreSQL only: these are row locks and a unique constraint under real
concurrency, which SQLite, one writer at a time, cannot show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from market.accounts.models import CoopMembership, CoopRole, User
from market.catalog.models import Category
from market.directory.models import Coop, Village
from market.errors import Conflict
from market.extensions import db
from market.settlements import services as settlements
from market.settlements.models import Payout, SettlementEntry, Statement
from tests import factories
from tests.concurrency import all_at_once
from tests.settlements.conftest import today

JOIN_TIMEOUT = 120  # seconds: a hung thread or process fails the test instead of the run
ROOT = Path(__file__).resolve().parents[2]


# Concurrency is tested where writers really run at once (tests/conftest.py: postgres_only).
pytestmark = pytest.mark.postgres_only


def confirmed_statement(shop, world) -> int:
    number = shop.retail({world.honey_product: 3})
    shop.pay_transfer(number)
    for shipment_id in shop.shipments(number):
        shop.ship(shipment_id)
        shop.receive(shipment_id)
    [statement_id] = shop.issue()
    shop.confirm(statement_id)
    return statement_id


def finance_users(app, count: int) -> list[int]:
    with app.app_context():
        users = [
            factories.make_user(f"财务{n}", f"finance{n}@example.com", is_finance=True)
            for n in range(count)
        ]
        db.session.commit()
        return [user.id for user in users]


def pay(user_id: int, statement_id: int, reference: str):
    def call():
        user = db.session.get(User, user_id)
        return settlements.record_payout(user, statement_id, reference, today()).id

    return call


def payouts(app) -> list[tuple[int, int, str]]:
    with app.app_context():
        return [
            (p.statement_id, p.amount_fen, p.reference)
            for p in db.session.scalars(select(Payout).order_by(Payout.id))
        ]


def test_two_finance_users_paying_one_statement_make_one_payout(app, shop, world):
    statement_id = confirmed_statement(shop, world)
    first, second = finance_users(app, 2)
    results = all_at_once(
        app, [pay(first, statement_id, "ICBC-0001"), pay(second, statement_id, "ABC-0002")]
    )

    paid = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(paid) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], Conflict), repr(refused[0])
    assert str(refused[0]) == "该结算单已付款"
    [(paid_statement, amount, reference)] = payouts(app)
    assert (paid_statement, amount) == (statement_id, 3 * 8800)
    assert reference in ("ICBC-0001", "ABC-0002")
    assert shop.reconcile().differences == []


def test_two_finance_users_posting_the_pay_form_at_once_see_no_error_page(app, shop, world):
    statement_id = confirmed_statement(shop, world)
    clients = [factories.signed_in_client(app, user) for user in finance_users(app, 2)]
    start = threading.Barrier(2)
    responses = []

    def post(client, reference: str) -> None:
        start.wait()
        response = client.post(
            f"/finance/statements/{statement_id}/pay",
            data={"reference": reference, "paid_on": today().isoformat()},
        )
        responses.append((client, response))

    threads = [
        threading.Thread(target=post, args=(client, f"REF-{n}")) for n, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    assert sorted(response.status_code for _client, response in responses) == [303, 303]
    assert len(payouts(app)) == 1
    pages = [
        client.get(response.headers["Location"]).get_data(as_text=True)
        for client, response in responses
    ]
    assert sum("已登记付款" in page for page in pages) == 1
    assert sum("该结算单已付款" in page for page in pages) == 1


def test_five_identical_payouts_at_once_are_one(app, shop, world):
    statement_id = confirmed_statement(shop, world)
    results = all_at_once(app, [pay(world.finance, statement_id, "ICBC-7") for _ in range(5)])
    assert all(isinstance(r, int) for r in results), results
    assert len(set(results)) == 1
    assert payouts(app) == [(statement_id, 3 * 8800, "ICBC-7")]


# -- two `settlements issue` processes ----------------------------------------------------------
COOPS = 6


def many_coops_with_money_due(app, shop, world) -> list[int]:
    """COOPS co-ops of the world's village, each with a parcel received (one order in all)."""
    with app.app_context():
        village = db.session.get(Village, world.village)
        category = db.session.get(Category, world.honey)
        made, managers = [], {}
        for n in range(COOPS - 2):
            coop = Coop(village=village, name=f"合作社{n}", approved=True)
            db.session.add(coop)
            manager = factories.make_user(f"社长{n}", f"manager{n}@example.com")
            db.session.add(CoopMembership(user=manager, coop=coop, role=CoopRole.MANAGER))
            made.append(factories.make_product(coop, category, f"土特产{n}", price_fen=1000 + n))
            managers[coop] = manager
        db.session.commit()
        products = [p.id for p in made]
        coop_managers = {coop.id: manager.id for coop, manager in managers.items()}
    original = shop.manager_of
    shop.manager_of = lambda coop_id: coop_managers.get(coop_id) or original(coop_id)
    number = shop.retail({world.honey_product: 1, world.lychee: 1} | {p: 1 for p in products})
    shop.pay_transfer(number)
    for shipment_id in shop.shipments(number):
        shop.ship(shipment_id)
        shop.receive(shipment_id)
    with app.app_context():
        return list(db.session.scalars(select(SettlementEntry.coop_id).distinct()))


def test_two_issue_commands_at_once_issue_each_statement_once(app, shop, world):
    coop_ids = many_coops_with_money_due(app, shop, world)
    assert len(coop_ids) == COOPS
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAIL_SERVER", "MARKET_IN_PROCESS_JOBS")
    }
    env.update(DATABASE_URL=url, SECRET_KEY="test-secret")
    command = [
        str(Path(sys.executable).parent / "flask"),
        "--app",
        "market",
        "settlements",
        "issue",
        "--until",
        today().isoformat(),
    ]

    # Hold every co-op's row until both commands wait on it, then let them race.
    holder = create_engine(url)
    # Another connection watches: a transaction's view of pg_stat_activity is a snapshot.
    watcher_engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with holder.connect() as connection, watcher_engine.connect() as watcher:
            # NO KEY UPDATE: the issuers' FOR UPDATE waits on it; a statement's foreign key does
            # not (it takes KEY SHARE).
            connection.execute(text("SELECT id FROM coops FOR NO KEY UPDATE"))
            processes = [
                subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                for _ in range(2)
            ]
            waiting, deadline = 0, time.monotonic() + 60
            while waiting < 2 and time.monotonic() < deadline:
                if any(p.poll() is not None for p in processes):
                    break
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                time.sleep(0.05)
            connection.commit()
        outputs = [p.communicate(timeout=JOIN_TIMEOUT) for p in processes]
    finally:
        holder.dispose()
        watcher_engine.dispose()

    # Both waited on a co-op's row lock at once: then they raced for every co-op.
    assert waiting == 2, "the commands never both waited on a co-op's row lock"
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, (out.decode(), err.decode())
    counts = [int(re.search(rb"issued (\d+) statements", out).group(1)) for out, _err in outputs]
    assert sum(counts) == COOPS, counts
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Statement)) == COOPS
        per_coop = dict(
            db.session.execute(
                select(Statement.coop_id, func.count()).group_by(Statement.coop_id)
            ).all()
        )
        assert per_coop == {coop_id: 1 for coop_id in coop_ids}
        unstated = db.session.scalar(
            select(func.count())
            .select_from(SettlementEntry)
            .where(SettlementEntry.statement_id.is_(None))
        )
        assert unstated == 0
        # Each co-op's entries are on exactly one statement, its own.
        spread = db.session.execute(
            select(SettlementEntry.coop_id, func.count(SettlementEntry.statement_id.distinct()))
            .join(Statement, Statement.id == SettlementEntry.statement_id)
            .where(Statement.coop_id == SettlementEntry.coop_id)
            .group_by(SettlementEntry.coop_id)
        ).all()
        assert dict(spread) == {coop_id: 1 for coop_id in coop_ids}
    assert shop.reconcile().differences == []
