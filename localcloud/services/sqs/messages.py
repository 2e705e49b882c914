"""SQS messages: a queue's messages indexed, and deleted receipt handles kept small."""

from __future__ import annotations

import collections
import copy
import hashlib
import heapq
import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any


class IndexedMessages:
    """A queue's messages as moto keeps them (``Queue._messages``), with the indexes SQS needs.

    Iterates, counts and removes like the list it replaces, so every moto path that reads
    ``_messages`` (the approximate counts, purge, FIFO receives) still sees every message; besides
    it keeps the messages that are ready to receive in send order, a heap of the invisible ones by
    the time they become visible again, and every receipt handle ever issued, so that a receive
    costs what it returns and a delete or visibility change costs one lookup.
    """

    def __init__(self, messages: Any = ()) -> None:
        self._all: dict[Any, None] = {}
        # Ready messages in order; an entry no longer in _ready_set is stale and skipped.
        self._ready: collections.deque[Any] = collections.deque()
        self._ready_set: set[Any] = set()
        self._hidden: list[tuple[float, int, Any]] = []
        self._hidden_set: set[Any] = set()
        self._handles: dict[str, Any] = {}
        self._order = itertools.count()
        for message in messages:
            self.append(message)

    # -- what moto's code does with the list ---------------------------------------------------
    def append(self, message: Any) -> None:
        self._all[message] = None
        for handle in message.all_receipt_handles:
            if handle:
                self._handles[handle] = message
        self.track(message)

    def remove(self, message: Any) -> None:
        try:
            del self._all[message]
        except KeyError:
            raise ValueError("message not in queue") from None
        self._ready_set.discard(message)
        self._hidden_set.discard(message)
        for handle in message.all_receipt_handles:
            self._handles.pop(handle, None)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._all))

    def __len__(self) -> int:
        return len(self._all)

    def __bool__(self) -> bool:
        return bool(self._all)

    def __contains__(self, message: object) -> bool:
        return message in self._all

    # -- indexes -------------------------------------------------------------------------------
    def track(self, message: Any) -> None:
        """File the message as ready or hidden by its visibility and delay as they are now."""
        due = max(message.visible_at, message.delayed_until)
        if due >= time.time() * 1000:
            self._ready_set.discard(message)
            self._hidden_set.add(message)
            heapq.heappush(self._hidden, (due, next(self._order), message))
        elif message not in self._ready_set:
            self._hidden_set.discard(message)
            self._ready_set.add(message)
            self._ready.append(message)

    def received(self, message: Any) -> None:
        """After ``mark_received``: the new receipt handle, and hidden until visible again."""
        self._handles[message.receipt_handle] = message
        self.track(message)

    def by_handle(self, handle: str) -> Any:
        message = self._handles.get(handle)
        if message is not None and message in self._all:
            return message
        # A handle issued by a path that bypassed the index (a FIFO receive): look it up.
        for candidate in self._all:
            if candidate.had_receipt_handle(handle):
                self._handles[handle] = candidate
                return candidate
        return None

    def _release(self, now: float) -> None:
        """Hidden messages whose time has come are ready again, ahead of the never received."""
        while self._hidden and self._hidden[0][0] < now:
            due, _, message = heapq.heappop(self._hidden)
            current = max(message.visible_at, message.delayed_until)
            if message in self._all and message not in self._ready_set and current == due:
                self._hidden_set.discard(message)
                self._ready_set.add(message)
                self._ready.appendleft(message)

    def pop_ready(self) -> Any:
        """The next message visible now, taken off the ready list; None when there is none."""
        now = time.time() * 1000
        self._release(now)
        while self._ready:
            message = self._ready.popleft()
            if message not in self._ready_set:
                continue
            self._ready_set.discard(message)
            if message.visible_at >= now or message.delayed_until >= now:
                self.track(message)  # made invisible by a path that bypassed the index
                continue
            return message
        return None

    def counts(self) -> tuple[int, int, int]:
        """(visible, not visible, delayed) as SQS's approximate counts, costing the hidden ones."""
        now = time.time() * 1000
        self._release(now)
        delayed = sum(1 for message in self._hidden_set if message.delayed_until >= now)
        return len(self._ready_set), len(self._hidden_set) - delayed, delayed

    def has_ready(self) -> bool:
        self._release(time.time() * 1000)
        while self._ready and self._ready[0] not in self._ready_set:
            self._ready.popleft()
        return bool(self._ready)


class HandleDigests:
    """The receipt handles of deleted messages, as 8-byte digests: what ``Queue.deleted_messages``
    is asked (``in``, ``update``) without keeping every handle's text for the queue's life."""

    def __init__(self) -> None:
        self._digests: set[int] = set()

    @staticmethod
    def _digest(handle: str) -> int:
        return int.from_bytes(hashlib.blake2b(handle.encode(), digest_size=8).digest(), "big")

    def __contains__(self, handle: object) -> bool:
        return isinstance(handle, str) and self._digest(handle) in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, handle: str) -> None:
        self._digests.add(self._digest(handle))

    def update(self, handles: Iterable[str | None]) -> None:
        self._digests.update(self._digest(handle) for handle in handles if handle)


