"""The REST API's shape for the stack: routes, request models, CORS and API Gateway's own errors.

The routes, parameters and bodies are the runtime's contract (``lambda/payments/contract.py``),
loaded here by path so the stack, the API handler and ``docs/openapi.yaml`` (``lib/openapi.py``)
read one definition. ``lib/api.py`` builds API Gateway from these tables and hashes them into the
deployment trigger.

The request models are deliberately loose (the body is an object; the properties are documented,
not constrained): API Gateway's validator answers any violation with one generic message, while
the handler names every bad field, so API Gateway must never reject a request the handler would
accept. The precise schemas are in the OpenAPI document.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lib.runtime import LAMBDA_DIR


def _runtime_module(name: str) -> ModuleType:
    """``payments.<name>`` from ``lambda/``, which is not on the stack's import path.

    Registers the ``payments`` package from its directory first, unless it is already imported
    (the tests put ``lambda/`` on the path); its ``__init__`` imports nothing.
    """
    if "payments" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "payments",
            LAMBDA_DIR / "payments" / "__init__.py",
            submodule_search_locations=[str(LAMBDA_DIR / "payments")],
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules["payments"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"payments.{name}")


contract = _runtime_module("contract")
errors = _runtime_module("errors")

DRAFT_04 = "http://json-schema.org/draft-04/schema#"
# Error body of the REST contract (DESIGN section 3); API Gateway's own errors use it too.
ERROR_TEMPLATE = '{"error": {"code": "%s", "message": %s, "details": {}}}'
CORS_ALLOW_HEADERS = ",".join(
    [
        "Content-Type",
        "X-Api-Key",
        contract.IDEMPOTENCY_HEADER,
        contract.SIGNATURE_HEADER,
        "X-Amz-Date",
        "Authorization",
    ]
)

ROUTES: tuple[Any, ...] = contract.ROUTES
# Methods API Gateway serves only by passing them to the handler, which answers 405 with Allow:
# without it a wrong method on a known path would be API Gateway's "missing token" (404).
OTHER_METHODS = "ANY"


def _model(name: str) -> dict[str, Any]:
    schema = contract.SCHEMAS[name]
    return {
        "$schema": DRAFT_04,
        "title": name,
        "type": "object",
        "properties": {
            field: {"description": spec.get("description", "")}
            for field, spec in schema["properties"].items()
        },
    }


MODELS: dict[str, dict[str, Any]] = {
    name: _model(name) for name in sorted({r.request for r in ROUTES if r.request})
}


@dataclass(frozen=True, kw_only=True)
class GatewayError:
    code: str
    status: str | None = None
    # None: API Gateway's own message ($context.error.messageString, already JSON-quoted).
    message: str | None = None
    # Seconds a client should wait before retrying (a static Retry-After header).
    retry_after: int | None = None

    def template(self) -> str:
        message = f'"{self.message}"' if self.message else "$context.error.messageString"
        return ERROR_TEMPLATE % (self.code, message)


GATEWAY_ERRORS: dict[str, GatewayError] = {
    "DEFAULT_4XX": GatewayError(code=errors.CLIENT_ERROR),
    "DEFAULT_5XX": GatewayError(code=errors.INTERNAL_ERROR),
    "BAD_REQUEST_BODY": GatewayError(
        code=errors.VALIDATION_ERROR,
        status="400",
        message="The request body must be a JSON object",
    ),
    "BAD_REQUEST_PARAMETERS": GatewayError(code=errors.VALIDATION_ERROR, status="400"),
    "INVALID_API_KEY": GatewayError(
        code=errors.FORBIDDEN,
        status="403",
        message=f"A valid {contract.API_KEY_HEADER} header is required",
    ),
    "ACCESS_DENIED": GatewayError(code=errors.FORBIDDEN, status="403"),
    # Without IAM or authorizers on this API, a "missing token" means no such route.
    "MISSING_AUTHENTICATION_TOKEN": GatewayError(
        code=errors.NOT_FOUND, status="404", message="No such route"
    ),
    "RESOURCE_NOT_FOUND": GatewayError(code=errors.NOT_FOUND, status="404"),
    # A usage plan's rate refills within a second; its daily quota only when the UTC day turns,
    # which a static header cannot say: an hour is the hint (README, "Clients").
    "THROTTLED": GatewayError(code=errors.THROTTLED, status="429", retry_after=1),
    "QUOTA_EXCEEDED": GatewayError(code=errors.QUOTA_EXCEEDED, status="429", retry_after=3600),
    # The handler's own limit (64 KiB) answers the same code long before API Gateway's 10 MB.
    "REQUEST_TOO_LARGE": GatewayError(code=errors.PAYLOAD_TOO_LARGE, status="413"),
    "UNSUPPORTED_MEDIA_TYPE": GatewayError(code=errors.UNSUPPORTED_MEDIA_TYPE, status="415"),
    "INTEGRATION_FAILURE": GatewayError(code=errors.BAD_GATEWAY, status="502"),
    "INTEGRATION_TIMEOUT": GatewayError(code=errors.TIMEOUT, status="504"),
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


def key_required_on(path: str) -> bool:
    """Whether a path's routes need an API key (its ANY method follows them)."""
    return any(route.api_key_required for route in ROUTES if route.path == path)
