"""REST API (API Gateway proxy v1): the routes of ``payments.contract`` (DESIGN section 3).

The routes are registered from the contract, the same table the stack builds API Gateway from and
``docs/openapi.yaml`` is rendered from. Every failure, including unknown routes and wrong methods,
answers ``{"error": {"code", "message", "details"}}``; nothing reaches the client as a stack trace.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from handlers.lean_imports import without_package_init

# Powertools' event_handler/__init__ imports every resolver it has (AppSync with asyncio, Bedrock,
# VPC Lattice, ...), a tenth of this function's cold start; only the REST resolver is used.
with without_package_init("aws_lambda_powertools.event_handler"):
    from aws_lambda_powertools.event_handler.api_gateway import (
        APIGatewayRestResolver,
        CORSConfig,
        Response,
    )
from aws_lambda_powertools.logging import correlation_paths
from payments import aws, contract, env, errors
from payments.clients import DEFAULT_CLIENT, Client, Directory
from payments.errors import ForbiddenError, NotFoundError, PaymentError, ValidationError
from payments.money import to_json
from payments.service import Payments
from payments.validation import (
    BATCH_ID,
    BATCH_ID_RULE,
    IDEMPOTENCY_KEY,
    PAYMENT_ID,
    PAYMENT_ID_RULE,
    parse_json_body,
    validate_fraud_signal,
    validate_payment,
)

from handlers import webhook
from handlers.common import logger, on_reset, reset, settings

SIGNATURE_HEADER = contract.SIGNATURE_HEADER.lower()
IDEMPOTENCY_HEADER = contract.IDEMPOTENCY_HEADER.lower()

_origin = os.environ.get(env.CORS_ALLOWED_ORIGIN)
app = APIGatewayRestResolver(
    cors=CORSConfig(
        allow_origin=_origin,
        allow_headers=[contract.IDEMPOTENCY_HEADER, contract.SIGNATURE_HEADER],
    )
    if _origin
    else None
)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, "application/json", to_json(body), headers=headers)


def _error(exc: PaymentError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return _json(errors.HTTP_STATUS.get(exc.code, 500), exc.public_body(), headers)


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")


def _header(name: str) -> str | None:
    for key, value in (app.current_event.headers or {}).items():
        if key.lower() == name:
            return value
    return None


_directories: list[Directory] = []


@on_reset
def _forget_clients() -> None:
    _directories.clear()


def _directory() -> Directory:
    """API key id -> client, kept per Lambda environment for CLIENT_CACHE_SECONDS."""
    if not _directories:
        cfg = settings()
        repo = Payments(cfg).repo
        _directories.append(
            Directory(
                default_key_id=cfg.default_api_key_id,
                read_key=repo.get_key_client,
                read_client=repo.get_client,
            )
        )
    return _directories[0]


def _caller() -> Client:
    """The client making this request, from the API key API Gateway checked; 403 for a key
    that belongs to no client, a suspended client, or a route its kind may not call."""
    identity = app.current_event.request_context.identity
    client = _directory().resolve(identity.api_key_id)
    if client is None:
        raise ForbiddenError("This API key belongs to no client")
    if not client.active:
        raise ForbiddenError(f"Client {client.client_id} is suspended")
    path = app.current_event.request_context.resource_path
    if not client.may_call(path):
        raise ForbiddenError(f"Client {client.client_id} may not call {path}")
    return client


def create_payment() -> Response:
    client = _caller()
    key = _header(IDEMPOTENCY_HEADER)
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationError({contract.IDEMPOTENCY_HEADER: contract.IDEMPOTENCY_KEY_RULE})
    payment = validate_payment(parse_json_body(_raw_body()))
    return _json(*Payments(settings()).submit(payment, idempotency_key=key, client=client))


def _path_id(name: str, routed: str) -> str:
    """The id as API Gateway decoded it: the router's own pattern ends in ``$`` and so routes
    ``/payments/pay-1%0A`` as ``pay-1``; the path parameter keeps the newline for validation."""
    return (app.current_event.path_parameters or {}).get(name, routed)


def get_payment(payment_id: str) -> Response:
    client = _caller()
    payment_id = _path_id("payment_id", payment_id)
    if not PAYMENT_ID.fullmatch(payment_id):
        raise ValidationError({"payment_id": PAYMENT_ID_RULE})
    payments = Payments(settings())
    try:
        return _json(200, payments.get(payment_id, client=client))
    except NotFoundError:
        # An eventually consistent read (half the cost) can miss a payment created a moment
        # ago; the client was told it exists (202), so a miss is confirmed strongly.
        return _json(200, payments.get(payment_id, consistent=True, client=client))


def get_batch(batch_id: str) -> Response:
    client = _caller()
    batch_id = _path_id("batch_id", batch_id)
    if not BATCH_ID.fullmatch(batch_id):
        raise ValidationError({"batch_id": BATCH_ID_RULE})
    # Imported here: the CSV and batch machinery is not worth a cold start on every other route.
    from payments.batch import Batches

    # Uploads are the default client's (incoming/ is not yet split by client): another client
    # owns no batch, so every batch id is "not found" to it, as one that does not exist.
    view = Batches(settings()).batch_view(batch_id) if client.client_id == DEFAULT_CLIENT else None
    if view is None:
        raise errors.NotFoundError(f"batch {batch_id} not found", details={"batch_id": batch_id})
    return _json(200, view)


def validate_only() -> Response:
    _caller()
    payment = validate_payment(parse_json_body(_raw_body()))
    return _json(200, {"valid": True, "payment": payment.to_json()})


def fraud_webhook() -> Response:
    _caller()
    raw = _raw_body()
    # Authenticate before parsing: an unsigned body is not worth reading.
    webhook.verify(_header(SIGNATURE_HEADER), raw)
    signal = validate_fraud_signal(parse_json_body(raw))
    return _json(202, Payments(settings()).report_fraud(signal, raw))


def health() -> Response:
    cfg = settings()
    checks: dict[str, str] = {}
    for name, check in (
        ("dynamodb", lambda: Payments(cfg).repo.check()),
        (
            "queue",
            lambda: aws.client("sqs").get_queue_attributes(
                QueueUrl=cfg.processing_queue_url, AttributeNames=["QueueArn"]
            ),
        ),
    ):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means unhealthy; the reason goes in the body
            logger.warning("health check failed", check=name, error=str(exc))
            checks[name] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return _json(200, {"status": "healthy", "checks": checks})
    body = PaymentError(
        "a dependency is unavailable", code=errors.SERVICE_UNAVAILABLE, details={"checks": checks}
    ).to_body()
    return _json(503, {"status": "unhealthy", "checks": checks, **body})


# Each contract operation's function; a contract route without one fails at import.
_OPERATIONS = {
    "createPayment": create_payment,
    "getPayment": get_payment,
    "getBatch": get_batch,
    "validatePayment": validate_only,
    "reportFraud": fraud_webhook,
    "getHealth": health,
}
for _route in contract.ROUTES:
    # Powertools writes path parameters as <name>, the contract (like API Gateway) as {name}.
    _rule = _route.path.replace("{", "<").replace("}", ">")
    app.route(_rule, method=_route.method)(_OPERATIONS[_route.operation_id])


@app.not_found
def not_found(_: Exception) -> Response:
    path, method = app.current_event.path, app.current_event.http_method.upper()
    allowed = contract.allowed_methods(path)
    matched = contract.match(method, path)
    if matched:
        # A path parameter with characters Powertools' router does not match (control or
        # non-ASCII characters) still names a route: its operation refuses the id with a 400.
        route, params = matched
        return _OPERATIONS[route.operation_id](**params)
    if allowed:
        return _json(
            405,
            PaymentError(
                f"{method} is not allowed on {path}",
                code=errors.METHOD_NOT_ALLOWED,
                details={"allowed": allowed},
            ).to_body(),
            headers={"Allow": ", ".join(allowed)},
        )
    return _error(errors.NotFoundError(f"no route {method} {path}", details={"path": path}))


@app.exception_handler(PaymentError)
def payment_error(exc: PaymentError) -> Response:
    if exc.code in errors.PUBLIC_MESSAGES:
        # The client reads a plain message (public_body); what went wrong is for the logs.
        logger.error(
            "request failed", code=exc.code, error=exc.message, details=exc.details, exc_info=exc
        )
    return _error(exc)


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    code = errors.SERVICE_UNAVAILABLE if _dependency_unavailable(exc) else errors.INTERNAL_ERROR
    return _error(PaymentError(errors.PUBLIC_MESSAGES[code], code=code))


def _dependency_unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, is an AWS failure
    a retry may fix.

    Libraries wrap them: Powertools' SSMProvider raises a ``GetParameterError`` while handling a
    throttled GetParameter.
    """
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as AwsConnectionError
    from payments.service import is_retryable

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if is_retryable(current) or isinstance(current, AwsConnectionError | HTTPClientError):
            return True
        if isinstance(current, ClientError):
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if status >= 500:
                return True
        current = current.__cause__ or current.__context__
    return False


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


__all__ = ["app", "handler", "reset"]
