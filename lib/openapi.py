"""The OpenAPI 3.1 document of the REST API, rendered from the contract.

``lambda/payments/contract.py`` holds the routes, parameters, body schemas and limits; this module
adds what API Gateway answers by itself (``lib/api_spec.GATEWAY_ERRORS``: 403, 413, 429, 502,
504), the security schemes and the links between operations, and writes ``docs/openapi.yaml``.
``tests/infra/test_openapi.py`` fails when the committed file and this rendering drift.

    python -m lib.openapi            # rewrite docs/openapi.yaml
    python -m lib.openapi --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from lib.api_spec import GATEWAY_ERRORS, ROUTES, contract, errors
from lib.runtime import ROOT

DOCUMENT_PATH = ROOT / "docs" / "openapi.yaml"
API_KEY_SCHEME = "ApiKey"
SIGNATURE_SCHEME = "WebhookSignature"

DESCRIPTION = f"""\
Submit payments, read their status and CSV batch outcomes, validate a payment without storing
it, and receive the fraud provider's signals.

**Authentication.** Every operation but `GET /health` needs the header
`{contract.API_KEY_HEADER}` (API Gateway answers `403 FORBIDDEN` without a valid key). Each key
belongs to a client (`make client`; the deployment's own key is the `default` client): a client
reads only its own payments (another's is `404 NOT_FOUND`), its ids and `Idempotency-Key`s are
its own, and a key of no client, a suspended client or a route the client's kind may not call is
`403 FORBIDDEN`. The fraud webhook is also signed by the provider (see `{SIGNATURE_SCHEME}`).

**Errors.** Every error, API Gateway's own included, has the body
`{{"error": {{"code": "...", "message": "...", "details": {{...}}}}}}`.
`VALIDATION_ERROR` names each bad field in `details.fields`; a `5xx` has a fixed message and
empty details. A method a path does not serve is `405 METHOD_NOT_ALLOWED` with `Allow`; an
unknown path is `404 NOT_FOUND`.

**Limits.** A body is at most {contract.MAX_BODY_BYTES:,} bytes (`413 PAYLOAD_TOO_LARGE`), JSON
nested at most {contract.MAX_JSON_DEPTH} levels, with no duplicate keys and no `NaN`/`Infinity`.
`description` and `reason`: at most {contract.MAX_DESCRIPTION} characters. `metadata`: a flat
object of at most {contract.MAX_METADATA_KEYS} string values of at most
{contract.MAX_METADATA_VALUE} characters. Anything over a limit is a `400` (or `413`) with the
error body, never a `5xx`.

**Money.** Amounts are decimal strings in responses (`"99.99"`); requests may send a string or a
JSON number in plain notation (no exponent), greater than 0, at most
{contract.MAX_MAJOR_UNITS:,} major units and at most the currency's minor-unit digits (ISO
4217: USD 2, JPY 0, KWD 3). `currency` is an active ISO 4217 code, any case.

**Idempotency.** Without `payment_id` the server makes one; with an `{contract.IDEMPOTENCY_HEADER}`
header the id is derived from the key. The first request with a key binds the key to that request
(its normalized body, `payment_id` included) and its payment, in the write that stores the
payment, for good: a retry with the same body, even after a `503` or a lost answer, gets that
payment (`200`); the key with any other body is a `409`, also when only the `payment_id` differs
or is left out. When a key and a body's `payment_id` disagree, the key wins.

**Webhook signatures.** The provider sends
`{contract.SIGNATURE_HEADER}: t=<unix seconds>,{contract.SIGNATURE_SCHEME}=<hex>` where the hex is
the HMAC-SHA256, keyed with the shared secret, of `"<t>.<raw body>"`. A `t` more than
{contract.DEFAULT_SIGNATURE_TOLERANCE_SECONDS} seconds before the server's clock, or more than
{contract.SIGNATURE_MAX_CLOCK_SKEW_SECONDS} seconds after it (clock skew), is refused (`401`), so a
captured request cannot be replayed later. During a secret rotation the provider may send
one `{contract.SIGNATURE_SCHEME}=` per secret: `t=...,v1=<new>,v1=<old>`.
"""

# Statuses API Gateway answers itself, by response type; each operation lists those it can meet.
_GATEWAY_RESPONSES = {
    403: (
        "Forbidden",
        "INVALID_API_KEY",
        "Missing or unknown x-api-key, a key of no client, a suspended client, or a route the "
        "client may not call",
    ),
    413: ("PayloadTooLarge", "REQUEST_TOO_LARGE", "The body is over the limit"),
    429: ("TooManyRequests", "THROTTLED", "Throttled by the usage plan, or its quota is spent"),
    502: ("BadGateway", "INTEGRATION_FAILURE", "The handler failed to answer"),
    504: ("GatewayTimeout", "INTEGRATION_TIMEOUT", "The handler did not answer in time"),
}
# The handler's own error answers, shared by the operations (components.responses).
_HANDLER_ERRORS = {
    400: ("BadRequest", "Invalid request: `VALIDATION_ERROR` names each bad field"),
    401: ("Unauthorized", "Missing, malformed, stale or wrong signature (`UNAUTHORIZED`)"),
    404: ("NotFound", "No such payment or batch (`NOT_FOUND`)"),
    409: (
        "Conflict",
        "Same `payment_id` with other content, or an `Idempotency-Key` already bound to another "
        "body or `payment_id` (`CONFLICT`)",
    ),
    500: (
        "InternalError",
        "Internal or configuration error (`INTERNAL_ERROR`, `CONFIGURATION_ERROR`); fixed "
        "message, no details",
    ),
    503: (
        "ServiceUnavailable",
        "A dependency is unavailable or throttled; retry later (`SERVICE_UNAVAILABLE`)",
    ),
}
_SUCCESS = {
    ("createPayment", 202): "New payment, status `RECEIVED`, queued for processing",
    ("createPayment", 200): "Identical replay: the existing payment as it is now",
    ("getPayment", 200): "The payment with its status history",
    ("getBatch", 200): "The batch's counts and rejected rows",
    ("validatePayment", 200): "The payment as it would be stored; nothing is stored",
    ("reportFraud", 202): "Signal applied (`action`), audited and published",
    ("getHealth", 200): "Every dependency answers",
    ("getHealth", 503): "A dependency is unavailable; `checks` says which",
}


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def _parameter(name: str) -> dict[str, Any]:
    spec = contract.PARAMETERS[name]
    return {
        "name": spec.name,
        "in": spec.location,
        "required": spec.required,
        "description": spec.description,
        "schema": {"type": "string", "pattern": contract.anchored(spec.pattern)},
    }


def _links(route: Any) -> dict[str, Any]:
    """Where a created payment leads: reading it and a fraud signal about it (Schemathesis
    follows these in its stateful phase)."""
    if route.operation_id != "createPayment":
        return {}
    payment_id = "$response.body#/payment_id"
    return {
        "GetPayment": {
            "operationId": "getPayment",
            "parameters": {"payment_id": payment_id},
            "description": "The payment just submitted",
        },
        "ReportFraud": {
            "operationId": "reportFraud",
            "requestBody": {"payment_id": payment_id, "risk_score": 90, "reason": "linked"},
            "description": "A fraud signal about the payment just submitted",
        },
    }


def _operation(route: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    statuses = dict(route.responses)
    if route.api_key_required:
        statuses.setdefault(403, None)
    statuses.setdefault(429, None)
    statuses.setdefault(502, None)
    statuses.setdefault(504, None)
    for status in sorted(statuses):
        schema = statuses[status]
        shared = _GATEWAY_RESPONSES.get(status) or _HANDLER_ERRORS.get(status)
        if shared and schema in (None, "Error"):
            responses[str(status)] = {"$ref": f"#/components/responses/{shared[0]}"}
            continue
        response: dict[str, Any] = {
            "description": _SUCCESS[(route.operation_id, status)],
            "content": _json(schema),
        }
        if 200 <= status < 300 and (links := _links(route)):
            response["links"] = links
        responses[str(status)] = response
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
    }
    if route.description:
        operation["description"] = route.description
    parameters = [_parameter(p) for p in (*route.path_parameters, *route.headers)]
    if parameters:
        operation["parameters"] = parameters
    if route.request:
        operation["requestBody"] = {"required": True, "content": _json(route.request)}
    operation["responses"] = responses
    if not route.api_key_required:
        operation["security"] = []
    elif route.signed:
        operation["security"] = [{API_KEY_SCHEME: [], SIGNATURE_SCHEME: []}]
    return operation


def _gateway_response(status: int) -> dict[str, Any]:
    _, response_type, description = _GATEWAY_RESPONSES[status]
    code = GATEWAY_ERRORS[response_type].code
    if status == 413:
        description += (
            f" ({contract.MAX_BODY_BYTES:,} bytes; answered by the handler, or by API Gateway "
            "past its own 10 MB)"
        )
    if status == 429:
        description += f" (`{errors.THROTTLED}` or `{errors.QUOTA_EXCEEDED}`)"
    else:
        description += f" (`{code}`)"
    return {"description": description, "content": _json("Error")}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Payments API",
            "version": contract.API_VERSION,
            "summary": "Serverless payment processing: payments, batches, fraud signals",
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
            "description": DESCRIPTION,
        },
        "servers": [
            {
                "url": "https://{api_id}.execute-api.{region}.amazonaws.com/{stage}",
                "description": "API Gateway; the stack output api_url is the whole base URL",
                "variables": {
                    "api_id": {"default": "abc123", "description": "stack output api_id"},
                    "region": {"default": "us-east-1"},
                    "stage": {"default": "dev", "description": "the ENVIRONMENT_SUFFIX"},
                },
            },
            {
                "url": "http://127.0.0.1:4567/{stage}",
                "description": "The local cloud's gateway (make local-up)",
                "variables": {"stage": {"default": "local"}},
            },
        ],
        "security": [{API_KEY_SCHEME: []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                API_KEY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": contract.API_KEY_HEADER,
                    "description": "A client's key (make client), or the stack output "
                    "api_key_value (the default client's); each key has its own usage plan",
                },
                SIGNATURE_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": contract.SIGNATURE_HEADER,
                    "description": f"`t=<unix seconds>,{contract.SIGNATURE_SCHEME}=<hex>` "
                    '(one or more `v1`): HMAC-SHA256 of `"<t>.<raw body>"` with the secret '
                    "shared with the fraud provider; refused when `t` is more than "
                    f"{contract.DEFAULT_SIGNATURE_TOLERANCE_SECONDS} seconds ago or more than "
                    f"{contract.SIGNATURE_MAX_CLOCK_SKEW_SECONDS} seconds ahead",
                },
            },
            "responses": {
                name: {"description": description, "content": _json("Error")}
                for name, description in _HANDLER_ERRORS.values()
            }
            | {
                name: _gateway_response(status)
                for status, (name, _, _) in sorted(_GATEWAY_RESPONSES.items())
            },
            "schemas": contract.SCHEMAS,
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style; multi-line strings as literal blocks, so the file reads and diffs well."""

    def ignore_aliases(self, data: Any) -> bool:
        # A schema fragment used twice is written twice, not as a YAML anchor and alias.
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    header = "# Generated by `python -m lib.openapi` from lambda/payments/contract.py\n"
    return header + yaml.dump(
        document(), Dumper=_Dumper, sort_keys=False, allow_unicode=False, width=100
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write or check docs/openapi.yaml")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    parser.add_argument("--output", type=Path, default=DOCUMENT_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m lib.openapi", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
