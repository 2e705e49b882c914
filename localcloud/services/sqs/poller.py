"""The Lambda service's SQS poller, for the event source mappings Terraform created in moto.

Like the real poller it receives up to ``BatchSize`` messages with the queue's visibility timeout,
invokes the function once per batch, deletes the messages of a successful batch and, when the
mapping has ``ReportBatchItemFailures``, keeps only the items the function names in
``batchItemFailures``. Kept messages become visible again when their visibility timeout expires,
and moto's ``ReceiveMessage`` moves a message to the DLQ once it has been received
``maxReceiveCount`` times — the redrive behaviour of SQS itself. ``event_sources_by_poller`` (at
the end) takes moto's own inline delivery out of ``SendMessage``.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from localcloud.services.lambda_.runner import MAX_WORKERS_PER_FUNCTION
from localcloud.services.sqs.messages import indexed_messages

log = logging.getLogger("localcloud.sqs")

IDLE_POLL_SECONDS = 1.0


def _message_attributes(message: Any) -> dict[str, Any]:
    converted = {}
    for name, value in (getattr(message, "message_attributes", None) or {}).items():
        data_type = value.get("DataType") or value.get("data_type") or "String"
        entry: dict[str, Any] = {
            "dataType": data_type,
            "stringListValues": [],
            "binaryListValues": [],
        }
        string_value = value.get("StringValue") or value.get("string_value")
        binary_value = value.get("BinaryValue") or value.get("binary_value")
        if string_value is not None:
            entry["stringValue"] = string_value
        if binary_value is not None:
            # The Lambda event carries binary attributes base64-encoded, as the SQS API does.
            entry["binaryValue"] = (
                base64.b64encode(binary_value).decode()
                if isinstance(binary_value, bytes)
                else binary_value
            )
        converted[name] = entry
    return converted


def sqs_event(messages: list[Any], queue: Any, region: str) -> dict[str, Any]:
    records = []
    for message in messages:
        attributes = {
            "ApproximateReceiveCount": str(message.approximate_receive_count),
            "SentTimestamp": str(message.sent_timestamp),
            "SenderId": str(message.sender_id),
            "ApproximateFirstReceiveTimestamp": str(
                getattr(message, "approximate_first_receive_timestamp", message.sent_timestamp)
            ),
        }
        if queue.fifo_queue:
            attributes["MessageGroupId"] = message.group_id
            attributes["MessageDeduplicationId"] = message.deduplication_id
            attributes["SequenceNumber"] = str(getattr(message, "sequence_number", "") or "")
        records.append(
            {
                "messageId": message.id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "attributes": attributes,
                "messageAttributes": _message_attributes(message),
                "md5OfBody": message.body_md5,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue.queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def failed_item_ids(payload: str, message_ids: set[str]) -> set[str] | None:
    """The message ids to keep after a successful invoke; ``None`` means the whole batch failed.

    As in Lambda: an empty or null response, or an empty or missing ``batchItemFailures``, is full
    success; a response that is not a JSON object, or an identifier that is empty or not in the
    batch, fails the whole batch.
    """
    try:
        response = json.loads(payload) if payload else None
    except ValueError:
        return None
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not item or item not in message_ids:
            return None
        ids.add(item)
    return ids


def concurrency(mapping: Any) -> int:
    """Batches of one mapping in flight at once: the mapping's ``MaximumConcurrency`` when it has
    one (Lambda's pollers never exceed it), at most as many as the function has warm workers."""
    maximum = (getattr(mapping, "scaling_config", None) or {}).get("MaximumConcurrency")
    limit = MAX_WORKERS_PER_FUNCTION
    return max(1, min(int(maximum), limit)) if maximum else limit


class SqsPoller:
    """One thread that finds ready mappings and hands their batches to worker threads.

    Like Lambda's pollers, several batches of one mapping run at once (``concurrency``): one
    batch at a time would leave the function's other workers idle while the server waits on one.
    """

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._in_flight: dict[str, list[Future[None]]] = {}
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sqs-esm")
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(IDLE_POLL_SECONDS)
            self._wake.clear()
            try:
                self._poll_once()
            except Exception:  # the poller must outlive any one bad mapping
                log.exception("SQS poller iteration failed")

    def _mappings(self) -> list[tuple[str, str, Any]]:
        from moto.awslambda.models import lambda_backends

        found = []
        for account, regions in list(lambda_backends.items()):
            for region, backend in list(regions.items()):
                for mapping in list(backend._event_source_mappings.values()):
                    if mapping.enabled and mapping.event_source_arn.split(":")[2] == "sqs":
                        found.append((account, region, mapping))
        return found

    def _poll_once(self) -> None:
        for account, region, mapping in self._mappings():
            running = [f for f in self._in_flight.get(mapping.uuid, []) if not f.done()]
            if len(running) < concurrency(mapping) and self._has_visible(account, region, mapping):
                running.append(self._executor.submit(self._deliver, account, region, mapping))
            self._in_flight[mapping.uuid] = running

    @staticmethod
    def _has_visible(account: str, region: str, mapping: Any) -> bool:
        from moto.sqs.models import sqs_backends

        try:
            queue = sqs_backends[account][region].get_queue(mapping.event_source_arn.split(":")[5])
        except Exception:  # the queue was deleted under the mapping
            return False
        with queue._messages_lock:
            return indexed_messages(queue).has_ready()

    def _deliver(self, account: str, region: str, mapping: Any) -> None:
        """Drain what is visible now, batch by batch, for one mapping."""
        from moto.sqs.models import sqs_backends

        sqs = sqs_backends[account][region]
        queue_name = mapping.event_source_arn.split(":")[5]
        while not self._stop.is_set():
            try:
                queue = sqs.get_queue(queue_name)
            except Exception:  # the queue was deleted under the mapping
                return
            messages = sqs.receive_message(
                queue_name,
                mapping.batch_size,
                0,
                int(queue.visibility_timeout),
                message_attribute_names=["All"],
            )
            if not messages:
                return
            self._invoke(account, region, mapping, queue, messages)

    def _invoke(
        self, account: str, region: str, mapping: Any, queue: Any, messages: list[Any]
    ) -> None:
        from moto.awslambda.utils import get_backend
        from moto.sqs.models import sqs_backends

        sqs = sqs_backends[account][region]
        headers: dict[str, Any] = {}
        try:
            function = get_backend(account, region).get_function(mapping.function_arn)
            payload = function.invoke(json.dumps(sqs_event(messages, queue, region)), {}, headers)
        except Exception:  # counts as a failed batch, like an invoke error
            log.exception("SQS batch to %s failed to invoke", mapping.function_arn)
            return
        by_id = {message.id: message for message in messages}
        if "x-amz-function-error" in headers:
            keep: set[str] | None = None
        elif "ReportBatchItemFailures" in (mapping.function_response_types or []):
            text = payload.decode() if isinstance(payload, bytes) else str(payload)
            keep = failed_item_ids(text, set(by_id))
        else:
            keep = set()
        if keep is None:
            log.warning(
                "batch of %d from %s failed; messages return after the visibility timeout",
                len(messages),
                queue.name,
            )
            return
        for message_id, message in by_id.items():
            if message_id not in keep:
                sqs.delete_message(queue.name, message.receipt_handle)
        if keep:
            log.info(
                "%d of %d messages from %s reported as failed", len(keep), len(messages), queue.name
            )


def event_sources_by_poller(on_message: Callable[[], None]) -> None:
    """Deliver SQS messages to Lambda from a poller, not inside ``SendMessage``.

    moto invokes the function synchronously inside the sender's request, one message per event,
    ignores ``batchItemFailures`` and never retries. The poller above polls like the Lambda
    service: batches, partial batch responses, visibility timeout, redrive to the DLQ.
    """
    from moto.sqs.models import DEDUPLICATION_TIME_IN_SECONDS, Queue

    def add_message(self: Queue, message: Any) -> None:
        # moto's own add_message minus its inline Lambda delivery (FIFO deduplication kept).
        if self.fifo_queue and (
            self.attributes.get("ContentBasedDeduplication") == "true" or message.deduplication_id
        ):
            for existing in self._messages:
                if existing.deduplication_id == message.deduplication_id:
                    age = (message.sent_timestamp - existing.sent_timestamp) / 1000
                    if age < DEDUPLICATION_TIME_IN_SECONDS:
                        return
        with self._messages_lock:
            self._messages.append(message)
            self._messages_lock.notify_all()
        if self.lambda_event_source_mappings:
            on_message()

    Queue.add_message = add_message
