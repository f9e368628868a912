"""No input gives a 500: the whole URL map, walked with odd values, by every role, on both
databases (issue 11, point 7); and one direct test for each kind of odd input.

The walk fills every converter argument with odd values (2**63, −1, 0, 1,000 digits, a NUL
byte, emoji, 1 MB), adds odd query strings (page=2**63, dates of year 1 and 9999, NUL, CR LF),
and posts every field name any form of the shop has: plausible values but for one kind at a
time (integers of 2**63, strings longer than their columns, ...), and JSON bodies that are a
string, a list, an object of lists. Every role tries every rule plainly first; one that is sent
to sign in or refused (403) there goes no further. The first role to be answered gets every odd
value on that rule, the later ones a single odd query or form: some 5,000 requests in all."""

from __future__ import annotations

import importlib
import io
import logging
import pkgutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.routing import AnyConverter, IntegerConverter, PathConverter
from wtforms import (
    BooleanField,
    DateField,
    DateTimeField,
    FieldList,
    FileField,
    FormField,
    IntegerField,
    MultipleFileField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
)
from wtforms.fields.core import UnboundField
from wtforms.form import BaseForm, Form

import market
from market.security.inputs import MAX_ID, IdConverter
from tests import factories

# Who walks, in this order (a coordinator too: the unit pages are theirs alone).
ROLES = ["admin", "organizer", "finance", "coop_manager", "coordinator", "buyer", "anonymous"]

BIG = str(2**63)
THOUSAND_DIGITS = "9" * 1000
NUL = "a\x00b"
EMOJI = "😀\u202e\ufeff👨‍👩‍👧"
MEGABYTE = "x" * (1024 * 1024)
LONG = "界" * 501  # longer than every String(n) column a form fills (the longest is 500)
# Values for a converter argument; int arguments other than the largest id never reach a view.
PATH_VALUES = [str(MAX_ID), str(2**31), BIG, "-1", "007", THOUSAND_DIGITS, NUL, EMOJI, MEGABYTE]

# Query arguments some page reads (besides the names of the GET filter forms).
INT_QUERY = ["page", "village", "coop", "unit", "campaign", "town", "year", "sku_id", "unit_id"]
DATE_QUERY = ["start", "end", "on", "since", "until", "day"]
TEXT_QUERY = ["q", "status", "mode", "tab", "action", "object_type", "actor", "next", "kind"]

PASSWORD = "Fuzz-Horse-Battery-42"


# -- what the forms of the shop read -------------------------------------------------------------
def _kind(unbound: UnboundField) -> str:
    cls = unbound.field_class
    if issubclass(cls, (FileField, MultipleFileField)):
        return "file"
    if issubclass(cls, BooleanField):
        return "bool"
    if issubclass(cls, IntegerField):
        return "int"
    if issubclass(cls, DateTimeField) or "DateTime" in cls.__name__:
        return "datetime"
    if issubclass(cls, DateField):
        return "date"
    if issubclass(cls, PasswordField):
        return "password"
    if issubclass(cls, (SelectField, SelectMultipleField, RadioField)):
        return "id" if unbound.kwargs.get("coerce") is int else "choice"
    if "Yuan" in cls.__name__ or "Amount" in cls.__name__:
        return "money"
    return "text"


def _fields_of(form_class: type, prefix: str = "") -> Iterator[tuple[str, str, UnboundField]]:
    for name in dir(form_class):
        unbound = getattr(form_class, name, None)
        if not isinstance(unbound, UnboundField):
            continue
        if issubclass(unbound.field_class, FieldList):
            inner = unbound.args[0]
            rows = unbound.kwargs.get("min_entries", 1)
            for row in range(rows):
                row_name = f"{prefix}{name}-{row}"
                if issubclass(inner.field_class, FormField):
                    yield from _fields_of(inner.args[0], f"{row_name}-")
                else:
                    yield row_name, _kind(inner), inner
        elif issubclass(unbound.field_class, FormField):
            yield from _fields_of(unbound.args[0], f"{prefix}{name}-")
        else:
            yield prefix + name, _kind(unbound), unbound


