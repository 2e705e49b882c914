"""Validation of every payment-shaped input: API bodies, CSV rows and fraud webhooks.

One validator serves ``POST /payments``, ``POST /validate`` and each CSV row, so a row is rejected
for exactly the reasons the API would refuse the same payment. Errors name each bad field.

Limits on a JSON body: ``MAX_BODY_BYTES``, arrays and objects nested at most ``MAX_JSON_DEPTH``
deep (checked before parsing: the parser recurses once per level), metadata a flat object of at
most ``MAX_METADATA_KEYS`` string values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from payments import contract, money
from payments.clients import CLIENT_ID, DEFAULT_CLIENT, STORED_PAYMENT_ID_PATTERN

# The limits and rules are the API contract's; callers read them here, beside the validators.
from payments.contract import BATCH_ID_PATTERN as BATCH_ID_PATTERN
from payments.contract import BATCH_ID_RULE as BATCH_ID_RULE
from payments.contract import MAX_BODY_BYTES as MAX_BODY_BYTES
from payments.contract import MAX_DESCRIPTION as MAX_DESCRIPTION
from payments.contract import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from payments.contract import MAX_METADATA_KEYS as MAX_METADATA_KEYS
from payments.contract import MAX_METADATA_VALUE as MAX_METADATA_VALUE
from payments.contract import MAX_REASON as MAX_REASON
from payments.contract import PAYMENT_ID_RULE as PAYMENT_ID_RULE
from payments.errors import PAYLOAD_TOO_LARGE, PaymentError, ValidationError

_JSON_STRUCTURE = re.compile(r'[\\"\[\]{}]')


def _full(pattern: str) -> re.Pattern[str]:
    """A contract pattern as a full match: \\A...\\Z, never ^...$ (`$` also matches before a
    final "\\n", so "pay-1\\n" would pass beside "pay-1"). With \\Z, `.match()` is full too."""
    return re.compile(rf"\A(?:{pattern})\Z")


PAYMENT_ID = _full(contract.PAYMENT_ID_PATTERN)
STORED_PAYMENT_ID = _full(STORED_PAYMENT_ID_PATTERN)
BATCH_ID = _full(BATCH_ID_PATTERN)
IDEMPOTENCY_KEY = _full(contract.IDEMPOTENCY_KEY_PATTERN)
_REFERENCE = _full(contract.REFERENCE_PATTERN)
# Checked before lower-casing: str.lower() maps some non-ASCII letters to ASCII (KELVIN SIGN -> k).
_PAYMENT_METHOD = _full(contract.PAYMENT_METHOD_PATTERN)
_METADATA_KEY = _full(contract.METADATA_KEY_PATTERN)
# What a CSV cell may be padded with: ASCII blanks only (str.strip() would also eat NBSP & co).
_CSV_BLANKS = " \t"
_CONTROL = re.compile(f"[{contract.CONTROL_RANGES}]")

REQUIRED_FIELDS = contract.REQUIRED_PAYMENT_FIELDS
PAYMENT_FIELDS = frozenset(contract.SCHEMAS["PaymentRequest"]["properties"])
OPTIONAL_FIELDS = tuple(
    name for name in contract.SCHEMAS["PaymentRequest"]["properties"] if name not in REQUIRED_FIELDS
)
FRAUD_SIGNAL_FIELDS = frozenset(contract.FRAUD_SIGNAL_FIELDS)
# Columns a CSV file may carry into a payment; metadata has no flat form, other columns are
# ignored (DESIGN section 3).
CSV_FIELDS = (
    "payment_id",
    "amount",
    "currency",
    "customer_id",
    "merchant_id",
    "payment_method",
    "description",
)
CSV_REQUIRED_COLUMNS = ("payment_id", "amount", "currency")


@dataclass(frozen=True)
class Payment:
    """A validated payment request; ``amount`` is quantized to the currency's minor units."""

    amount: Decimal
    currency: str
    payment_id: str | None = None
    customer_id: str | None = None
    merchant_id: str | None = None
    payment_method: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """What makes two submissions 'the same payment' (everything but the id), JSON-ready."""
        data: dict[str, Any] = {
            "amount": money.format_amount(self.amount),
            "currency": self.currency,
        }
        for name in ("customer_id", "merchant_id", "payment_method", "description"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.metadata:
            data["metadata"] = dict(sorted(self.metadata.items()))
        return data

    def content_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def request_hash(self) -> str:
        """What makes two submissions 'the same request': the content and the ``payment_id``
        as sent (or its absence); an ``Idempotency-Key`` is bound to it."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        data = self.content()
        if self.payment_id is not None:
            data = {"payment_id": self.payment_id, **data}
        return data


def parse_json_body(raw: str | bytes | None) -> dict[str, Any]:
    """Parse a request body into a JSON object with Decimal numbers, or raise a precise error."""
    if raw is None or (isinstance(raw, str | bytes) and not raw.strip()):
        raise ValidationError({"body": "is required: send a JSON object"})
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > MAX_BODY_BYTES:
        raise PaymentError(
            f"request body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}",
            code=PAYLOAD_TOO_LARGE,
            details={"limit_bytes": MAX_BODY_BYTES},
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError({"body": f"is not valid UTF-8 (byte {exc.start})"}) from None
    if _nested_deeper_than(text, MAX_JSON_DEPTH):
        raise ValidationError(
            {"body": f"nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"}
        )
    try:
        value = json.loads(
            text,
            parse_float=money.parse_json_number,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except _JSONRefused as exc:
        raise ValidationError({"body": str(exc)}) from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            {"body": f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}
        ) from None
    except (ValueError, RecursionError) as exc:
        # Integers longer than Python's 4300-digit limit; RecursionError cannot happen after the
        # depth check, but it must never become a 500.
        raise ValidationError({"body": f"malformed JSON: {type(exc).__name__}"}) from None
    if not isinstance(value, dict):
        raise ValidationError({"body": f"must be a JSON object, not {_json_kind(value)}"})
    return value


def _nested_deeper_than(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` opens more than ``limit`` arrays/objects inside each other.

    One linear pass over the structural characters, skipping string contents; malformed text is
    left for the parser to describe.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, skip_to = 0, False, 0
    for match in _JSON_STRUCTURE.finditer(text):
        at, char = match.start(), match.group()
        if at < skip_to:
            continue
        if in_string:
            if char == "\\":
                skip_to = at + 2  # the escaped character, which may be a quote
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def validate_payment(
    data: Mapping[str, Any], *, require_id: bool = False, from_csv: bool = False
) -> Payment:
    """Validate one payment (API body or CSV row); every problem is reported at once."""
    errors: dict[str, str] = {}
    if not from_csv:
        for name in sorted(set(data) - PAYMENT_FIELDS):
            errors[name] = "is not a known field"
    else:
        # CSV cells are all text and an empty cell means "not given".
        data = {
            k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip(_CSV_BLANKS))
        }

    payment_id = data.get("payment_id")
    if payment_id is None:
        if require_id:
            errors["payment_id"] = "is required"
    elif not isinstance(payment_id, str):
        errors["payment_id"] = "must be a string"
    elif not PAYMENT_ID.fullmatch(payment_id):
        errors["payment_id"] = PAYMENT_ID_RULE

    currency: str | None = None
    if "currency" not in data:
        errors["currency"] = "is required"
    else:
        try:
            currency = money.parse_currency(data["currency"])
        except ValidationError as exc:
            errors.update(exc.fields)

    amount: Decimal | None = None
    if "amount" not in data:
        errors["amount"] = "is required"
    else:
        raw_amount = data["amount"]
        if from_csv and isinstance(raw_amount, str):
            raw_amount = raw_amount.strip(_CSV_BLANKS)
        try:
            amount = money.parse_amount(raw_amount, currency)
        except ValidationError as exc:
            errors.update(exc.fields)

    optional: dict[str, Any] = {}
    for name in ("customer_id", "merchant_id"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[name] = "must be a string"
        elif not _REFERENCE.fullmatch(value):
            errors[name] = contract.REFERENCE_RULE
        else:
            optional[name] = value
    method = data.get("payment_method")
    if method is not None:
        if not isinstance(method, str):
            errors["payment_method"] = "must be a string"
        elif not _PAYMENT_METHOD.fullmatch(method):
            errors["payment_method"] = "must be a lower-case word such as card or bank_transfer"
        else:
            optional["payment_method"] = method.lower()
    description = data.get("description")
    if description is not None:
        if not isinstance(description, str):
            errors["description"] = "must be a string"
        elif len(description) > MAX_DESCRIPTION:
            errors["description"] = f"must be at most {MAX_DESCRIPTION} characters"
        elif _CONTROL.search(description):
            errors["description"] = "must not contain control characters"
        else:
            optional["description"] = description
    if "metadata" in data and data["metadata"] is not None:
        metadata, problem = _metadata(data["metadata"])
        if problem:
            errors["metadata"] = problem
        elif metadata:
            optional["metadata"] = metadata

    if errors:
        raise ValidationError(errors)
    assert amount is not None and currency is not None
    return Payment(amount=amount, currency=currency, payment_id=payment_id, **optional)


@dataclass(frozen=True)
class FraudSignal:
    payment_id: str
    risk_score: Decimal
    reason: str
    client_id: str = DEFAULT_CLIENT


def validate_fraud_signal(data: Mapping[str, Any]) -> FraudSignal:
    errors: dict[str, str] = {}
    for name in sorted(set(data) - FRAUD_SIGNAL_FIELDS - set(contract.FRAUD_SIGNAL_OPTIONAL)):
        errors[name] = "is not a known field"
    client_id = data.get("client_id", DEFAULT_CLIENT)
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        errors["client_id"] = contract.CLIENT_ID_RULE
    payment_id = data.get("payment_id")
    if payment_id is None:
        errors["payment_id"] = "is required"
    elif not isinstance(payment_id, str) or not PAYMENT_ID.fullmatch(payment_id):
        errors["payment_id"] = PAYMENT_ID_RULE
    score = data.get("risk_score")
    if score is None:
        errors["risk_score"] = "is required"
    elif isinstance(score, bool | str | float) or not isinstance(score, int | Decimal):
        errors["risk_score"] = "must be a number from 0 to 100"
    elif not 0 <= Decimal(score) <= contract.MAX_RISK_SCORE:
        errors["risk_score"] = f"must be from 0 to {contract.MAX_RISK_SCORE}"
    reason = data.get("reason")
    if reason is None:
        errors["reason"] = "is required"
    elif not isinstance(reason, str) or not 1 <= len(reason) <= MAX_REASON:
        errors["reason"] = f"must be a string of 1-{MAX_REASON} characters"
    if errors:
        raise ValidationError(errors)
    return FraudSignal(
        payment_id=payment_id, risk_score=Decimal(score), reason=reason, client_id=client_id
    )


def _metadata(value: object) -> tuple[dict[str, str], str | None]:
    if not isinstance(value, dict):
        return {}, "must be an object of string values"
    if len(value) > MAX_METADATA_KEYS:
        return {}, f"must have at most {MAX_METADATA_KEYS} keys"
    for key, item in value.items():
        if not _METADATA_KEY.fullmatch(key):
            return {}, f"key {key[:50]!r} must be 1-40 characters of letters, digits and _ . -"
        if not isinstance(item, str):
            return {}, f"value of {key!r} must be a string"
        if len(item) > MAX_METADATA_VALUE:
            return {}, f"value of {key!r} must be at most {MAX_METADATA_VALUE} characters"
    return dict(value), None


class _JSONRefused(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    raise _JSONRefused(f"malformed JSON: {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JSONRefused(f"malformed JSON: duplicate key {key!r}")
        result[key] = value
    return result


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"
