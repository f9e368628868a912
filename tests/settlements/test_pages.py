"""The money pages, as their users see them: finance books money in and out; a co-op reads,
confirms or disputes its statements; the organizer sees balances; the buyer sees refunds.
Everything is done through the pages (DESIGN.md §6b)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from market.clock import SHANGHAI
from market.extensions import db
from market.orders.models import Order, OrderLine, Shipment
from market.payments.models import Payment, Refund, RefundStatus
from market.settlements.models import (
    Payout,
    SettlementEntry,
    Statement,
    StatementStatus,
)
from tests.orders.conftest import buy, sku_of

FINANCE_PAGES = [
    "/finance",
    "/finance/receipts",
    "/finance/refunds",
    "/finance/cash",
    "/finance/statements",
    "/finance/payouts",
]


def text(response) -> str:
    return response.get_data(as_text=True)


def shanghai_today():
    return datetime.now(SHANGHAI).date()


def pay(buyer, finance, number: str) -> None:
    buyer.post(f"/orders/{number}/pay/offline")
    response = finance.post(
        f"/orders/{number}/transfer-received",
        data={"reference": f"IN-{number}", "transfer_date": shanghai_today().isoformat()},
    )
    assert response.status_code == 303


def shipment_ids(app, number: str) -> list[int]:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        return [s.id for s in order.shipments]


def line_id(app, number: str) -> int:
    with app.app_context():
        return db.session.scalar(
            select(OrderLine.id).join(OrderLine.order).where(Order.number == number)
        )


def delivered_order(app, client_as, product_id: int, quantity: int = 1) -> str:
    """Bought, paid by transfer, shipped by the co-op and received by the buyer."""
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, product_id), quantity)
    pay(buyer, client_as("finance"), number)
    other_coop = product_id == app.config["TEST_WORLD"].lychee
    shipper = client_as("other_coop_manager" if other_coop else "coop_manager")
    for shipment_id in shipment_ids(app, number):
        response = shipper.post(
            f"/coop/shipments/{shipment_id}/ship",
            data={"carrier": "中国邮政", "tracking_number": "9876"},
        )
        assert response.status_code == 303
        received = buyer.post(f"/orders/{number}/shipments/{shipment_id}/received")
        assert received.status_code in (302, 303)
    return number


def days_pass(app, days: int) -> None:
    """Time passes: what was booked, shipped and received moves `days` into the past."""
    with app.app_context():
        for entry in db.session.scalars(select(SettlementEntry)):
            entry.at -= timedelta(days=days)
        for shipment in db.session.scalars(select(Shipment)):
            if shipment.shipped_at:
                shipment.shipped_at -= timedelta(days=days)
            if shipment.delivered_at:
                shipment.delivered_at -= timedelta(days=days)
        db.session.commit()


def issue(finance, until) -> str:
    response = finance.post(
        "/finance/statements/issue", data={"until": until.isoformat()}, follow_redirects=True
    )
    assert response.status_code == 200
    return text(response)


def statement_of(app, coop_id: int, index: int = -1) -> Statement:
    with app.app_context():
        found = list(
            db.session.scalars(
                select(Statement).where(Statement.coop_id == coop_id).order_by(Statement.id)
            )
        )
        statement = found[index]
        db.session.expunge(statement)
        return statement


def pending_refund(app, client_as, world) -> int:
    """A paid herb order the co-op refunds in part: owed to the buyer until finance sends it."""
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.herb_product), 2)
    pay(buyer, client_as("finance"), number)
    response = client_as("coop_manager").post(
        f"/coop/lines/{line_id(app, number)}/refund", data={"amount": "10", "reason": "少发一件"}
    )
    assert response.status_code == 303
    with app.app_context():
        return db.session.scalar(select(Refund.id).where(Refund.status == RefundStatus.PENDING))


# -- who may book money ----------------------------------------------------------------------------
def test_only_finance_books_money_and_sees_the_finance_pages(app, client_as, world):
    number = delivered_order(app, client_as, world.honey_product, 2)
    finance = client_as("finance")
    assert "已出具 1 张结算单" in issue(finance, shanghai_today())
    statement = statement_of(app, world.coop)
    confirmed = client_as("coop_manager").post(f"/coop/settlements/{statement.id}/confirm")
    assert confirmed.status_code == 303
    refund_id = pending_refund(app, client_as, world)
    today = shanghai_today().isoformat()

    posts = {
        f"/finance/statements/{statement.id}/pay": {"reference": "PAY-1", "paid_on": today},
        f"/finance/refunds/{refund_id}/send": {"reference": "OUT-1", "sent_date": today},
        f"/finance/cash/{world.coordinator}/confirm": {"amount": "1", "reference": "HX-1"},
        "/finance/statements/issue": {"until": today},
    }
    for role in ("coop_manager", "organizer", "buyer", "coordinator"):
        client = client_as(role)
        for page in [*FINANCE_PAGES, f"/finance/statements/{statement.id}"]:
            assert client.get(page).status_code == 403, (role, page)
        for url, data in posts.items():
            assert client.post(url, data=data).status_code == 403, (role, url)
    anonymous = app.test_client()
    assert anonymous.get("/finance").headers["Location"].startswith("/login?next=")

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payout)) == 0
        assert db.session.get(Refund, refund_id).status == RefundStatus.PENDING
        assert db.session.get(Statement, statement.id).status == StatementStatus.CONFIRMED
        assert db.session.scalar(select(func.count()).select_from(Statement)) == 1

    for page in FINANCE_PAGES:
        assert finance.get(page).status_code == 200, page
    assert client_as("admin").get("/finance").status_code == 200
    assert f"/finance/statements/{statement.id}/pay" in text(finance.get("/finance/statements"))
    assert f"/finance/refunds/{refund_id}/send" in text(finance.get("/finance/refunds"))
    assert f"/finance/statements/{statement.id}/pay" in text(
        finance.get(f"/settlements/{statement.id}")
    )
    for role in ("coop_manager", "organizer"):
        page = text(client_as(role).get(f"/settlements/{statement.id}"))
        assert statement.number in page and number in page
        assert "/pay" not in page and "/send" not in page and "/confirm" not in page
        assert "transfer-received" not in page


def test_the_menu_shows_finance_and_my_settlements_to_whom_they_belong(client_as, world):
    finance_home = text(client_as("finance").get("/"))
    assert 'id="nav-finance"' in finance_home and 'id="nav-coop-settlements"' not in finance_home
    coop_home = text(client_as("coop_manager").get("/"))
    assert 'id="nav-coop-settlements"' in coop_home and 'id="nav-finance"' not in coop_home
    buyer_home = text(client_as("buyer").get("/"))
    assert 'id="nav-finance"' not in buyer_home and 'id="nav-coop-settlements"' not in buyer_home


# -- the whole story -------------------------------------------------------------------------------
def test_from_purchase_to_payout_and_a_later_refund_carried_forward(app, client_as, world):
    finance, manager, buyer = client_as("finance"), client_as("coop_manager"), client_as("buyer")
    number = delivered_order(app, client_as, world.honey_product, 2)  # 2 × ¥88.00

    page = text(manager.get("/coop/settlements"))
    assert "还没有结算单" in page and "¥176.00" in page  # received, not yet on a statement

    days_pass(app, 3)
    yesterday = shanghai_today() - timedelta(days=1)
    assert "已出具 1 张结算单" in issue(finance, yesterday)
    assert "未出具结算单" in issue(finance, yesterday)  # a second run issues nothing
    first = statement_of(app, world.coop)
    assert (first.payable_fen, first.status) == (17600, StatementStatus.ISSUED)

    page = text(manager.get("/coop/settlements"))
    assert first.number in page and "待确认" in page and "¥176.00" in page
    page = text(manager.get(f"/settlements/{first.id}"))
    assert number in page and "原生态蜂蜜" in page and "500g" in page
    assert f"/coop/settlements/{first.id}/confirm" in page
    assert f"/coop/settlements/{first.id}/dispute" in page
    assert "data-print" in page and f"/settlements/{first.id}.xlsx" in page
    # The notification's link leads to the statement.
    assert (
        manager.get(f"/coop/settlements/{first.id}")
        .headers["Location"]
        .endswith(f"/settlements/{first.id}")
    )

    page = text(manager.post(f"/coop/settlements/{first.id}/confirm", follow_redirects=True))
    assert "已确认结算单" in page and "已确认" in page
    assert f"/coop/settlements/{first.id}/confirm" not in page

    response = finance.post(
        f"/finance/statements/{first.id}/pay",
        data={"reference": "PAY-2026-001", "paid_on": shanghai_today().isoformat()},
        follow_redirects=True,
    )
    assert "已登记付款" in text(response)
    page = text(manager.get("/coop/settlements"))
    assert "已付款" in page and "PAY-2026-001" in page
    page = text(manager.get(f"/settlements/{first.id}"))
    assert "已付款" in page and "PAY-2026-001" in page
    payouts = text(finance.get("/finance/payouts"))
    assert "PAY-2026-001" in payouts and "¥176.00" in payouts

    # A refund after the statement: owed to the buyer, then sent by finance.
    response = manager.post(
        f"/coop/lines/{line_id(app, number)}/refund", data={"amount": "20", "reason": "一瓶破损"}
    )
    assert response.status_code == 303
    order_page = text(buyer.get(f"/orders/{number}"))
    assert 'id="order-refunds"' in order_page
    assert "一瓶破损" in order_page and "¥20.00" in order_page and "待退款" in order_page
    refunds_page = text(finance.get("/finance/refunds"))
    assert number in refunds_page and "一瓶破损" in refunds_page and "待退款" in refunds_page
    with app.app_context():
        refund_id = db.session.scalar(select(Refund.id))
    today = shanghai_today()
    response = finance.post(
        f"/finance/refunds/{refund_id}/send",
        data={"reference": "OUT-77", "sent_date": today.isoformat()},
        follow_redirects=True,
    )
    assert "已登记退款转出" in text(response)
    assert f"/finance/refunds/{refund_id}/send" not in text(finance.get("/finance/refunds"))
    assert "OUT-77" in text(finance.get("/finance/refunds?status=sent"))
    order_page = text(buyer.get(f"/orders/{number}"))
    assert "已退款" in order_page and "待退款" not in order_page
    assert today.isoformat() in order_page

    # The next statement: a negative line, nothing payable, the balance carried forward.
    assert "已出具 1 张结算单" in issue(finance, today)
    second = statement_of(app, world.coop)
    assert second.id != first.id
    assert (second.payable_fen, second.closing_balance_fen) == (0, -2000)
    page = text(manager.get(f"/settlements/{second.id}"))
    assert number in page and "-¥20.00" in page
    assert 'id="statement-payable">¥0.00<' in page
    assert 'id="statement-carried">-¥20.00<' in page
    assert "结转下期" in page
    coop_page = text(manager.get("/coop/settlements"))
    assert second.number in coop_page and "-¥20.00" in coop_page
    assert "无应付，余额结转下期" not in text(finance.get("/finance/statements"))  # issued
    manager.post(f"/coop/settlements/{second.id}/confirm")
    statements = text(finance.get("/finance/statements"))
    assert "无应付，余额结转下期" in statements
    assert f"/finance/statements/{second.id}/pay" not in statements

    # Every fen is in its place.
    reconciliation = text(client_as("organizer").get("/admin/reconciliation"))
    assert 'id="money-reconciliation-status"' in reconciliation
    assert "0 处差异" in reconciliation
    overview = text(client_as("organizer").get("/admin/settlements"))
    assert "古丁南药合作社" in overview and "古丁村" in overview
    assert "¥176.00" in overview and "¥20.00" in overview


def test_confirming_or_disputing_twice_is_one_answer(app, client_as, world):
    """A co-op's answer sent twice (a double click, a retried request) is one answer: the second
    changes nothing, shows no error, and the audit log holds one entry."""
    from market.audit.models import AuditEvent

    def entries(action: str, statement_id: int) -> int:
        with app.app_context():
            return db.session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == action, AuditEvent.object_id == str(statement_id))
            )

    finance = client_as("finance")
    delivered_order(app, client_as, world.honey_product)  # co-op 1 confirms
    delivered_order(app, client_as, world.lychee)  # co-op 2 disputes
    issue(finance, shanghai_today())
    mine, theirs = statement_of(app, world.coop), statement_of(app, world.other_coop)

    manager = client_as("coop_manager")
    url = f"/coop/settlements/{mine.id}/confirm"
    assert "已确认结算单" in text(manager.post(url, follow_redirects=True))
    confirmed_at = statement_of(app, world.coop).confirmed_at
    again = text(manager.post(url, follow_redirects=True))
    assert "已确认" in again and "alert-danger" not in again
    assert statement_of(app, world.coop).confirmed_at == confirmed_at
    assert entries("statement.confirmed", mine.id) == 1

    other = client_as("other_coop_manager")
    url = f"/coop/settlements/{theirs.id}/dispute"
    for _ in range(2):
        page = text(other.post(url, data={"reason": "数量不对"}, follow_redirects=True))
        assert "有异议" in page and "数量不对" in page and "alert-danger" not in page
    assert statement_of(app, world.other_coop).status == StatementStatus.DISPUTED
    assert entries("statement.disputed", theirs.id) == 1


def test_a_disputed_statement_is_paid_only_with_a_note(app, client_as, world):
    finance, manager = client_as("finance"), client_as("coop_manager")
    delivered_order(app, client_as, world.honey_product)
    issue(finance, shanghai_today())
    statement = statement_of(app, world.coop)
    page = text(
        manager.post(
            f"/coop/settlements/{statement.id}/dispute",
            data={"reason": "数量不对"},
            follow_redirects=True,
        )
    )
    assert "已提出异议" in page and "数量不对" in page and "有异议" in page
    assert finance.get(f"/finance/statements/{statement.id}").status_code == 302
    listing = text(finance.get("/finance/statements?status=disputed"))
    assert statement.number in listing and "数量不对" in listing
    data = {"reference": "PAY-9", "paid_on": shanghai_today().isoformat()}
    page = text(
        finance.post(f"/finance/statements/{statement.id}/pay", data=data, follow_redirects=True)
    )
    assert "有异议的结算单付款时请说明处理结果" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payout)) == 0
    data["note"] = "已电话核对，数量无误"
    page = text(
        finance.post(f"/finance/statements/{statement.id}/pay", data=data, follow_redirects=True)
    )
    assert "已登记付款" in page
    assert "已电话核对" in text(manager.get(f"/settlements/{statement.id}"))


# -- another co-op's statement, and the spreadsheet ------------------------------------------------
def test_another_coops_manager_gets_404_and_the_xlsx_has_the_lines(app, client_as, world):
    number = delivered_order(app, client_as, world.honey_product, 2)
    with app.app_context():  # a product name that a spreadsheet would take for a formula
        line = db.session.get(OrderLine, line_id(app, number))
        line.product_name = '=HYPERLINK("http://x")'
        db.session.commit()
    issue(client_as("finance"), shanghai_today())
    statement = statement_of(app, world.coop)

    other = client_as("other_coop_manager")
    assert other.get(f"/settlements/{statement.id}").status_code == 404
    assert other.get(f"/settlements/{statement.id}.xlsx").status_code == 404
    assert other.get(f"/coop/settlements/{statement.id}", follow_redirects=True).status_code == 404
    assert other.post(f"/coop/settlements/{statement.id}/confirm").status_code == 404
    dispute = other.post(f"/coop/settlements/{statement.id}/dispute", data={"reason": "x"})
    assert dispute.status_code == 404
    assert client_as("buyer").get(f"/settlements/{statement.id}").status_code == 403
    assert client_as("coop_manager").get("/settlements/999999").status_code == 404
    assert statement.number not in text(other.get("/coop/settlements"))
    with app.app_context():
        assert db.session.get(Statement, statement.id).status == StatementStatus.ISSUED

    response = client_as("coop_manager").get(f"/settlements/{statement.id}.xlsx")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert statement.number in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert [
        "订单号",
        "商品",
        "规格",
        "收款（元）",
        "退款（元）",
        "服务费（元）",
        "应付（元）",
    ] in rows
    line_row = next(row for row in rows if row[0] == number)
    assert line_row[1] == '\'=HYPERLINK("http://x")'  # text, not a formula
    assert [float(v) for v in line_row[3:7]] == [176.0, 0.0, 0.0, 176.0]
    cells = next(r for r in sheet.iter_rows() if r[0].value == number)
    assert cells[3].number_format == "¥#,##0.00" and cells[3].data_type == "n"
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    for role in ("finance", "organizer"):
        assert client_as(role).get(f"/settlements/{statement.id}.xlsx").status_code == 200


# -- bad input -------------------------------------------------------------------------------------
def _no_500(response):
    assert response.status_code < 500, text(response)[-1500:]
    return response


def test_bad_input_on_every_form_is_a_message_never_a_500(app, client_as, world):
    finance, manager = client_as("finance"), client_as("coop_manager")
    delivered_order(app, client_as, world.honey_product)
    refund_id = pending_refund(app, client_as, world)
    today = shanghai_today().isoformat()

    def flashed(url, data, message=None, **kwargs):
        response = _no_500(finance_or(url).post(url, data=data, follow_redirects=True, **kwargs))
        page = text(response)
        assert "alert-danger" in page, (url, data)
        if message:
            assert message in page, (url, data, message)

    def finance_or(url):
        return manager if url.startswith("/coop/") else finance

    # Issuing statements.
    flashed("/finance/statements/issue", {"until": ""})
    flashed("/finance/statements/issue", {"until": "2026-02-30"})
    flashed("/finance/statements/issue", {"until": "tomorrow"})
    future = (shanghai_today() + timedelta(days=3)).isoformat()
    flashed("/finance/statements/issue", {"until": future}, "结算截止日不能晚于今天")
    assert "已出具 1 张结算单" in issue(finance, shanghai_today())
    statement = statement_of(app, world.coop)

    # Paying: an unconfirmed statement, then bad fields, then an unknown one.
    pay_url = f"/finance/statements/{statement.id}/pay"
    flashed(pay_url, {"reference": "P-1", "paid_on": today}, "不能改为")
    manager.post(f"/coop/settlements/{statement.id}/confirm")
    flashed(pay_url, {"reference": "", "paid_on": today})
    flashed(pay_url, {"reference": "P-1", "paid_on": "31/12/2026"})
    flashed(pay_url, {"reference": "P-1", "paid_on": "2099-01-01"}, "日期不能晚于今天")
    flashed(
        pay_url,
        {"reference": "P-1", "paid_on": today, "proof": (io.BytesIO(b"%PDF-1"), "slip.pdf")},
        "文件不是有效的图片",
        content_type="multipart/form-data",
    )
    assert (
        _no_500(
            finance.post(
                "/finance/statements/999999/pay", data={"reference": "P-1", "paid_on": today}
            )
        ).status_code
        == 404
    )

    # Sending a refund.
    send_url = f"/finance/refunds/{refund_id}/send"
    flashed(send_url, {"reference": "  ", "sent_date": today})
    flashed(send_url, {"reference": "O-1", "sent_date": "yesterday"})
    flashed(send_url, {"reference": "O-1"})
    flashed(
        send_url,
        {"reference": "O-1", "sent_date": today, "proof": (io.BytesIO(b"nope"), "x.jpg")},
        "文件不是有效的图片",
        content_type="multipart/form-data",
    )
    missing = finance.post(
        "/finance/refunds/999999/send", data={"reference": "O", "sent_date": today}
    )
    assert _no_500(missing).status_code == 404

    # Cash: not an amount, nothing held.
    cash_url = f"/finance/cash/{world.coordinator}/confirm"
    flashed(cash_url, {"amount": "abc", "reference": "HX"}, "请输入正确的金额")
    flashed(cash_url, {"amount": "-5", "reference": "HX"}, "请输入正确的金额")
    flashed(cash_url, {"amount": "0", "reference": "HX"}, "金额必须大于 0")
    flashed(cash_url, {"amount": "5", "reference": ""})
    flashed(cash_url, {"amount": "5", "reference": "HX"}, "该联络员没有待交接的现金")

    # A co-op's answer: no reason; then a dispute after it confirmed.
    flashed(f"/coop/settlements/{statement.id}/dispute", {"reason": ""})
    flashed(f"/coop/settlements/{statement.id}/dispute", {"reason": "x" * 501})
    flashed(f"/coop/settlements/{statement.id}/dispute", {"reason": "晚了"}, "不能改为")

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payout)) == 0
        assert db.session.get(Refund, refund_id).status == RefundStatus.PENDING
        assert db.session.get(Statement, statement.id).status == StatementStatus.CONFIRMED

    # Filters take anything and show a page.
    for url in (
        "/finance/receipts?q=%25_&mode=nonsense&page=-3",
        "/finance/refunds?status=everything&page=abc",
        "/finance/statements?status=zzz&coop=abc&page=0",
        "/finance/payouts?coop=x&start=2026-13-01&end=garbage",
        "/finance/payouts?start=2026-01-01&end=2026-12-31",
    ):
        assert _no_500(finance.get(url)).status_code == 200, url
    assert "日期格式不正确" in text(finance.get("/finance/payouts?start=2026-13-01"))


# -- receipts, cash, the organizer's overview ------------------------------------------------------
def test_receipts_list_open_transfers_and_filter_them(app, client_as, world):
    buyer = client_as("buyer")
    waiting = buy(buyer, sku_of(app, world.honey_product))
    buyer.post(f"/orders/{waiting}/pay/offline")
    other = buy(buyer, sku_of(app, world.lychee))
    buyer.post(f"/orders/{other}/pay/offline")
    finance = client_as("finance")
    page = text(finance.get("/finance/receipts"))
    assert waiting in page and other in page and "周买家" in page and "零售" in page
    assert f"/orders/{waiting}/transfer-received" in page
    page = text(finance.get(f"/finance/receipts?q={waiting}"))
    assert waiting in page and other not in page
    assert other not in text(finance.get("/finance/receipts?mode=unit_purchase"))
    hub = text(finance.get("/finance")).split('id="count-receipts"')[1]
    assert 'fs-3 fw-bold">2<' in hub[:300]

    response = finance.post(
        f"/orders/{waiting}/transfer-received",
        data={"reference": "IN-1", "transfer_date": shanghai_today().isoformat()},
        headers={"Referer": "http://localhost/finance/receipts"},
    )
    assert response.headers["Location"] == "http://localhost/finance/receipts"
    page = text(finance.get("/finance/receipts"))
    assert "已确认收款" in page and f"/orders/{waiting}/transfer-received" not in page


def test_cash_taken_at_a_pickup_is_handed_over_to_finance(app, client_as, world):
    from tests.groupbuy.test_views import (
        close_due,
        item_id,
        open_group_buy,
        pass_deadline,
        ship_and_arrive,
    )

    group_buy_id = open_group_buy(app, world)
    item = item_id(app, group_buy_id)
    for role in ("employee", "approver"):
        joined = client_as(role).post(
            f"/group-buys/{group_buy_id}/join", data={f"item_{item}": "2"}
        )
        assert joined.status_code == 303
    pass_deadline(app, group_buy_id)
    close_due(app)
    with app.app_context():
        from market.groupbuy.models import Participation

        participation_id = db.session.scalar(
            select(Participation.id).where(Participation.user_id == world.employee)
        )
    ship_and_arrive(app, client_as, group_buy_id)
    coordinator = client_as("coordinator")
    picked = coordinator.post(f"/unit/group-buys/{group_buy_id}/pickups/{participation_id}")
    assert picked.status_code == 303

    finance = client_as("finance")
    page = text(finance.get("/finance/cash"))
    assert "李联络" in page and "高州市市场监管局" in page and "¥150.00" in page
    assert f"/finance/cash/{world.coordinator}/confirm" in page
    overview = text(client_as("organizer").get("/admin/settlements"))
    assert "¥150.00" in overview
    page = text(finance.get("/finance/receipts"))
    assert "没有待确认到账的转账" in page  # cash is not a transfer to confirm

    url = f"/finance/cash/{world.coordinator}/confirm"
    page = text(
        finance.post(url, data={"amount": "149", "reference": "HX-1"}, follow_redirects=True)
    )
    assert "金额不符：应交接 ¥150.00" in page
    page = text(
        finance.post(url, data={"amount": "150.00", "reference": "HX-1"}, follow_redirects=True)
    )
    assert "已确认现金交接（1 笔）" in page and "没有待交接的现金" in page
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.cash_holder_id.is_not(None)))
        assert payment.cash_handed_over_at is not None
        assert payment.cash_handover_reference == "HX-1"


def test_the_organizer_sees_balances_per_coop_and_per_village(app, client_as, world):
    delivered_order(app, client_as, world.honey_product)  # ¥88.00, co-op 1
    delivered_order(app, client_as, world.lychee, 2)  # ¥178.00, co-op 2
    buyer = client_as("buyer")
    unshipped = buy(buyer, sku_of(app, world.herb_product))  # ¥25.00, paid, not yet due
    pay(buyer, client_as("finance"), unshipped)

    for role in ("organizer", "finance", "admin"):
        response = client_as(role).get("/admin/settlements")
        assert response.status_code == 200, role
    for role in ("coop_manager", "buyer"):
        assert client_as(role).get("/admin/settlements").status_code == 403
    page = text(client_as("organizer").get("/admin/settlements"))
    coops = page.split('id="overview-coops"')[1].split("</table>")[0]
    assert "古丁南药合作社" in coops and "柏桥荔枝合作社" in coops
    assert "¥113.00" in coops and "¥25.00" in coops  # co-op 1: received; not yet due
    villages = page.split('id="overview-villages"')[1].split("</table>")[0]
    assert "古丁村" in villages and "柏桥村" in villages
    total = page.split('id="overview-total"')[1].split("</tr>")[0]
    assert "¥291.00" in total
    assert "/admin/settlements" in text(client_as("organizer").get("/admin/reconciliation"))


@pytest.mark.parametrize("role", ["coop_manager", "finance", "organizer"])
def test_the_statement_page_prints_without_menu_or_forms(app, client_as, world, role):
    delivered_order(app, client_as, world.honey_product)
    issue(client_as("finance"), shanghai_today())
    statement = statement_of(app, world.coop)
    page = text(client_as(role).get(f"/settlements/{statement.id}"))
    assert "data-print" in page and "<script>" not in page  # window.print() from market.js
    assert ('id="statement-answer"' in page) == (role == "coop_manager")
    if role == "coop_manager":
        assert 'class="card card-body no-print mb-3" id="statement-answer"' in page
    css = (Path(app.static_folder) / "css" / "market.css").read_text()
    assert "@media print" in css and ".no-print" in css
