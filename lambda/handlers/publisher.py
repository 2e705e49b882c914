"""Outbox publisher: the audit log's DynamoDB stream -> ``payment-events`` (payments.events).

The only function that publishes (besides an operator's ``make republish``). Each new audit
entry (stream ``INSERT``) is published with its deterministic ``event_id`` in a lane per entity
(payments.outbox): one entity's events go out in stream order, one after another, ten entities
per ``PublishBatch``, a few calls at a time, and a lane stops at its first failure, so a later
version of a payment never goes out while an earlier one failed. The mapping reports partial
batch failures: the answer names the first record (in stream order) whose publish failed and
Lambda retries from it (records before it are done; records after it, some of which may have
gone out meanwhile in other lanes, are published again, and consumers drop those copies by
``event_id``). A record that cannot be mapped to an event is reported the same way; after the
mapping's retries, bisection isolates it and the on-failure destination keeps its description
for ``make republish --dlq`` (once the entry is fixed) or a human.

Written by hand rather than with Powertools' BatchProcessor, which calls a handler per record:
publishing ten events per call is what keeps the outbox from adding a request per status change.
"""

from __future__ import annotations

from typing import Any

from payments import aws, env, events, outbox
from payments.repository import deserialize

from handlers.common import logger, settings


def _pending(records: list[dict[str, Any]]) -> list[tuple[str, outbox.Pending | None]]:
    """(sequence number, event or None when unmappable) for each INSERT, in stream order."""
    out: list[tuple[str, outbox.Pending | None]] = []
    for record in records:
        data = record.get("dynamodb") or {}
        sequence = str(data.get("SequenceNumber", ""))
        if record.get("eventName") != "INSERT":
            continue  # entries are immutable; a MODIFY or REMOVE (TTL, an operator) is no event
        try:
            entry = deserialize(data.get("NewImage") or {})
            out.append(
                (sequence, outbox.Pending(str(entry["entity_id"]), events.from_audit(entry)))
            )
        except (KeyError, TypeError, ValueError) as exc:  # UnknownAuditEntry is a ValueError
            logger.error("audit entry has no event", sequence=sequence, error=str(exc))
            out.append((sequence, None))
    return out


def publish(
    records: list[dict[str, Any]], topic_arn: str, sns: Any, workers: int = outbox.PUBLISH_WORKERS
) -> str | None:
    """Publish the records' events in lanes by entity; the sequence number of the first record
    (in stream order) not known to be published, if any."""
    pending = _pending(records)
    # Everything before the first unmappable record goes out; the retry starts at that record.
    unmappable = next((i for i, (_, item) in enumerate(pending) if item is None), len(pending))
    mappable = [item for _, item in pending[:unmappable] if item is not None]
    outcome = outbox.publish(mappable, topic_arn, sns, workers=workers)
    for position, error in outcome.errors:
        logger.warning("publish failed", sequence=pending[position][0], error=error)
    if outcome.first_failed is not None:
        return pending[outcome.first_failed][0]
    return pending[unmappable][0] if unmappable < len(pending) else None


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    cfg = settings().require(env.PAYMENT_EVENTS_TOPIC_ARN)
    first_failed = publish(
        event.get("Records") or [], cfg.payment_events_topic_arn, aws.client("sns")
    )
    if first_failed is None:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [{"itemIdentifier": first_failed}]}
