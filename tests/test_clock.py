"""One "today" everywhere: Beijing's (market/clock.py). Between 00:00 and 08:00 Beijing time the
UTC date, and a server's date.today() on UTC, still say yesterday; the shop must not. The clock
is set with time-machine (the real datetime and time functions, moved); nothing of ours is
replaced."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from market import clock
from market.directory.models import Pairing
from market.extensions import db

# 01:00 on 1 April 2025 in 高州 is 17:00 UTC on 31 March.
ONE_AM_IN_BEIJING = datetime(2025, 3, 31, 17, 0, tzinfo=UTC)
BEIJING_DAY = date(2025, 4, 1)
UNIT_NAME = "高州市市场监管局"  # world.unit, paired with 古丁村 only (tests/factories.py)


@pytest.fixture
def one_am_in_beijing():
    with time_machine.travel(ONE_AM_IN_BEIJING, tick=True):
        yield


def _pair_unit_with_other_village(app, world, since: date) -> None:
    with app.app_context():
        db.session.add(Pairing(unit_id=world.unit, village_id=world.other_village, since=since))
        db.session.commit()


def test_at_one_in_the_morning_today_is_beijings_day_not_the_utc_one(one_am_in_beijing):
    assert datetime.now(UTC).date() == BEIJING_DAY - timedelta(days=1)  # the clock is set
    assert clock.today() == BEIJING_DAY
    assert clock.local_day(clock.now()) == BEIJING_DAY
    assert clock.day_start(BEIJING_DAY) <= clock.now() < clock.day_end(BEIJING_DAY)


@pytest.mark.parametrize(
    ("starts", "shown"), [(BEIJING_DAY, True), (BEIJING_DAY + timedelta(1), False)]
)
def test_a_pairing_starting_today_shows_on_the_village_page_at_one_am(
    app, client, world, one_am_in_beijing, starts, shown
):
    _pair_unit_with_other_village(app, world, starts)
    page = client.get(f"/villages/{world.other_village}")
    assert page.status_code == 200
    assert (UNIT_NAME in page.get_data(as_text=True)) is shown


def test_the_unit_forms_mark_a_village_paired_since_today_at_one_am(
    app, client_as, world, one_am_in_beijing
):
    _pair_unit_with_other_village(app, world, BEIJING_DAY)
    coordinator = client_as("coordinator")
    purchase_form = coordinator.get("/unit/purchases/new").get_data(as_text=True)
    assert "【结对村】柏桥村 · 白糖罂荔枝" in purchase_form
    group_buy_form = coordinator.get("/unit/group-buys/new").get_data(as_text=True)
    assert "【结对村】柏桥村 · 白糖罂荔枝" in group_buy_form


def test_finance_may_close_a_statement_period_on_beijings_today_at_one_am(
    client_as, one_am_in_beijing
):
    page = client_as("finance").post(
        "/finance/statements/issue",
        data={"until": BEIJING_DAY.isoformat()},
        follow_redirects=True,
    )
    text = page.get_data(as_text=True)
    assert "结算截止日不能晚于今天" not in text
    assert "没有到期未结的款项，未出具结算单" in text
