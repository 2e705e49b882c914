"""Publishing events in order per entity: what the publisher and ``make republish`` share.

Events of one entity (a payment, a batch) go out in the order given, one after another: a
*lane* per entity. Lanes run side by side, ``workers`` ``PublishBatch`` calls at a time; a call
takes the next event of up to ten lanes, so it never carries two events of one entity and a
partial failure inside it cannot let version 2 out while version 1 failed. A lane stops at its
first failure: nothing after it in that lane is sent. The answer is the position of the first
event (in the order given) that is not known to be published; everything before it went out,
and a caller retries from it (events after it that went out meanwhile go out again under the
same ``event_id``, and consumers drop the copies).

Calls stay at ten entries while there are ten lanes ready: a call of fewer waits for the calls
in flight, unless none is (then it is the only way forward). Calls are awaited in the order
they were made, so which events share a call depends on the answers, not on thread timing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from payments import events

# PublishBatch calls in flight at once: a stream batch of 100 records is ten calls, which one
# after another made the publisher the outbox's slowest step (the stream's records waited).
PUBLISH_WORKERS = 4


@dataclass(frozen=True)
class Pending:
    """One event to publish and the entity whose lane it goes in (``PAYMENT#<id>``...)."""

    entity: str
    event: Mapping[str, Any]


@dataclass
class Outcome:
    """``first_failed``: position of the first event not known published (None: all went out);
    ``errors``: (position, what SNS answered) for each failed event, for the logs."""

    first_failed: int | None = None
    errors: list[tuple[int, str]] = field(default_factory=list)
    calls: int = 0


def publish(
    pending: Sequence[Pending], topic_arn: str, sns: Any, *, workers: int = PUBLISH_WORKERS
) -> Outcome:
    """Publish ``pending`` in lanes by entity (module docstring); what went out and what not."""
    lanes: dict[str, deque[int]] = {}
    for position, item in enumerate(pending):
        lanes.setdefault(item.entity, deque()).append(position)
    outcome = Outcome()
    busy: set[str] = set()  # lanes with an event in a call in flight
    running: deque[tuple[Future[dict[int, str]], list[int]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while True:
            ready = sorted(q[0] for entity, q in lanes.items() if q and entity not in busy)
            while ready and len(running) < max(1, workers):
                if len(ready) < events.PUBLISH_BATCH and running:
                    break  # wait for the calls in flight to free more lanes
                call, ready = ready[: events.PUBLISH_BATCH], ready[events.PUBLISH_BATCH :]
                busy.update(pending[i].entity for i in call)
                batch = [pending[i].event for i in call]
                running.append((pool.submit(_publish_batch, batch, topic_arn, sns), call))
                outcome.calls += 1
            if not running:
                break
            future, call = running.popleft()
            failed = future.result()
            for slot, position in enumerate(call):
                lane = lanes[pending[position].entity]
                busy.discard(pending[position].entity)
                if slot in failed:
                    outcome.errors.append((position, failed[slot]))
                    lane.clear()  # the lane stops: nothing after this event goes out
                else:
                    lane.popleft()
    if outcome.errors:
        outcome.first_failed = min(position for position, _ in outcome.errors)
    return outcome


def _publish_batch(batch: list[Mapping[str, Any]], topic_arn: str, sns: Any) -> dict[int, str]:
    """One ``PublishBatch``; the failed entries (index in ``batch`` -> why)."""
    entries = [events.sns_entry(event, str(i)) for i, event in enumerate(batch)]
    try:
        response = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
    except Exception as exc:  # throttling, a timeout, KMS: every entry of the call failed
        return dict.fromkeys(range(len(batch)), str(exc))
    return {
        int(f["Id"]): f"{f.get('Code')}: {f.get('Message', '')}".strip()
        for f in response.get("Failed") or []
    }
