"""Queueing a chunk's payments for processing: ``SendMessageBatch`` 10 at a time, on the chunk's
threads, the entries SQS refused sent again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from payments import aws
from payments.batch.context import BatchContext
from payments.errors import TransientError

SQS_BATCH = 10
_SQS_ATTEMPTS = 5


def send(ctx: BatchContext, sqs: Any, payment_ids: Sequence[str]) -> None:
    """Queue payments ``SendMessageBatch`` 10 at a time, retrying the entries that failed."""
    batches = [
        payment_ids[start : start + SQS_BATCH] for start in range(0, len(payment_ids), SQS_BATCH)
    ]
    queue_url = ctx.config.processing_queue_url
    ctx.in_parallel(lambda ids: _send_batch(sqs, queue_url, ids), batches)


def _send_batch(sqs: Any, queue_url: str, payment_ids: Sequence[str]) -> None:
    entries = [
        {"Id": str(i), "MessageBody": json.dumps({"payment_id": pid})}
        for i, pid in enumerate(payment_ids)
    ]
    for attempt in range(_SQS_ATTEMPTS):
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except ClientError as exc:
            response = {"Failed": [{"Id": e["Id"], "Code": str(exc)} for e in entries]}
        failed = {f["Id"] for f in response.get("Failed", [])}
        entries = [e for e in entries if e["Id"] in failed]
        if not entries:
            return
        aws.backoff(attempt)
    # Raising makes Step Functions retry the chunk; rows already stored count again as this
    # run's own and are re-sent, nothing is counted twice.
    raise TransientError(f"{len(entries)} SQS message(s) could not be sent")
