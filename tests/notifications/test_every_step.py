"""Every step of every workflow tells the people who act next: for each event, done through the
real pages or services, exactly these users get a notification of this kind linking to the page
where they act, and nobody else gets one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from market import clock
from market.accounts.models import UnitMembership, User
from market.audit.models import AuditEvent
from market.directory.models import Unit
from market.extensions import db
from market.notifications.models import Notification
from market.payments.models import Refund
from tests import factories
from tests.campaign.conftest import campaign, pay, set_targets  # noqa: F401  (fixture)
from tests.orders.conftest import buy, sku_of
from tests.procurement.test_custom import post_quote, post_request, quote_form, quote_id
from tests.procurement.test_purchases import draft, submitted
from tests.settlements.conftest import Shop, shop  # noqa: F401  (fixture)
from tests.settlements.test_settlements import delivered

Told = set[tuple[int, str, str]]  # (user id, kind, link)


class Kit:
    def __init__(self, app, world, client_as, shop):  # noqa: F811
        self.app, self.world, self.client_as, self.shop = app, world, client_as, shop
        self.got: Told = set()

    @contextmanager
    def told(self) -> Iterator[None]:
        """Collects the notifications written while the block runs into `self.got`."""
        with self.app.app_context():
            last = db.session.scalar(select(func.coalesce(func.max(Notification.id), 0)))
        yield
        with self.app.app_context():
            rows = db.session.scalars(select(Notification).where(Notification.id > last)).all()
            assert all(row.title for row in rows)
            self.got = {(row.user_id, row.kind, row.link) for row in rows}
            self.rows = [(row.user_id, row.kind, row.shown_title, row.shown_body) for row in rows]

    def newcomer(self, name: str = "新职工", email: str = "newcomer@example.com") -> int:
        with self.app.app_context():
            user = factories.make_user(name, email)
            db.session.commit()
            return user.id

    def invite_code(self) -> str:
        with self.app.app_context():
            return db.session.get(Unit, self.world.unit).invite_code

    def join(self, user_id: int) -> int:
        client = factories.signed_in_client(self.app, user_id)
        assert client.post("/account/unit", data={"invite_code": self.invite_code()}).status_code
        with self.app.app_context():
            return db.session.scalar(
                select(UnitMembership.id).where(UnitMembership.user_id == user_id)
            )

    def two_coop_order(self) -> str:
        """The buyer's one order of honey (co-op 1) and lychee (co-op 2)."""
        buyer = self.client_as("buyer")
        honey = sku_of(self.app, self.world.honey_product)
        buyer.post("/cart/add", data={"sku_id": honey, "quantity": 1})
        return buy(buyer, sku_of(self.app, self.world.lychee))


def new_request(k: Kit) -> int:
    """Unit A's coordinator asks for a custom product (delivered to the unit)."""
    response = post_request(
        k.client_as("coordinator"),
        recipient="李联络",
        phone="13800000001",
        address="高州市府前路 1 号",
    )
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


# -- the events ---------------------------------------------------------------------------------
def registered(k: Kit) -> Told:
    with k.told():
        response = k.app.test_client().post(
            "/register",
            data={
                "name": "新注册",
                "email": "fresh@example.com",
                "phone": "",
                "password": factories.PASSWORD,
                "confirm": factories.PASSWORD,
            },
        )
        assert response.status_code in (302, 303), response.get_data(as_text=True)[-2000:]
    with k.app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == "fresh@example.com"))
    return {(user_id, "account.join_unit", "/account")}


def membership_requested(k: Kit) -> Told:
    newcomer = k.newcomer()
    with k.told():
        k.join(newcomer)
    return {(k.world.coordinator, "membership.requested", "/unit/members")}


def membership_confirmed(k: Kit, decision: str = "confirm") -> Told:
    newcomer = k.newcomer()
    membership_id = k.join(newcomer)
    with k.told():
        response = k.client_as("coordinator").post(f"/unit/members/{membership_id}/{decision}")
        assert response.status_code in (302, 303)
    kind = "membership.confirmed" if decision == "confirm" else "membership.rejected"
    return {(newcomer, kind, "/account")}


def membership_rejected(k: Kit) -> Told:
    return membership_confirmed(k, "reject")