def indexed_messages(queue: Any) -> IndexedMessages:
    """The queue's ``IndexedMessages``, built from moto's list the first time (or after a purge)."""
    store = queue._messages
    if not isinstance(store, IndexedMessages):
        store = queue._messages = IndexedMessages(store)
    return store


def deleted_handles_kept_small() -> None:
    """moto remembers every receipt handle of every deleted message (so that deleting twice is
    not an error, as in SQS) as text: a 185-character string, about 280 bytes with its set
    slot, four or more per payment (its processing message and its events on the subscriber
    queue), for the queue's life; a digest takes about 80. The
    handles are kept as 8-byte digests instead (a collision would make one delete of a handle
    never issued succeed: 1 in 2^64 per pair)."""
    from moto.sqs.models import Queue

    init = Queue.__init__

    def init_with_digests(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.deleted_messages = HandleDigests()

    Queue.__init__ = init_with_digests  # type: ignore[method-assign]


def queue_operations_per_message() -> None:
    """ReceiveMessage, DeleteMessage and ChangeMessageVisibility cost per message, not per queue.

    moto keeps a queue's messages in a list: every ReceiveMessage first builds the list of all
    visible messages (two clock reads per message), and every DeleteMessage and
    ChangeMessageVisibility scans every message's receipt handles. A queue of 20,000 pending
    payments made each receive and each delete cost the whole queue, so processing a large batch
    file cost the square of its size. The three ``ApproximateNumberOfMessages*`` counts of
    GetQueueAttributes were a pass over the queue each, two clock reads per message (a monitor
    polling the depth of a deep queue took a third of the server). Here ``Queue._messages`` is an
    ``IndexedMessages``; the three operations use its indexes for standard queues and the counts
    cost the messages in flight; FIFO receives keep moto's code (its group rules), which
    iterates the same container.
    """
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend, _filter_message_attributes

    original_receive = SQSBackend.receive_message

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            return original_receive(
                self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                message_attribute_names,
            )  # fmt: skip
        names = message_attribute_names or []
        polling_end = time.time() + (wait_seconds_timeout or 0)
        retention_ms = int(queue.message_retention_period) * 1000
        max_receives = (queue.redrive_policy or {}).get("maxReceiveCount")
        while True:
            result: list[Any] = []
            received: list[Any] = []
            to_dlq: list[Any] = []
            with queue._messages_lock:
                store = indexed_messages(queue)
                while len(result) < count:
                    message = store.pop_ready()
                    if message is None:
                        break
                    queue.pending_messages.discard(message)
                    if message.sent_timestamp + retention_ms <= time.time() * 1000:
                        store.remove(message)  # past the retention period: SQS deletes it
                        continue
                    if (
                        queue.dead_letter_queue is not None
                        and max_receives is not None
                        and message.approximate_receive_count >= int(max_receives)
                    ):
                        to_dlq.append(message)
                        continue
                    queue.pending_messages.add(message)
                    message.mark_received(visibility_timeout=visibility_timeout)
                    received.append(message)
                    # A copy, so that filtering the attributes leaves the stored message whole.
                    message_copy = copy.deepcopy(message)
                    _filter_message_attributes(message_copy, names)
                    result.append(message_copy)
                # Filed again only now: one received with no visibility timeout stays ready, and
                # one receive must not hand it out twice.
                for message in received:
                    store.received(message)
                for message in to_dlq:
                    store.remove(message)
            for message in to_dlq:
                queue.dead_letter_queue.add_message(message)
            remaining = polling_end - time.time()
            if result or remaining <= 0:
                return result
            with queue._messages_lock:
                queue._messages_lock.wait_for(
                    lambda: indexed_messages(queue).has_ready(), timeout=min(1.0, remaining)
                )

    def delete_message(self: Queue, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleting twice is fine in SQS
        with self._messages_lock:
            store = indexed_messages(self)
            message = store.by_handle(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid()
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            store.remove(message)

    def change_message_visibility(
        self: SQSBackend, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            store = indexed_messages(queue)
            message = store.by_handle(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid
            given = time.time() * 1000 + int(visibility_timeout) * 1000
            if given - message.sent_timestamp > 43200 * 1000:
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. "
                    "Reason: Total VisibilityTimeout for the message is beyond the limit "
                    "[43200 seconds]"
                )
            message.change_visibility(visibility_timeout)
            store.track(message)
            if message.visible:
                queue.pending_messages.discard(message)
            queue._messages_lock.notify_all()

    def count(index: int) -> property:
        def getter(self: Queue) -> int:
            with self._messages_lock:
                return indexed_messages(self).counts()[index]

        return property(getter)

    def wait_for_messages(self: Queue, timeout: int) -> None:
        with self._messages_lock:
            self._messages_lock.wait_for(
                lambda: indexed_messages(self).has_ready(), timeout=timeout
            )

    SQSBackend.receive_message = receive_message
    SQSBackend.change_message_visibility = change_message_visibility
    Queue.delete_message = delete_message
    Queue.wait_for_messages = wait_for_messages
    Queue.approximate_number_of_messages = count(0)
    Queue.approximate_number_of_messages_not_visible = count(1)
    Queue.approximate_number_of_messages_delayed = count(2)
