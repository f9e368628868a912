"""以买代帮 through the real pages: who may do what, approval into one order per co-op, stock taken
only then, two approvals at once, bank transfer with a proof, the overview and the documents."""

from __future__ import annotations

import io
import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from market.accounts.models import UnitMembership, UnitRole
from market.extensions import db
from market.orders.models import Order, OrderMode, OrderStatus
from market.payments.models import Payment, PaymentStatus
from market.procurement.models import PurchaseStatus, UnitPurchase, UnitPurchaseOrder
from tests import factories
from tests.orders.conftest import sku_of, stock_of

TAX_ID = "11440981MB2C12345X"


def purchase_form(*lines: tuple[int, int], **overrides) -> dict:
    data = {
        "purpose": "canteen",
        "purpose_note": "机关食堂十月",
        "recipient": "李联络",
        "phone": "13800000001",
        "address": "高州市潘州街道府前路 1 号 机关食堂",
        "invoice_title": "高州市市场监管局",
        "invoice_tax_id": TAX_ID,
    }
    for index, (sku_id, quantity) in enumerate(lines):
        data[f"lines-{index}-sku_id"] = str(sku_id)
        data[f"lines-{index}-quantity"] = str(quantity)
    data.update(overrides)
    return data


def draft(client, *lines: tuple[int, int], **overrides) -> int:
    response = client.post("/unit/purchases/new", data=purchase_form(*lines, **overrides))
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def submitted(client_as, *lines: tuple[int, int]) -> int:
    coordinator = client_as("coordinator")
    purchase_id = draft(coordinator, *lines)
    assert coordinator.post(f"/unit/purchases/{purchase_id}/submit").status_code == 303
    return purchase_id


def approved(client_as, *lines: tuple[int, int]) -> int:
    purchase_id = submitted(client_as, *lines)
    assert client_as("approver").post(f"/unit/purchases/{purchase_id}/approve").status_code == 303
    return purchase_id


def status_of(app, purchase_id: int) -> PurchaseStatus:
    with app.app_context():
        return db.session.get(UnitPurchase, purchase_id).status


def orders_of(app, purchase_id: int) -> list[Order]:
    with app.app_context():
        found = db.session.scalars(
            select(Order)
            .join(UnitPurchaseOrder, UnitPurchaseOrder.order_id == Order.id)
            .where(UnitPurchaseOrder.purchase_id == purchase_id)
            .order_by(Order.id)
        ).all()
        for order in found:
            _ = order.lines, order.shipments  # loaded while the session is open
        db.session.expunge_all()
        return list(found)


def order_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Order))


def add_member(app, world, name: str, email: str, role: UnitRole, unit: str = "unit") -> int:
    with app.app_context():
        from market.directory.models import Unit

        user = factories.make_user(name, email)
        factories.add_unit_member(user, db.session.get(Unit, getattr(world, unit)), role)
        db.session.commit()
        return user.id


# -- drafting, approving, rejecting ---------------------------------------------------------------
def test_approval_makes_one_order_per_coop_and_takes_the_stock_then(app, client_as, world):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    coordinator = client_as("coordinator")
    form = coordinator.get("/unit/purchases/new").get_data(as_text=True)
    # The unit's paired village's products are offered first.
    assert form.index("【结对村】古丁村 · 原生态蜂蜜") < form.index("柏桥村 · 白糖罂荔枝")

    purchase_id = draft(coordinator, (honey, 20), (lychee, 5))
    assert stock_of(app, honey) == 50
    coordinator.post(f"/unit/purchases/{purchase_id}/submit")
    assert status_of(app, purchase_id) == PurchaseStatus.SUBMITTED
    assert stock_of(app, honey) == 50 and order_count(app) == 0

    page = client_as("approver").get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    assert "批准" in page and "驳回" in page
    response = client_as("approver").post(f"/unit/purchases/{purchase_id}/approve")
    assert response.status_code == 303

    assert status_of(app, purchase_id) == PurchaseStatus.APPROVED
    assert stock_of(app, honey) == 30 and stock_of(app, lychee) == 45
    orders = orders_of(app, purchase_id)
    assert len(orders) == 2
    assert {o.mode for o in orders} == {OrderMode.UNIT_PURCHASE}
    assert {o.unit_id for o in orders} == {world.unit}
    assert {o.status for o in orders} == {OrderStatus.PENDING_PAYMENT}
    assert sorted(o.total_fen for o in orders) == [5 * 8900, 20 * 8800]
    assert {o.shipments[0].coop_id for o in orders} == {world.coop, world.other_coop}
    assert all(o.expires_at is None for o in orders)  # a unit's transfer takes days, not minutes

    page = coordinator.get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    for step in ("起草采购单", "提交审批", "批准，生成 2 张订单"):
        assert step in page
    assert all(o.number in page for o in orders)
    assert "已批准" in page


