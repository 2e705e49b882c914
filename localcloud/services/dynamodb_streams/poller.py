"""The Lambda service's DynamoDB Streams poller, for the stream event source mappings.

It runs the mappings the way Lambda does:

- records in shard order, one batch in flight per mapping and shard, up to ``BatchSize`` records,
  gathered for at most ``MaximumBatchingWindowInSeconds``;
- the function is invoked synchronously with a DynamoDB Streams event (the real handler runs in
  the Lambda runner's workers);
- ``ReportBatchItemFailures``: processing resumes at the lowest failed sequence number;
- a failed invocation is retried (with a short backoff), ``BisectBatchOnFunctionError`` splits the
  failed batch in two first, which does not use up the retry quota; after
  ``MaximumRetryAttempts`` retries, or once records are older than ``MaximumRecordAgeInSeconds``,
  the batch is discarded and its invocation record goes to ``DestinationConfig.OnFailure``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from localcloud.services.dynamodb_streams.shards import (
    START_ATTR,
    StoredRecord,
    TrimmedError,
    bounds,
    lambda_record,
    read,
    shard_for,
    stream_location,
    trim,
)
from localcloud.services.sqs.poller import failed_item_ids

log = logging.getLogger("localcloud.streams")


IDLE_POLL_SECONDS = 1.0

# Lambda retries a failed stream batch with a backoff of its own; locally short, capped at the
# last value, so that a poison record reaches the on-failure destination while someone watches.
RETRY_BACKOFF_SECONDS = (0.1, 0.2, 0.5, 1.0)

# The synchronous invocation payload limit: a batch is cut before its event would exceed it.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


def _iso(epoch: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def invocation_record(
    mapping: Any,
    batch: list[StoredRecord],
    *,
    shard_id: str,
    condition: str,
    invoke_count: int,
    function_error: str | None,
) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's on-failure destination for a discarded batch."""
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": mapping.function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso(time.time(), millis=True),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": str(batch[0].sequence_number),
            "endSequenceNumber": str(batch[-1].sequence_number),
            "approximateArrivalOfFirstRecord": _iso(batch[0].arrived),
            "approximateArrivalOfLastRecord": _iso(batch[-1].arrived),
            "batchSize": len(batch),
            "streamArn": mapping.event_source_arn,
        },
    }


def send_to_destination(destination_arn: str, body: str) -> None:
    """Deliver a message to an SQS queue or SNS topic of the local cloud by ARN."""
    _, _, service, region, account, name = destination_arn.split(":", 5)
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        sqs_backends[account][region].send_message(name, body)
    elif service == "sns":
        from moto.sns.models import sns_backends

        sns_backends[account][region].publish(body, arn=destination_arn)
    else:
        raise ValueError(f"unsupported destination {destination_arn}")


@dataclass
class Cursor:
    """Where one mapping stands in its shard."""

    position: int  # sequence number of the next record to deliver
    attempts: int = 0  # failed invocations that included the record at ``position``
    # After a bisect: the sizes of the batches still owed, taken from ``position`` in order.
    owed: list[int] = field(default_factory=list)
    last_error: str | None = None


@dataclass
class _Outcome:
    """What one invocation of a batch says: done, some failed, or all failed."""

    failed: set[str] | None  # None: the whole batch failed
    function_error: str | None = None


