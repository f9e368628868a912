"""The audit log: every money or rights action appends exactly one event (who, in which role,
before -> after, from where), in the action's own transaction; events and the attribution
ledger are append-only (the ORM refuses, and on PostgreSQL a trigger refuses any client); the
log's page and CSV are for organizers and finance."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from market.accounts.models import User
from market.audit.models import AppendOnlyViolation, AuditEvent
from market.campaign.models import AttributionEntry
from market.extensions import db
from market.groupbuy.models import GroupBuy, Participation
from market.orders.models import Order
from market.payments import transfers
from market.payments.models import Payment, Refund
from market.settlements import services as settlements
from market.settlements.models import Statement
from tests import factories
from tests.campaign.conftest import campaign  # noqa: F401  (a campaign running today)
from tests.groupbuy.conftest import MIN_QUANTITY, TIERS, Kit
from tests.orders.conftest import buy, sku_of

SHANGHAI = ZoneInfo("Asia/Shanghai")


# -- helpers ---------------------------------------------------------------------------------------
def _last_id(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.max(AuditEvent.id))) or 0


def _events_after(app: Flask, last_id: int) -> list[SimpleNamespace]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id)
        )
        return [
            SimpleNamespace(
                id=e.id,
                action=e.action,
                actor_id=e.actor_id,
                actor_role=e.actor_role,
                object_type=e.object_type,
                object_id=e.object_id,
                before=e.before,
                after=e.after,
                ip=e.ip,
                at=e.at,
            )
            for e in rows
        ]


@contextmanager
def one_event(app: Flask, action: str) -> Iterator[SimpleNamespace]:
    """What runs inside appends exactly one event, `action`; its fields are filled in after."""
    event = SimpleNamespace()
    last = _last_id(app)
    yield event
    new = _events_after(app, last)
    assert [e.action for e in new] == [action]
    vars(event).update(vars(new[0]))


@contextmanager
def no_event(app: Flask) -> Iterator[None]:
    last = _last_id(app)
    yield
    assert _events_after(app, last) == []


def _user(user_id: int) -> User:
    return db.session.get(User, user_id)


def _shanghai_today() -> date:
    return datetime.now(SHANGHAI).date()


def _order(number: str) -> Order:
    return db.session.scalar(select(Order).where(Order.number == number))


def _pay_by_transfer(client, finance, number: str):
    client.post(f"/orders/{number}/pay/offline")
    return finance.post(
        f"/orders/{number}/transfer-received",
        data={"reference": "R-1", "transfer_date": _shanghai_today().isoformat()},
    )


def _paid_order(app, client_as, world, *products: int) -> str:
    """The buyer buys one of each product and pays by a bank transfer finance confirms."""
    buyer = client_as("buyer")
    for product in products[:-1]:
        buyer.post("/cart/add", data={"sku_id": sku_of(app, product), "quantity": 1})
    number = buy(buyer, sku_of(app, products[-1]))
    assert _pay_by_transfer(buyer, client_as("finance"), number).status_code == 303
    return number


def _ship_and_receive(app, client_as, world, number: str) -> None:
    """Each co-op ships its parcel, and the buyer confirms receipt of both (due to the co-ops)."""
    managers = {world.coop: "coop_manager", world.other_coop: "other_coop_manager"}
    with app.app_context():
        shipments = [(s.id, s.coop_id) for s in _order(number).shipments]
    for shipment_id, coop_id in shipments:
        response = client_as(managers[coop_id]).post(
            f"/coop/shipments/{shipment_id}/ship",
            data={"carrier": "中国邮政", "tracking_number": "9876"},
        )
        assert response.status_code == 303
        response = client_as("buyer").post(f"/orders/{number}/shipments/{shipment_id}/received")
        assert response.status_code == 302


# -- money -----------------------------------------------------------------------------------------
def test_a_confirmed_bank_transfer_is_audited(app, client_as, world):
    buyer = client_as("buyer")
    number = buy(buyer, sku_of(app, world.honey_product))
    buyer.post(f"/orders/{number}/pay/offline")
    with one_event(app, "transfer.confirmed") as event:
        response = client_as("finance").post(
            f"/orders/{number}/transfer-received",
            data={"reference": "ABC-001", "transfer_date": _shanghai_today().isoformat()},
        )
        assert response.status_code == 303
    assert (event.actor_id, event.actor_role, event.object_type) == (
        world.finance,
        "finance",
        "Payment",
    )
    assert event.before == {"status": "pending", "received_fen": 0}
    assert event.after["status"] == "succeeded" and event.after["received_fen"] == 8800
    assert (event.after["order"], event.after["reference"]) == (number, "ABC-001")
    assert event.ip == "127.0.0.1"


def test_a_refund_decided_by_the_coop_and_sent_by_finance_is_audited(app, client_as, world):
    number = _paid_order(app, client_as, world, world.honey_product)
    with app.app_context():
        line_id = _order(number).lines[0].id
    with one_event(app, "refund.decided") as decided:
        response = client_as("coop_manager").post(
            f"/coop/lines/{line_id}/refund", data={"amount": "10", "reason": "破损"}
        )
        assert response.status_code in (302, 303)
    assert (decided.actor_id, decided.actor_role, decided.object_type) == (
        world.coop_manager,
        "coop",
        "Refund",
    )
    assert decided.after == {
        "status": "pending",  # a transfer is refunded by finance: owed until sent
        "amount_fen": 1000,
        "order": number,
        "reason": "破损",
    }

    with one_event(app, "refund.sent") as sent, app.test_request_context():
        transfers.send_refund(_user(world.finance), int(decided.object_id), "REF", date.today())
    assert (sent.actor_id, sent.actor_role, sent.object_id) == (
        world.finance,
        "finance",
        decided.object_id,
    )
    assert sent.before == {"status": "pending"}
    assert sent.after == {"status": "succeeded", "amount_fen": 1000, "reference": "REF"}
    with app.app_context():
        assert db.session.get(Refund, int(sent.object_id)).sent_reference == "REF"


def test_statements_issued_confirmed_disputed_and_paid_are_audited(app, client_as, world):
    number = _paid_order(app, client_as, world, world.honey_product, world.lychee)
    _ship_and_receive(app, client_as, world, number)
    today = _shanghai_today()

    last = _last_id(app)
    with app.test_request_context():
        issued = settlements.issue_statements(today, _user(world.finance))
        ids = {s.coop_id: s.id for s in issued}
    new = _events_after(app, last)
    assert [e.action for e in new] == ["statement.issued", "statement.issued"]  # one each
    assert {int(e.object_id) for e in new} == set(ids.values())
    honey_issued = next(e for e in new if int(e.object_id) == ids[world.coop])
    assert (honey_issued.actor_id, honey_issued.actor_role) == (world.finance, "finance")
    assert honey_issued.after["payable_fen"] == 8800
    assert honey_issued.after["coop_id"] == world.coop

    with one_event(app, "statement.confirmed") as confirmed, app.test_request_context():
        settlements.confirm_statement(_user(world.coop_manager), ids[world.coop])
    assert (confirmed.actor_id, confirmed.actor_role) == (world.coop_manager, "coop")
    assert (confirmed.before, confirmed.after) == ({"status": "issued"}, {"status": "confirmed"})

    with one_event(app, "statement.disputed") as disputed, app.test_request_context():
        settlements.dispute_statement(
            _user(world.other_coop_manager), ids[world.other_coop], "少算了一箱"
        )
    assert (disputed.actor_id, disputed.actor_role) == (world.other_coop_manager, "coop")
    assert disputed.before == {"status": "issued"}
    assert disputed.after == {"status": "disputed", "reason": "少算了一箱"}

    with one_event(app, "payout.recorded") as paid, app.test_request_context():
        settlements.record_payout(_user(world.finance), ids[world.coop], "P1", date.today())
    assert (paid.actor_id, paid.actor_role, paid.object_type) == (
        world.finance,
        "finance",
        "Payout",
    )
    assert paid.after["amount_fen"] == 8800 and paid.after["reference"] == "P1"
    with app.app_context():
        assert db.session.get(Statement, ids[world.coop]).status.value == "paid"


def test_cash_received_at_pickup_and_handed_over_is_audited(app, client_as, world):
    kit = Kit(app, world)
    group_buy_id = kit.open()
    (member,) = kit.members(1)
    participation_id = kit.join(member, group_buy_id, MIN_QUANTITY)
    assert kit.close(group_buy_id) is True
    kit.ship_and_arrive(group_buy_id)  # pickups start when the co-op's parcel is there
    amount = MIN_QUANTITY * TIERS[0].price_fen

    with one_event(app, "cash.received") as received:
        response = client_as("coordinator").post(
            f"/unit/group-buys/{group_buy_id}/pickups/{participation_id}"
        )
        assert response.status_code == 303
    with app.app_context():
        order_id = db.session.get(Participation, participation_id).order_id
        payment_id = db.session.scalar(select(Payment.id).where(Payment.order_id == order_id))
    assert (received.actor_id, received.actor_role) == (world.coordinator, "coordinator")
    assert (received.object_type, received.object_id) == ("Payment", str(payment_id))
    assert received.before["received_fen"] == 0
    assert received.after["amount_fen"] == received.after["received_fen"] == amount
    assert received.after["holder_id"] == world.coordinator
    assert received.after["status"] == "succeeded"

    with one_event(app, "cash.handed_over") as handed, app.test_request_context():
        transfers.confirm_cash_handover(_user(world.finance), world.coordinator, amount, "HO-1")
    assert (handed.actor_id, handed.actor_role) == (world.finance, "finance")
    assert (handed.object_type, handed.object_id) == ("User", str(world.coordinator))
    assert handed.before == {"outstanding_fen": amount}
    assert handed.after == {"outstanding_fen": 0, "payments": 1, "reference": "HO-1"}
    with app.app_context():
        assert db.session.get(Payment, payment_id).cash_handover_reference == "HO-1"


# -- prices and stock ------------------------------------------------------------------------------
def test_price_and_stock_changes_are_audited_only_when_they_change(app, client_as, world):
    manager = client_as("coop_manager")
    sku_id = sku_of(app, world.honey_product)
    with one_event(app, "sku.price_changed") as price:
        response = manager.post(
            f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "92.5", "active": "y"}
        )
        assert response.status_code == 302
    assert (price.actor_id, price.actor_role, price.object_type) == (
        world.coop_manager,
        "coop",
        "Sku",
    )
    assert price.object_id == str(sku_id)
    assert price.before == {"price_fen": 8800}
    assert price.after == {"price_fen": 9250, "product": "原生态蜂蜜", "spec": "500g"}

    with no_event(app):  # the same price again, a new spec: no price change
        manager.post(f"/coop/skus/{sku_id}", data={"spec": "500克", "price": "92.5", "active": "y"})

    with one_event(app, "sku.stock_adjusted") as stock:
        assert manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": "25"}).status_code == 302
    assert (stock.actor_id, stock.actor_role) == (world.coop_manager, "coop")
    assert stock.before == {"stock": 50}
    assert stock.after == {"stock": 75, "delta": 25, "product": "原生态蜂蜜", "spec": "500克"}
    with one_event(app, "sku.stock_adjusted") as taken:
        manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": "-70"})
    assert (taken.before["stock"], taken.after["stock"], taken.after["delta"]) == (75, 5, -70)

    with no_event(app):  # refused: stock would go below zero
        assert manager.post(f"/coop/skus/{sku_id}/stock", data={"delta": "-6"}).status_code == 400

    with one_event(app, "sku.added") as added:
        response = manager.post(
            f"/coop/products/{world.honey_product}/skus",
            data={"spec": "1kg礼盒", "price": "168", "stock": "20"},
        )
        assert response.status_code == 302
    assert added.before is None
    assert added.after == {
        "price_fen": 16800,
        "stock": 20,
        "product": "原生态蜂蜜",
        "spec": "1kg礼盒",
    }


# -- rights ----------------------------------------------------------------------------------------
def test_role_appointments_and_removals_are_audited(app, client_as, world):
    organizer = client_as("organizer")
    with one_event(app, "role.flags") as flags:
        organizer.post(f"/admin/users/{world.buyer}/flags", data={"flags-is_finance": "y"})
    assert (flags.actor_id, flags.actor_role) == (world.organizer, "organizer")
    assert (flags.object_type, flags.object_id) == ("User", str(world.buyer))
    assert flags.before == {"is_organizer": False, "is_admin": False, "is_finance": False}
    assert flags.after == {"is_organizer": False, "is_admin": False, "is_finance": True}

    with one_event(app, "role.flags") as removed:
        organizer.post(f"/admin/users/{world.buyer}/flags", data={})
    assert (removed.before["is_finance"], removed.after["is_finance"]) == (True, False)

    with one_event(app, "role.unit") as unit:
        organizer.post(
            f"/admin/users/{world.buyer}/unit",
            data={"unit-unit_id": world.other_unit, "unit-role": "approver"},
        )
    assert unit.before is None
    assert unit.after == {"unit_id": world.other_unit, "role": "approver", "status": "confirmed"}

    with one_event(app, "role.coop") as coop:
        organizer.post(
            f"/admin/users/{world.buyer}/coop",
            data={"coop-coop_id": world.coop, "coop-role": "manager"},
        )
    assert (coop.before, coop.after) == (
        {"coop_id": world.coop, "role": None},
        {"coop_id": world.coop, "role": "manager"},
    )
    with one_event(app, "role.coop") as fired:
        organizer.post(
            f"/admin/users/{world.buyer}/coop", data={"coop-coop_id": world.coop, "coop-role": ""}
        )
    assert (fired.before["role"], fired.after["role"]) == ("manager", None)
    assert fired.actor_id == world.organizer


# -- targets, pairings, group-buys -----------------------------------------------------------------
def _upload_targets(client, campaign_id: int, content: str):
    return client.post(
        f"/admin/campaigns/{campaign_id}/targets/import",
        data={"sheet": (io.BytesIO(content.encode()), "targets.csv")},
        content_type="multipart/form-data",
    )


def test_target_changes_are_audited(app, client_as, world, campaign):  # noqa: F811
    organizer = client_as("organizer")
    url = f"/admin/campaigns/{campaign.id}/targets"
    with one_event(app, "target.set") as first:
        assert (
            organizer.post(url, data={"unit_id": world.unit, "amount": "30000"}).status_code == 303
        )
    assert (first.actor_id, first.actor_role) == (world.organizer, "organizer")
    assert (first.object_type, first.object_id) == ("Campaign", str(campaign.id))
    assert first.before == {"unit": "高州市市场监管局", "amount_fen": None}
    assert first.after == {"unit": "高州市市场监管局", "amount_fen": 3_000_000}

    with one_event(app, "target.set") as changed:
        organizer.post(url, data={"unit_id": world.unit, "amount": "35000.50"})
    assert (changed.before["amount_fen"], changed.after["amount_fen"]) == (3_000_000, 3_500_050)
    with no_event(app):  # the same amount again
        organizer.post(url, data={"unit_id": world.unit, "amount": "35000.50"})

    # One event for the default, however many units it reaches (it says how many).
    with one_event(app, "target.default_set") as default:
        organizer.post(f"{url}/default", data={"amount": "20000", "replace_existing": "y"})
    assert default.before == {"with_target": 1}
    assert default.after == {
        "amount_fen": 2_000_000,
        "replace_existing": True,
        "created": 1,
        "replaced": 1,
    }

    with one_event(app, "target.imported") as imported:
        response = _upload_targets(
            organizer, campaign.id, "高州市市场监管局,20000\n高州市委办,8000\n"
        )
        assert response.status_code == 303
    assert imported.after == {"created": 0, "updated": 1, "unchanged": 1}
    assert imported.actor_id == world.organizer

    with one_event(app, "target.set") as cleared:
        organizer.post(url, data={"unit_id": world.unit, "amount": ""})
    assert (cleared.before["amount_fen"], cleared.after["amount_fen"]) == (2_000_000, None)


def test_pairing_changes_are_audited(app, client_as, world):
    organizer = client_as("organizer")
    with one_event(app, "pairing.created") as created:
        response = organizer.post(
            "/admin/pairings/new",
            data={"unit_id": world.other_unit, "village_id": world.village, "since": "2025-01-01"},
        )
        assert response.status_code == 302
    assert (created.actor_id, created.actor_role, created.object_type) == (
        world.organizer,
        "organizer",
        "Pairing",
    )
    assert created.before is None
    assert created.after == {
        "unit": "高州市委办",
        "village": "古丁村",
        "since": "2025-01-01",
        "until": None,
        "note": "",
    }
    pairing_id = int(created.object_id)

    with one_event(app, "pairing.changed") as changed:
        organizer.post(
            f"/admin/pairings/{pairing_id}/edit",
            data={
                "unit_id": world.other_unit,
                "village_id": world.village,
                "since": "2025-01-01",
                "until": "2025-12-31",
            },
        )
    assert (changed.before["until"], changed.after["until"]) == (None, "2025-12-31")
    with no_event(app):  # saved again unchanged
        organizer.post(
            f"/admin/pairings/{pairing_id}/edit",
            data={
                "unit_id": world.other_unit,
                "village_id": world.village,
                "since": "2025-01-01",
                "until": "2025-12-31",
            },
        )

    roster = "unit,town,village,since,until,note\n高州市委办,古丁镇,古丁村,2026-01-01,,新一年\n"
    with one_event(app, "pairing.imported") as imported:
        response = organizer.post(
            "/admin/pairings/import",
            data={"roster": (io.BytesIO(roster.encode()), "roster.csv")},
            content_type="multipart/form-data",
        )
        assert response.status_code == 302
    assert imported.actor_id == world.organizer
    assert imported.after == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "units_created": 0,
        "villages_created": 0,
    }


def test_a_group_buy_extension_is_audited(app, client_as, world):
    kit = Kit(app, world)
    group_buy_id = kit.open()
    old = kit.closes_at(group_buy_id)
    later = (old + timedelta(days=2)).replace(second=0, microsecond=0)
    with one_event(app, "groupbuy.extended") as extended:
        response = client_as("coordinator").post(
            f"/unit/group-buys/{group_buy_id}/extend",
            data={"closes_at": later.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")},
        )
        assert response.status_code == 303
    assert (extended.actor_id, extended.actor_role) == (world.coordinator, "coordinator")
    assert (extended.object_type, extended.object_id) == ("GroupBuy", str(group_buy_id))
    assert datetime.fromisoformat(extended.before["closes_at"]) == old
    assert datetime.fromisoformat(extended.after["closes_at"]) == later
    with app.app_context():
        assert db.session.get(GroupBuy, group_buy_id).closes_at == later


# -- append-only -----------------------------------------------------------------------------------
def _ledger_entry(app, client_as, world) -> int:
    _paid_order(app, client_as, world, world.honey_product)
    with app.app_context():
        entry_id = db.session.scalar(select(func.min(AttributionEntry.id)))
    assert entry_id is not None
    return entry_id


def _an_event(app, client_as, world) -> int:
    with one_event(app, "role.flags") as event:
        client_as("organizer").post(
            f"/admin/users/{world.buyer}/flags", data={"flags-is_finance": "y"}
        )
    return event.id


def test_the_orm_refuses_to_change_or_delete_events_and_ledger_entries(
    app,
    client_as,
    world,
    campaign,  # noqa: F811
):
    event_id = _an_event(app, client_as, world)
    entry_id = _ledger_entry(app, client_as, world)
    with app.app_context():
        event = db.session.get(AuditEvent, event_id)
        event.action = "role.nothing"
        with pytest.raises(AppendOnlyViolation):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.get(AuditEvent, event_id))
        with pytest.raises(AppendOnlyViolation):
            db.session.commit()
        db.session.rollback()

        entry = db.session.get(AttributionEntry, entry_id)
        entry.amount_fen = 1
        with pytest.raises(AppendOnlyViolation):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.get(AttributionEntry, entry_id))
        with pytest.raises(AppendOnlyViolation):
            db.session.flush()
        db.session.rollback()
    with app.app_context():
        assert db.session.get(AuditEvent, event_id).action == "role.flags"
        assert db.session.get(AttributionEntry, entry_id).amount_fen == 8800


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'x'",
        "DELETE FROM audit_events",
        "UPDATE attribution_entries SET amount_fen = 0",
        "DELETE FROM attribution_entries",
    ],
)
def test_postgresql_refuses_any_update_or_delete(
    app,
    client_as,
    world,
    campaign,  # noqa: F811
    statement,
):
    event_id = _an_event(app, client_as, world)
    entry_id = _ledger_entry(app, client_as, world)
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(AuditEvent))
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
        # Straight through the driver, outside the ORM's guard, too.
        with db.engine.connect() as connection, pytest.raises(DBAPIError, match="refused"):
            connection.execute(text(statement))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == events
        assert db.session.get(AuditEvent, event_id).action == "role.flags"
        assert db.session.get(AttributionEntry, entry_id).amount_fen == 8800


# -- the page and the export -----------------------------------------------------------------------
def _some_events(app, client_as, world) -> None:
    """A price change by the co-op manager and a role appointment by the organizer."""
    sku_id = sku_of(app, world.honey_product)
    client_as("coop_manager").post(
        f"/coop/skus/{sku_id}", data={"spec": "500g", "price": "92.5", "active": "y"}
    )
    client_as("organizer").post(f"/admin/users/{world.buyer}/flags", data={"flags-is_finance": "y"})


def _rows(page: str) -> list[str]:
    """The events shown, top to bottom, each row's HTML."""
    body = page.split('id="audit-table"', 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr data-event=")[1:]


@pytest.mark.parametrize("role", ["finance", "organizer", "admin"])
def test_organizers_and_finance_read_the_log_newest_first(app, client_as, world, role):
    _some_events(app, client_as, world)
    response = client_as(role).get("/admin/audit")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    rows = _rows(page)
    assert len(rows) == 2
    assert "设置组织方/管理员/财务身份" in rows[0] and "修改价格" in rows[1]  # newest first
    assert "张组织" in rows[0] and "组织方" in rows[0] and "周买家" in rows[0]  # the object's name
    assert "财务：否 → 是" in rows[0]
    assert "黄社长" in rows[1] and "价格：¥88.00 → ¥92.50" in rows[1]
    assert "127.0.0.1" in rows[1]
    link = 'id="nav-audit"' if role == "finance" else 'href="/admin/audit"'
    assert link in page  # in the menu: finance's own, or the admin menu


def test_the_filters_narrow_the_log(app, client_as, world):
    _some_events(app, client_as, world)
    finance = client_as("finance")

    def shown(query: str) -> list[str]:
        response = finance.get(f"/admin/audit?{query}")
        assert response.status_code == 200, query
        return [
            "price" if "修改价格" in row else "flags"
            for row in _rows(response.get_data(as_text=True))
        ]

    assert shown("action=sku.price_changed") == ["price"]
    assert shown("action=role.flags") == ["flags"]
    assert shown("action=no.such") == []
    assert shown("object_type=User") == ["flags"]
    assert shown("actor=黄社长") == ["price"]
    assert shown("actor=ORGANIZER@example") == ["flags"]  # part of an email, any case
    assert shown("actor=%25") == []  # a literal %, not a wildcard
    today = _shanghai_today()
    assert shown(f"start={today}&end={today}") == ["flags", "price"]
    assert shown(f"start={today + timedelta(days=1)}") == []
    assert shown(f"end={today - timedelta(days=1)}") == []
    # Bad dates and pages are ignored, never a 500.
    for bad in ["start=2024-13-45", "end=abc", "start=0001-01-01", "end=9999-12-31", "page=x"]:
        assert shown(bad) == ["flags", "price"], bad
    assert shown("page=99999999999999999999999") == []
    page = finance.get("/admin/audit").get_data(as_text=True)
    assert '<option value="sku.price_changed"' in page and ">修改价格</option>" in page
    assert '<option value="User"' in page


def test_the_log_is_not_for_coop_managers_coordinators_or_buyers(client, client_as, world):
    for role in ["coop_manager", "coordinator", "buyer"]:
        assert client_as(role).get("/admin/audit").status_code == 403, role
        assert client_as(role).get("/admin/audit.csv").status_code == 403, role
    response = client.get("/admin/audit")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_csv_has_a_bom_chinese_headers_and_neutralised_formulas(app, client_as, world):
    with app.app_context():
        mischief = factories.make_user("=cmd|' /C calc'!A0", "mischief@example.com")
        organizer = factories.make_user("@SUM(1,2)", "organizer2@example.com", is_organizer=True)
        db.session.commit()
        mischief_id, organizer_id = mischief.id, organizer.id
    factories.signed_in_client(app, organizer_id).post(
        f"/admin/users/{mischief_id}/flags", data={"flags-is_finance": "y"}
    )
    _some_events(app, client_as, world)

    response = client_as("finance").get("/admin/audit.csv?action=role.flags")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == [
        "时间（北京时间）",
        "操作人",
        "邮箱",
        "角色",
        "操作",
        "对象",
        "对象名称",
        "变更",
        "IP",
    ]
    body = rows[1:]
    assert len(body) == 2  # the price change is filtered out
    newest, oldest = body
    assert newest[1] == "张组织" and newest[6] == "周买家"
    # The row of the appointment of "=cmd..." by "@SUM(...)": both shown as text, not run.
    assert oldest[1] == "'@SUM(1,2)"
    assert oldest[6] == "'=cmd|' /C calc'!A0"
    assert oldest[3:6] == ["组织方", "设置组织方/管理员/财务身份", f"用户 #{mischief_id}"]
    assert "财务：否 → 是" in oldest[7]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in body for cell in row)
    datetime.strptime(oldest[0], "%Y-%m-%d %H:%M:%S")  # Beijing time, to the second
