"""The REST API's shape as data: routes, request models, CORS and API Gateway's own errors.

``lib/api.py`` builds API Gateway from these tables and hashes them into the deployment trigger.
The request models are deliberately loose (body is an object, fields have a plausible JSON type):
the API handler does the precise validation and names every bad field, so API Gateway must never
reject a request the handler would accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DRAFT_04 = "http://json-schema.org/draft-04/schema#"
# Error body of the REST contract (DESIGN section 3); API Gateway's own errors use it too.
ERROR_TEMPLATE = '{"error": {"code": "%s", "message": %s, "details": {}}}'
CORS_ALLOW_HEADERS = "Content-Type,X-Api-Key,Idempotency-Key,X-Signature,X-Amz-Date,Authorization"


@dataclass(frozen=True, kw_only=True)
class Route:
    path: str
    method: str
    api_key_required: bool = True
    model: str | None = None


ROUTES: tuple[Route, ...] = (
    Route(path="/payments", method="POST", model="PaymentRequest"),
    Route(path="/payments/{payment_id}", method="GET"),
    Route(path="/batches/{batch_id}", method="GET"),
    Route(path="/validate", method="POST", model="PaymentRequest"),
    Route(path="/fraud-webhook", method="POST", model="FraudSignal"),
    # Load balancers and uptime checks call it without a key; it reveals no data.
    Route(path="/health", method="GET", api_key_required=False),
)


def _described(**fields: str) -> dict[str, dict[str, str]]:
    return {name: {"description": text} for name, text in fields.items()}


# The models check only that the body is a JSON object. API Gateway's validator answers any
# violation with one generic "Invalid request body", while the handler names each bad field
# (DESIGN section 3), so field types, required fields and unknown fields are left to it; the
# properties document the contract (and the exported OpenAPI) without constraining it.
MODELS: dict[str, dict[str, Any]] = {
    "PaymentRequest": {
        "$schema": DRAFT_04,
        "title": "PaymentRequest",
        "type": "object",
        "properties": _described(
            amount="required; decimal string or JSON number in plain notation, > 0",
            currency="required; active ISO 4217 code, any case",
            payment_id="optional; 1-64 of A-Z a-z 0-9 _ -",
            customer_id="optional string",
            merchant_id="optional string",
            payment_method="optional string",
            description="optional string",
            metadata="optional object of string values",
        ),
    },
    "FraudSignal": {
        "$schema": DRAFT_04,
        "title": "FraudSignal",
        "type": "object",
        "properties": _described(
            payment_id="required; the payment the signal is about",
            risk_score="required; 0-100",
            reason="required string",
        ),
    },
}


@dataclass(frozen=True, kw_only=True)
class GatewayError:
    code: str
    status: str | None = None
    # None: API Gateway's own message ($context.error.messageString, already JSON-quoted).
    message: str | None = None

    def template(self) -> str:
        message = f'"{self.message}"' if self.message else "$context.error.messageString"
        return ERROR_TEMPLATE % (self.code, message)


GATEWAY_ERRORS: dict[str, GatewayError] = {
    "DEFAULT_4XX": GatewayError(code="CLIENT_ERROR"),
    "DEFAULT_5XX": GatewayError(code="INTERNAL_ERROR"),
    "BAD_REQUEST_BODY": GatewayError(
        code="VALIDATION_ERROR", status="400", message="The request body must be a JSON object"
    ),
    "BAD_REQUEST_PARAMETERS": GatewayError(code="VALIDATION_ERROR", status="400"),
    "INVALID_API_KEY": GatewayError(
        code="FORBIDDEN", status="403", message="A valid x-api-key header is required"
    ),
    "ACCESS_DENIED": GatewayError(code="FORBIDDEN", status="403"),
    # Without IAM or authorizers on this API, a "missing token" means no such route or method.
    "MISSING_AUTHENTICATION_TOKEN": GatewayError(
        code="NOT_FOUND", status="404", message="No such route"
    ),
    "RESOURCE_NOT_FOUND": GatewayError(code="NOT_FOUND", status="404"),
    "THROTTLED": GatewayError(code="THROTTLED", status="429"),
    "QUOTA_EXCEEDED": GatewayError(code="QUOTA_EXCEEDED", status="429"),
    "REQUEST_TOO_LARGE": GatewayError(code="REQUEST_TOO_LARGE", status="413"),
    "UNSUPPORTED_MEDIA_TYPE": GatewayError(code="UNSUPPORTED_MEDIA_TYPE", status="415"),
    "INTEGRATION_FAILURE": GatewayError(code="INTERNAL_ERROR", status="502"),
    "INTEGRATION_TIMEOUT": GatewayError(code="TIMEOUT", status="504"),
}


def resource_paths() -> list[str]:
    """Every resource path the routes need, parents first (``/payments`` before its child)."""
    paths: set[str] = set()
    for route in ROUTES:
        parts = route.path.strip("/").split("/")
        paths.update("/" + "/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(paths, key=lambda p: (p.count("/"), p))


def methods_of(path: str) -> list[str]:
    return sorted(route.method for route in ROUTES if route.path == path)
