"""The REST API's contract as data: routes, parameters, bodies, limits, statuses and errors.

Defined once, here, beside the code that enforces it: ``payments.validation`` takes its limits and
patterns from this module and the API handler its routes; the stack (``lib/api_spec.py``) builds
API Gateway's resources, methods and request models from it, and ``lib/openapi.py`` renders it as
the OpenAPI 3.1 document committed in ``docs/openapi.yaml``. Plain data and the standard library
only: the stack loads it at synth time, and every cold start of the API function pays for it.

Patterns are written in the subset that Python's ``re`` and ECMA-262 (JSON Schema's dialect)
read alike, without anchors: the runtime full-matches them (``\\A...\\Z``), the document anchors
them with ``^...$``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from payments import errors

# The contract's version (the OpenAPI document's info.version): the minor grows with additions,
# the major with anything a client would have to change for.
API_VERSION = "1.1.0"

# -- limits -----------------------------------------------------------------------------------
MAX_BODY_BYTES = 64 * 1024
# A payment body needs two levels (the object and its metadata); the rest is headroom.
MAX_JSON_DEPTH = 8
MAX_DESCRIPTION = 500
MAX_REASON = 500
MAX_METADATA_KEYS = 20
MAX_METADATA_VALUE = 500
MAX_MAJOR_UNITS = 999_999_999_999
MAX_RISK_SCORE = 100
MAX_IDEMPOTENCY_KEY = 255

# -- patterns (unanchored; classes spelled out, [0-9] not \d, which admits every Unicode digit) --
PAYMENT_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
# An API client's id (payments.clients): no "." or "#", which separate it in stored ids and keys.
CLIENT_ID_PATTERN = r"[a-z][a-z0-9-]{1,31}"
CLIENT_ID_RULE = "must be 2-32 characters: a lower-case letter, then lower-case letters, digits, -"
PAYMENT_ID_RULE = "must be 1-64 characters of A-Z, a-z, 0-9, _ and -"
BATCH_ID_PATTERN = r"[A-Za-z0-9_.-]{1,128}"
BATCH_ID_RULE = "must be 1-128 characters of A-Z, a-z, 0-9, _ . -"
REFERENCE_PATTERN = r"[A-Za-z0-9_.:@/+-]{1,128}"
REFERENCE_RULE = "must be 1-128 characters of letters, digits and _ . : @ / + -"
PAYMENT_METHOD_PATTERN = r"[A-Za-z][A-Za-z0-9_]{0,31}"
METADATA_KEY_PATTERN = r"[A-Za-z0-9_.-]{1,40}"
CURRENCY_PATTERN = r"[A-Za-z]{3}"
# Plain decimal notation: digits with an optional fraction, no sign but an optional "+", no
# exponent, spaces or separators. Whether it is > 0, within MAX_MAJOR_UNITS and within the
# currency's minor units is checked on the number (payments.money).
AMOUNT_PATTERN = r"[+]?(?:[0-9]+(?:[.][0-9]*)?|[.][0-9]+)"
CONTROL_RANGES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
# Visible ASCII: a key travels in an HTTP header, where spaces at either end are not kept.
IDEMPOTENCY_KEY_PATTERN = rf"[!-~]{{1,{MAX_IDEMPOTENCY_KEY}}}"
IDEMPOTENCY_KEY_RULE = f"must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters (no spaces)"

# -- headers ----------------------------------------------------------------------------------
API_KEY_HEADER = "x-api-key"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_HEADER = "X-Signature"
# Fraud webhook signatures: X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=<hex>...]
# over "<t>.<raw body>"; a signature older than the tolerance is refused, and so is one dated
# more than the clock skew ahead of the server's clock (or it could be replayed for the
# tolerance *plus* however far ahead it was dated: twice the tolerance at worst).
SIGNATURE_SCHEME = "v1"
DEFAULT_SIGNATURE_TOLERANCE_SECONDS = 300
SIGNATURE_MAX_CLOCK_SKEW_SECONDS = 30

# -- values -----------------------------------------------------------------------------------
PAYMENT_STATUSES = ("RECEIVED", "PROCESSING", "COMPLETED", "FAILED")
PAYMENT_SOURCES = ("api", "batch")
BATCH_STATUSES = ("PROCESSING", "COMPLETED", "FAILED")
FRAUD_ACTIONS = ("failed", "alerted")


def anchored(pattern: str) -> str:
    """``pattern`` as JSON Schema reads it: the whole string must match."""
    return f"^{pattern}$"


def _nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
    kinds = schema.pop("type")
    return {"type": [kinds, "null"], **schema, "description": description}


_TIMESTAMP = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601"}
_PAYMENT_ID = {"type": "string", "pattern": anchored(PAYMENT_ID_PATTERN)}
_AMOUNT_TEXT = {
    "type": "string",
    "pattern": anchored(r"[0-9]+(?:[.][0-9]+)?"),
    "description": "decimal string with exactly the currency's minor-unit digits",
    "examples": ["99.99"],
}
_CURRENCY_OUT = {
    "type": "string",
    "pattern": anchored("[A-Z]{3}"),
    "description": "ISO 4217 code, upper case",
}
_PAYMENT_FIELDS_IN: dict[str, dict[str, Any]] = {
    "payment_id": _nullable(
        dict(_PAYMENT_ID),
        "1-64 of A-Z a-z 0-9 _ -; when omitted the server makes one (derived from "
        "Idempotency-Key when that header is sent)",
    ),
    "amount": {
        "type": ["string", "number"],
        "pattern": anchored(AMOUNT_PATTERN),
        "exclusiveMinimum": 0,
        "maximum": MAX_MAJOR_UNITS,
        "description": "> 0 and at most 999,999,999,999 major units, with at most the "
        "currency's minor-unit digits (USD 2, JPY 0, KWD 3); a decimal string or a JSON number "
        "in plain notation (no exponent)",
        "examples": ["99.99"],
    },
    "currency": {
        "type": "string",
        "pattern": anchored(CURRENCY_PATTERN),
        "description": "an active ISO 4217 code, any case",
        "examples": ["USD"],
    },
    "customer_id": _nullable(
        {"type": "string", "pattern": anchored(REFERENCE_PATTERN)}, "optional reference"
    ),
    "merchant_id": _nullable(
        {"type": "string", "pattern": anchored(REFERENCE_PATTERN)}, "optional reference"
    ),
    "payment_method": _nullable(
        {"type": "string", "pattern": anchored(PAYMENT_METHOD_PATTERN)},
        "a word such as card or bank_transfer; stored in lower case",
    ),
    "description": _nullable(
        {
            "type": "string",
            "maxLength": MAX_DESCRIPTION,
            "pattern": anchored(f"[^{CONTROL_RANGES}]*"),
        },
        f"at most {MAX_DESCRIPTION} characters, no control characters but tab and line breaks",
    ),
    "metadata": _nullable(
        {
            "type": "object",
            "maxProperties": MAX_METADATA_KEYS,
            "propertyNames": {"pattern": anchored(METADATA_KEY_PATTERN)},
            "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
        },
        f"a flat object of at most {MAX_METADATA_KEYS} string values of at most "
        f"{MAX_METADATA_VALUE} characters, keys 1-40 of A-Z a-z 0-9 _ . -",
    ),
}
REQUIRED_PAYMENT_FIELDS = ("amount", "currency")
FRAUD_SIGNAL_FIELDS = ("payment_id", "risk_score", "reason")
# Optional: the client whose payment it is (default: the deployment's default client).
FRAUD_SIGNAL_OPTIONAL = ("client_id",)


def _payment_out(*, stored: bool) -> dict[str, Any]:
    """A payment as the API answers: stored (with status and history) or only normalized."""
    properties: dict[str, Any] = {
        "payment_id": dict(_PAYMENT_ID),
        "amount": _AMOUNT_TEXT,
        "currency": _CURRENCY_OUT,
    }
    required = ["amount", "currency"]
    if stored:
        properties |= {
            "status": {"enum": list(PAYMENT_STATUSES)},
            "reason": {"type": ["string", "null"], "description": "why a payment FAILED"},
            "source": {"enum": [*PAYMENT_SOURCES, None]},
            "batch_id": {"type": ["string", "null"]},
        }
        required = ["payment_id", "amount", "currency", "status", "reason", "source"]
        required += ["batch_id", "created_at", "updated_at", "history"]
    for name in ("customer_id", "merchant_id", "payment_method", "description"):
        properties[name] = {"type": "string"}
    properties["metadata"] = {"type": "object", "additionalProperties": {"type": "string"}}
    if stored:
        properties |= {
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
            "history": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["status", "at", "reason"],
                    "properties": {
                        "status": {"enum": list(PAYMENT_STATUSES)},
                        "at": _TIMESTAMP,
                        "reason": {"type": ["string", "null"]},
                    },
                    "additionalProperties": False,
                },
            },
        }
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# JSON Schema 2020-12 (OpenAPI 3.1). Request bodies are exactly as strict as the handler or
# looser, never stricter: a request the schema refuses, the handler refuses too (Schemathesis
# checks it). What a schema cannot say (minor units per currency, duplicate keys, exponent
# notation in a JSON number) the handler still refuses with a 400 naming the field.
SCHEMAS: dict[str, dict[str, Any]] = {
    "PaymentRequest": {
        "type": "object",
        "description": "A payment to submit or validate. Optional fields may be null, which "
        "means not given.",
        "required": list(REQUIRED_PAYMENT_FIELDS),
        "properties": _PAYMENT_FIELDS_IN,
        "additionalProperties": False,
        "examples": [{"payment_id": "order-1234", "amount": "99.99", "currency": "USD"}],
    },
    "FraudSignal": {
        "type": "object",
        "required": list(FRAUD_SIGNAL_FIELDS),
        "properties": {
            "payment_id": {**_PAYMENT_ID, "description": "the payment the signal is about"},
            "client_id": {
                "type": "string",
                "pattern": anchored(CLIENT_ID_PATTERN),
                "description": "the client whose payment it is; default: the default client",
            },
            "risk_score": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_RISK_SCORE,
                "description": "0-100",
            },
            "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON},
        },
        "additionalProperties": False,
        "examples": [{"payment_id": "order-1234", "risk_score": 97, "reason": "card stolen"}],
    },
    "Payment": _payment_out(stored=True),
    "PaymentValidation": {
        "type": "object",
        "required": ["valid", "payment"],
        "properties": {"valid": {"const": True}, "payment": _ref("NormalizedPayment")},
        "additionalProperties": False,
    },
    "NormalizedPayment": _payment_out(stored=False),
    "FraudResult": {
        "type": "object",
        "required": ["payment_id", "status", "action"],
        "properties": {
            "payment_id": dict(_PAYMENT_ID),
            "status": {"enum": list(PAYMENT_STATUSES)},
            "action": {
                "enum": list(FRAUD_ACTIONS),
                "description": "failed: the payment was not final and is now FAILED with "
                "FRAUD_SUSPECTED; alerted: it was final and keeps its status, with an audited "
                "fraud alert",
            },
        },
        "additionalProperties": False,
    },
    "Batch": {
        "type": "object",
        "required": [
            "batch_id",
            "status",
            "total_rows",
            "accepted",
            "rejected",
            "duplicates",
            "rejected_rows",
            "report_key",
        ],
        "properties": {
            "batch_id": {"type": "string"},
            "status": {"enum": list(BATCH_STATUSES)},
            "reason_code": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "total_rows": {"type": "integer", "minimum": 0},
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "rejected_rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "payment_id", "reason"],
                    "properties": {
                        "line": {"type": "integer", "minimum": 1},
                        "payment_id": {"type": ["string", "null"]},
                        "code": {"type": "string"},
                        "reason": {"type": ["string", "null"]},
                    },
                    "additionalProperties": False,
                },
            },
            "rejected_rows_truncated": {"type": "boolean"},
            "report_key": {"type": ["string", "null"]},
            "version_id": {"type": ["string", "null"]},
            "started_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]},
            "updated_at": {"type": ["string", "null"]},
        },
        "additionalProperties": False,
    },
    "Health": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["healthy", "unhealthy"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            "error": _ref("ErrorDetail"),
        },
        "additionalProperties": False,
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _ref("ErrorDetail")},
        "additionalProperties": False,
    },
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"enum": list(errors.API_CODES)},
            "message": {"type": "string"},
            "details": {
                "type": "object",
                "description": "VALIDATION_ERROR: fields maps each bad field to its problem; "
                "5xx: always empty",
            },
        },
        "additionalProperties": False,
    },
}


@dataclass(frozen=True, kw_only=True)
class Parameter:
    name: str
    location: str  # "path" or "header"
    pattern: str
    description: str
    required: bool = True


PARAMETERS: dict[str, Parameter] = {
    "payment_id": Parameter(
        name="payment_id", location="path", pattern=PAYMENT_ID_PATTERN, description=PAYMENT_ID_RULE
    ),
    "batch_id": Parameter(
        name="batch_id", location="path", pattern=BATCH_ID_PATTERN, description=BATCH_ID_RULE
    ),
    IDEMPOTENCY_HEADER: Parameter(
        name=IDEMPOTENCY_HEADER,
        location="header",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        required=False,
        description="makes a retry safe: the first request with a key binds the key to it and "
        "its payment, for good and in the same write as the payment; a retry with the same body "
        "gets the payment (200), even after a failed answer; the key with another body, "
        "another payment_id or none is a 409 (the key wins over the body's payment_id). "
        + IDEMPOTENCY_KEY_RULE,
    ),
}


@dataclass(frozen=True, kw_only=True)
class Route:
    """One operation. ``responses`` are the handler's own answers: status -> body schema."""

    operation_id: str
    method: str
    path: str
    summary: str
    description: str = ""
    api_key_required: bool = True
    signed: bool = False
    request: str | None = None
    headers: tuple[str, ...] = ()
    responses: Mapping[int, str] = field(default_factory=dict)

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(part[1:-1] for part in self.path.split("/") if part.startswith("{"))


