"""The batch workflow's Lambda tasks, dispatched on ``event["task"]``.

Errors propagate on purpose: Step Functions sees the exception class as the error name
(``TransientError`` is retried with backoff, ``InvalidBatchFileError`` goes to the failure path).
"""

from __future__ import annotations

from typing import Any

from payments import env
from payments.batch import Batches
from payments.errors import ValidationError

from handlers.common import logger, settings

_REQUIRED = (
    env.BATCH_BUCKET,
    env.PAYMENTS_TABLE,
    env.PROCESSING_STATUS_TABLE,
    env.AUDIT_LOG_TABLE,
    env.PROCESSING_QUEUE_URL,
)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    task = event.get("task")
    state = event.get("state") or {}
    logger.append_keys(batch_id=state.get("batch_id"), task=task)
    batches = Batches(settings().require(*_REQUIRED))
    if task == "register":
        return batches.register(state)
    if task == "process_chunk":
        result = batches.process_chunk(state)
        logger.info("chunk processed", offset=state.get("offset"), **result["last_chunk"])
        return result
    if task == "finalize":
        return batches.finalize(state)
    raise ValidationError({"task": f"unknown task {task!r}: register, process_chunk or finalize"})