class StreamPoller:
    """One thread that finds stream mappings with records to read and runs each in a worker."""

    def __init__(self, *, retry_backoff: tuple[float, ...] = RETRY_BACKOFF_SECONDS) -> None:
        self._retry_backoff = retry_backoff
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._arrived = threading.Condition()
        self._cursors: dict[str, Cursor] = {}
        self._cursors_lock = threading.Lock()
        self._in_flight: dict[str, Future[None]] = {}
        self._warned: set[tuple[str, str]] = set()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ddb-esm")
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A record was written (called by the patched shard, outside its lock)."""
        self._wake.set()
        with self._arrived:
            self._arrived.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def cursor(self, mapping_uuid: str) -> Cursor | None:
        with self._cursors_lock:
            return self._cursors.get(mapping_uuid)

    # -- the polling thread -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(IDLE_POLL_SECONDS)
            self._wake.clear()
            try:
                self._poll_once()
            except Exception:  # the poller must outlive any one bad mapping
                log.exception("stream poller iteration failed")

    def _mappings(self) -> list[tuple[str, str, Any]]:
        from moto.awslambda.models import lambda_backends

        found = []
        for account, regions in list(lambda_backends.items()):
            for region, backend in list(regions.items()):
                for mapping in list(backend._event_source_mappings.values()):
                    if stream_location(mapping.event_source_arn) is not None:
                        found.append((account, region, mapping))
        return found

    def _poll_once(self) -> None:
        mappings = self._mappings()
        by_stream: dict[str, list[Cursor]] = {}
        with self._cursors_lock:
            live = {mapping.uuid for _, _, mapping in mappings}
            for gone in set(self._cursors) - live:
                del self._cursors[gone]
        for account, region, mapping in mappings:
            shard = shard_for(mapping.event_source_arn)
            if shard is None:
                continue
            cursor = self._cursor_for(mapping, shard)
            by_stream.setdefault(mapping.event_source_arn, []).append(cursor)
            if not mapping.enabled:
                continue
            running = self._in_flight.get(mapping.uuid)
            if running is not None and not running.done():
                continue
            if cursor.position >= bounds(shard)[1]:
                continue
            self._in_flight[mapping.uuid] = self._executor.submit(
                self._deliver, account, region, mapping
            )
        for uuid_ in set(self._in_flight) - {m.uuid for _, _, m in mappings}:
            del self._in_flight[uuid_]
        self._trim(by_stream)

    def _cursor_for(self, mapping: Any, shard: Any) -> Cursor:
        with self._cursors_lock:
            cursor = self._cursors.get(mapping.uuid)
            if cursor is None:
                start = getattr(mapping, START_ATTR, None)
                oldest, _ = bounds(shard)
                cursor = Cursor(position=oldest if start is None else max(start, oldest))
                self._cursors[mapping.uuid] = cursor
            return cursor

    def _trim(self, by_stream: dict[str, list[Cursor]]) -> None:
        """Drop what every mapping of a stream has read; past retention on every stream."""
        from moto.dynamodb.models import dynamodb_backends

        for regions in list(dynamodb_backends.values()):
            for backend in list(regions.values()):
                for table in list(backend.tables.values()):
                    shard = table.stream_shard
                    if shard is None:
                        continue
                    arn = f"{table.table_arn}/stream/{table.latest_stream_label}"
                    cursors = by_stream.get(arn)
                    keep_from = min(c.position for c in cursors) if cursors else None
                    trim(shard, keep_from)

    # -- one mapping's deliveries (a worker thread; one at a time per mapping) ----------------
    def _deliver(self, account: str, region: str, mapping: Any) -> None:
        try:
            while not self._stop.is_set() and mapping.enabled:
                shard = shard_for(mapping.event_source_arn)
                cursor = self.cursor(mapping.uuid)
                if shard is None or cursor is None:
                    return
                batch = self._next_batch(shard, mapping, cursor)
                if not batch:
                    return
                batch = self._discard_expired(shard, mapping, cursor, batch)
                if not batch:
                    continue
                outcome = self._invoke(account, region, mapping, batch)
                self._settle(shard, mapping, cursor, batch, outcome)
        except Exception:  # a future would swallow it; the next poll tries again
            log.exception("%s: stream delivery failed", mapping.uuid)
        finally:
            self._wake.set()  # trim what this delivery consumed; look for more

    def _next_batch(self, shard: Any, mapping: Any, cursor: Cursor) -> list[StoredRecord]:
        limit = cursor.owed[0] if cursor.owed else int(mapping.batch_size)
        try:
            batch = read(shard, cursor.position, limit)
        except TrimmedError as trimmed:
            log.error("%s: records lost to retention; resuming at %d", mapping.uuid, trimmed.oldest)
            cursor.position, cursor.attempts, cursor.owed = trimmed.oldest, 0, []
            batch = read(shard, cursor.position, limit)
        window = float(mapping.max_batch_window or 0)
        # A retried batch goes again as it was; only a fresh one waits to fill up.
        if batch and len(batch) < limit and window > 0 and not cursor.owed and not cursor.attempts:
            deadline = batch[0].arrived + window
            with self._arrived:
                while True:
                    # Read under the condition: a write between a read and the wait is not missed.
                    batch = read(shard, cursor.position, limit)
                    remaining = deadline - time.time()
                    if len(batch) >= limit or remaining <= 0 or self._stop.is_set():
                        break
                    self._arrived.wait(remaining)
        return _cut_to_payload_limit(batch, mapping.event_source_arn)

    def _discard_expired(
        self, shard: Any, mapping: Any, cursor: Cursor, batch: list[StoredRecord]
    ) -> list[StoredRecord]:
        max_age = mapping.max_record_age
        if max_age is None or int(max_age) < 0:
            return batch
        now = time.time()
        expired = [r for r in batch if now - r.arrived > int(max_age)]
        if not expired:
            return batch
        self._discard(shard, mapping, cursor, expired, "RecordAgeExceeded")
        return []

    def _invoke(
        self, account: str, region: str, mapping: Any, batch: list[StoredRecord]
    ) -> _Outcome:
        from moto.awslambda.utils import get_backend

        self._warn_unsupported(mapping)
        arn = mapping.event_source_arn
        event = {"Records": [lambda_record(r, arn) for r in batch]}
        headers: dict[str, Any] = {}
        try:
            function = get_backend(account, region).get_function(mapping.function_arn)
            payload = function.invoke(json.dumps(event, default=str), {}, headers)
        except Exception:  # counts as a failed batch, like an invoke error
            log.exception("stream batch to %s failed to invoke", mapping.function_arn)
            return _Outcome(failed=None, function_error="Unhandled")
        if "x-amz-function-error" in headers:
            return _Outcome(failed=None, function_error=headers["x-amz-function-error"])
        if "ReportBatchItemFailures" not in (mapping.function_response_types or []):
            return _Outcome(failed=set())
        text = payload.decode() if isinstance(payload, bytes) else str(payload)
        sequence_numbers = {str(r.sequence_number) for r in batch}
        return _Outcome(failed=failed_item_ids(text, sequence_numbers))

    def _settle(
        self,
        shard: Any,
        mapping: Any,
        cursor: Cursor,
        batch: list[StoredRecord],
        outcome: _Outcome,
    ) -> None:
        if outcome.failed is not None and not outcome.failed:
            _advance(cursor, batch)
            return
        cursor.last_error = outcome.function_error
        if outcome.failed is None:
            if mapping.bisect_on_error and len(batch) > 1:
                # Splitting does not use up the retry quota.
                half = (len(batch) + 1) // 2
                cursor.owed[:1] = [half, len(batch) - half]
                log.info("%s: batch of %d failed; bisecting", mapping.uuid, len(batch))
                return
            failed_from = 0
        else:
            # Everything before the lowest failed record counts as processed.
            lowest = min(int(s) for s in outcome.failed)
            failed_from = next(i for i, r in enumerate(batch) if r.sequence_number == lowest)
        rest = batch[failed_from:]
        if rest[0].sequence_number == cursor.position:
            cursor.attempts += 1
        else:
            cursor.position, cursor.attempts = rest[0].sequence_number, 1
        # The retry is the failed records again, not a fresh read that records written since
        # would join (with bisect on, the batch is split at the failed record).
        cursor.owed[:1] = [len(rest)]
        max_retries = -1 if mapping.max_retry_attempts is None else int(mapping.max_retry_attempts)
        if 0 <= max_retries < cursor.attempts:
            self._discard(shard, mapping, cursor, rest, "RetryAttemptsExhausted")
            return
        delay = self._retry_backoff[min(cursor.attempts, len(self._retry_backoff)) - 1]
        log.warning(
            "%s: %d of %d records failed (attempt %d); retrying from %d",
            mapping.uuid,
            len(rest),
            len(batch),
            cursor.attempts,
            cursor.position,
        )
        self._stop.wait(delay)

    def _discard(
        self,
        shard: Any,
        mapping: Any,
        cursor: Cursor,
        batch: list[StoredRecord],
        condition: str,
    ) -> None:
        destination = ((mapping.destination_config or {}).get("OnFailure") or {}).get("Destination")
        invoke_count = cursor.attempts if batch[0].sequence_number == cursor.position else 0
        record = invocation_record(
            mapping,
            batch,
            shard_id=shard.id,
            condition=condition,
            invoke_count=invoke_count,
            function_error=cursor.last_error,
        )
        if destination:
            try:
                send_to_destination(destination, json.dumps(record))
            except Exception:
                log.exception("%s: on-failure destination %s failed", mapping.uuid, destination)
        log.error(
            "%s: discarded %d records %s..%s (%s)%s",
            mapping.uuid,
            len(batch),
            batch[0].sequence_number,
            batch[-1].sequence_number,
            condition,
            f"; invocation record sent to {destination}" if destination else "",
        )
        _advance(cursor, batch)

    def _warn_unsupported(self, mapping: Any) -> None:
        for name, value in (
            ("FilterCriteria", mapping.filter_criteria),
            ("TumblingWindowInSeconds", mapping.tumbling_window),
        ):
            if value and (mapping.uuid, name) not in self._warned:
                self._warned.add((mapping.uuid, name))
                log.warning("%s: %s is not applied by the local cloud", mapping.uuid, name)


def _advance(cursor: Cursor, batch: list[StoredRecord]) -> None:
    """The batch is done with (processed or discarded): move past it."""
    cursor.position = batch[-1].sequence_number + 1
    cursor.attempts, cursor.last_error = 0, None
    done = len(batch)
    while done and cursor.owed:
        taken = min(done, cursor.owed[0])
        cursor.owed[0] -= taken
        done -= taken
        if not cursor.owed[0]:
            cursor.owed.pop(0)


def _cut_to_payload_limit(batch: list[StoredRecord], stream_arn: str) -> list[StoredRecord]:
    # Envelope and per-record overhead are small next to the images; the estimate errs high.
    total = 16
    for index, stored in enumerate(batch):
        total += stored.size + len(stream_arn) + 400
        if total > MAX_PAYLOAD_BYTES and index > 0:
            return batch[:index]
    return batch
