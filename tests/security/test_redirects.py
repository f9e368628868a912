"""Safe redirects (issue 11, point 5): every `next` and `done` URL a client hands us is a path on
this site, never another host, a script, or a header of its own.

What a browser does with a Location or a link decides what is evil, so the tests judge each
target the way a browser's URL parser (WHATWG) reads it: it drops tab, CR and LF anywhere and
spaces and control characters at the ends, reads a backslash as a slash in http(s) URLs, and
takes a relative URL that starts with two slashes as another host (`//evil`, `/\\evil`,
`/\\t/evil` and `///evil` alike).

`/.//evil` is a path of this site: the base's host is kept and the dot segment goes, leaving
the path `//evil` on our own host (http://localhost//evil); Python's urljoin agrees. It would
only become another host if something rewrote the path before sending it, which neither Flask
nor werkzeug does (the Location goes out as given, checked below), so it is allowed.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.security.redirects import MAX_LENGTH, is_safe, next_url, safe_target
from tests import factories
from tests.payments import conftest as payments_fixtures

# The card page needs card payments through localstripe (tests/payments/conftest.py).
localstripe_url = payments_fixtures.localstripe_url
stripe_app = payments_fixtures.stripe_app
place_order = payments_fixtures.place_order

SITE = "http://localhost/login"
_ENDS = "".join(chr(c) for c in range(0x21))  # C0 controls and space, stripped at both ends
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def stays_on_site(target: str) -> bool:
    """Whether a browser sent to `target` from one of our pages stays on our host."""
    text = re.sub(r"[\t\n\r]", "", target.strip(_ENDS)).replace("\\", "/")
    if _SCHEME.match(text) or text.startswith("//"):
        return False  # a scheme (another site, javascript:, data:) or another host
    return urlsplit(urljoin(SITE, text)).netloc == "localhost"


# -- the rule itself, over a table of evil inputs ------------------------------------------------
LEAVING = [
    "//evil.invalid",
    "//evil.invalid/path?x=1",
    "/\t/evil.invalid/",
    "/%09/evil.invalid/".replace("%09", "\t"),  # what /login?next=/%09/evil.invalid/ decodes to
    "/\n/evil.invalid/",
    "/\r\n/evil.invalid/",
    "/\\evil.invalid",
    "\\\\evil",
    "\\/evil",
    "/\\/evil",
    "///evil",
    "////evil",
    "http://evil.invalid",
    "HTTP://evil.invalid",
    "https://evil.invalid/",
    "https:evil",
    "https:/evil",
    "ftp://evil.invalid",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.invalid",
    "\x00//evil.invalid",
]
# Not all of these leave the site in a browser, but none is a URL a page of ours sends: they
# are refused all the same (a header split, a NUL that PostgreSQL cannot store, a space that
# only some parsers strip, a megabyte of path).
REFUSED_ANYWAY = [
    "",
    "evil.invalid",  # relative to the current page: never what a `next` should be
    " /x",
    "/x\nSet-Cookie: session=planted",
    "/x\r\nLocation: //evil.invalid",
    "/\x00",
    "/x\x7f",
    "/x\x1b",
    "/\\x",
    "/" + "a" * MAX_LENGTH,
    "/" + "a" * 100_000,
]
NOT_TEXT = [None, b"/villages", 5, ["/villages"], {"next": "/villages"}, object()]
GOOD = [
    "/",
    "/villages",
    "/orders/X?tab=1#a",
    "/orders/20250101-ABCD?tab=1&x=%2F%2Fevil#a",
    "/r/ABC",
    "/group-buys/7",
    "/search?q=%E8%9C%82%E8%9C%9C",
    "/%2F/evil.invalid",  # an encoded slash is a character of the path, not a separator
    "/%09/evil.invalid/",  # the same, for the literal text "%09" (no tab in it)
    "/.//evil",  # see the module's docstring
    "/a/..//evil",
    "/@evil.invalid",
    "/x:y",
]


@pytest.mark.parametrize("target", LEAVING, ids=repr)
def test_targets_that_leave_the_site_are_refused(target):
    assert not stays_on_site(target), "the table's own judgement"
    assert is_safe(target) is False
    assert safe_target(target, "/orders") == "/orders"


@pytest.mark.parametrize("target", REFUSED_ANYWAY, ids=lambda t: repr(t)[:40])
def test_control_characters_spaces_and_huge_targets_are_refused(target):
    assert is_safe(target) is False
    assert safe_target(target, "/") == "/"


@pytest.mark.parametrize("target", NOT_TEXT, ids=lambda t: type(t).__name__)
def test_anything_but_text_is_refused(target):
    assert is_safe(target) is False
    assert safe_target(target, "/") == "/"


@pytest.mark.parametrize("target", GOOD, ids=repr)
def test_paths_of_this_site_are_kept_as_given(target):
    assert stays_on_site(target)
    assert is_safe(target) is True
    assert safe_target(target, "/") == target


def test_the_longest_allowed_path_is_kept():
    target = "/" + "a" * (MAX_LENGTH - 1)
    assert is_safe(target) and not is_safe(target + "a")


PIECES = st.sampled_from(
    [
        *["/", "\\", "//", "\t", "\n", "\r", " ", ".", "..", ":", "@", "%09", "%2F", "?", "#"],
        *["evil", "x", "http", "https:", "javascript:", "\x00", "\x7f", "\u3000", "\ufeff"],
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=8).map("".join))
def test_whatever_the_rule_accepts_stays_on_the_site(target):
    if is_safe(target):
        assert stays_on_site(target), repr(target)
        assert target.startswith("/") and not target.startswith("//")


def test_next_url_reads_the_query_then_the_form_and_falls_back_to_the_default(app):
    with app.test_request_context("/login?next=/villages"):
        assert next_url() == "/villages"
    with app.test_request_context("/login", method="POST", data={"next": "/orders"}):
        assert next_url() == "/orders"
    with app.test_request_context("/login", method="POST", data={"next": "/\t/evil.invalid/"}):
        assert next_url() == "/"
    with app.test_request_context("/login?next=//evil.invalid", data={"next": "/orders"}):
        assert next_url("accounts.account") == "/account"


# -- over HTTP: no answer sends anyone off the site ----------------------------------------------
def location_of(response) -> str:
    assert response.status_code in (301, 302, 303, 307, 308), response.status_code
    return response.headers["Location"]


EVIL_NEXT = [
    "//evil.invalid/",
    "/\\evil.invalid/",
    "/\t/evil.invalid/",
    "https://evil.invalid/",
    "https:evil.invalid",
    "javascript:alert(1)",
]


def sign_in(client, query: dict | None = None, data: dict | None = None):
    form = {"email": "buyer@example.com", "password": factories.PASSWORD, **(data or {})}
    return client.post("/login", query_string=query or {}, data=form)


def test_login_with_a_tab_in_next_answers_no_redirect_at_all(client, world):
    # The address bar's /login?next=/%09/evil.invalid/ holds a control character: refused
    # before any view runs (market/security/inputs.py), on the page and on the sign-in.
    page = client.get("/login?next=/%09/evil.invalid/")
    assert page.status_code == 400 and "Location" not in page.headers
    response = client.post(
        "/login?next=/%09/evil.invalid/",
        data={"email": "buyer@example.com", "password": factories.PASSWORD},
    )
    assert response.status_code == 400 and "Location" not in response.headers
    assert client.get("/account").status_code == 302  # and nobody was signed in


@pytest.mark.parametrize("where", ["query", "form"])
def test_login_never_sends_the_person_off_the_site(app: Flask, world, where):
    for target in EVIL_NEXT:
        if where == "query" and "\t" in target:
            continue  # refused with 400 above
        client = app.test_client()
        given = {"next": target}
        response = sign_in(client, query=given if where == "query" else None, data=given)
        location = location_of(response)
        assert stays_on_site(location), (target, location)
        assert location == "/", (target, location)
        assert client.get("/account").status_code == 200  # signed in all the same


def test_login_goes_back_to_a_page_of_the_site(client, world):
    assert location_of(sign_in(client, query={"next": "/orders?tab=1"})) == "/orders?tab=1"


@pytest.mark.parametrize("target", [*EVIL_NEXT, "\\\\evil", "///evil.invalid"], ids=repr)
def test_choosing_a_language_never_sends_the_person_off_the_site(client, target):
    response = client.post("/lang", data={"lang": "en", "next": target})
    location = location_of(response)
    assert stays_on_site(location) and location == "/", (target, location)
    if "\t" not in target:
        response = client.post("/lang", query_string={"next": target}, data={"lang": "zh_CN"})
        assert location_of(response) == "/", target


def test_choosing_a_language_goes_back_to_the_page_as_given(client):
    assert location_of(client.post("/lang", data={"lang": "en", "next": "/villages"})) == (
        "/villages"
    )
    # Sent as given, not rewritten into "//evil" (which would be another host).
    location = location_of(client.post("/lang", data={"lang": "en", "next": "/.//evil"}))
    assert location == "/.//evil" and urljoin("http://localhost/", location) == (
        "http://localhost//evil"
    )


def test_the_card_page_goes_back_only_to_a_page_of_the_site(
    stripe_app: Flask, world: SimpleNamespace, place_order
):
    number = place_order(world.buyer, {world.honey_product: 1})
    buyer = factories.signed_in_client(stripe_app, world.buyer)
    started = buyer.post(f"/orders/{number}/pay/stripe")
    assert started.status_code == 303
    card_page = f"/orders/{number}/pay/stripe"

    def done_url(target: str) -> str:
        response = buyer.get(card_page, query_string={"next": target})
        assert response.status_code == 200, (target, response.status_code)
        found = re.search(r'data-done-url="([^"]*)"', response.get_data(as_text=True))
        assert found, target
        return found.group(1)

    for target in [t for t in EVIL_NEXT if "\t" not in t] + ["///evil.invalid", "\\\\evil"]:
        assert done_url(target) == f"/orders/{number}", target
    assert done_url("/group-buys/7") == "/group-buys/7"
    # A tab in the address is refused before the page is made.
    response = buyer.get(f"{card_page}?next=/%09/evil.invalid/")
    assert response.status_code == 400 and "data-done-url" not in response.get_data(as_text=True)
