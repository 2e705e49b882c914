"""``Idempotency-Key`` on ``POST /payments``: Powertools idempotency on the processing-status table.

The first request with a key stores its response for 24 hours; a retry with the same key and body
gets the payment back (200), the same key with another body is a 409 CONFLICT.

A payment sent without ``payment_id`` gets one derived from the key, not a random one. Powertools
deletes its record when the request fails (say ``SendMessage`` after the payment was written), so
the retry runs again: with the same id it lands on the stored payment (200, queued again if still
``RECEIVED``) instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import math
from functools import cache
from typing import Any

from payments import aws, env, errors
from payments.service import Payments
from payments.validation import Payment, validate_payment

from handlers.common import on_reset, settings

IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# 128 bits of the key's SHA-256, the size of the uuid4 the server makes for unkeyed requests.
_KEY_ID_HEX_DIGITS = 32

_replayed: list[bool] = [False]


@cache
def _idempotency() -> tuple[Any, Any]:
    """Build the Powertools idempotent wrapper on first use (it creates a DynamoDB client)."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    cfg = settings().require(env.PROCESSING_STATUS_TABLE)
    persistence = DynamoDBPersistenceLayer(
        table_name=cfg.processing_status_table,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expires_at",
        boto3_client=aws.client("dynamodb"),
    )
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="payment",
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(
        data_keyword_argument="request", persistence_store=persistence, config=config
    )
    def submit(request: dict[str, Any]) -> dict[str, Any]:
        _replayed[0] = False
        status, view = Payments(settings()).submit(
            validate_payment(request["payment"]), payment_id=payment_id_for_key(request["key"])
        )
        return {"status": status, "payment_id": view["payment_id"], "payment": view}

    return submit, config


def payment_id_for_key(key: str) -> str:
    """The payment id of a keyed request without one: ``pay_`` + hex of the key's SHA-256."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return "pay_" + digest[:_KEY_ID_HEX_DIGITS]


def submit_once(key: str, payment: Payment, context: Any) -> tuple[int, dict[str, Any]]:
    """Submit ``payment`` once per ``Idempotency-Key``; a replay answers 200 with it as now."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    submit, config = _idempotency()
    if context is not None:
        config.register_lambda_context(context)
    _replayed[0] = True
    try:
        result = submit(request={"key": key, "payment": payment.to_json()})
    except IdempotencyValidationError:
        raise errors.ConflictError(
            "Idempotency-Key was used with a different request body",
            details={"Idempotency-Key": key},
        ) from None
    except IdempotencyAlreadyInProgressError:
        # The first request is running, or died (a killed invocation, a failed clean-up) and
        # left its record in progress; either way the record lapses when that invocation's time
        # is up, at the latest the function's timeout from now.
        raise errors.ConflictError(
            "a request with this Idempotency-Key is still in progress; retry later",
            details={"Idempotency-Key": key},
            retry_after=_in_progress_lapse_seconds(context),
        ) from None
    if _replayed[0]:
        # A replay answers like an identical resubmission: 200 with the payment as it is now.
        # Read strongly: the first answer may be a moment old, and an eventually consistent read
        # could miss the payment it created.
        return 200, Payments(settings()).get(result["payment_id"], consistent=True)
    return result["status"], result["payment"]


def _in_progress_lapse_seconds(context: Any) -> int:
    """Whole seconds until an in-progress record made by any invocation has lapsed: this
    invocation's remaining time bounds it, since every invocation gets the same timeout."""
    if context is None:
        return 1
    return max(1, math.ceil(context.get_remaining_time_in_millis() / 1000))


@on_reset
def _forget() -> None:
    _idempotency.cache_clear()
