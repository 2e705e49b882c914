"""Outbox publisher: the audit log's DynamoDB stream -> ``payment-events`` (payments.events).

The only function allowed to publish. Each new audit entry (stream ``INSERT``) is published once
with its deterministic ``event_id``, ten per ``PublishBatch``. The mapping reports partial batch
failures: a stream is processed in order, so the answer names the first record whose publish
failed and Lambda retries from it (records before it are done; records after it are published
again, and consumers drop those copies by ``event_id``). A record that cannot be mapped to an
event is reported the same way; after the mapping's retries, bisection isolates it and the
on-failure destination keeps it for a human.

Written by hand rather than with Powertools' BatchProcessor, which calls a handler per record:
publishing ten events per call is what keeps the outbox from adding a request per status change.
"""

from __future__ import annotations

from typing import Any

from payments import aws, env, events
from payments.repository import deserialize

from handlers.common import logger, settings


def _pending(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None]]:
    """(sequence number, event or None when unmappable) for each INSERT, in stream order."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    for record in records:
        data = record.get("dynamodb") or {}
        sequence = str(data.get("SequenceNumber", ""))
        if record.get("eventName") != "INSERT":
            continue  # entries are immutable; a MODIFY or REMOVE (TTL, an operator) is no event
        try:
            out.append((sequence, events.from_audit(deserialize(data.get("NewImage") or {}))))
        except (KeyError, TypeError, ValueError) as exc:  # UnknownAuditEntry is a ValueError
            logger.error("audit entry has no event", sequence=sequence, error=str(exc))
            out.append((sequence, None))
    return out


def publish(records: list[dict[str, Any]], topic_arn: str, sns: Any) -> str | None:
    """Publish the records' events in order; the sequence number of the first failure, if any."""
    pending = _pending(records)
    for start in range(0, len(pending), events.PUBLISH_BATCH):
        group = pending[start : start + events.PUBLISH_BATCH]
        unmappable = next((seq for seq, event in group if event is None), None)
        if unmappable is not None:
            group = group[: [seq for seq, _ in group].index(unmappable)]
        if group:
            entries = [events.sns_entry(event, str(i)) for i, (_, event) in enumerate(group)]
            try:
                response = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            except Exception as exc:  # throttling, a timeout, KMS: retry from this group
                logger.warning("publish failed", error=str(exc), sequence=group[0][0])
                return group[0][0]
            failed = sorted(int(f["Id"]) for f in response.get("Failed") or [])
            if failed:
                logger.warning("publish entries failed", failed=response["Failed"])
                return group[failed[0]][0]
        if unmappable is not None:
            return unmappable
    return None


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    cfg = settings().require(env.PAYMENT_EVENTS_TOPIC_ARN)
    first_failed = publish(
        event.get("Records") or [], cfg.payment_events_topic_arn, aws.client("sns")
    )
    if first_failed is None:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [{"itemIdentifier": first_failed}]}
