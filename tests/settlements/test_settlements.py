"""Co-op settlements by example (DESIGN.md §6b, market/settlements/services.py): when a line is
due, what stays owed, refunds after a statement, negative balances carried forward, the
platform fee, statements that never change, cash held by a coordinator, refunds owed to buyers,
and the two commands finance runs (`settlements issue`, `money reconcile`).

The world's prices: honey 8800 and herbs 2500 (co-op 1), lychee 8900 (co-op 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from market.errors import Conflict, DomainError, InvalidTransition, NotAllowed, NotFound
from market.extensions import db
from market.payments import transfers
from market.payments.models import Payment, Refund, RefundStatus
from market.settlements import services as settlements
from market.settlements.models import Payout, StatementStatus
from tests.settlements.conftest import today

HONEY, HERBS, LYCHEE = 8800, 2500, 8900


def delivered(shop, quantities: dict[int, int], pay: str = "transfer") -> str:
    """An order paid, shipped and received; returns its number."""
    number = shop.retail(quantities)
    getattr(shop, f"pay_{pay}")(number)
    for shipment_id in shop.shipments(number):
        shop.ship(shipment_id)
        shop.receive(shipment_id)
    return number


def agrees(shop) -> None:
    result = shop.reconcile()
    assert result.differences == [], [str(d) for d in result.differences]
    assert result.totals.net_fen == result.totals.accounted_fen
    return result.totals


# -- when a line is due ------------------------------------------------------------------------
def test_a_line_is_due_once_received_or_settle_after_days_after_shipping(shop, world):
    shipped = shop.retail({world.honey_product: 1})
    shop.pay_transfer(shipped)
    [parcel] = shop.shipments(shipped)
    shop.ship(parcel)
    delivered(shop, {world.lychee: 1})

    # Shipped a moment ago and not yet received: the co-op is owed it, but it is not due.
    assert shop.issue() == [shop.statement_of(world.other_coop)[0]]
    assert shop.statement_of(world.coop) == []
    balance = shop.balance(world.coop)
    assert (balance.not_due_fen, balance.due_fen, balance.owed_fen) == (HONEY, 0, HONEY)
    assert shop.statement(shop.statement_of(world.other_coop)[0]).payable_fen == LYCHEE
    totals = agrees(shop)
    assert (totals.not_due_fen, totals.due_fen) == (HONEY, 0)
    assert totals.owed_to_coops_fen == HONEY + LYCHEE

    # Five days after shipping: still not due, however long ago the money came.
    shop.backdate(30, only=("settlement_entries", "at"))
    shop.backdate(5, only=("shipments", "shipped_at"))
    assert shop.issue() == []
    assert shop.balance(world.coop).not_due_fen == HONEY

    # SETTLE_AFTER_DAYS (7) after shipping with no receipt: due, and on the next statement.
    shop.backdate(3, only=("shipments", "shipped_at"))
    assert shop.balance(world.coop).due_fen == HONEY
    [statement_id] = shop.issue()
    statement = shop.statement(statement_id)
    assert statement.coop_id == world.coop
    assert statement.lines == [(shop.lines(shipped)[0], HONEY, 0, 0, HONEY)]
    assert statement.payable_fen == HONEY
    agrees(shop)


def test_money_for_a_parcel_not_yet_shipped_is_never_due(shop, world):
    number = shop.retail({world.honey_product: 2})
    shop.pay_transfer(number)
    shop.backdate(60)  # paid two months ago, never shipped
    assert shop.issue() == []
    balance = shop.balance(world.coop)
    assert (balance.not_due_fen, balance.due_fen, balance.owed_fen) == (2 * HONEY, 0, 2 * HONEY)
    assert balance.received_fen == 2 * HONEY
    agrees(shop)


def test_a_statement_lists_only_the_money_booked_by_its_cut_off_day(shop, world):
    earlier = delivered(shop, {world.honey_product: 1})
    shop.backdate(3)
    recent = delivered(shop, {world.herb_product: 1})  # today: after yesterday's cut-off
    [statement_id] = shop.issue(today() - timedelta(days=1))
    assert shop.statement(statement_id).lines == [(shop.lines(earlier)[0], HONEY, 0, 0, HONEY)]
    [later] = shop.issue()
    assert shop.statement(later).lines == [(shop.lines(recent)[0], HERBS, 0, 0, HERBS)]
    assert shop.statement(later).period_end == today()


# -- refunds after a statement, negative balances ---------------------------------------------
def test_a_refund_after_a_statement_goes_on_the_next_one_and_a_negative_balance_carries(
    shop, world
):
    number = delivered(shop, {world.honey_product: 2})
    [line_id] = shop.lines(number)
    shop.backdate(3)
    [first] = shop.issue(today() - timedelta(days=2))
    assert shop.statement(first).lines == [(line_id, 2 * HONEY, 0, 0, 2 * HONEY)]
    shop.confirm(first)
    shop.pay_out(first)
    agrees(shop)

    # The co-op refunds more than the next period brings in: the statement is negative,
    # pays nothing and carries the rest.
    shop.refund_line(line_id, 5000)
    herbs = delivered(shop, {world.herb_product: 1})
    shop.backdate(1.5)
    [second] = shop.issue(today() - timedelta(days=1))
    statement = shop.statement(second)
    assert sorted(statement.lines) == sorted(
        [(line_id, 0, 5000, 0, -5000), (shop.lines(herbs)[0], HERBS, 0, 0, HERBS)]
    )
    assert (statement.opening_balance_fen, statement.refunded_fen) == (0, 5000)
    assert (statement.payable_fen, statement.closing_balance_fen) == (0, HERBS - 5000)
    shop.confirm(second)
    with pytest.raises(DomainError, match="无应付金额"):
        shop.pay_out(second)
    assert [p[0] for p in shop.payouts()] == [first]
    balance = shop.balance(world.coop)
    assert balance.on_statements_fen == HERBS - 5000  # the co-op owes the centre, for now
    totals = agrees(shop)
    assert totals.refunds_owed_fen == 5000

    # The next statement opens with what was carried and pays only the rest.
    delivered(shop, {world.herb_product: 3})
    [third] = shop.issue()
    statement = shop.statement(third)
    assert statement.opening_balance_fen == HERBS - 5000
    assert statement.received_fen == 3 * HERBS
    assert (statement.payable_fen, statement.closing_balance_fen) == (4 * HERBS - 5000, 0)
    shop.confirm(third)
    shop.pay_out(third)
    assert [amount for _s, amount, _r in shop.payouts()] == [2 * HONEY, 4 * HERBS - 5000]
    balance = shop.balance(world.coop)
    assert balance.owed_fen == 0
    assert balance.paid_out_fen == balance.net_fen == 2 * HONEY + 4 * HERBS - 5000
    agrees(shop)


def test_a_negative_balance_is_never_paid_out_even_when_refunds_outweigh_everything(shop, world):
    number = delivered(shop, {world.lychee: 1})
    shop.backdate(2)
    [first] = shop.issue(today() - timedelta(days=1))
    shop.confirm(first)
    shop.pay_out(first)
    shop.refund_line(shop.lines(number)[0], LYCHEE)  # all of it, after it was paid out
    [second] = shop.issue()
    statement = shop.statement(second)
    assert (statement.payable_fen, statement.closing_balance_fen) == (0, -LYCHEE)
    with pytest.raises(DomainError, match="无应付金额"):
        shop.pay_out(second)  # issued
    shop.confirm(second)
    with pytest.raises(DomainError, match="无应付金额"):
        shop.pay_out(second)  # confirmed: there is still nothing to pay
    with shop.ctx():
        assert (
            db.session.scalar(select(Payout.amount_fen).where(Payout.statement_id == second))
            is None
        )
    assert shop.balance(world.other_coop).owed_fen == -LYCHEE
    totals = agrees(shop)
    assert totals.paid_out_fen == LYCHEE and totals.refunds_owed_fen == LYCHEE


# -- the platform fee --------------------------------------------------------------------------
def test_a_ten_percent_fee_is_subtracted_to_the_fen(app, shop, world, monkeypatch):
    monkeypatch.setitem(app.config, "PLATFORM_FEE_BP", 1000)
    custom = shop.custom(1, 1235)  # 10 % of 12.35 is 1.235: rounded half away to 1.24
    shop.pay_transfer(custom)
    for parcel in shop.shipments(custom):
        shop.ship(parcel)
        shop.receive(parcel)
    honey = delivered(shop, {world.honey_product: 1})
    shop.backdate(2)
    [first] = shop.issue(today() - timedelta(days=1))
    statement = shop.statement(first)
    assert sorted(statement.lines) == sorted(
        [
            (shop.lines(custom)[0], 1235, 0, 124, 1111),
            (shop.lines(honey)[0], HONEY, 0, 880, HONEY - 880),
        ]
    )
    assert (statement.fee_fen, statement.payable_fen) == (1004, 1235 + HONEY - 1004)
    shop.confirm(first)
    shop.pay_out(first)

    # A refund after the statement gives the fee on it back.
    shop.refund_line(shop.lines(custom)[0], 1235)
    [second] = shop.issue()
    statement = shop.statement(second)
    assert statement.lines == [(shop.lines(custom)[0], 0, 1235, -124, -1111)]
    assert (statement.fee_fen, statement.closing_balance_fen) == (-124, -1111)
    balance = shop.balance(world.coop)
    assert balance.fee_fen == 880
    totals = agrees(shop)
    assert totals.fee_fen == 880
    assert totals.paid_out_fen == 1235 + HONEY - 1004


# -- statements never change -------------------------------------------------------------------
def test_an_issued_statement_never_changes(shop, world):
    number = delivered(shop, {world.honey_product: 2, world.herb_product: 1})
    shop.backdate(2)
    [first] = shop.issue(today() - timedelta(days=1))
    before = shop.statement(first)
    assert before.status == StatementStatus.ISSUED

    # Later refunds, sales and statements leave it as it was (only its status moves on).
    honey_line, herb_line = shop.lines(number)
    shop.refund_line(honey_line, 1000)
    shop.refund_line(herb_line, HERBS)
    delivered(shop, {world.herb_product: 2})
    assert shop.issue(today() - timedelta(days=1)) == []  # that day is done
    shop.confirm(first)
    shop.pay_out(first)
    [second] = shop.issue()
    after = shop.statement(first)
    assert after.status == StatementStatus.PAID
    assert vars(after) | {"status": None} == vars(before) | {"status": None}
    assert shop.statement(second).opening_balance_fen == before.closing_balance_fen == 0
    agrees(shop)


# -- paying a statement -----------------------------------------------------------------------
def test_only_finance_pays_a_confirmed_statement_once(shop, world):
    delivered(shop, {world.lychee: 2})
    [statement_id] = shop.issue()
    with pytest.raises(InvalidTransition):
        shop.pay_out(statement_id)  # the co-op has not confirmed it yet
    with pytest.raises(NotFound):  # another co-op's statement is not there for them
        shop.call(settlements.confirm_statement, world.coop_manager, statement_id)
    with pytest.raises(NotAllowed):  # finance books money; the co-op confirms
        shop.call(settlements.confirm_statement, world.finance, statement_id)
    shop.confirm(statement_id)
    for who in (world.other_coop_manager, world.organizer, world.coordinator):
        with pytest.raises(NotAllowed):
            shop.call(settlements.record_payout, who, statement_id, "REF-1", today())
    first = shop.pay_out(statement_id, "REF-1")
    assert shop.pay_out(statement_id, "REF-1") == first  # a repeat is the same payout
    with pytest.raises(Conflict):
        shop.pay_out(statement_id, "REF-2")
    assert shop.payouts() == [(statement_id, 2 * LYCHEE, "REF-1")]
    assert shop.statement(statement_id).status == StatementStatus.PAID
    agrees(shop)


def test_a_disputed_statement_is_paid_only_with_a_note_on_how_it_was_resolved(shop, world):
    delivered(shop, {world.honey_product: 1})
    [statement_id] = shop.issue()
    shop.call(settlements.dispute_statement, world.coop_manager, statement_id, "少了一箱")
    with pytest.raises(DomainError, match="说明处理结果"):
        shop.pay_out(statement_id)
    shop.call(
        settlements.record_payout, world.finance, statement_id, "REF-9", today(), note="已核实"
    )
    assert shop.payouts() == [(statement_id, HONEY, "REF-9")]
    agrees(shop)


# -- cash at a pickup, refunds owed -------------------------------------------------------------
def test_cash_taken_at_a_pickup_is_held_until_finance_confirms_the_handover(shop, world):
    group_buy_id, participations = shop.group_buy([2, 1], price_fen=8000)
    for participation_id in participations:
        shop.pick_up(group_buy_id, participation_id)

    balance = shop.balance(world.coop)
    assert (balance.cash_held_fen, balance.due_fen, balance.not_due_fen) == (24000, 0, 0)
    totals = agrees(shop)
    assert (totals.received_fen, totals.cash_held_fen) == (24000, 24000)
    assert shop.issue() == []  # the co-op is not paid from cash the centre does not hold

    with pytest.raises(NotAllowed):
        shop.call(transfers.confirm_cash_handover, world.coordinator, world.coordinator, 24000, "X")
    with pytest.raises(DomainError, match="金额不符"):
        shop.call(transfers.confirm_cash_handover, world.finance, world.coordinator, 23000, "X")
    assert shop.balance(world.coop).cash_held_fen == 24000

    assert shop.hand_over() == 2
    balance = shop.balance(world.coop)
    assert (balance.cash_held_fen, balance.due_fen) == (0, 24000)
    [statement_id] = shop.issue()
    assert shop.statement(statement_id).payable_fen == 24000
    totals = agrees(shop)
    assert (totals.cash_held_fen, totals.owed_to_coops_fen) == (0, 24000)


def test_an_offline_refund_is_owed_until_finance_sends_it(shop, world):
    number = shop.retail({world.honey_product: 1, world.lychee: 1})
    shop.pay_transfer(number)
    shop.cancel(number)  # paid, nothing shipped: refunded in full, by bank transfer
    [refund_id] = shop.pending_refunds()
    totals = agrees(shop)
    assert (totals.received_fen, totals.refunds_owed_fen) == (HONEY + LYCHEE, HONEY + LYCHEE)
    assert totals.refunds_sent_fen == 0
    assert shop.balance(world.coop).net_fen == 0

    with pytest.raises(NotAllowed):
        shop.call(transfers.send_refund, world.coop_manager, refund_id, "R-1", today())
    shop.call(transfers.send_refund, world.finance, refund_id, "R-1", today())
    shop.call(transfers.send_refund, world.finance, refund_id, "R-1", today())  # the same
    with pytest.raises(Conflict):
        shop.call(transfers.send_refund, world.finance, refund_id, "R-2", today())
    totals = agrees(shop)
    assert (totals.refunds_owed_fen, totals.refunds_sent_fen) == (0, HONEY + LYCHEE)
    with shop.ctx():
        refund = db.session.get(Refund, refund_id)
        assert (refund.status, refund.sent_reference) == (RefundStatus.SUCCEEDED, "R-1")


def test_a_card_refund_is_sent_at_once(card_shop, world):
    shop = card_shop
    number = delivered(shop, {world.herb_product: 2}, pay="card")
    shop.refund_line(shop.lines(number)[0], 700)
    assert shop.pending_refunds() == []
    totals = agrees(shop)
    assert (totals.received_fen, totals.refunds_sent_fen) == (2 * HERBS, 700)
    [statement_id] = shop.issue()
    assert shop.statement(statement_id).lines == [
        (shop.lines(number)[0], 2 * HERBS, 700, 0, 2 * HERBS - 700)
    ]


def test_a_card_group_buy_owes_the_coop_the_tier_price_reached(card_shop, world):
    shop = card_shop
    group_buy_id, participations = shop.group_buy([2, 2], card=True, price_fen=8000, tier=(3, 7000))
    totals = agrees(shop)  # charged 8000 each, 1000 each back by card at the close
    assert (totals.received_fen, totals.refunds_sent_fen) == (32000, 4000)
    assert shop.balance(world.coop).not_due_fen == 28000
    for participation_id in participations:
        shop.pick_up(group_buy_id, participation_id)
    assert shop.cash_held_by(world.coordinator) == 0  # paid by card: nothing to hand over
    [statement_id] = shop.issue()
    statement = shop.statement(statement_id)
    assert statement.payable_fen == 28000
    assert {(received, refunded) for _l, received, refunded, _f, _p in statement.lines} == {
        (16000, 2000)
    }
    agrees(shop)


# -- the commands -------------------------------------------------------------------------------
def test_settlements_issue_twice_issues_nothing_new_the_second_time(app, shop, world):
    delivered(shop, {world.honey_product: 1, world.lychee: 1})
    runner = app.test_cli_runner()
    day = today().isoformat()
    first = runner.invoke(args=["settlements", "issue", "--until", day])
    assert first.exit_code == 0, first.output
    assert "issued 2 statements" in first.output
    assert "¥88.00" in first.output and "¥89.00" in first.output
    second = runner.invoke(args=["settlements", "issue", "--until", day])
    assert second.exit_code == 0, second.output
    assert "issued 0 statements" in second.output
    assert len(shop.statement_of(world.coop) + shop.statement_of(world.other_coop)) == 2

    tomorrow = (today() + timedelta(days=1)).isoformat()
    future = runner.invoke(args=["settlements", "issue", "--until", tomorrow])
    assert future.exit_code == 1
    assert "结算截止日不能晚于今天" in future.output


def test_money_reconcile_says_0_differences_and_fails_on_a_broken_figure(app, shop, world):
    number = delivered(shop, {world.honey_product: 1})
    shop.refund_line(shop.lines(number)[0], 800)
    [statement_id] = shop.issue()
    shop.confirm(statement_id)
    shop.pay_out(statement_id)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["money", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "0 differences" in result.output
    assert "paid out ¥80.00" in result.output and "owed ¥8.00" in result.output

    with app.app_context():
        payment_id = db.session.scalar(select(Payment.id))
        db.session.execute(
            text("UPDATE payments SET received_fen = received_fen - 1 WHERE id = :id"),
            {"id": payment_id},
        )
        db.session.commit()
    result = runner.invoke(args=["money", "reconcile"])
    assert result.exit_code == 1
    assert f"payment #{payment_id}: received − refunded vs settlement entries" in result.output
    assert "(+1)" in result.output
    assert "0 differences" not in result.output