def form_fields() -> dict[str, tuple[str, UnboundField]]:
    """Every field name of every form in market/*/forms.py (and market/forms.py), with its kind."""
    found: dict[str, tuple[str, UnboundField]] = {}
    modules = ["market.forms"] + [
        f"market.{info.name}.forms"
        for info in pkgutil.iter_modules(market.__path__)
        if info.ispkg and importlib.util.find_spec(f"market.{info.name}.forms")
    ]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, (Form, BaseForm)):
                for name, kind, unbound in _fields_of(value):
                    found.setdefault(name, (kind, unbound))
    return found


# -- the world the walk runs in ------------------------------------------------------------------
def _first_id(model) -> int:
    from market.extensions import db

    return db.session.scalar(select(func.min(model.id))) or 1


def richer_world(app: Flask, world: SimpleNamespace) -> tuple[dict[str, int | str], list[str]]:
    """The world plus an order, a cart, a campaign and a group-buy: the real value for each
    converter argument name, and the names of the group-buy's quantity fields."""
    from market.accounts.models import UnitMembership
    from market.campaign.models import Campaign
    from market.catalog.models import ProductImage, Sku
    from market.directory.models import Pairing, Unit
    from market.extensions import db
    from market.groupbuy.models import GroupBuy, GroupBuyItem, Participation
    from market.models import utcnow
    from market.notifications.models import Notification
    from market.orders.models import CartItem, Order, OrderLine, Shipment
    from market.payments.models import Refund
    from market.procurement.models import CustomRequest, Quote, UnitPurchase
    from market.settlements.models import Statement
    from tests.groupbuy.conftest import Kit
    from tests.orders.conftest import buy

    buyer = factories.signed_in_client(app, world.buyer)
    with app.app_context():
        honey_sku = db.session.scalar(select(Sku.id).where(Sku.product_id == world.honey_product))
    number = buy(buyer, honey_sku, 1)
    buyer.post("/cart/add", data={"sku_id": honey_sku, "quantity": 1})
    kit = Kit(app, world)
    group_buy_id = kit.open()
    kit.join(world.employee, group_buy_id, 1)
    with app.app_context():
        today = utcnow().date()
        db.session.add(
            Campaign(
                name="2026年我为果农办实事",
                year=today.year,
                starts_on=today - timedelta(days=9),
                ends_on=today + timedelta(days=90),
                paired_only=False,
                laggard_threshold_pct=60,
            )
        )
        spare = factories.make_user("受试者", "spare@example.com")  # flags and roles change here
        db.session.commit()
        order = db.session.scalar(select(Order).where(Order.number == number))
        values: dict[str, int | str] = {
            "campaign_id": _first_id(Campaign),
            "category_id": world.honey,
            "coop_id": world.coop,
            "pairing_id": _first_id(Pairing),
            "town_id": world.town,
            "unit_id": world.unit,
            "user_id": spare.id,
            "village_id": world.village,
            "group_buy_id": group_buy_id,
            "participation_id": _first_id(Participation),
            "item_id": _first_id(CartItem),
            "line_id": _first_id(OrderLine),
            "product_id": world.honey_product,
            "image_id": _first_id(ProductImage),
            "sku_id": honey_sku,
            "shipment_id": _first_id(Shipment),
            "order_id": order.id,
            "holder_id": world.coordinator,
            "refund_id": _first_id(Refund),
            "notification_id": _first_id(Notification),
            "membership_id": _first_id(UnitMembership),
            "purchase_id": _first_id(UnitPurchase),
            "request_id": _first_id(CustomRequest),
            "quote_id": _first_id(Quote),
            "statement_id": _first_id(Statement),
            "number": number,
            "code": db.session.get(Unit, world.unit).referral_code,
            "slug": "honey",
            "filename": "missing.png",
        }
        assert db.session.get(GroupBuy, group_buy_id) is not None
        # The group-buy's quantity boxes are named after its items (groupbuy.forms).
        item_ids = db.session.scalars(
            select(GroupBuyItem.id).where(GroupBuyItem.group_buy_id == group_buy_id)
        ).all()
    return values, [f"item_{item_id}" for item_id in item_ids]


