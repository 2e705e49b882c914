"""Money: amounts are exact decimals within the currency's minor units, never floats."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from payments import money
from payments.errors import ValidationError
from payments.validation import parse_json_body


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("99.99", "USD", "99.99"),
        ("10", "USD", "10.00"),
        (10, "USD", "10.00"),
        (Decimal("10.5"), "USD", "10.50"),
        ("10.000", "USD", "10.00"),  # trailing zeros beyond the minor units are harmless
        ("100", "JPY", "100"),
        ("1.234", "KWD", "1.234"),
        ("0.01", "USD", "0.01"),
        ("999999999999", "USD", "999999999999.00"),
        (".5", "EUR", "0.50"),
    ],
)
def test_valid_amounts_are_quantized_to_minor_units(raw, currency, expected):
    assert money.format_amount(money.parse_amount(raw, currency)) == expected


@pytest.mark.parametrize(
    ("raw", "currency", "problem"),
    [
        ("1e3", "USD", "plain decimal"),
        (money.ExponentNumber("1E3"), "USD", "no exponent"),
        ("NaN", "USD", "plain decimal"),
        ("Infinity", "USD", "plain decimal"),
        (Decimal("NaN"), "USD", "finite"),
        (True, "USD", "boolean"),
        (False, "USD", "boolean"),
        (1.5, "USD", "binary float"),
        (None, "USD", "null"),
        ([], "USD", "list"),
        ("", "USD", "plain decimal"),
        (" 1.00", "USD", "plain decimal"),
        ("1,000.00", "USD", "plain decimal"),
        ("$5", "USD", "plain decimal"),
        ("0", "USD", "greater than 0"),
        ("-5", "USD", "greater than 0"),
        ("0.00", "USD", "greater than 0"),
        ("1000000000000", "USD", "at most 999999999999"),
        ("1.001", "USD", "more than 2 decimal place(s)"),
        ("1.5", "JPY", "more than 0 decimal place(s)"),
        ("1.2345", "KWD", "more than 3 decimal place(s)"),
        ("0x10", "USD", "plain decimal"),
    ],
)
def test_malformed_amounts_are_refused_with_a_reason(raw, currency, problem):
    with pytest.raises(ValidationError) as caught:
        money.parse_amount(raw, currency)
    assert problem in caught.value.fields["amount"]


@pytest.mark.parametrize(
    ("raw", "expected"), [("usd", "USD"), ("Eur", "EUR"), ("JPY", "JPY"), ("kwd", "KWD")]
)
def test_currency_is_case_insensitive_and_upper_cased(raw, expected):
    assert money.parse_currency(raw) == expected


@pytest.mark.parametrize("raw", ["XXX", "XAU", "ABC", "US", "USDD", "", 840, None, "U$D"])
def test_unknown_or_non_monetary_currencies_are_refused(raw):
    with pytest.raises(ValidationError) as caught:
        money.parse_currency(raw)
    assert "currency" in caught.value.fields


def test_minor_units_come_from_iso4217():
    units = money.minor_units()
    assert (units["USD"], units["JPY"], units["KWD"]) == (2, 0, 3)
    assert "XTS" not in units


def test_json_numbers_become_decimals_and_exponents_are_flagged():
    body = parse_json_body('{"a": 0.1, "b": 1e2, "c": 0.0000001}')
    assert body["a"] == Decimal("0.1") and isinstance(body["a"], Decimal)
    assert isinstance(body["b"], money.ExponentNumber)
    # Small plain decimals stay plain even though str(Decimal) would print 1E-7.
    with pytest.raises(ValidationError, match="amount"):
        money.parse_amount(body["c"], "USD")
    assert money.parse_amount(body["c"], None) == Decimal("0.0000001")


@given(
    st.decimals(
        min_value=Decimal("0.01"), max_value=Decimal("999999999999"), places=2, allow_nan=False
    )
)
def test_any_two_place_amount_round_trips_exactly(value):
    text = format(value, "f")
    assert money.format_amount(money.parse_amount(text, "USD")) == format(
        value.quantize(Decimal("0.01")), "f"
    )


@given(st.one_of(st.text(max_size=30), st.floats(), st.booleans(), st.none(), st.integers()))
def test_amount_parsing_never_crashes_and_never_accepts_floats(value):
    try:
        amount = money.parse_amount(value, "USD")
    except ValidationError as exc:
        assert set(exc.fields) == {"amount"}
    else:
        assert not isinstance(value, float | bool)
        assert isinstance(amount, Decimal) and amount > 0
        assert amount == amount.quantize(Decimal("0.01"))
