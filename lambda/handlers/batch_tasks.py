"""The batch workflow's Lambda tasks, dispatched on ``event["task"]``.

Errors propagate on purpose: Step Functions sees the exception class as the error name
(``TransientError`` is retried with backoff, ``InvalidBatchFileError`` goes to the failure path).

Each processed chunk adds its rows to the embedded metrics ``BatchRows``, ``BatchRowsAccepted``,
``BatchRowsRejected`` and ``BatchRowsDuplicate`` (a chunk Step Functions retries counts again).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from payments import env
from payments.batch import Batches
from payments.errors import ValidationError

from handlers.common import logger, settings

# The stack sets POWERTOOLS_METRICS_NAMESPACE; the fallback keeps tests and local runs valid.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Payments")
metrics.set_default_dimensions(
    FunctionName=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "batch-tasks")
)
ROW_METRICS = {
    "total_rows": "BatchRows",
    "accepted": "BatchRowsAccepted",
    "rejected": "BatchRowsRejected",
    "duplicates": "BatchRowsDuplicate",
}

_REQUIRED = (
    env.BATCH_BUCKET,
    env.PAYMENTS_TABLE,
    env.PROCESSING_STATUS_TABLE,
    env.AUDIT_LOG_TABLE,
    env.PROCESSING_QUEUE_URL,
)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    task = event.get("task")
    state = event.get("state") or {}
    logger.append_keys(batch_id=state.get("batch_id"), task=task)
    batches = Batches(settings().require(*_REQUIRED))
    if task == "register":
        return batches.register(state)
    if task == "process_chunk":
        result = batches.process_chunk(state)
        counts = result["last_chunk"]
        logger.info("chunk processed", offset=state.get("offset"), **counts)
        for key, name in ROW_METRICS.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(key, 0))
        return result
    if task == "finalize":
        return batches.finalize(state)
    raise ValidationError({"task": f"unknown task {task!r}: register, process_chunk or finalize"})
