"""Every accepted identifier, amount and currency is made of its ASCII class and nothing else.

The oracles below are written as plain character sets, independently of the patterns in the code,
so a pattern that is anchored with ``$`` (which also matches before a final newline) or written
with ``\\d`` (which admits every Unicode digit) fails them.
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from payments import money
from payments.errors import ValidationError
from payments.validation import (
    BATCH_ID,
    PAYMENT_ID,
    validate_fraud_signal,
    validate_payment,
)

ID_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
BATCH_CHARS = ID_CHARS | {"."}
REFERENCE_CHARS = ID_CHARS | set(".:@/+")
DIGITS = frozenset(string.digits)
# Characters that have slipped through ASCII rules before: line ends, Unicode digits
# (fullwidth, Arabic-Indic), NBSP, letters whose lower() is ASCII (KELVIN SIGN).
TRICKY = ["\n", "\r", "\r\n", "\x00", " ", "\u00a0", "\uff11", "\u0661", "\u212a", "\u0130"]

tricky_text = st.lists(
    st.one_of(st.sampled_from(sorted(BATCH_CHARS | REFERENCE_CHARS)), st.sampled_from(TRICKY)),
    max_size=70,
).map("".join)
any_text = st.one_of(st.text(max_size=70), tricky_text)


def accepted(call) -> bool:
    try:
        call()
    except ValidationError:
        return False
    return True


def is_id(text: str, chars: frozenset[str], longest: int) -> bool:
    return 1 <= len(text) <= longest and set(text) <= chars


@settings(max_examples=400)
@given(any_text)
@example("pay-1\n")
@example("pay\uff11")
def test_payment_id_is_accepted_exactly_when_it_is_1_to_64_of_its_ascii_class(text):
    expected = is_id(text, ID_CHARS, 64)
    body = {"amount": "1", "currency": "USD", "payment_id": text}
    assert accepted(lambda: validate_payment(body)) is expected
    assert accepted(lambda: validate_payment(body, require_id=True, from_csv=True)) is expected
    signal = {"payment_id": text, "risk_score": 1, "reason": "x"}
    assert accepted(lambda: validate_fraud_signal(signal)) is expected
    # Callers outside validation use .match(): it must be a full match too.
    assert bool(PAYMENT_ID.match(text)) is expected


@settings(max_examples=300)
@given(any_text)
@example("batch-1\n")
@example("batch.\u0661")
def test_batch_id_pattern_matches_exactly_its_ascii_class(text):
    expected = is_id(text, BATCH_CHARS, 128)
    assert bool(BATCH_ID.match(text)) is expected
    assert bool(BATCH_ID.fullmatch(text)) is expected


@settings(max_examples=300)
@given(any_text)
@example("cust-1\n")
def test_customer_and_merchant_ids_are_their_ascii_class(text):
    expected = is_id(text, REFERENCE_CHARS, 128)
    for name in ("customer_id", "merchant_id"):
        body = {"amount": "1", "currency": "USD", name: text}
        assert accepted(lambda body=body: validate_payment(body)) is expected


amount_text = st.one_of(
    st.lists(st.sampled_from([*"0123456789.+-", *TRICKY]), max_size=14).map("".join),
    st.text(max_size=14),
)


@settings(max_examples=500)
@given(amount_text)
@example("10\n")
@example("\uff11\uff10.00")
@example("\u0661\u0660")
def test_an_accepted_amount_string_is_ascii_digits_with_at_most_one_point(text):
    try:
        amount = money.parse_amount(text, "JPY" if "." not in text else "KWD")
    except ValidationError:
        return
    assert set(text) <= DIGITS | {".", "+"}
    assert text.count(".") <= 1 and text.lstrip("+").replace(".", "").isdigit()
    assert amount > 0


@given(st.one_of(st.text(max_size=5), st.sampled_from(["usd\n", "US\uff24", "\u212aWD"])))
@example("usd\n")
def test_an_accepted_currency_is_three_ascii_letters(text):
    try:
        code = money.parse_currency(text)
    except ValidationError:
        return
    assert len(text) == 3 and set(text) <= set(string.ascii_letters)
    assert code == text.upper() and code.isascii()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("payment_id", "pay-1\n"),
        ("amount", "10\n"),
        ("amount", "\uff11\uff10.00"),
        ("amount", "\u0661\u0660"),
        ("currency", "USD\n"),
        ("customer_id", "c-1\n"),
        ("payment_method", "card\n"),
        ("payment_method", "\u212aard"),  # KELVIN SIGN lower-cases to an ASCII k
    ],
)
def test_trailing_newlines_and_non_ascii_lookalikes_are_refused(field, value):
    body = {"amount": "10.00", "currency": "USD", field: value}
    with pytest.raises(ValidationError) as caught:
        validate_payment(body)
    assert field in caught.value.fields


@pytest.mark.parametrize("cell", [" 5 ", "\t5", "5 "])
def test_a_csv_amount_may_be_padded_with_ascii_blanks_only(cell):
    row = {"payment_id": "p1", "amount": cell, "currency": "USD"}
    assert validate_payment(row, require_id=True, from_csv=True).amount == 5
    with pytest.raises(ValidationError):
        validate_payment(
            {**row, "amount": "\u00a05"}, require_id=True, from_csv=True
        )  # NBSP is not a blank


@given(st.text(min_size=1, max_size=255).filter(str.isprintable))
def test_the_payment_id_derived_from_an_idempotency_key_is_a_valid_stable_id(key):
    from payments.idempotency import payment_id_for_key

    payment_id = payment_id_for_key(key)
    assert is_id(payment_id, ID_CHARS, 64)
    assert payment_id == payment_id_for_key(key)
    assert payment_id != payment_id_for_key(key + "x")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(alphabet=st.sampled_from('[]{}"\\ab,:'), max_size=6),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.text(alphabet=st.sampled_from('[]{}"\\k'), max_size=3), inner, max_size=3
        ),
    ),
    max_leaves=40,
)


def nesting(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((nesting(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300)
@given(json_values, st.integers(0, 10))
def test_the_depth_check_agrees_with_the_parsed_structure(value, limit):
    from payments.validation import _nested_deeper_than

    text = json.dumps(value)
    assert _nested_deeper_than(text, limit) is (nesting(value) > limit)