def purchase_submitted(k: Kit) -> Told:
    coordinator = k.client_as("coordinator")
    purchase_id = draft(coordinator, (sku_of(k.app, k.world.honey_product), 2))
    with k.told():
        assert coordinator.post(f"/unit/purchases/{purchase_id}/submit").status_code == 303
    return {(k.world.approver, "purchase.submitted", f"/unit/purchases/{purchase_id}")}


def purchase_approved(k: Kit) -> Told:
    purchase_id = submitted(k.client_as, (sku_of(k.app, k.world.honey_product), 2))
    with k.told():
        response = k.client_as("approver").post(f"/unit/purchases/{purchase_id}/approve")
        assert response.status_code == 303
    return {(k.world.coordinator, "purchase.approved", f"/unit/purchases/{purchase_id}")}


def purchase_rejected(k: Kit) -> Told:
    purchase_id = submitted(k.client_as, (sku_of(k.app, k.world.honey_product), 2))
    with k.told():
        response = k.client_as("approver").post(
            f"/unit/purchases/{purchase_id}/reject", data={"reason": "预算不足"}
        )
        assert response.status_code == 303
    return {(k.world.coordinator, "purchase.rejected", f"/unit/purchases/{purchase_id}")}


def custom_requested(k: Kit) -> Told:
    # Unit A is paired with 古丁村: its co-op hears first, the other co-op not yet.
    with k.told():
        new_request(k)
    return {(k.world.coop_manager, "custom.requested", "/coop/custom")}


def custom_opened_to_all(k: Kit) -> Told:
    request_id = new_request(k)
    with k.told():
        response = k.client_as("coordinator").post(f"/unit/custom/{request_id}/open")
        assert response.status_code in (302, 303)
    return {(k.world.other_coop_manager, "custom.requested", "/coop/custom")}


def quote_received(k: Kit) -> Told:
    request_id = new_request(k)
    with k.told():
        response = post_quote(k.client_as("coop_manager"), request_id, quote_form(k.world.coop))
        assert response.status_code in (302, 303)
    return {(k.world.coordinator, "custom.quoted", f"/unit/custom/{request_id}")}


def quote_accepted_and_declined(k: Kit) -> Told:
    request_id = new_request(k)
    k.client_as("coordinator").post(f"/unit/custom/{request_id}/open")
    post_quote(k.client_as("coop_manager"), request_id, quote_form(k.world.coop))
    post_quote(k.client_as("other_coop_manager"), request_id, quote_form(k.world.other_coop, "90"))
    winner = quote_id(k.app, request_id, k.world.coop)
    with k.told():
        response = k.client_as("coordinator").post(
            f"/unit/custom/{request_id}/quotes/{winner}/accept"
        )
        assert response.status_code in (302, 303)
    return {
        (k.world.coop_manager, "custom.accepted", "/coop/orders"),
        (k.world.other_coop_manager, "custom.declined", "/coop/custom"),
    }


def order_paid(k: Kit) -> Told:
    number = k.two_coop_order()
    with k.told():
        pay(k.client_as("buyer"), k.client_as("finance"), number)
    return {
        (k.world.coop_manager, "order.paid", "/coop/orders"),
        (k.world.other_coop_manager, "order.paid", "/coop/orders"),
    }


def order_shipped(k: Kit) -> Told:
    number = buy(k.client_as("buyer"), sku_of(k.app, k.world.honey_product))
    pay(k.client_as("buyer"), k.client_as("finance"), number)
    [shipment_id] = k.shop.shipments(number)
    with k.told():
        response = k.client_as("coop_manager").post(
            f"/coop/shipments/{shipment_id}/ship",
            data={"carrier": "顺丰速运", "tracking_number": "SF1234567890"},
        )
        assert response.status_code in (302, 303)
    [(_user, _kind, _title, body)] = k.rows
    assert "顺丰速运" in body and "SF1234567890" in body
    return {(k.world.buyer, "order.shipped", f"/orders/{number}")}


def refund_decided(k: Kit) -> Told:
    number = buy(k.client_as("buyer"), sku_of(k.app, k.world.honey_product))
    pay(k.client_as("buyer"), k.client_as("finance"), number)
    [line_id] = k.shop.lines(number)
    with k.told():
        k.shop.refund_line(line_id, 1000)
    return {(k.world.buyer, "refund.decided", f"/orders/{number}")}


