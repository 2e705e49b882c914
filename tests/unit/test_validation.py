"""Payment validation: every bad field is named; JSON is parsed strictly, numbers as Decimal."""

from decimal import Decimal

import pytest
from payments.errors import PAYLOAD_TOO_LARGE, PaymentError, ValidationError
from payments.validation import (
    MAX_BODY_BYTES,
    parse_json_body,
    validate_fraud_signal,
    validate_payment,
)

VALID = {"amount": "10.00", "currency": "USD"}


def test_minimal_payment_is_normalized():
    payment = validate_payment({"amount": 5, "currency": "eur", "payment_method": "Card"})
    assert payment.to_json() == {"amount": "5.00", "currency": "EUR", "payment_method": "card"}


def test_same_content_has_same_hash_regardless_of_notation():
    a = validate_payment({"amount": "10", "currency": "usd"})
    b = validate_payment({"amount": Decimal("10.00"), "currency": "USD"})
    assert a.content_hash() == b.content_hash()
    assert (
        a.content_hash() != validate_payment({"amount": "10.01", "currency": "USD"}).content_hash()
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, "is required"),
        ("", "is required"),
        ("   ", "is required"),
        ("{", "malformed JSON"),
        ("{'amount': 1}", "malformed JSON"),
        ('{"amount": NaN, "currency": "USD"}', "NaN is not allowed"),
        ('{"amount": Infinity}', "Infinity is not allowed"),
        ('{"amount": -Infinity}', "-Infinity is not allowed"),
        ('{"amount": 1, "amount": 2}', "duplicate key 'amount'"),
        ("[]", "not an array"),
        ("null", "not null"),
        ('"text"', "not a string"),
        ("42", "not a number"),
        ("true", "not a boolean"),
        ('{"a": 1} trailing', "malformed JSON: Extra data"),
        (b'{"amount": "\xff"}', "not valid UTF-8"),
        pytest.param("[" * 60_000, "more than 8 levels deep", id="nesting-60000-deep"),
        pytest.param('{"a":' * 9 + "1" + "}" * 9, "more than 8 levels deep", id="objects-9-deep"),
        pytest.param(
            '{"amount": "1", "currency": "USD", "metadata": {"k": '
            + "[" * 3000
            + "]" * 3000
            + "}}",
            "more than 8 levels deep",
            id="deep-inside-metadata",
        ),
        pytest.param('{"amount": ' + "9" * 5000 + "}", "malformed JSON", id="5000-digit-int"),
    ],
)
def test_malformed_bodies_are_refused_with_a_precise_reason(raw, problem):
    with pytest.raises(ValidationError) as caught:
        parse_json_body(raw)
    assert problem in caught.value.fields["body"]


def test_brackets_inside_strings_do_not_count_as_nesting():
    body = parse_json_body('{"description": "[[[[[[[[[[{{{{{{{{{{\\"[[[[[[[[[", "amount": 1}')
    assert body["description"].startswith("[[[[")


