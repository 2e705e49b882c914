"""The handler keeps the published contract (docs/openapi.yaml), through the real handler and moto.

Two directions: every answer the handler gives has a documented status and validates against the
documented schema; and the request schemas are never stricter than the handler (a body the
handler accepts, the schema accepts), so a client that follows the document is never refused by
a rule the document does not state, and what the document refuses the handler refuses too.
"""

from __future__ import annotations

import importlib
import json
import re
import string

import handlers.api
import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from payments import contract, validation
from payments.errors import PaymentError

from tests.functional.world import api_event, sign

DOCUMENT = yaml.safe_load(open("docs/openapi.yaml").read())  # noqa: SIM115
OPERATIONS = {
    (method.upper(), path): operation
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
}


def _validator(ref: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": ref, "components": DOCUMENT["components"]})


def response_schema(method: str, template: str, status: int) -> jsonschema.Validator:
    response = OPERATIONS[(method, template)]["responses"][str(status)]
    while "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return _validator(response["content"]["application/json"]["schema"]["$ref"])


PAYMENT_REQUEST = _validator("#/components/schemas/PaymentRequest")
FRAUD_SIGNAL = _validator("#/components/schemas/FraudSignal")


@pytest.fixture(autouse=True)
def api(world):
    return importlib.reload(handlers.api)


def _template(path: str) -> str:
    for prefix, name in (("/payments/", "payment_id"), ("/batches/", "batch_id")):
        if path.startswith(prefix):
            return prefix + "{" + name + "}"
    return path


EXCHANGES = [
    ("POST", "/payments", {"payment_id": "c-1", "amount": "9.99", "currency": "usd"}, {}),
    ("POST", "/payments", {"payment_id": "c-1", "amount": "9.99", "currency": "USD"}, {}),
    ("POST", "/payments", {"payment_id": "c-1", "amount": "1", "currency": "USD"}, {}),
    (
        "POST",
        "/payments",
        {
            "amount": 12,
            "currency": "jpy",
            "customer_id": "cus_1",
            "merchant_id": "m/1",
            "payment_method": "Card",
            "description": "tea\tand cake",
            "metadata": {"order": "A-1"},
        },
        {"Idempotency-Key": "key-1"},
    ),
    ("POST", "/payments", {"amount": "1", "currency": "USD"}, {"Idempotency-Key": "has space"}),
    ("POST", "/payments", {"amount": "1e3", "currency": "XYZ", "colour": "red"}, {}),
    ("POST", "/payments", "[" * 50 + "]" * 50, {}),
    ("POST", "/payments", "x" * (contract.MAX_BODY_BYTES + 1), {}),
    ("GET", "/payments/c-1", None, {}),
    ("GET", "/payments/nobody", None, {}),
    ("GET", "/payments/bad%20id", None, {}),
    ("GET", "/batches/nothing.here", None, {}),
    ("GET", "/batches/bad%20id", None, {}),
    ("POST", "/validate", {"amount": 5, "currency": "kwd", "metadata": None}, {}),
    ("POST", "/validate", {"amount": "0", "currency": "USD"}, {}),
    ("POST", "/fraud-webhook", {"payment_id": "c-1", "risk_score": 99, "reason": "x"}, "sign"),
    ("POST", "/fraud-webhook", {"payment_id": "c-1", "risk_score": 99, "reason": "x"}, "sign"),
    ("POST", "/fraud-webhook", {"payment_id": "nobody", "risk_score": 1, "reason": "x"}, "sign"),
    ("POST", "/fraud-webhook", {"payment_id": "c-1", "risk_score": 101, "reason": ""}, "sign"),
    ("POST", "/fraud-webhook", {"payment_id": "c-1", "risk_score": 1, "reason": "x"}, {}),
    ("GET", "/health", None, {}),
]


def test_every_answer_has_a_documented_status_and_schema(api, context):
    seen = set()
    for method, path, body, headers in EXCHANGES:
        raw = body if isinstance(body, str) or body is None else json.dumps(body)
        if headers == "sign":
            headers = {"X-Signature": sign(raw)}
        response = api.handler(api_event(method, path, body=raw, headers=headers), context)
        status = response["statusCode"]
        template = _template(path)
        assert str(status) in OPERATIONS[(method, template)]["responses"], (method, path, status)
        assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
        response_schema(method, template, status).validate(json.loads(response["body"]))
        seen.add((method, template, status))
    # The exchanges above reach every success and handler error the document lists but 5xx.
    documented = {
        (method, path, int(status))
        for (method, path), operation in OPERATIONS.items()
        for status, response in operation["responses"].items()
        if (int(status) < 500 and "$ref" not in response) or status in ("400", "401", "404", "409")
    }
    assert documented - seen <= {("GET", "/batches/{batch_id}", 200)}


@pytest.mark.parametrize("path", ["/payments/\x13\xad\x82", "/batches/\x8e\xef\xbc"])
def test_an_id_with_characters_the_router_does_not_match_is_400_not_405(api, context, path):
    """Found by Schemathesis: Powertools' router did not match the id, and the 404 handler
    answered 405 GET-not-allowed on a GET route."""
    response = api.handler(api_event("GET", path), context)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "VALIDATION_ERROR"


def test_a_wrong_method_is_405_with_allow_from_the_contract(api, context):
    response = api.handler(api_event("DELETE", "/payments/c-1"), context)
    assert response["statusCode"] == 405
    assert response["multiValueHeaders"]["Allow"] == ["GET"]
    _validator("#/components/schemas/Error").validate(json.loads(response["body"]))


# -- the request schemas are never stricter than the handler --------------------------------
_text = st.text(string.printable + "é€\u0085\x00", max_size=12)
_scalars = st.none() | st.booleans() | st.integers(-5, 10**13) | _text
_amounts = (
    st.decimals(min_value=-1, max_value=10**13, places=4, allow_nan=False).map(str)
    | st.integers(-1, 10**13)
    | st.from_regex(r"\A[+-]?[0-9]{0,4}(\.[0-9]{0,4})?\Z")
    | _scalars
)
_currencies = st.sampled_from(["USD", "usd", "JPY", "KWD", "XYZ", "US", "U$D", ""]) | _scalars
_ids = st.from_regex(r"\A[A-Za-z0-9_.:@/+ -]{0,70}\Z") | _scalars
_metadata = st.none() | st.dictionaries(_text, _scalars, max_size=22) | _scalars
_payment_bodies = st.fixed_dictionaries(
    {"amount": _amounts, "currency": _currencies},
    optional={
        "payment_id": _ids,
        "customer_id": _ids,
        "merchant_id": _ids,
        "payment_method": _ids,
        "description": _text | st.text(max_size=510) | _scalars,
        "metadata": _metadata,
        "unknown": _scalars,
    },
)


def _accepted(validate, body: dict) -> bool:
    try:
        validate(validation.parse_json_body(json.dumps(body)))
    except PaymentError:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_payment_bodies)
