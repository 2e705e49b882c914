"""Error codes of the platform, defined once, and the exceptions that carry them.

Every failure a client or an operator can see has one of these codes; the API maps them to HTTP
statuses (``HTTP_STATUS``) and the batch report and rejected rows use the same codes as reasons.
"""

from __future__ import annotations

from typing import Any

VALIDATION_ERROR = "VALIDATION_ERROR"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
UNAUTHORIZED = "UNAUTHORIZED"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL_ERROR = "INTERNAL_ERROR"
# Answered by API Gateway itself (lib/api_spec.py GATEWAY_ERRORS), in the same error body.
FORBIDDEN = "FORBIDDEN"
THROTTLED = "THROTTLED"
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
BAD_GATEWAY = "BAD_GATEWAY"
TIMEOUT = "TIMEOUT"
CLIENT_ERROR = "CLIENT_ERROR"
# Batch-only reasons.
DUPLICATE = "DUPLICATE"
INVALID_ENCODING = "INVALID_ENCODING"
INVALID_FILE = "INVALID_FILE"
CONFIGURATION_ERROR = "CONFIGURATION_ERROR"

HTTP_STATUS: dict[str, int] = {
    VALIDATION_ERROR: 400,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    METHOD_NOT_ALLOWED: 405,
    CONFLICT: 409,
    PAYLOAD_TOO_LARGE: 413,
    UNSUPPORTED_MEDIA_TYPE: 415,
    INTERNAL_ERROR: 500,
    CONFIGURATION_ERROR: 500,
    SERVICE_UNAVAILABLE: 503,
}

# Every code an API client can read in an error body (the OpenAPI document's enum).
API_CODES = (
    VALIDATION_ERROR,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    CONFLICT,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    THROTTLED,
    QUOTA_EXCEEDED,
    CLIENT_ERROR,
    INTERNAL_ERROR,
    CONFIGURATION_ERROR,
    BAD_GATEWAY,
    SERVICE_UNAVAILABLE,
    TIMEOUT,
)

# What a client reads when a request fails on our side: stable, plain words and no details. The
# exception's own text (AWS error strings with ARNs and principals, environment values) goes to
# the logs only.
PUBLIC_MESSAGES: dict[str, str] = {
    SERVICE_UNAVAILABLE: "the service is temporarily unavailable; retry later",
    INTERNAL_ERROR: "internal error",
    CONFIGURATION_ERROR: "the service is not configured correctly",
}


class PaymentError(Exception):
    """A domain failure with a stable code, a human message and structured details."""

    code: str = INTERNAL_ERROR

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        # Seconds after which a retry can succeed (the API's ``Retry-After`` header), if known.
        self.retry_after = retry_after
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, Any]:
        """The error body every API failure has: ``{"error": {code, message, details}}``."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def public_body(self) -> dict[str, Any]:
        """``to_body`` as a client may see it: a failure on our side (``PUBLIC_MESSAGES``) has
        its stable message and no details, whatever the exception says."""
        if self.code in PUBLIC_MESSAGES:
            return {
                "error": {"code": self.code, "message": PUBLIC_MESSAGES[self.code], "details": {}}
            }
        return self.to_body()


class ValidationError(PaymentError):
    """One or more fields are invalid; ``details["fields"]`` maps each field to its problem."""

    code = VALIDATION_ERROR

    def __init__(self, fields: dict[str, str], message: str | None = None) -> None:
        names = ", ".join(sorted(fields))
        super().__init__(message or f"invalid field(s): {names}", details={"fields": fields})
        self.fields = fields

    @property
    def reason(self) -> str:
        """One line for batch rejects: ``amount: must be greater than 0; currency: ...``."""
        return "; ".join(f"{field}: {problem}" for field, problem in sorted(self.fields.items()))


class NotFoundError(PaymentError):
    code = NOT_FOUND


class ConflictError(PaymentError):
    code = CONFLICT


class UnauthorizedError(PaymentError):
    code = UNAUTHORIZED


class ForbiddenError(PaymentError):
    """The caller is known to API Gateway but may not make this call (payments.clients)."""

    code = FORBIDDEN


class ConfigurationError(PaymentError):
    """The function's environment is missing or malformed; the message names the variable."""

    code = CONFIGURATION_ERROR


class InvalidBatchFileError(PaymentError):
    """The CSV file cannot be processed at all (no usable header); the batch fails as a whole."""

    code = INVALID_FILE


class TransientError(PaymentError):
    """A dependency throttled or failed in a way a retry may fix (Step Functions retries it)."""

    code = SERVICE_UNAVAILABLE
