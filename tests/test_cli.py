"""Operator commands: a domain error ends the command with one readable line and a non-zero
exit status, and changes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from market.extensions import db
from market.groupbuy.models import (
    GroupBuy,
    GroupBuyStatus,
    Participation,
    ParticipationStatus,
    PaymentMode,
)
from market.models import utcnow
from tests.groupbuy.conftest import Kit


def test_close_due_without_card_keys_refuses_before_claiming_anything(app, world):
    kit = Kit(app, world)
    app.config.update(STRIPE_SECRET_KEY="sk_test_for_opening")
    try:
        group_buy_id = kit.open(payment_mode=PaymentMode.CARD)
        (member,) = kit.members(1)
        participation_id = kit.join(member, group_buy_id, 2)
    finally:
        app.config.update(STRIPE_SECRET_KEY="")
    with app.app_context():
        db.session.execute(
            update(GroupBuy)
            .where(GroupBuy.id == group_buy_id)
            .values(closes_at=utcnow() - timedelta(minutes=1))
        )
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["groupbuy", "close-due"])

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: card payments need STRIPE_SECRET_KEY"]
    assert "Traceback" not in result.output + result.stderr
    with app.app_context():
        group_buy = db.session.get(GroupBuy, group_buy_id)
        assert (group_buy.status, group_buy.closing_owner) == (GroupBuyStatus.OPEN, "")
        participation = db.session.get(Participation, participation_id)
        assert participation.status == ParticipationStatus.ACTIVE


def test_a_bad_date_for_statements_is_one_readable_line(app, world):
    result = app.test_cli_runner().invoke(args=["settlements", "issue", "--until", "2999-01-01"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["error: 结算截止日不能晚于今天"]