# -- requests ------------------------------------------------------------------------------------
@dataclass
class Walk:
    app: Flask
    world: SimpleNamespace
    real: dict[str, int | str]
    fields: dict[str, tuple[str, UnboundField]]
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # tracebacks logged by the error handler
    requests: int = 0
    megabyte_sent: set[str] = field(default_factory=set)
    clients: dict = field(default_factory=dict)

    def client(self, role: str, renew: bool = False):
        """The role's client (signed in once; again when `renew`, e.g. after its session was
        ended by a logout or a password change)."""
        if role in self.clients and not renew:
            return self.clients[role]
        client = (
            self.app.test_client()
            if role == "anonymous"
            else factories.signed_in_client(self.app, getattr(self.world, role))
        )
        self.clients[role] = client
        return client

    def files(self) -> dict:
        """Every file field with a small file that is no CSV, XLSX or image of ours."""
        junk = b"unit,town,village\n\xff\xfe,=1+1,\n"
        return {
            name: (io.BytesIO(junk), "odd.csv")
            for name, (kind, _) in self.fields.items()
            if kind == "file"
        }

    def url(self, rule, odd: tuple[str, str] | None = None) -> str:
        """The rule's path with real values, or with `odd` = (argument, raw value) quoted."""
        path = rule.rule
        for name, converter in rule._converters.items():
            if odd is not None and odd[0] == name:
                value = odd[1]
            elif isinstance(converter, AnyConverter):
                value = sorted(converter.items)[0]
            else:
                value = str(self.real.get(name, 1))
            safe = "/" if isinstance(converter, PathConverter) else ""
            start = path.index("<")
            end = path.index(">", start)
            path = path[:start] + quote(value, safe=safe) + path[end + 1 :]
        return path

    def send(self, client, role: str, method: str, url: str, expect_400: bool = False, **kw):
        self.requests += 1
        before = len(self.errors)
        # A fresh address per request: rate limits per address are not what is tested here.
        n = self.requests
        client.environ_base["REMOTE_ADDR"] = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        try:
            response = client.open(url, method=method, **kw)
            response.get_data()  # a streamed body (CSV exports) is produced now
            response.close()
        except Exception as error:  # the test client itself must not fail on what we send
            self.failures.append(f"{role} {method} {url[:120]} raised {error!r}")
            return None
        status = response.status_code
        if status >= 500 or (expect_400 and status not in (400, 415, 429)):
            where = self.errors[before:] or [""]
            self.failures.append(
                f"{role} {method} {url[:150]} {kw_text(kw)} -> {status}\n{where[-1]}"
            )
        return response

    # -- the values of a form --------------------------------------------------------------------
    def base_value(self, name: str, kind: str, unbound: UnboundField) -> str:
        leaf = name.rsplit("-", 1)[-1]
        if kind == "id":
            key = leaf if leaf.endswith("_id") else f"{leaf}_id"
            return str(self.real.get(key, 0 if leaf in ("address_id", "sku_id") else 1))
        if kind == "choice":
            choices = unbound.kwargs.get("choices")
            if isinstance(choices, list | tuple) and choices:
                first = choices[0]
                return str(first[0] if isinstance(first, tuple | list) else first)
            return ""
        if kind == "int":
            return "1"
        if kind == "money":
            return "12.50"
        if kind == "date":
            return time.strftime("%Y-%m-%d")
        if kind == "datetime":
            return time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 86400))
        if kind == "bool":
            return "y"
        if kind == "password":
            return PASSWORD
        return {
            "email": "fuzz@example.com",
            "phone": "13900000009",
            "invoice_tax_id": "91440981MA4UFUZZ01",
            "slug": "fuzz-slug",
            "idempotency_key": "f" * 32,
            "lang": "en",
            "next": "/",
        }.get(leaf, "测试")

    def form(self, variant: str) -> dict[str, str]:
        """Every field name with the variant's odd value for its kind, the others plausible."""
        data = {}
        for name, (kind, unbound) in self.fields.items():
            if kind == "file":
                continue
            value = self.base_value(name, kind, unbound)
            if variant == "big":
                value = {
                    "int": BIG,
                    "id": BIG,
                    "money": BIG,
                    "date": "0001-01-01",
                    "datetime": "0001-01-01T00:00",
                }.get(kind, value)
            elif variant == "digits":
                value = {
                    "int": THOUSAND_DIGITS,
                    "id": THOUSAND_DIGITS,
                    "money": THOUSAND_DIGITS,
                    "date": "9999-12-31",
                    "datetime": "9999-12-31T23:59",
                    "text": EMOJI,
                }.get(kind, value)
            elif variant == "negative":
                value = {
                    "int": "-1",
                    "id": "0",
                    "money": "-0.01",
                    "date": "99999-01-01",
                    "datetime": "0000-00-00T00:00",
                }.get(kind, value)
            elif variant == "long":
                value = LONG if kind in ("text", "password", "choice") else value
            elif variant == "nul":
                value = NUL
            data[name] = value
        data.update({"form_token": "f" * 32, "idempotency_key": data.get("idempotency_key", "")})
        return data