def test_oversized_body_is_refused():
    with pytest.raises(PaymentError) as caught:
        parse_json_body(b'{"description": "' + b"x" * MAX_BODY_BYTES + b'"}')
    assert caught.value.code == PAYLOAD_TOO_LARGE


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({**VALID, "colour": "red"}, "colour", "not a known field"),
        ({"currency": "USD"}, "amount", "is required"),
        ({"amount": "1"}, "currency", "is required"),
        ({**VALID, "payment_id": ""}, "payment_id", "1-64 characters"),
        ({**VALID, "payment_id": "a" * 65}, "payment_id", "1-64 characters"),
        ({**VALID, "payment_id": "has space"}, "payment_id", "1-64 characters"),
        ({**VALID, "payment_id": "semi;colon"}, "payment_id", "1-64 characters"),
        ({**VALID, "payment_id": 12}, "payment_id", "must be a string"),
        ({**VALID, "customer_id": 7}, "customer_id", "must be a string"),
        ({**VALID, "merchant_id": "bad id!"}, "merchant_id", "1-128 characters"),
        ({**VALID, "payment_method": "Credit Card"}, "payment_method", "lower-case word"),
        ({**VALID, "payment_method": ["card"]}, "payment_method", "must be a string"),
        ({**VALID, "description": "x" * 501}, "description", "at most 500"),
        ({**VALID, "description": "bell\x07"}, "description", "control characters"),
        ({**VALID, "description": 5}, "description", "must be a string"),
        ({**VALID, "metadata": "x"}, "metadata", "object of string values"),
        ({**VALID, "metadata": {"k": 1}}, "metadata", "must be a string"),
        ({**VALID, "metadata": {f"k{i}": "v" for i in range(21)}}, "metadata", "at most 20"),
        ({**VALID, "metadata": {"bad key": "v"}}, "metadata", "1-40 characters"),
        ({**VALID, "metadata": {"k": "v" * 501}}, "metadata", "at most 500"),
        ({"amount": "1", "currency": "usd$"}, "currency", "three-letter"),
        ({"amount": True, "currency": "USD"}, "amount", "boolean"),
    ],
)
def test_each_bad_field_is_named(body, field, problem):
    with pytest.raises(ValidationError) as caught:
        validate_payment(body)
    assert problem in caught.value.fields[field]


def test_all_problems_are_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        validate_payment({"amount": "-1", "currency": "ZZZ", "x": 1})
    assert set(caught.value.fields) == {"amount", "currency", "x"}
    assert caught.value.to_body()["error"]["code"] == "VALIDATION_ERROR"


def test_csv_rows_require_payment_id_and_treat_empty_cells_as_missing():
    with pytest.raises(ValidationError) as caught:
        validate_payment(
            {"payment_id": "", "amount": " 5 ", "currency": "usd"}, require_id=True, from_csv=True
        )
    assert caught.value.fields == {"payment_id": "is required"}
    row = validate_payment(
        {"payment_id": "p1", "amount": " 5 ", "currency": "usd", "customer_id": ""},
        require_id=True,
        from_csv=True,
    )
    assert row.to_json() == {"payment_id": "p1", "amount": "5.00", "currency": "USD"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"risk_score": 50, "reason": "x"}, "payment_id"),
        ({"payment_id": "p", "reason": "x"}, "risk_score"),
        ({"payment_id": "p", "risk_score": 101, "reason": "x"}, "risk_score"),
        ({"payment_id": "p", "risk_score": -1, "reason": "x"}, "risk_score"),
        ({"payment_id": "p", "risk_score": True, "reason": "x"}, "risk_score"),
        ({"payment_id": "p", "risk_score": "50", "reason": "x"}, "risk_score"),
        ({"payment_id": "p", "risk_score": 5}, "reason"),
        ({"payment_id": "p", "risk_score": 5, "reason": "x", "extra": 1}, "extra"),
    ],
)
def test_fraud_signal_validation(body, field):
    with pytest.raises(ValidationError) as caught:
        validate_fraud_signal(body)
    assert field in caught.value.fields


def test_fraud_signal_accepts_decimal_scores():
    assert validate_fraud_signal(
        {"payment_id": "p", "risk_score": Decimal("99.5"), "reason": "velocity"}
    ).risk_score == Decimal("99.5")


def test_republish_names_any_clients_payment_by_its_stored_id_and_nothing_else():
    from payments.republish import entity

    for text in ("PAYMENT#order-1", "PAYMENT#acme.order-1", "BATCH#2026-12.files"):
        assert entity(text) == text
    for text in ("PAYMENT#Acme.order-1", "PAYMENT#acme.", "PAYMENT#a.b.c", "PAYMENT#acme#1"):
        with pytest.raises(ValueError, match="must be PAYMENT"):
            entity(text)