def test_empty_rows_are_ignored_and_the_same_product_twice_adds_up(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = draft(client_as("coordinator"), (honey, 3), (0, ""), (honey, 4))
    with app.app_context():
        lines = db.session.get(UnitPurchase, purchase_id).lines
        assert [(line.sku_id, line.quantity) for line in lines] == [(honey, 7)]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"invoice_tax_id": ""}, "该字段是必填字段"),
        ({"invoice_tax_id": "12-34"}, "税号应为 15 到 20 位字母或数字"),
        ({"lines-0-sku_id": "0"}, "请至少选择一个商品"),
        ({"lines-0-quantity": ""}, "请填写数量"),
        ({"lines-0-quantity": "0"}, "数量应在 1 到 9999 之间"),
    ],
)
def test_bad_purchase_forms_are_refused_and_nothing_is_drafted(
    app, client_as, world, overrides, message
):
    honey = sku_of(app, world.honey_product)
    response = client_as("coordinator").post(
        "/unit/purchases/new", data=purchase_form((honey, 3), **overrides)
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UnitPurchase)) == 0


def test_quantities_beyond_stock_name_what_is_available_and_change_nothing(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    coordinator = client_as("coordinator")
    response = coordinator.post("/unit/purchases/new", data=purchase_form((honey, 51)))
    assert response.status_code == 400
    assert "原生态蜂蜜（500g）库存只有 50 件" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UnitPurchase)) == 0

    # Enough when drafted, but others bought in the meantime: approval says what is left.
    purchase_id = submitted(client_as, (honey, 40))
    with app.app_context():
        from market.catalog.models import Sku

        db.session.get(Sku, honey).stock = 30
        db.session.commit()
    approver = client_as("approver")
    response = approver.post(f"/unit/purchases/{purchase_id}/approve", follow_redirects=True)
    assert "库存只有 30 件" in response.get_data(as_text=True)
    assert status_of(app, purchase_id) == PurchaseStatus.SUBMITTED
    assert stock_of(app, honey) == 30 and order_count(app) == 0


