"""Outbox publisher: the audit log's DynamoDB stream -> ``payment-events`` (payments.events).

The only function allowed to publish. Each new audit entry (stream ``INSERT``) is published once
with its deterministic ``event_id``, ten per ``PublishBatch``, a few calls at a time. The mapping
reports partial batch failures: a stream is processed in order, so the answer names the first
record (in stream order) whose publish failed and Lambda retries from it (records before it are
done; records after it, some of which may have gone out meanwhile, are published again, and
consumers drop those copies by ``event_id``). A record that cannot be mapped to an
event is reported the same way; after the mapping's retries, bisection isolates it and the
on-failure destination keeps it for a human.

Written by hand rather than with Powertools' BatchProcessor, which calls a handler per record:
publishing ten events per call is what keeps the outbox from adding a request per status change.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from payments import aws, env, events
from payments.repository import deserialize

from handlers.common import logger, settings

# PublishBatch calls in flight at once: a batch of 100 records is ten calls, which one after
# another made the publisher the outbox's slowest step (the stream's records waited for it).
PUBLISH_WORKERS = 4


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


def publish(
    records: list[dict[str, Any]], topic_arn: str, sns: Any, workers: int = PUBLISH_WORKERS
) -> str | None:
    """Publish the records' events, up to ``workers`` calls at a time; the sequence number of
    the first record (in stream order) whose publish failed, if any."""
    pending = _pending(records)
    # Everything before the first unmappable record goes out; the retry starts at that record.
    unmappable = next((i for i, (_, event) in enumerate(pending) if event is None), len(pending))
    groups = [
        pending[start : min(start + events.PUBLISH_BATCH, unmappable)]
        for start in range(0, unmappable, events.PUBLISH_BATCH)
    ]
    if len(groups) <= 1 or workers <= 1:
        failures = [_publish_group(group, topic_arn, sns) for group in groups]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(groups))) as pool:
            failures = list(pool.map(lambda group: _publish_group(group, topic_arn, sns), groups))
    first_failed = next((failed for failed in failures if failed is not None), None)
    if first_failed is not None:
        return first_failed
    return pending[unmappable][0] if unmappable < len(pending) else None


def _publish_group(group: list[tuple[str, Any]], topic_arn: str, sns: Any) -> str | None:
    """One ``PublishBatch`` of up to ten events; the sequence number of its first failure."""
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