_FAILURES = {500: "Error", 503: "Error"}
ROUTES: tuple[Route, ...] = (
    Route(
        operation_id="createPayment",
        method="POST",
        path="/payments",
        summary="Submit a payment",
        description="Stores the payment as RECEIVED and queues it; processing happens after "
        "the answer. An identical resubmission (same payment_id and content) answers 200 with "
        "the payment as it is now.",
        request="PaymentRequest",
        headers=(IDEMPOTENCY_HEADER,),
        responses={202: "Payment", 200: "Payment", 400: "Error", 409: "Error", 413: "Error"}
        | _FAILURES,
    ),
    Route(
        operation_id="getPayment",
        method="GET",
        path="/payments/{payment_id}",
        summary="Read a payment with its status history",
        responses={200: "Payment", 400: "Error", 404: "Error"} | _FAILURES,
    ),
    Route(
        operation_id="getBatch",
        method="GET",
        path="/batches/{batch_id}",
        summary="Read a CSV batch's outcome",
        description="Counts, up to 1,000 rejected rows (line, payment_id, reason) and the "
        "report's object key.",
        responses={200: "Batch", 400: "Error", 404: "Error"} | _FAILURES,
    ),
    Route(
        operation_id="validatePayment",
        method="POST",
        path="/validate",
        summary="Validate a payment without storing it",
        request="PaymentRequest",
        responses={200: "PaymentValidation", 400: "Error", 413: "Error"} | _FAILURES,
    ),
    Route(
        operation_id="reportFraud",
        method="POST",
        path="/fraud-webhook",
        summary="Fraud provider's signal about a payment (signed webhook)",
        description="A payment not yet final becomes FAILED with reason FRAUD_SUSPECTED; a "
        "final one keeps its status and gets a fraud alert. Both are audited and published. "
        "A redelivered webhook changes nothing twice.",
        signed=True,
        request="FraudSignal",
        responses={202: "FraudResult", 400: "Error", 401: "Error", 404: "Error", 413: "Error"}
        | _FAILURES,
    ),
    Route(
        operation_id="getHealth",
        method="GET",
        path="/health",
        summary="Health of the API and its dependencies",
        description="For load balancers and uptime checks: needs no API key, reveals no data.",
        api_key_required=False,
        responses={200: "Health", 500: "Error", 503: "Health"},
    ),
)


def _bind(route: Route, path: str) -> dict[str, str] | None:
    """The path parameters if ``path`` (``/payments/p-1``) has ``route``'s shape, else None."""
    template, segments = route.path.strip("/").split("/"), path.strip("/").split("/")
    if len(template) != len(segments):
        return None
    params = {}
    for part, segment in zip(template, segments, strict=True):
        if part.startswith("{"):
            params[part[1:-1]] = segment
        elif part != segment:
            return None
    return params


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving ``method`` on a concrete path, with its path parameters."""
    for route in ROUTES:
        params = _bind(route, path)
        if route.method == method and params is not None:
            return route, params
    return None


def allowed_methods(path: str) -> list[str]:
    """The methods the contract serves on a concrete path (``/payments/p-1``), for a 405."""
    return sorted({route.method for route in ROUTES if _bind(route, path) is not None})
