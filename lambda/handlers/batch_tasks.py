"""The batch workflow's Lambda tasks, dispatched on ``event["task"]``.

Every AWS call of a task is retried on its own, with backoff, when it fails in a way a retry can
fix (throttling, a 5xx, a timeout or a lost connection: ``aws.patient``), so one slow call never
fails a chunk. Errors that remain propagate on purpose: Step Functions sees the exception class
as the error name (``TransientError`` is retried with backoff, anything else goes to the failure
path). A call that still fails in a retryable way (or a failed upload of the report) leaves as
``TransientError``: every task is idempotent, so retrying one whose call timed out after it took
effect is safe.

Each processed chunk adds its rows to the embedded metrics ``BatchRows``, ``BatchRowsAccepted``,
``BatchRowsRejected`` and ``BatchRowsDuplicate`` (a chunk Step Functions retries after it wrote its
rows but before its counts were in counts again; one whose counts were in adds nothing).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError
from payments import aws, env
from payments.batch import Batches
from payments.errors import TransientError, ValidationError
from payments.repository import Repository, error_code

from handlers.common import business_metrics, logger, settings

metrics = business_metrics("batch-tasks")
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


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _run(event)
    except (BotoCoreError, S3UploadFailedError) as exc:
        logger.warning("AWS call failed; the task will be retried", error=repr(exc))
        raise TransientError(f"AWS call failed: {type(exc).__name__}") from exc
    except ClientError as exc:
        if not aws.retryable(exc):
            raise
        logger.warning("AWS call failed; the task will be retried", error=repr(exc))
        raise TransientError(f"AWS call failed: {error_code(exc)}") from exc


def _run(event: dict[str, Any]) -> dict[str, Any]:
    task = event.get("task")
    state = event.get("state") or {}
    logger.append_keys(batch_id=state.get("batch_id"), task=task)
    config = settings().require(*_REQUIRED)
    # Each of a task's calls is retried on its own first (aws.patient): a chunk makes hundreds,
    # and one that failed must not send the whole chunk back to Step Functions' retry.
    batches = Batches(
        config,
        repo=Repository(config, dynamodb=aws.patient("dynamodb")),
        s3=aws.patient("s3"),
        sqs=aws.patient("sqs"),
    )
    if task == "register":
        return batches.register(state)
    if task == "process_chunk":
        result = batches.process_chunk(state)
        counts = result["counts"] or {}
        logger.info(
            "chunk processed",
            chunk=result["index"],
            superseded=result["superseded"],
            already_applied=result["counts"] is None and not result["superseded"],
            **counts,
        )
        for key, name in ROW_METRICS.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts.get(key, 0))
        return result
    if task == "finalize":
        return batches.finalize(state)
    raise ValidationError({"task": f"unknown task {task!r}: register, process_chunk or finalize"})