def refund_sent(k: Kit) -> Told:
    number = buy(k.client_as("buyer"), sku_of(k.app, k.world.honey_product))
    pay(k.client_as("buyer"), k.client_as("finance"), number)
    [line_id] = k.shop.lines(number)
    k.shop.refund_line(line_id, 1000)
    with k.app.app_context():
        refund_id = db.session.scalar(select(Refund.id))
    with k.told():
        k.shop.send_refund(refund_id)
    return {(k.world.buyer, "refund.sent", f"/orders/{number}")}


def _due_statement(k: Kit) -> int:
    delivered(k.shop, {k.world.honey_product: 1})
    k.shop.backdate(30)
    with k.told():
        [statement_id] = k.shop.issue()
    return statement_id


def statement_issued(k: Kit) -> Told:
    statement_id = _due_statement(k)
    return {(k.world.coop_manager, "settlement.issued", f"/coop/settlements/{statement_id}")}


def payout_recorded(k: Kit) -> Told:
    statement_id = _due_statement(k)
    k.shop.confirm(statement_id)
    with k.told():
        k.shop.pay_out(statement_id)
    return {(k.world.coop_manager, "settlement.paid", f"/coop/settlements/{statement_id}")}


def laggard_reminded(k: Kit, campaign) -> Told:  # noqa: F811
    set_targets(k.app, campaign.id, {k.world.other_unit: 1_000_000})
    organizer = k.client_as("organizer")
    page = organizer.get(f"/admin/campaigns/{campaign.id}/laggards").get_data(as_text=True)
    action = f"/admin/campaigns/{campaign.id}/laggards/{k.world.other_unit}/remind"
    assert f'action="{action}"' in page  # one button per unit on the list
    with k.told():
        on = clock.today().isoformat()
        response = organizer.post(action, data={"on": on})
        assert response.status_code == 303
    with k.app.app_context():
        audited = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "laggard.reminded")
        ).all()
        assert [(e.actor_id, e.object_id) for e in audited] == [
            (k.world.organizer, str(k.world.other_unit))
        ]
    return {
        (k.world.other_coordinator, "campaign.laggard", f"/unit/campaign?campaign={campaign.id}")
    }


EVENTS: dict[str, Callable[..., Told]] = {
    "registered": registered,
    "membership requested": membership_requested,
    "membership confirmed": membership_confirmed,
    "membership rejected": membership_rejected,
    "purchase submitted": purchase_submitted,
    "purchase approved": purchase_approved,
    "purchase rejected": purchase_rejected,
    "custom request created": custom_requested,
    "custom request opened to all": custom_opened_to_all,
    "quote received": quote_received,
    "quote accepted and declined": quote_accepted_and_declined,
    "order paid": order_paid,
    "order shipped": order_shipped,
    "refund decided": refund_decided,
    "refund sent": refund_sent,
    "statement issued": statement_issued,
    "payout recorded": payout_recorded,
}


@pytest.mark.parametrize("event", list(EVENTS))
def test_each_step_tells_exactly_who_acts_next(app, world, client_as, shop, event):  # noqa: F811
    kit = Kit(app, world, client_as, shop)
    expected = EVENTS[event](kit)
    assert kit.got == expected


def test_the_organizer_reminds_a_lagging_units_coordinators_in_one_click(
    app,
    world,
    client_as,
    shop,  # noqa: F811
    campaign,  # noqa: F811
):
    kit = Kit(app, world, client_as, shop)
    expected = laggard_reminded(kit, campaign)
    assert kit.got == expected
    page = client_as("other_coordinator").get("/notifications").get_data(as_text=True)
    assert "进度落后" in page


def test_a_unit_not_on_the_list_is_not_reminded(app, world, client_as, campaign):  # noqa: F811
    set_targets(app, campaign.id, {world.other_unit: 1_000_000})
    response = client_as("organizer").post(
        f"/admin/campaigns/{campaign.id}/laggards/{world.unit}/remind"
    )
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_only_an_organizer_may_remind(app, world, client_as, campaign):  # noqa: F811
    set_targets(app, campaign.id, {world.other_unit: 1_000_000})
    response = client_as("coordinator").post(
        f"/admin/campaigns/{campaign.id}/laggards/{world.other_unit}/remind"
    )
    assert response.status_code == 403
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
