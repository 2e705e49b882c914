"""Payment processor: SQS batches with partial batch responses.

The batch's payments are processed together (one read, one transaction per step for all of
them), and each message then gets its own payment's outcome. A message that fails (throttling,
a transaction conflict that keeps losing, a malformed body) is reported in
``batchItemFailures``; SQS redelivers only that one and, after ``maxReceiveCount``, moves it to
the DLQ. The others in the batch are deleted. A redelivered message finds its transitions
already made and changes nothing; their events come from the audit log's outbox.

Business figures go out as embedded metrics (Powertools Metrics, no log parsing):
``PaymentsCompleted`` and ``PaymentsFailed`` per message that ends final (a rare redelivery of a
finished payment counts again), dimensioned by the function's name like the sweeper's.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from payments.errors import ValidationError
from payments.service import Payments
from payments.validation import STORED_PAYMENT_ID

from handlers.common import business_metrics, logger, settings

processor = BatchProcessor(event_type=EventType.SQS)
metrics = business_metrics("processor")
FINAL_METRICS = {"COMPLETED": "PaymentsCompleted", "FAILED": "PaymentsFailed"}
# The batch's outcomes, worked out together before Powertools walks the records one by one.
_outcomes: dict[str, str | Exception] = {}


def payment_id_of(record: SQSRecord) -> str:
    try:
        payment_id = json.loads(record.body)["payment_id"]
    except (ValueError, KeyError, TypeError):
        raise ValidationError({"body": 'must be {"payment_id": "<id>"}'}) from None
    if not isinstance(payment_id, str) or not STORED_PAYMENT_ID.fullmatch(payment_id):
        raise ValidationError({"payment_id": "is not a valid payment id"})
    return payment_id


def record_handler(record: SQSRecord) -> str:
    payment_id = payment_id_of(record)
    outcome = _outcomes.get(payment_id)
    if outcome is None:  # not part of a batch read ahead (a direct call)
        outcome = Payments(settings()).process(payment_id)
    if isinstance(outcome, Exception):
        raise outcome
    logger.info("payment processed", payment_id=payment_id, status=outcome)
    if outcome in FINAL_METRICS:
        metrics.add_metric(name=FINAL_METRICS[outcome], unit=MetricUnit.Count, value=1)
    return outcome


def _process_batch(records: list[dict[str, Any]]) -> None:
    """Process the batch's payments together (``Payments.process_many``: a few AWS calls for
    the whole batch); a malformed message is left for its record to fail on."""
    ids = []
    for raw in records:
        try:
            ids.append(payment_id_of(SQSRecord(raw)))
        except ValidationError:
            continue
    _outcomes.clear()
    _outcomes.update(Payments(settings()).process_many(ids))


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        _process_batch(event.get("Records") or [])
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        _outcomes.clear()
