"""Republishing from the audit log (``make republish``): the outbox's repair path.

The publisher gives up on a stream batch after the mapping's retries (a day of them), and the
mapping sends only a *description* of the records to its on-failure queue (``outbox-dlq``). The
changes themselves are in the audit log, which is never trimmed, so they can always be
published again: each selected entry becomes the very event the publisher would have made
(``events.from_audit``, same ``event_id``, same body), published with the publisher's rule, a
lane per entity in version order (``payments.outbox``). Republishing is idempotent: it only ever
makes copies under the same ``event_id``, which consumers drop.

Entries are selected by entity (a ``Query``), by a time window on the entry's ``at`` (a filtered
``Scan``: an operator's read, like reconcile's) or by the dead-letter messages: each one's
``DDBStreamBatchInfo`` names the shard and the first and last sequence numbers, read again from
the stream while it still has them (24 h); otherwise its approximate arrival times give a time
window, widened by ``ARRIVAL_MARGIN`` before (``at`` is taken before the write commits, and a
write may be retried for a while) and a second after, which at worst republishes neighbours:
copies. A dead-letter message is deleted only once all its events went out.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from payments import archive, aws, events, outbox
from payments.clients import STORED_PAYMENT_ID_PATTERN
from payments.contract import BATCH_ID_PATTERN
from payments.repository import deserialize, error_code, read_all

ENTITY = re.compile(
    rf"\A(?:{events.PAYMENT_PREFIX}{STORED_PAYMENT_ID_PATTERN}|{events.BATCH_PREFIX}{BATCH_ID_PATTERN})\Z"
)
ARRIVAL_MARGIN = timedelta(minutes=5)
# A failed publish is retried from its first failed event this many times, then reported.
PUBLISH_ATTEMPTS = 5
RETRY_SECONDS = 1.0
# Errors that mean the stream no longer has the records (trimmed after 24 h, stream replaced).
_STREAM_GONE = frozenset(
    {"TrimmedDataAccessException", "ResourceNotFoundException", "ValidationException"}
)
_EMPTY_PAGES = 20  # an open shard may answer empty pages before the records


def instant(text: str, name: str) -> str:
    """``text`` (ISO 8601 with a time zone) as the audit log writes ``at``: UTC, milliseconds,
    ``Z``, so that string order is time order. ValueError naming ``name`` otherwise."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} {text!r} has no time zone (add Z for UTC)")
    return _iso(moment)


def entity(text: str) -> str:
    """``PAYMENT#<payment_id>`` (``PAYMENT#<client>.<payment_id>`` for a client other than
    default) or ``BATCH#<batch_id>``; ValueError otherwise."""
    if not ENTITY.match(text):
        raise ValueError(
            f"entity {text!r} must be PAYMENT#<payment_id>, PAYMENT#<client>.<payment_id> or "
            "BATCH#<batch_id> (ids as the API takes them)"
        )
    return text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Result:
    entries: int = 0
    published: int = 0
    calls: int = 0
    unmappable: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unmappable and not self.failed

    def add(self, other: Result) -> None:
        self.entries += other.entries
        self.published += other.published
        self.calls += other.calls
        self.unmappable += other.unmappable
        self.failed += other.failed


@dataclass
class DeadLetters:
    messages: int = 0
    deleted: int = 0
    kept: list[str] = field(default_factory=list)  # why each kept message stays
    result: Result = field(default_factory=Result)


def ordered(entries: Iterable[Mapping[str, Any]]) -> tuple[list[outbox.Pending], list[str]]:
    """The entries' events, each entity's in version order (then time), entities in the order
    of their first entry's time; and the entries no event is defined for."""
    lanes: dict[str, list[tuple[tuple[int, str, str], dict[str, Any]]]] = {}
    unmappable = []
    for entry in entries:
        try:
            event = events.from_audit(entry)
        except (KeyError, TypeError, ValueError) as exc:
            unmappable.append(f"{entry.get('entity_id')}/{entry.get('sk')}: {exc}")
            continue
        key = (int(event.get("version", 0)), str(event["at"]), str(event["event_id"]))
        lanes.setdefault(str(entry["entity_id"]), []).append((key, event))
    out = []
    for owner, items in sorted(lanes.items(), key=lambda lane: min(k[1] for k, _ in lane[1])):
        out += [outbox.Pending(owner, event) for _, event in sorted(items, key=lambda i: i[0])]
    return out, unmappable