def kw_text(kw: dict) -> str:
    if "query_string" in kw:
        return "?" + str(kw["query_string"])[:100]
    if "json" in kw:
        return f"json={str(kw['json'])[:60]}"
    if "data" in kw and isinstance(kw["data"], dict):
        return f"form[{len(kw['data'])} fields]"
    return ""


def query(variant: str) -> str:
    ints = {"big": BIG, "digits": THOUSAND_DIGITS, "negative": "-1"}[variant]
    dates = {"big": "0001-01-01", "digits": "9999-12-31", "negative": "99999-01-01"}[variant]
    texts = {"big": LONG[:300], "digits": EMOJI, "negative": "-1"}[variant]
    args = {name: ints for name in INT_QUERY}
    args.update({name: dates for name in DATE_QUERY})
    for name in TEXT_QUERY:
        args.setdefault(name, texts)
    args["page"] = {"big": BIG, "digits": THOUSAND_DIGITS, "negative": "0"}[variant]
    return urlencode(args)


REFUSED = {401, 403}


def _sent_to_sign_in(response) -> bool:
    return (
        response is not None
        and response.status_code == 302
        and "/login" in response.headers.get("Location", "")
    )


def _refused(response) -> bool:
    """Sent to sign in, or forbidden: the permission check answered before any input was read."""
    return response is None or response.status_code in REFUSED or _sent_to_sign_in(response)


def _is_int(converter) -> bool:
    return isinstance(converter, IdConverter | IntegerConverter)


def walk_rule(walk: Walk, role: str, rule, method: str, full: bool) -> int | None:
    """Try one rule by one role: plainly first; then, unless refused, with odd values. `full`:
    every odd value (the first role to reach the rule); else one odd query string (GET) or
    form of over-long strings (POST), which may go further for this role."""
    url = walk.url(rule)

    def plain(client):
        if method == "GET":
            return walk.send(client, role, method, url)
        return walk.send(client, role, method, url, data={**walk.form("base"), **walk.files()})

    client = walk.client(role)
    first = plain(client)
    if role != "anonymous" and _sent_to_sign_in(first):  # signed out by an earlier request
        client = walk.client(role, renew=True)
        first = plain(client)
    if _refused(first) and rule.rule != "/logout":
        return None
    # Odd converter arguments: an int one never gets past the URL map, a string one reaches the
    # view (an order number of a megabyte, a referral code with emoji).
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            continue
        values = [str(MAX_ID), str(2**31), NUL] if _is_int(converter) else PATH_VALUES
        for value in values if full else ():
            walk.send(client, role, method, walk.url(rule, (name, value)), expect_400=value == NUL)
    # Odd query strings (a POST gets one: its form is what it reads).
    if method == "GET":
        variants = ("big", "digits", "negative") if full else ("big",)
    else:
        variants = ("big",) if full else ()
    for variant in variants:
        walk.send(client, role, method, url, query_string=query(variant))
    if full:  # refused before any view: once per rule is enough
        walk.send(client, role, method, url, query_string="q=%00&page=1", expect_400=True)
        walk.send(
            client, role, method, url, query_string="next=%0d%0aSet-Cookie:x=1", expect_400=True
        )
    if method != "POST":
        return first.status_code
    # Odd form bodies, and JSON bodies.
    for variant in ("big", "digits", "negative", "long") if full else ("long",):
        walk.send(client, role, method, url, data=walk.form(variant))
    if not full:
        return first.status_code
    walk.send(client, role, method, url, data=walk.form("nul"), expect_400=True)
    if rule.endpoint.split(".")[0] not in walk.megabyte_sent:  # a 413: once per blueprint
        walk.megabyte_sent.add(rule.endpoint.split(".")[0])
        walk.send(client, role, method, url, data={"q": MEGABYTE, "name": MEGABYTE})
    walk.send(client, role, method, url, json="a string")
    walk.send(client, role, method, url, json=[1, "two", None])
    walk.send(client, role, method, url, json={n: [BIG] for n in walk.fields} | {"token": [1]})
    walk.send(client, role, method, url, json={"token": NUL}, expect_400=True)
    return first.status_code


