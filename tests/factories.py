"""Small builders for test data, written through the real models and committed."""

from __future__ import annotations

import io
import itertools
import re
from datetime import date
from types import SimpleNamespace

from flask import Flask
from PIL import Image
from werkzeug.security import generate_password_hash

from market.accounts.models import (
    CoopMembership,
    CoopRole,
    MembershipStatus,
    UnitMembership,
    UnitRole,
    User,
)
from market.catalog.models import Category, Product, ProductStatus, Sku
from market.directory.models import Coop, Pairing, Town, Unit, Village
from market.extensions import db
from market.models import utcnow

PASSWORD = "correct-horse-9"
# The shop hashes passwords deliberately slowly (werkzeug's scrypt, about 0.1-0.2 s a check), and
# every test signs in through the real form, so the people made here carry a cheap hash of the
# shared password. check_password_hash reads the method from the stored hash: the sign-in code
# is the production one, and a password set through the pages (User.set_password) is still scrypt.
_PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def make_user(name: str, email: str | None = None, phone: str | None = None, **flags) -> User:
    user = User(name=name, email=email, phone=phone, password_hash=_PASSWORD_HASH, **flags)
    db.session.add(user)
    db.session.flush()
    return user


def add_unit_member(user: User, unit: Unit, role: UnitRole = UnitRole.MEMBER) -> UnitMembership:
    membership = UnitMembership(
        user=user, unit=unit, role=role, status=MembershipStatus.CONFIRMED, confirmed_at=utcnow()
    )
    db.session.add(membership)
    db.session.flush()
    return membership


def add_members(unit: Unit, numbers) -> list[int]:
    """A confirmed member of `unit` for each of `numbers` (职工n, membern@example.com),
    committed; their ids."""
    ids = []
    for n in numbers:
        user = make_user(f"职工{n}", f"member{n}@example.com")
        add_unit_member(user, unit, UnitRole.MEMBER)
        ids.append(user.id)
    db.session.commit()
    return ids


def make_product(
    coop: Coop,
    category: Category,
    name: str,
    *,
    price_fen: int = 3990,
    stock: int = 50,
    status: ProductStatus = ProductStatus.LISTED,
    spec: str = "5斤装",
) -> Product:
    product = Product(coop=coop, category=category, name=name, status=status, description="")
    product.skus.append(Sku(spec=spec, price_fen=price_fen, stock=stock))
    db.session.add(product)
    db.session.flush()
    return product


