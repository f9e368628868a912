import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.money import MAX_PRICE_FEN, InvalidAmount, fen_to_yuan_text, format_fen, parse_yuan


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.5", 1250),
        ("12.50", 1250),
        ("12", 1200),
        ("0.01", 1),
        ("¥39.90", 3990),
        ("1,000", 100000),
    ],
)
def test_yuan_text_becomes_fen(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.234", "1e3", "12.5.1", None, "9999999999"])
def test_bad_amounts_are_refused(text):
    with pytest.raises(InvalidAmount):
        parse_yuan(text)


def test_fen_is_shown_as_yuan_with_two_decimals():
    assert format_fen(1250) == "¥12.50"
    assert format_fen(5) == "¥0.05"
    assert format_fen(123456789) == "¥1,234,567.89"
    assert format_fen(-300) == "-¥3.00"


@given(st.integers(min_value=0, max_value=MAX_PRICE_FEN))
def test_form_text_round_trips(fen):
    assert parse_yuan(fen_to_yuan_text(fen)) == fen