def walk_everything(walk: Walk) -> None:
    """Every rule and method by every role. The first role whose plain try is answered (not
    refused, not 404) gets every odd value on that rule; the others a few."""
    rules = sorted(walk.app.url_map.iter_rules(), key=lambda r: (r.rule == "/logout", r.rule))
    covered: set[tuple[str, str]] = set()
    for role in ROLES:
        for rule in rules:
            for method in sorted((rule.methods or set()) & {"GET", "POST"}):
                key = (rule.rule, method)
                status = walk_rule(walk, role, rule, method, full=key not in covered)
                if status is not None and status < 400:
                    covered.add(key)


class _Recorder(logging.Handler):
    """Keeps, for each error the app logs, its last frame in our code and the exception."""

    def __init__(self, sink: list[str]):
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        import traceback

        if not record.exc_info:
            self.sink.append(record.getMessage())
            return
        frames = traceback.extract_tb(record.exc_info[2])
        ours = [
            f for f in frames if "/market/" in f.filename and "/site-packages/" not in f.filename
        ]
        where = ours[-1] if ours else frames[-1]
        error = traceback.format_exception_only(record.exc_info[0], record.exc_info[1])[-1]
        self.sink.append(f"  {where.filename}:{where.lineno} {where.line}\n  {error.strip()[:300]}")


@pytest.fixture
def walk(app, world) -> Iterator[Walk]:
    real, quantity_names = richer_world(app, world)
    fields = form_fields()
    fields.update({name: ("int", IntegerField()) for name in quantity_names})
    made = Walk(app, world, real, fields)
    recorder = _Recorder(made.errors)
    app.logger.addHandler(recorder)
    yield made
    app.logger.removeHandler(recorder)


def test_no_odd_input_gives_a_server_error(walk):
    """About 5,000 requests: some 50 s on SQLite, 70 s on PostgreSQL."""
    walk_everything(walk)
    assert not walk.failures, (
        f"{len(walk.failures)} of {walk.requests} requests failed:\n"
        + "\n".join(walk.failures[:80])
    )
    assert 2000 < walk.requests < 8000  # the walk did walk, and stays bounded


# -- one direct test per kind of odd input -------------------------------------------------------
_addresses = iter(range(1, 10**6))


def fresh(client):
    """The client from an address of its own: these tests are not about rate limits."""
    n = next(_addresses)
    client.environ_base["REMOTE_ADDR"] = f"172.16.{n // 256 % 256}.{n % 256}"
    return client


def test_an_id_beyond_the_integer_column_is_a_404(app, client, world):
    client = fresh(client)
    assert client.get(f"/products/{world.honey_product}").status_code == 200
    for odd in [str(2**63), str(2**31), "1" * 1000, f"0{world.honey_product}", "-1", "0"]:
        assert client.get(f"/products/{odd}").status_code == 404, odd
    assert client.get(f"/products/{MAX_ID}").status_code == 404  # reaches the view: not found
    assert (
        fresh(factories.signed_in_client(app, world.organizer))
        .get(f"/admin/towns/{2**63}/edit")
        .status_code
        == 404
    )