def test_only_the_units_approver_approves(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = submitted(client_as, (honey, 5))
    outsider_approver = add_member(
        app, world, "外单位审批", "other-approver@example.com", UnitRole.APPROVER, "other_unit"
    )
    url = f"/unit/purchases/{purchase_id}/approve"
    assert client_as("coordinator").post(url).status_code == 403
    assert client_as("employee").post(url).status_code == 403
    assert client_as("coop_manager").post(url).status_code == 403
    assert client_as("other_coordinator").post(url).status_code == 403
    assert factories.signed_in_client(app, outsider_approver).post(url).status_code == 404
    reject = f"/unit/purchases/{purchase_id}/reject"
    assert client_as("coordinator").post(reject, data={"reason": "x"}).status_code == 403
    assert status_of(app, purchase_id) == PurchaseStatus.SUBMITTED
    assert order_count(app) == 0 and stock_of(app, honey) == 50


def test_a_coordinator_cannot_approve_their_own_purchase(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = submitted(client_as, (honey, 5))
    page = client_as("coordinator").get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    assert "/approve" not in page and "等待本单位审批人审批" in page
    # Even made an approver later, the person who drafted it may not approve it.
    with app.app_context():
        membership = db.session.scalar(
            select(UnitMembership).where(UnitMembership.user_id == world.coordinator)
        )
        membership.role = UnitRole.APPROVER
        db.session.commit()
    drafter = client_as("coordinator")
    assert "/approve" not in drafter.get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    response = drafter.post(f"/unit/purchases/{purchase_id}/approve")
    assert response.status_code == 403
    assert "不能审批自己起草的采购单" in response.get_data(as_text=True)
    assert status_of(app, purchase_id) == PurchaseStatus.SUBMITTED and order_count(app) == 0


def test_a_coordinator_of_another_unit_sees_nothing(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = approved(client_as, (honey, 5))
    order = orders_of(app, purchase_id)[0]
    other = client_as("other_coordinator")
    assert "采购单 #" not in other.get("/unit/purchases").get_data(as_text=True)
    base = f"/unit/purchases/{purchase_id}"
    for url in (
        base,
        f"{base}/edit",
        f"{base}/orders/{order.id}/purchase-order",
        f"{base}/orders/{order.id}/delivery-note",
    ):
        assert other.get(url).status_code == 404, url
    assert other.post(f"{base}/submit").status_code == 404
    assert other.post(f"{base}/transfer").status_code == 404
    assert other.post(f"{base}/edit", data=purchase_form((honey, 1))).status_code == 404
    # People without a unit role do not get the pages at all.
    assert client_as("employee").get(base).status_code == 403
    assert client_as("buyer").get("/unit/purchases").status_code == 403


def test_a_rejected_purchase_creates_no_order_and_takes_no_stock(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = submitted(client_as, (honey, 10))
    approver = client_as("approver")
    response = approver.post(f"/unit/purchases/{purchase_id}/reject", data={"reason": ""})
    assert response.status_code == 303
    assert status_of(app, purchase_id) == PurchaseStatus.SUBMITTED  # a reason is needed

    approver.post(f"/unit/purchases/{purchase_id}/reject", data={"reason": "数量太多，减半"})
    assert status_of(app, purchase_id) == PurchaseStatus.REJECTED
    assert order_count(app) == 0 and stock_of(app, honey) == 50
    coordinator = client_as("coordinator")
    page = coordinator.get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    assert "驳回原因：数量太多，减半" in page and "驳回：数量太多，减半" in page
    # Approving a rejected purchase changes nothing.
    page = approver.post(f"/unit/purchases/{purchase_id}/approve", follow_redirects=True)
    assert "该采购单已审批过" in page.get_data(as_text=True)
    assert order_count(app) == 0

    # The coordinator revises and submits again; then it can be approved.
    edit = coordinator.get(f"/unit/purchases/{purchase_id}/edit").get_data(as_text=True)
    assert TAX_ID in edit and "数量太多，减半" in edit
    response = coordinator.post(
        f"/unit/purchases/{purchase_id}/edit", data=purchase_form((honey, 5))
    )
    assert response.status_code == 303
    assert status_of(app, purchase_id) == PurchaseStatus.DRAFT
    coordinator.post(f"/unit/purchases/{purchase_id}/submit")
    approver.post(f"/unit/purchases/{purchase_id}/approve")
    assert status_of(app, purchase_id) == PurchaseStatus.APPROVED
    assert stock_of(app, honey) == 45


def test_an_approved_purchase_cannot_be_edited_or_submitted_again(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = approved(client_as, (honey, 5))
    coordinator = client_as("coordinator")
    response = coordinator.get(f"/unit/purchases/{purchase_id}/edit", follow_redirects=True)
    assert "只有草稿或被驳回的采购单可以修改" in response.get_data(as_text=True)
    response = coordinator.post(f"/unit/purchases/{purchase_id}/submit", follow_redirects=True)
    assert "不能改为" in response.get_data(as_text=True)
    assert len(orders_of(app, purchase_id)) == 1


def test_two_approvals_at_once_make_one_set_of_orders(app, client_as, world):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    purchase_id = submitted(client_as, (honey, 10), (lychee, 4))
    second = add_member(app, world, "第二审批", "approver2@example.com", UnitRole.APPROVER)
    clients = [client_as("approver"), factories.signed_in_client(app, second)]
    start = threading.Barrier(len(clients))
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def approve(client) -> None:
        start.wait()
        response = client.post(f"/unit/purchases/{purchase_id}/approve", follow_redirects=True)
        with lock:
            results.append((response.status_code, response.get_data(as_text=True)))

    threads = [threading.Thread(target=approve, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(status for status, _page in results) == [200, 200]
    pages = [page for _status, page in results]
    assert sum("已批准，已按合作社生成订单" in page for page in pages) == 1
    assert sum("该采购单已审批过" in page for page in pages) == 1
    assert status_of(app, purchase_id) == PurchaseStatus.APPROVED
    assert len(orders_of(app, purchase_id)) == 2 and order_count(app) == 2
    assert stock_of(app, honey) == 40 and stock_of(app, lychee) == 46


# -- paying -------------------------------------------------------------------------------------
def confirm(client, number: str, proof: bytes | None = None, **overrides):
    data = {"reference": "BANK-2024-0001", "transfer_date": date.today().isoformat()}
    if proof is not None:
        data["proof"] = (io.BytesIO(proof), "回单.jpg")
    data.update(overrides)
    return client.post(
        f"/orders/{number}/transfer-received", data=data, content_type="multipart/form-data"
    )


def test_bank_transfer_confirmed_with_a_proof_pays_the_orders(app, client_as, world, movements):
    honey, lychee = sku_of(app, world.honey_product), sku_of(app, world.lychee)
    purchase_id = approved(client_as, (honey, 10), (lychee, 2))
    coordinator = client_as("coordinator")
    page = coordinator.get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    assert "对公转账付款" in page and "transfer-instructions" not in page

    response = coordinator.post(f"/unit/purchases/{purchase_id}/transfer", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "transfer-instructions" in page
    assert app.config["BANK_ACCOUNT_NUMBER"] in page
    orders = orders_of(app, purchase_id)
    assert all(order.number in page for order in orders)

    finance = client_as("finance")
    receipts = finance.get("/finance/receipts").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in receipts and 'name="proof"' in receipts
    for order in orders:
        response = confirm(finance, order.number, factories.image_bytes())
        assert response.status_code == 303

    with app.app_context():
        for order in orders:
            fresh = db.session.get(Order, order.id)
            assert fresh.status == OrderStatus.PAID and fresh.paid_fen == fresh.total_fen
            payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id))
            assert payment.provider == "offline" and payment.status == PaymentStatus.SUCCEEDED
            assert payment.transfer_reference == "BANK-2024-0001"
            assert payment.proof_path and payment.proof_path.startswith("transfers/")
    assert sorted(m.amount_fen for m in movements) == sorted(o.total_fen for o in orders)
    for movement in movements:
        order = next(o for o in orders if o.id == movement.order_id)
        assert [(m.order_line_id, m.amount_fen) for m in movement.lines] == [
            (line.id, line.amount_fen) for line in order.lines
        ]

    page = coordinator.get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    assert page.count("已付款") >= 2 and "对公转账付款" not in page


def test_a_proof_that_is_not_an_image_is_refused_and_nothing_is_paid(
    app, client_as, world, movements
):
    honey = sku_of(app, world.honey_product)
    purchase_id = approved(client_as, (honey, 3))
    client_as("coordinator").post(f"/unit/purchases/{purchase_id}/transfer")
    order = orders_of(app, purchase_id)[0]
    response = confirm(client_as("finance"), order.number, b"%PDF-1.4 not an image")
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Order, order.id).status == OrderStatus.PENDING_PAYMENT
        payment = db.session.scalar(select(Payment).where(Payment.order_id == order.id))
        assert payment.status == PaymentStatus.PENDING and payment.proof_path is None
    assert movements == []


def test_the_refusal_of_a_bad_proof_is_shown(app, client_as, world):
    honey = sku_of(app, world.honey_product)
    purchase_id = approved(client_as, (honey, 3))
    client_as("coordinator").post(f"/unit/purchases/{purchase_id}/transfer")
    order = orders_of(app, purchase_id)[0]
    finance = client_as("finance")
    confirm(finance, order.number, b"not an image at all")
    page = finance.get("/finance/receipts").get_data(as_text=True)
    assert "文件不是有效的图片" in page


def test_the_co_op_sees_the_order_on_approval_and_finance_confirms_the_transfer(
    app, client_as, world
):
    honey = sku_of(app, world.honey_product)
    purchase_id = approved(client_as, (honey, 6))
    order = orders_of(app, purchase_id)[0]
    manager = client_as("coop_manager")
    inbox = manager.get("/coop/orders?tab=awaiting").get_data(as_text=True)
    assert order.number in inbox and "以买代帮" in inbox and "送货单" in inbox
    assert order.number not in client_as("other_coop_manager").get(
        "/coop/orders?tab=awaiting"
    ).get_data(as_text=True)

    client_as("coordinator").post(f"/unit/purchases/{purchase_id}/transfer")
    # The co-op is told the money is awaited, but only finance books it.
    assert "待财务确认到账" in manager.get("/coop/orders?tab=awaiting").get_data(as_text=True)
    assert confirm(manager, order.number).status_code == 403
    assert confirm(client_as("finance"), order.number).status_code == 303
    with app.app_context():
        assert db.session.get(Order, order.id).status == OrderStatus.PAID
    assert order.number in manager.get("/coop/orders?tab=to_ship").get_data(as_text=True)


def test_paying_online_goes_to_the_orders_payment_page(app, client_as, world, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_cards_on")  # the shop takes cards
    honey = sku_of(app, world.honey_product)
    coordinator = client_as("coordinator")
    purchase_id = draft(coordinator, (honey, 2), pay_online="y")
    coordinator.post(f"/unit/purchases/{purchase_id}/submit")
    client_as("approver").post(f"/unit/purchases/{purchase_id}/approve")
    order = orders_of(app, purchase_id)[0]
    page = coordinator.get(f"/unit/purchases/{purchase_id}").get_data(as_text=True)
    assert f"/orders/{order.number}/pay" in page and "在线支付" in page
    assert coordinator.get(f"/orders/{order.number}/pay").status_code == 200


# -- overview and documents ---------------------------------------------------------------------
def test_the_overview_shows_amounts_by_status_and_the_target_progress(app, client_as, world):
    honey, herb = sku_of(app, world.honey_product), sku_of(app, world.herb_product)
    coordinator = client_as("coordinator")
    draft(coordinator, (herb, 2))  # ¥50 draft
    submitted(client_as, (herb, 4))  # ¥100 waiting
    paid_id = approved(client_as, (honey, 5))  # ¥440, then paid
    coordinator.post(f"/unit/purchases/{paid_id}/transfer")
    confirm(client_as("finance"), orders_of(app, paid_id)[0].number)

    response = coordinator.post("/unit/purchases/target", data={"amount": "-100"})
    assert response.status_code == 303
    with app.app_context():
        from market.procurement.models import PurchaseTarget

        assert db.session.scalar(select(func.count()).select_from(PurchaseTarget)) == 0
    coordinator.post("/unit/purchases/target", data={"amount": "1000"})

    page = coordinator.get("/unit/purchases").get_data(as_text=True)
    assert "¥440.00 / 目标 ¥1,000.00" in page
    assert 'style="width: 44%"' in page
    summary = page[page.index('id="purchase-summary"') :]
    assert '<tr data-status="draft"><td>草稿</td><td class="text-end">1</td>' in summary
    assert "¥50.00" in summary and "¥100.00" in summary and "¥440.00" in summary
    # The approver sees the same overview, but sets no target and drafts nothing.
    page = client_as("approver").get("/unit/purchases").get_data(as_text=True)
    assert "¥440.00 / 目标 ¥1,000.00" in page
    assert "target-form" not in page and "new-purchase" not in page
    assert (
        client_as("approver").post("/unit/purchases/target", data={"amount": "5"}).status_code
        == 403
    )


def test_printable_purchase_order_and_delivery_note(app, client_as, world):
    honey, herb = sku_of(app, world.honey_product), sku_of(app, world.herb_product)
    purchase_id = approved(client_as, (honey, 12), (herb, 30))
    order = orders_of(app, purchase_id)[0]
    base = f"/unit/purchases/{purchase_id}/orders/{order.id}"
    for client in (client_as("coordinator"), client_as("approver")):
        for kind, title in (("purchase-order", "采购单"), ("delivery-note", "送货单")):
            page = client.get(f"{base}/{kind}").get_data(as_text=True)
            assert f'<h1 class="h4">{title}</h1>' in page
            assert "高州市市场监管局" in page and TAX_ID in page
            assert "原生态蜂蜜" in page and "藿香" in page
            assert "¥1,056.00" in page and "¥750.00" in page and "¥1,806.00" in page
            assert "古丁南药合作社" in page

    # The co-op reaches its own copy; another co-op is refused.
    manager = client_as("coop_manager")
    note = manager.get(f"/coop/orders/{order.number}/delivery-note")
    assert note.status_code == 200
    assert TAX_ID in note.get_data(as_text=True) and "收货人签字" in note.get_data(as_text=True)
    assert manager.get(f"/coop/orders/{order.number}/purchase-order").status_code == 200
    other = client_as("other_coop_manager")
    assert other.get(f"/coop/orders/{order.number}/delivery-note").status_code == 403
    assert manager.get("/coop/orders/000000/delivery-note").status_code == 404
    # An order that is not this purchase's is a 404 on the unit's route.
    other_id = approved(client_as, (honey, 1))
    other_order = orders_of(app, other_id)[0]
    url = f"/unit/purchases/{purchase_id}/orders/{other_order.id}/purchase-order"
    assert client_as("coordinator").get(url).status_code == 404
