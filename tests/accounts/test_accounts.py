"""Sign-up, sign-in (throttling: tests/security/test_throttling.py), joining a unit, and the
organizer's appointments."""

from __future__ import annotations

from sqlalchemy import func, select

from market.accounts.models import (
    CoopMembership,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.directory.models import Unit
from market.extensions import db
from tests.factories import PASSWORD


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _register(client, **fields):
    data = {"name": "新用户", "password": "long-enough-1", "confirm": "long-enough-1"} | fields
    return client.post("/register", data=data)


def test_register_with_email_signs_in_and_hashes_the_password(app, client):
    response = _register(client, email="New@Example.com")
    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.email == "new@example.com"
        assert "long-enough-1" not in user.password_hash
        assert user.check_password("long-enough-1")
    assert "新用户" in client.get("/account").get_data(as_text=True)


def test_registering_among_existing_users_without_phones(app, client, world):
    """Regression: a missing phone must not be compared with other users' missing phones."""
    assert _register(client, email="fresh@example.com").status_code == 302
    assert _register(app.test_client(), phone="13711112222").status_code == 302


def test_register_with_a_phone_number_only(app, client):
    assert _register(client, phone="13712345678").status_code == 302
    with app.app_context():
        assert db.session.scalar(select(User.phone)) == "13712345678"


def test_register_needs_email_or_phone_and_a_good_password(app, client):
    response = _register(client)
    assert response.status_code == 400
    assert "请填写邮箱或手机号" in response.get_data(as_text=True)
    response = _register(client, phone="12345")
    assert "手机号应为 11 位数字" in response.get_data(as_text=True)
    response = _register(client, email="a@example.com", password="short", confirm="short")
    assert response.status_code == 400
    response = _register(client, email="a@example.com", confirm="different-123")
    assert "两次输入的密码不一致" in response.get_data(as_text=True)
    assert _count(app, User) == 0


def test_an_address_already_registered_is_refused(app, client, world):
    response = _register(client, email="buyer@example.com")
    assert response.status_code == 400
    assert "已注册" in response.get_data(as_text=True)


def test_login_with_email_or_phone_and_logout(client, world):
    response = client.post("/login", data={"email": "buyer@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert "周买家" in client.get("/account").get_data(as_text=True)
    client.post("/logout")
    assert client.get("/account").status_code == 302
    response = client.post("/login", data={"email": "13900000009", "password": PASSWORD})
    assert response.status_code == 302


def test_wrong_password_is_a_form_error(client, world):
    response = client.post("/login", data={"email": "buyer@example.com", "password": "nope"})
    assert response.status_code == 400
    assert "账号或密码不正确" in response.get_data(as_text=True)


def test_login_goes_back_to_a_local_page_only(client, world):
    data = {"email": "buyer@example.com", "password": PASSWORD}
    response = client.post("/login?next=/villages", data=data)
    assert response.headers["Location"] == "/villages"
    client.post("/logout")
    response = client.post("/login?next=//evil.example/x", data=data)
    assert response.headers["Location"] == "/"


def _invite_code(app, unit_id: int) -> str:
    with app.app_context():
        return db.session.get(Unit, unit_id).invite_code


def test_employee_joins_with_invite_code_and_coordinator_confirms(app, client_as, world):
    buyer = client_as("buyer")
    code = _invite_code(app, world.unit)
    response = buyer.post("/account/unit", data={"invite_code": code.lower()})
    assert response.status_code == 302
    assert "待联络员确认" in buyer.get("/account").get_data(as_text=True)
    with app.app_context():
        membership = db.session.scalar(
            select(UnitMembership).where(UnitMembership.user_id == world.buyer)
        )
        membership_id = membership.id
        assert membership.status == MembershipStatus.PENDING

    coordinator = client_as("coordinator")
    assert "周买家" in coordinator.get("/unit/members").get_data(as_text=True)
    assert coordinator.post(f"/unit/members/{membership_id}/confirm").status_code == 302
    with app.app_context():
        membership = db.session.get(UnitMembership, membership_id)
        assert membership.status == MembershipStatus.CONFIRMED
        assert membership.confirmed_by_id == world.coordinator
    assert "已确认" in buyer.get("/account").get_data(as_text=True)


def test_an_unknown_invite_code_is_a_form_error(app, client_as, world):
    response = client_as("buyer").post("/account/unit", data={"invite_code": "NOSUCH"})
    assert response.status_code == 400
    assert "邀请码不存在" in response.get_data(as_text=True)
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(UnitMembership)
                .where(UnitMembership.user_id == world.buyer)
            )
            == 0
        )


def test_one_unit_at_a_time(app, client_as, world):
    response = client_as("employee").post(
        "/account/unit", data={"invite_code": _invite_code(app, world.other_unit)}
    )
    assert response.status_code == 400
    assert "一人只能加入一个单位" in response.get_data(as_text=True)


def test_a_coordinator_of_another_unit_cannot_confirm(app, client_as, world):
    client_as("buyer").post("/account/unit", data={"invite_code": _invite_code(app, world.unit)})
    with app.app_context():
        membership_id = db.session.scalar(
            select(UnitMembership.id).where(UnitMembership.user_id == world.buyer)
        )
    response = client_as("other_coordinator").post(f"/unit/members/{membership_id}/confirm")
    assert response.status_code == 403
    # Their own members page does not list someone asking to join another unit.
    page = client_as("other_coordinator").get("/unit/members").get_data(as_text=True)
    assert "周买家" not in page
    with app.app_context():
        status = db.session.get(UnitMembership, membership_id).status
        assert status == MembershipStatus.PENDING


def test_confirming_twice_is_refused(app, client_as, world):
    client_as("buyer").post("/account/unit", data={"invite_code": _invite_code(app, world.unit)})
    with app.app_context():
        membership_id = db.session.scalar(
            select(UnitMembership.id).where(UnitMembership.user_id == world.buyer)
        )
    coordinator = client_as("coordinator")
    coordinator.post(f"/unit/members/{membership_id}/reject")
    response = coordinator.post(f"/unit/members/{membership_id}/confirm")
    assert response.status_code == 409
    with app.app_context():
        assert db.session.get(UnitMembership, membership_id).status == MembershipStatus.REJECTED


def test_organizer_appoints_a_unit_approver_and_a_coop_manager(app, client_as, world):
    organizer = client_as("organizer")
    response = organizer.post(
        f"/admin/users/{world.buyer}/unit",
        data={"unit-unit_id": world.other_unit, "unit-role": "approver"},
    )
    assert response.status_code == 302
    response = organizer.post(
        f"/admin/users/{world.buyer}/coop",
        data={"coop-coop_id": world.coop, "coop-role": "manager"},
    )
    assert response.status_code == 302
    with app.app_context():
        buyer = db.session.get(User, world.buyer)
        assert buyer.unit.id == world.other_unit
        assert buyer.has_unit_role(UnitRole.APPROVER)
        assert [c.id for c in buyer.managed_coops()] == [world.coop]
    # The new co-op manager now reaches the co-op pages.
    assert client_as("buyer").get("/coop/products").status_code == 200


def test_moving_someone_to_another_unit_ends_the_old_membership(app, client_as, world):
    client_as("organizer").post(
        f"/admin/users/{world.employee}/unit",
        data={"unit-unit_id": world.other_unit, "unit-role": "member"},
    )
    with app.app_context():
        statuses = sorted(
            (m.unit_id, m.status.value)
            for m in db.session.scalars(
                select(UnitMembership).where(UnitMembership.user_id == world.employee)
            )
        )
    assert statuses == [(world.unit, "ended"), (world.other_unit, "confirmed")]


def test_removing_a_coop_role(app, client_as, world):
    client_as("organizer").post(
        f"/admin/users/{world.coop_manager}/coop",
        data={"coop-coop_id": world.coop, "coop-role": ""},
    )
    assert _count(app, CoopMembership) == 1
    assert client_as("coop_manager").get("/coop/products").status_code == 403


def test_only_an_admin_makes_admins(app, client_as, world):
    response = client_as("organizer").post(
        f"/admin/users/{world.buyer}/flags", data={"flags-is_organizer": "y", "flags-is_admin": "y"}
    )
    assert response.status_code == 403
    with app.app_context():
        assert not db.session.get(User, world.buyer).is_admin
    client_as("admin").post(
        f"/admin/users/{world.buyer}/flags", data={"flags-is_organizer": "y", "flags-is_admin": "y"}
    )
    with app.app_context():
        buyer = db.session.get(User, world.buyer)
        assert buyer.is_admin and buyer.is_organizer