def test_a_page_number_of_2_63_is_an_empty_page(app, client, world):
    client = fresh(client)
    page = client.get(f"/products?page={2**63}")
    assert page.status_code == 200
    assert "原生态蜂蜜" not in page.get_data(as_text=True)  # the last page there is: empty
    assert "原生态蜂蜜" in client.get("/products?page=-5").get_data(as_text=True)  # page 1
    buyer = fresh(factories.signed_in_client(app, world.buyer))
    assert buyer.get(f"/notifications?page={2**63}").status_code == 200
    assert buyer.get(f"/orders?page={'9' * 1000}").status_code == 200
    finance = fresh(factories.signed_in_client(app, world.finance))
    assert finance.get(f"/finance/receipts?page={2**63}").status_code == 200
    assert finance.get(f"/finance/statements?page={2**63}&coop={2**63}").status_code == 200


def test_an_integer_field_of_2_63_is_a_form_error(app, world):
    buyer = fresh(factories.signed_in_client(app, world.buyer))
    for odd in [str(2**63), "9" * 1000]:
        response = buyer.post("/cart/add", data={"sku_id": odd, "quantity": odd})
        assert 300 <= response.status_code < 500, (odd, response.status_code)
    assert "原生态蜂蜜" not in buyer.get("/cart").get_data(as_text=True)


def test_a_nul_byte_is_refused_before_the_view(app, client, world):
    from market.accounts.models import User
    from market.extensions import db

    client = fresh(client)
    assert client.get("/products?q=%00").status_code == 400
    assert client.get("/products?q=%E8%9C%82%00").status_code == 400
    assert client.get("/orders/%00").status_code == 400
    assert client.get("/products?q=a%0d%0ab").status_code == 400  # no control character at all
    assert client.get("/products", headers={"User-Agent": "Mozilla\x00"}).status_code == 400
    signing_in = {"email": "buyer@example.com", "password": factories.PASSWORD}
    response = client.post("/login", data=signing_in, headers={"User-Agent": "Mozilla\x00"})
    assert response.status_code == 400  # the session would store the browser's name
    response = client.post(
        "/register",
        data={
            "name": "周\x00买",
            "email": "nul@example.com",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert response.status_code == 400
    organizer = fresh(factories.signed_in_client(app, world.organizer))
    assert organizer.post("/admin/towns/new", data={"name": "古\x00丁"}).status_code == 400
    # ...while a textarea's lines (tab, CR, LF) are text like any other.
    assert organizer.post("/admin/towns/new", data={"name": "新\t镇"}).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "nul@example.com")) is None


ROSTER_HEADER = "unit,town,village,since,until,note\n"


def _roster(client, text: str | bytes):
    raw = text.encode() if isinstance(text, str) else text
    return client.post("/admin/pairings/import", data={"roster": (io.BytesIO(raw), "roster.csv")})


def test_a_roster_cell_longer_than_its_column_is_a_row_error(app, world):
    from market.directory.models import Unit
    from market.extensions import db

    organizer = fresh(factories.signed_in_client(app, world.organizer))
    long_name = "高州市" + "很" * 297  # 300 characters; a unit's name holds 100
    roster = (
        ROSTER_HEADER
        + f"市委办,古丁镇,古丁村,2024-09-03,,\n{long_name},古丁镇,古丁村,2024-09-03,,\n"
    )
    response = _roster(organizer, roster)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "第 3 行" in page and "unit 太长：最多 100 个字" in page
    nul = ROSTER_HEADER + "某\x00单位,古丁镇,古丁村,2024-09-03,,\n"
    assert "含有不允许的控制字符" in _roster(organizer, nul).get_data(as_text=True)
    ancient = ROSTER_HEADER + "某单位,古丁镇,古丁村,0001-01-01,9999-12-31,\n"
    assert "开始日期格式应为" in _roster(organizer, ancient).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Unit)) == 2  # the world's


def test_a_roster_over_2_mb_or_5000_lines_is_refused(app, world):
    organizer = fresh(factories.signed_in_client(app, world.organizer))
    big = _roster(organizer, ROSTER_HEADER + "甲单位,古丁镇,古丁村,2024-09-03,,\n" * 70_000)
    assert big.status_code == 400
    assert "文件太大：最多 2 MB" in big.get_data(as_text=True)
    many = ROSTER_HEADER + "".join(f"单位{n},古丁镇,古丁村,2024-09-03,,\n" for n in range(5001))
    response = _roster(organizer, many)
    assert response.status_code == 400
    assert "行数过多：最多 5000 行" in response.get_data(as_text=True)
    assert len(response.get_data()) < 200_000  # a page of the bad lines, not all of them
    huge_cell = ROSTER_HEADER + '"' + "x" * 200_000 + '",古丁镇,古丁村,2024-09-03,,\n'
    assert _roster(organizer, huge_cell).status_code == 400  # beyond the csv module's field