def make_world() -> SimpleNamespace:
    """Two villages of the programme: unit A paired with village 1 (co-op 1), unit B with
    village 2 (co-op 2), and one person per role. Returns the ids, by name."""
    town = Town(name="古丁镇")
    other_town = Town(name="根子镇")
    village = Village(town=town, name="古丁村", story="南药之乡", is_typical=True)
    other_village = Village(town=other_town, name="柏桥村", story="荔枝之乡")
    coop = Coop(village=village, name="古丁南药合作社", approved=True)
    other_coop = Coop(village=other_village, name="柏桥荔枝合作社", approved=True)
    unit = Unit(name="高州市市场监管局")
    other_unit = Unit(name="高州市委办")
    db.session.add_all([town, other_town, village, other_village, coop, other_coop])
    db.session.add_all([unit, other_unit])
    db.session.add_all(
        [
            Pairing(unit=unit, village=village, since=date(2024, 9, 3)),
            Pairing(unit=other_unit, village=other_village, since=date(2024, 9, 3)),
        ]
    )
    honey = Category(name="蜂蜜", slug="honey", sort_order=1)
    herbs = Category(name="南药", slug="herbs", sort_order=2)
    fruit = Category(name="水果", slug="fruit", sort_order=3)
    db.session.add_all([honey, herbs, fruit])

    organizer = make_user("张组织", "organizer@example.com", is_organizer=True)
    admin = make_user("王管理", "admin@example.com", is_admin=True)
    coordinator = make_user("李联络", "coordinator@example.com", "13800000001")
    approver = make_user("陈审批", "approver@example.com")
    employee = make_user("刘职工", "employee@example.com", "13800000003")
    other_coordinator = make_user("赵联络", "other-coordinator@example.com")
    coop_manager = make_user("黄社长", "coop@example.com")
    other_coop_manager = make_user("吴社长", "other-coop@example.com")
    buyer = make_user("周买家", "buyer@example.com", "13900000009")
    finance = make_user("孙财务", "finance@example.com", is_finance=True)
    add_unit_member(coordinator, unit, UnitRole.COORDINATOR)
    add_unit_member(approver, unit, UnitRole.APPROVER)
    add_unit_member(employee, unit, UnitRole.MEMBER)
    add_unit_member(other_coordinator, other_unit, UnitRole.COORDINATOR)
    db.session.add(CoopMembership(user=coop_manager, coop=coop, role=CoopRole.MANAGER))
    db.session.add(CoopMembership(user=other_coop_manager, coop=other_coop, role=CoopRole.MANAGER))

    honey_product = make_product(coop, honey, "原生态蜂蜜", price_fen=8800, spec="500g")
    herb_product = make_product(coop, herbs, "藿香", price_fen=2500)
    draft = make_product(coop, herbs, "益智（草稿）", status=ProductStatus.DRAFT)
    lychee = make_product(other_coop, fruit, "白糖罂荔枝", price_fen=8900)
    other_draft = make_product(other_coop, fruit, "三华李（草稿）", status=ProductStatus.DRAFT)
    db.session.commit()
    objects = dict(
        town=town,
        other_town=other_town,
        village=village,
        other_village=other_village,
        coop=coop,
        other_coop=other_coop,
        unit=unit,
        other_unit=other_unit,
        honey=honey,
        herbs=herbs,
        fruit=fruit,
        organizer=organizer,
        admin=admin,
        coordinator=coordinator,
        approver=approver,
        employee=employee,
        other_coordinator=other_coordinator,
        coop_manager=coop_manager,
        other_coop_manager=other_coop_manager,
        buyer=buyer,
        finance=finance,
        honey_product=honey_product,
        herb_product=herb_product,
        draft=draft,
        lychee=lychee,
        other_draft=other_draft,
    )
    return SimpleNamespace(**{name: obj.id for name, obj in objects.items()})


# Every sign-in comes from an address of its own: a test that signs in many people (or the same
# person many times) is many devices, and not what the sign-in rate limit is about
# (tests/security/test_throttling.py is).
_SIGN_IN_ADDRESSES = itertools.count(1)
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def sign_in(client, login: str, password: str = PASSWORD, *, remember: bool = False) -> str:
    """Sign in through the real sign-in form, as a person would: open /login, read the form's
    CSRF token (when the app checks it), post the email or phone and the password, and land on
    "my account" (where the welcome message is shown once, as in a browser, so that the test's
    own first page does not carry it). Returns that page."""
    page = client.get("/login")
    assert page.status_code == 200, page.status_code
    form = {"email": login, "password": password, "next": "/account"}
    if remember:
        form["remember"] = "y"
    token = CSRF_FIELD.search(page.get_data(as_text=True))
    if client.application.config.get("WTF_CSRF_ENABLED", True):
        assert token, "the sign-in form carries a CSRF token"
    if token:
        form["csrf_token"] = token.group(1)
    n = next(_SIGN_IN_ADDRESSES)
    address = f"10.{200 + n // 65536 % 50}.{n // 256 % 256}.{n % 256}"
    response = client.post("/login", data=form, environ_overrides={"REMOTE_ADDR": address})
    assert response.status_code == 302, (login, response.status_code)
    assert response.headers["Location"] == "/account", response.headers["Location"]
    landed = client.get("/account")
    assert landed.status_code == 200, (login, landed.status_code)
    return landed.get_data(as_text=True)


def signed_in_client(app: Flask, user_id: int, password: str = PASSWORD, *, remember: bool = False):
    """A new test client (a device of its own) signed in as the person through the real sign-in
    form (`sign_in`), with their email, or their phone when they have no email."""
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None, f"no person {user_id}"
        login, name = user.login_name, user.name
    client = app.test_client()
    page = sign_in(client, login, password, remember=remember)
    assert name in page, f"{login} landed on someone else's account page"
    return client


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format=fmt)
    return buffer.getvalue()
