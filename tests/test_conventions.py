"""The tests' own conventions (issue 14, point 5): one way of doing each thing.

- People sign in as they would: through the sign-in form (`factories.sign_in`, behind the
  `client_as` fixture and `factories.signed_in_client`), never by writing Flask-Login's
  `_user_id` into the cookie session.
- One `movements` fixture (tests/conftest.py), one browser sign-in (tests/e2e/steps.py).

And one of the code's (issue 14): no module of market/ runs over 500 lines
(docs/ARCHITECTURE.md: split it by what it serves before it gets there). The modules still over
it are listed, each with its reason, and each must still be over it: the list only shrinks.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).parent
MARKET = TESTS.parent / "market"
# Writing Flask-Login's key: `session["_user_id"] = ...`, or `{"_user_id": ...}` into it.
WRITES_USER_ID = re.compile(r"""\[\s*["']_user_id["']\s*\]\s*=(?!=)|["']_user_id["']\s*:""")
# Forged cookies, each asserted to sign nobody in: the one place a test writes the key.
MAY_WRITE_USER_ID = {"security/test_sessions.py"}


def sources() -> dict[str, str]:
    return {
        path.relative_to(TESTS).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__)
    }


def lines_matching(pattern: re.Pattern[str], skip=frozenset()) -> list[str]:
    return [
        f"tests/{name}:{number}: {line.strip()}"
        for name, text in sources().items()
        if name not in skip
        for number, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]


def test_no_test_signs_in_by_writing_the_session() -> None:
    found = lines_matching(WRITES_USER_ID, skip=MAY_WRITE_USER_ID)
    assert found == [], "sign in through the form (client_as, factories.sign_in):\n" + "\n".join(
        found
    )


def test_the_forged_cookies_are_still_refused() -> None:
    """The exception is what it says: the file that writes the key asserts it signs nobody in."""
    for name in MAY_WRITE_USER_ID:
        text = (TESTS / name).read_text(encoding="utf-8")
        assert WRITES_USER_ID.search(text) and "assert not signed_in(" in text, name


def test_the_pattern_finds_a_session_write() -> None:
    assert WRITES_USER_ID.search('    session["_user_id"] = cookie_id')
    assert WRITES_USER_ID.search("session.update({'_user_id': '1:key'})")
    assert not WRITES_USER_ID.search('cookie_id = session["_user_id"]')
    assert not WRITES_USER_ID.search('assert session["_user_id"] == cookie_id')


def test_one_movements_fixture() -> None:
    found = lines_matching(re.compile(r"^def movements\("), skip={"conftest.py"})
    assert found == [], "use the `movements` fixture of tests/conftest.py:\n" + "\n".join(found)


def test_one_way_to_sign_in_in_the_browser() -> None:
    """Journeys sign in with tests/e2e/steps.py's `sign_in` (and register with its
    `register_at_checkout`), not a copy of the form filling."""
    password_typed = re.compile(r"""get_by_label\(\s*["']密码["']""")
    found = [
        line
        for line in lines_matching(password_typed, skip={"e2e/steps.py"})
        if line.startswith("tests/e2e/")
    ]
    assert found == [], "use tests/e2e/steps.py:\n" + "\n".join(found)


# -- the code: no module of market/ over 500 lines ---------------------------------------------
MAX_MODULE_LINES = 500


def module_lengths() -> dict[str, int]:
    """{'groupbuy/joining.py': lines} for every Python module of market/."""
    return {
        path.relative_to(MARKET).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(MARKET.rglob("*.py"))
    }


def test_no_module_of_market_is_over_500_lines() -> None:
    over = {name: lines for name, lines in module_lengths().items() if lines > MAX_MODULE_LINES}
    assert over == {}, f"split these by what they serve (at most {MAX_MODULE_LINES} lines):\n" + (
        "\n".join(f"market/{name}: {lines} lines" for name, lines in sorted(over.items()))
    )


def test_the_module_count_sees_every_package() -> None:
    """The rule reads the modules it is about: the split ones among them, under the limit."""
    lengths = module_lengths()
    split = (
        "groupbuy/joining.py",
        "procurement/purchases.py",
        "procurement/custom.py",
        "orders/services.py",
        "orders/carts.py",
        "orders/lifecycle.py",
        "payments/services.py",
        "payments/transfers.py",
        "payments/refunds.py",
        "payments/background.py",
    )
    for name in split:
        assert 0 < lengths[name] <= MAX_MODULE_LINES, name
    assert "groupbuy/services.py" not in lengths and "procurement/services.py" not in lengths