def test_a_json_body_that_is_no_object_is_a_4xx_json_answer(app, world):
    from tests.orders.conftest import buy, sku_of

    buyer = fresh(factories.signed_in_client(app, world.buyer))
    number = buy(buyer, sku_of(app, world.honey_product))
    for body in ["a string", [1, 2], 7, None, {"token": [1]}]:
        response = buyer.post(f"/orders/{number}/pay/stripe/confirm", json=body)
        assert response.status_code == 400, body
        assert response.is_json and response.get_json()["message"], body
    # A page that reads a form answers a JSON body with 415 (Flask-WTF would read it as fields).
    response = buyer.post("/cart/add", json=[1, 2])
    assert response.status_code == 415 and response.is_json


def test_dates_out_of_range_in_a_query_are_ignored_or_refused(app, world):
    from market.campaign.models import Campaign
    from market.extensions import db
    from market.models import utcnow

    with app.app_context():
        today = utcnow().date()
        campaign = Campaign(
            name="2026年我为果农办实事",
            year=today.year,
            starts_on=today - timedelta(days=9),
            ends_on=today + timedelta(days=90),
            paired_only=False,
            laggard_threshold_pct=60,
        )
        db.session.add(campaign)
        db.session.commit()
        campaign_id = campaign.id
    organizer = fresh(factories.signed_in_client(app, world.organizer))
    finance = fresh(factories.signed_in_client(app, world.finance))
    for start, end in [("0001-01-01", "9999-12-31"), ("99999-01-01", "1-1-1"), ("1900-01-01", "")]:
        query = urlencode({"start": start, "end": end})
        for client, url in [
            (organizer, "/admin/orders"),
            (organizer, f"/admin/campaigns/{campaign_id}/dashboard"),
            (organizer, f"/admin/campaigns/{campaign_id}/export.xlsx"),
            (organizer, "/admin/audit"),
            (finance, "/finance/payouts"),
        ]:
            assert client.get(f"{url}?{query}").status_code in (200, 400), (url, query)
    laggards = organizer.get(f"/admin/campaigns/{campaign_id}/laggards?on=0001-01-01")
    assert laggards.status_code in (200, 400)
    form = {"name": "古代活动", "year": "2026", "starts_on": "0001-01-01", "ends_on": "9999-12-31"}
    response = organizer.post("/admin/campaigns/new", data={**form, "laggard_threshold_pct": "60"})
    assert response.status_code == 400
    assert "日期应在 1900 年到 2999 年之间" in response.get_data(as_text=True)