@example(body={"amount": "+5", "currency": "usd", "payment_id": None, "metadata": {}})
@example(body={"amount": ".5", "currency": "EUR", "description": "line\r\nbreak\t"})
@example(body={"amount": 10**12 - 1, "currency": "JPY", "payment_method": "Bank_Transfer"})
def test_a_payment_the_handler_accepts_the_schema_accepts(body):
    if _accepted(validation.validate_payment, body):
        PAYMENT_REQUEST.validate(json.loads(json.dumps(body)))


@settings(max_examples=200, deadline=None)
@given(
    body=st.fixed_dictionaries(
        {"payment_id": _ids, "risk_score": _amounts, "reason": _text | _scalars},
        optional={"extra": _scalars},
    )
)
@example(body={"payment_id": "p", "risk_score": 100, "reason": "x" * 500})
def test_a_fraud_signal_the_handler_accepts_the_schema_accepts(body):
    if _accepted(validation.validate_fraud_signal, body):
        FRAUD_SIGNAL.validate(json.loads(json.dumps(body)))


@pytest.mark.parametrize("name", sorted(contract.PARAMETERS))
@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=130) | st.from_regex(r"\A[A-Za-z0-9_.-]{0,130}\Z"))
def test_parameter_patterns_match_the_handlers_rules_exactly(name, value):
    runtime = {
        "payment_id": validation.PAYMENT_ID,
        "batch_id": validation.BATCH_ID,
        contract.IDEMPOTENCY_HEADER: validation.IDEMPOTENCY_KEY,
    }[name]
    documented = OPERATION_PARAMETERS[name]["schema"]["pattern"]
    # ECMA-262 reads `$` as the end of the input; Python's re.fullmatch does the same.
    assert bool(re.fullmatch(documented[1:-1], value)) == bool(runtime.fullmatch(value))


OPERATION_PARAMETERS = {
    parameter["name"]: parameter
    for operation in OPERATIONS.values()
    for parameter in operation.get("parameters", [])
}