class Republisher:
    """Selects audit entries and delivers them again: published on ``payment-events``
    (``publish``), or, with ``archive_bucket``, written into the audit archive (``archive``)."""

    def __init__(
        self,
        audit_table: str,
        topic_arn: str | None,
        *,
        archive_bucket: str | None = None,
        clients: Any = aws.client,
    ) -> None:
        self.audit_table = audit_table
        self.topic_arn = topic_arn
        self.archive_bucket = archive_bucket
        self.clients = clients

    # -- selecting entries ------------------------------------------------------------------
    def entries_of(self, entity_id: str) -> list[dict[str, Any]]:
        return self._read(
            "query",
            KeyConditionExpression="entity_id = :e",
            ExpressionAttributeValues={":e": {"S": entity(entity_id)}},
        )

    def entries_between(self, since: str, until: str) -> list[dict[str, Any]]:
        """Entries with ``since <= at < until`` (both as :func:`instant` gives them)."""
        return self._read(
            "scan",
            FilterExpression="#at >= :since AND #at < :until",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={":since": {"S": since}, ":until": {"S": until}},
        )

    def entries_of_stream_batch(self, info: Mapping[str, Any]) -> tuple[list[dict], str]:
        """The audit entries a dead-letter message's ``DDBStreamBatchInfo`` describes, and how
        they were found (the stream, or the arrival window)."""
        found = self._from_stream(info)
        if found is not None:
            return found, "stream"
        first = datetime.fromisoformat(str(info["approximateArrivalOfFirstRecord"]))
        last = datetime.fromisoformat(str(info["approximateArrivalOfLastRecord"]))
        since, until = _iso(first - ARRIVAL_MARGIN), _iso(last + timedelta(seconds=1))
        return self.entries_between(since, until), f"audit entries at {since} .. {until}"

    def _from_stream(self, info: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        streams = self.clients("dynamodbstreams")
        start, end = int(info["startSequenceNumber"]), int(info["endSequenceNumber"])
        try:
            iterator = streams.get_shard_iterator(
                StreamArn=info["streamArn"],
                ShardId=info["shardId"],
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=str(start),
            ).get("ShardIterator")
            entries: list[dict[str, Any]] = []
            empty = 0
            while iterator and empty < _EMPTY_PAGES:
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                empty = 0 if page.get("Records") else empty + 1
                for record in page.get("Records", []):
                    data = record.get("dynamodb") or {}
                    if int(data.get("SequenceNumber", 0)) > end:
                        return entries
                    if record.get("eventName") == "INSERT":
                        entries.append(deserialize(data.get("NewImage") or {}))
                    if int(data.get("SequenceNumber", 0)) == end:
                        return entries
                iterator = page.get("NextShardIterator")
        except ClientError as exc:
            if error_code(exc) in _STREAM_GONE:
                return None
            raise
        return None  # the shard ended or went quiet before the batch's last record

    def _read(self, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        dynamodb = self.clients("dynamodb")
        return read_all(
            dynamodb, operation, **{"TableName": self.audit_table, "ConsistentRead": True, **kwargs}
        )

    # -- publishing -------------------------------------------------------------------------
    def publish(self, entries: Iterable[Mapping[str, Any]]) -> Result:
        """Publish the entries' events under their event_ids, a lane per entity in version
        order; a failure is retried from the first event not known published."""
        entries = list(entries)
        pending, unmappable = ordered(entries)
        result = Result(entries=len(entries), unmappable=unmappable)
        sns = self.clients("sns")
        for attempt in range(PUBLISH_ATTEMPTS):
            outcome = outbox.publish(pending, self.topic_arn, sns)
            result.calls += outcome.calls
            if outcome.first_failed is None:
                result.published += len(pending)
                return result
            result.published += outcome.first_failed
            pending = pending[outcome.first_failed :]
            if attempt + 1 < PUBLISH_ATTEMPTS:
                time.sleep(RETRY_SECONDS * 2**attempt)
        result.failed = [
            f"{pending[0].event['event_id']} and {len(pending) - 1} after it: "
            + "; ".join(sorted({error for _, error in outcome.errors}))
        ]
        return result

    def archive(self, entries: Iterable[Mapping[str, Any]]) -> Result:
        """Write the entries into the audit archive as one object (written once: a second run
        writes the same key, which S3 refuses, and the entries are there)."""
        if not self.archive_bucket:
            raise ValueError("no audit archive bucket to write to")
        entries = list(entries)
        result = Result(entries=len(entries))
        if entries:
            archive.write_entries(entries, self.archive_bucket, self.clients("s3"))
            result.published, result.calls = len(entries), 1
        return result

    def deliver(self, entries: Iterable[Mapping[str, Any]]) -> Result:
        """``archive`` when this republisher writes to the archive, else ``publish``."""
        return self.archive(entries) if self.archive_bucket else self.publish(entries)

    def drain_dead_letters(self, queue_url: str) -> DeadLetters:
        """Deliver again what each message of a stream mapping's dead-letter queue describes
        (the outbox's, or the archiver's); delete the message once all of it is done. Kept
        messages are made visible again at once."""
        sqs = self.clients("sqs")
        report = DeadLetters()
        kept: list[str] = []
        empty = 0
        while empty < 2:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=1
            ).get("Messages", [])
            empty = 0 if got else empty + 1
            for message in got:
                report.messages += 1
                why = self._republish_message(message, report.result)
                if why is None:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                    report.deleted += 1
                else:
                    report.kept.append(f"message {message['MessageId']}: {why}")
                    kept.append(message["ReceiptHandle"])
        for handle in kept:
            sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        return report

    def _republish_message(self, message: Mapping[str, Any], total: Result) -> str | None:
        """None when everything the message describes went out; else why it stays."""
        try:
            info = json.loads(message["Body"])["DDBStreamBatchInfo"]
            for name in ("shardId", "startSequenceNumber", "endSequenceNumber", "streamArn"):
                if not str(info.get(name) or ""):
                    raise KeyError(name)
        except (ValueError, KeyError, TypeError) as exc:
            return f"not a stream batch description ({exc})"
        # A stream of the audit log, maybe one replaced since (then the arrival window serves).
        if f":table/{self.audit_table}/stream/" not in str(info["streamArn"]):
            return f"describes a stream of another table ({info['streamArn']})"
        entries, _ = self.entries_of_stream_batch(info)
        result = self.deliver(entries)
        total.add(result)
        if not result.ok:
            return "; ".join(result.unmappable + result.failed)
        return None


def dead_letter_queue(
    stream_arn: str, base: str = "outbox-dlq", *, clients: Any = aws.client
) -> str | None:
    """The URL of the queue a mapping of the stream sends what it gives up on: the one named
    ``payments-<base>-<suffix>`` (the publisher's ``outbox-dlq``, the archiver's
    ``audit-archive-dlq``)."""
    mappings = clients("lambda").list_event_source_mappings(EventSourceArn=stream_arn)
    for mapping in mappings.get("EventSourceMappings", []):
        destination = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        if destination and destination.startswith("arn:") and ":sqs:" in destination:
            _, _, _, _, account, name = destination.split(":", 5)
            if not name.startswith(f"payments-{base}-"):
                continue
            sqs = clients("sqs")
            return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return None


def stream_of(audit_table: str, *, clients: Any = aws.client) -> str | None:
    return clients("dynamodb").describe_table(TableName=audit_table)["Table"].get("LatestStreamArn")