# -- every form string has a length, at most its column's -----------------------------------------
def _columns():
    from market.campaign.models import Campaign
    from market.catalog.models import Category, Product, Sku
    from market.directory.models import Coop, Pairing, Town, Unit, Village
    from market.groupbuy.models import GroupBuy
    from market.orders.models import Address, Order, Shipment
    from market.payments.models import Payment, Refund
    from market.procurement.models import CustomRequest, Quote, UnitPurchase
    from market.settlements.models import Payout, Statement

    return {
        ("CampaignForm", "name"): [Campaign.name],
        ("ProductForm", "name"): [Product.name],
        ("NewProductForm", "spec"): [Sku.spec],
        ("SkuForm", "spec"): [Sku.spec],
        ("CategoryForm", "name"): [Category.name],
        ("CategoryForm", "slug"): [Category.slug],
        ("TownForm", "name"): [Town.name],
        ("VillageForm", "name"): [Village.name],
        ("CoopForm", "name"): [Coop.name],
        ("CoopForm", "contact_phone"): [Coop.contact_phone],
        ("CoopForm", "settlement_account"): [Coop.settlement_account],
        ("UnitForm", "name"): [Unit.name],
        ("UnitForm", "address"): [Unit.address],
        ("UnitForm", "contact_phone"): [Unit.contact_phone],
        ("PairingForm", "note"): [Pairing.note],
        ("GroupBuyForm", "title"): [GroupBuy.title],
        ("GroupBuyForm", "pickup_address"): [GroupBuy.pickup_address],
        ("GroupBuyForm", "pickup_contact"): [GroupBuy.pickup_contact],
        ("GroupBuyForm", "pickup_window"): [GroupBuy.pickup_window],
        ("ReasonForm", "reason"): [GroupBuy.decline_reason, GroupBuy.cancel_reason],
        ("CheckoutForm", "idempotency_key"): [Order.idempotency_key],
        ("CheckoutForm", "recipient"): [Order.recipient, Address.recipient],
        ("CheckoutForm", "phone"): [Order.phone, Address.phone],
        ("CheckoutForm", "region"): [Address.region],
        ("CheckoutForm", "detail"): [Address.detail],
        ("CheckoutForm", "note"): [Order.note],
        ("ShipForm", "carrier"): [Shipment.carrier, GroupBuy.carrier],
        ("ShipForm", "tracking_number"): [Shipment.tracking_number, GroupBuy.tracking_number],
        ("TransferForm", "reference"): [Payment.transfer_reference],
        ("RefundForm", "reason"): [Refund.reason],
        ("PurchaseForm", "purpose_note"): [UnitPurchase.purpose_note],
        ("PurchaseForm", "recipient"): [UnitPurchase.recipient],
        ("PurchaseForm", "phone"): [UnitPurchase.phone],
        ("PurchaseForm", "address"): [UnitPurchase.address],
        ("PurchaseForm", "invoice_title"): [UnitPurchase.invoice_title],
        ("PurchaseForm", "invoice_tax_id"): [UnitPurchase.invoice_tax_id],
        ("RejectForm", "reason"): [UnitPurchase.decision_note],
        ("CustomRequestForm", "title"): [CustomRequest.title],
        ("CustomRequestForm", "card_text"): [CustomRequest.card_text],
        ("CustomRequestForm", "packaging"): [CustomRequest.packaging],
        ("QuoteForm", "note"): [Quote.note],
        ("SendRefundForm", "reference"): [Refund.sent_reference],
        ("CashHandoverForm", "reference"): [Payment.cash_handover_reference],
        ("PayoutForm", "reference"): [Payout.reference],
        ("PayoutForm", "note"): [Payout.note],
        ("DisputeForm", "reason"): [Statement.dispute_reason],
    }


def _string_fields():
    """(form, field, max length or None, hidden or password) of every text field in
    market/*/forms.py but the accounts' (issue 11 changes those elsewhere). Money fields are
    parsed to bounded numbers; hidden and password fields need a length only when stored."""
    from wtforms import HiddenField, StringField
    from wtforms.validators import Length

    modules = [
        f"market.{info.name}.forms"
        for info in pkgutil.iter_modules(market.__path__)
        if info.ispkg
        and info.name != "accounts"
        and importlib.util.find_spec(f"market.{info.name}.forms")
    ]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for form_name, value in vars(module).items():
            if not (isinstance(value, type) and issubclass(value, Form)):
                continue
            if value.__module__ != module_name:
                continue
            for name in dir(value):
                unbound = getattr(value, name, None)
                if not isinstance(unbound, UnboundField):
                    continue
                cls = unbound.field_class
                if not issubclass(cls, StringField) or _kind(unbound) == "money":
                    continue
                limits = [
                    v.max for v in unbound.kwargs.get("validators", []) if isinstance(v, Length)
                ]
                limit = min((m for m in limits if m >= 0), default=None)
                yield form_name, name, limit, issubclass(cls, HiddenField | PasswordField)


def test_every_form_string_has_a_length_within_its_column():
    columns = _columns()
    problems = []
    seen = set()
    for form_name, name, limit, unstored in _string_fields():
        seen.add((form_name, name))
        stored = columns.get((form_name, name), [])
        if limit is None:
            if stored or not unstored:
                problems.append(f"{form_name}.{name}: no Length(max=...)")
            continue
        for column in stored:
            if limit > column.type.length:
                problems.append(f"{form_name}.{name}: {limit} > {column} ({column.type.length})")
    assert not problems, "\n".join(problems)
    assert set(columns) <= seen  # the table names real fields
