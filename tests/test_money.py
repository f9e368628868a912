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


@pytest.mark.parametrize(
    ("value", "fen"),
    [
        ("50，000元", 5_000_000),  # a Chinese keyboard's comma, and the unit
        ("￥1,234.5", 123_450),
        (30000, 3_000_000),  # a spreadsheet's cell
        (1234.5, 123_450),
        (30000.0, 3_000_000),
    ],
)
def test_the_one_parser_reads_what_people_type_and_spreadsheets_hold(value, fen):
    assert parse_yuan(value, max_fen=1_000_000_000) == fen


@pytest.mark.parametrize(
    ("value", "reason"),
    [("-5", "negative"), (-5.0, "negative"), ("1000001", "too_large"), (True, "format")],
)
def test_a_refused_amount_says_why(value, reason):
    with pytest.raises(InvalidAmount) as refused:
        parse_yuan(value)
    assert refused.value.reason == reason


def test_the_bound_is_the_callers():
    assert parse_yuan("1000001", max_fen=1_000_000_000) == 100_000_100
    with pytest.raises(InvalidAmount):
        parse_yuan("1000001")  # above a price's bound


def test_fen_is_shown_as_yuan_with_two_decimals():
    assert format_fen(1250) == "¥12.50"
    assert format_fen(5) == "¥0.05"
    assert format_fen(123456789) == "¥1,234,567.89"
    assert format_fen(-300) == "-¥3.00"


@given(st.integers(min_value=0, max_value=MAX_PRICE_FEN))
def test_form_text_round_trips(fen):
    assert parse_yuan(fen_to_yuan_text(fen)) == fen
