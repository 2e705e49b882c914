"""SQS queue attributes: the redrive policies as sent, and sends and receives that read only the
attributes they need."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any


def redrive_policy_as_sent() -> None:
    """Return ``RedrivePolicy`` exactly as the client sent it.

    moto re-serialises the policy with different spacing (and a number for ``maxReceiveCount``),
    which the provider reports as a change on every plan.
    """
    from moto.sqs.models import Queue

    original_setup = Queue._setup_dlq
    attributes_property = Queue.attributes

    def setup_dlq(self: Queue, policy: Any) -> None:
        original_setup(self, policy)
        self._redrive_policy_as_sent = policy if isinstance(policy, str) and policy else None

    def attributes(self: Queue) -> dict[str, Any]:
        result = attributes_property.fget(self)
        sent = getattr(self, "_redrive_policy_as_sent", None)
        if sent and self.redrive_policy and "RedrivePolicy" in result:
            result["RedrivePolicy"] = sent
        return result

    Queue._setup_dlq = setup_dlq
    Queue.attributes = property(attributes)


def messages_without_counting_the_queue() -> None:
    """SendMessage and ReceiveMessage read queue attributes without counting every message.

    moto's SendMessage looks up ``ContentBasedDeduplication``, and ReceiveMessage the
    ``MessageRetentionPeriod`` of every message it hands out, in ``Queue.attributes``: a property
    that builds every attribute, the three ``ApproximateNumberOfMessages*`` counts among them, a
    pass over all the queue's messages per count. Each message sent to or received from a
    growing queue then costs more than the one before: the events topic's subscriber queue, which
    nothing consumes locally, grows by three messages per payment, and with the outbox publishing
    every audit entry that was half of the server's CPU. During those two calls the property
    leaves the counts out; GetQueueAttributes still has them.
    """
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue, SQSBackend

    counts = {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
    lean = threading.local()
    attributes_property = Queue.attributes

    class LazyAttributes(MutableMapping):  # type: ignore[type-arg]
        """The attributes without the counts, each worked out when asked for: the two calls
        read one or two of them, and building the rest (the policy as JSON among them) cost 5 %
        of the server while a large file was queued."""

        def __init__(self, queue: Queue, names: list[str]) -> None:
            self._queue = queue
            self._names = names
            self._set: dict[str, Any] = {}

        def __getitem__(self, name: str) -> Any:
            if name in self._set:
                return self._set[name]
            if name not in self._names:
                raise KeyError(name)
            if name == "RedrivePolicy":
                return json.dumps(self._queue.redrive_policy)
            value = getattr(self._queue, camelcase_to_underscores(name))
            return str(value).lower() if isinstance(value, bool) else value

        def __setitem__(self, name: str, value: Any) -> None:
            self._set[name] = value

        def __delitem__(self, name: str) -> None:
            if name in self._set:
                del self._set[name]
            elif name in self._names:
                self._names.remove(name)
            else:
                raise KeyError(name)

        def __iter__(self) -> Iterator[str]:
            yield from self._names
            yield from (name for name in self._set if name not in self._names)

        def __len__(self) -> int:
            return len(set(self._names) | set(self._set))

    def attributes(self: Queue) -> Any:
        if not getattr(lean, "active", False):
            return attributes_property.fget(self)
        names = [name for name in self.BASE_ATTRIBUTES if name not in counts]
        if self.fifo_queue:
            names += self.FIFO_ATTRIBUTES
        if self.kms_master_key_id:
            names += self.KMS_ATTRIBUTES
        if self.redrive_policy:
            names.append("RedrivePolicy")
        return LazyAttributes(self, names)

    def without_counts(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
            outer = getattr(lean, "active", False)
            lean.active = True
            try:
                return method(self, *args, **kwargs)
            finally:
                lean.active = outer

        return wrapper

    Queue.attributes = property(attributes)
    SQSBackend.send_message = without_counts(SQSBackend.send_message)
    SQSBackend.receive_message = without_counts(SQSBackend.receive_message)


REDRIVE_PERMISSIONS = ("allowAll", "denyAll", "byQueue")

# SQS accepts at most ten source queues in a byQueue policy.
MAX_REDRIVE_SOURCE_QUEUES = 10


def _validated_redrive_allow_policy(value: Any) -> str | None:
    """The policy as sent (SQS returns it verbatim), or None to remove it; errors as SQS's."""
    from moto.sqs.exceptions import InvalidParameterValue

    if value is None or value == "":
        return None
    try:
        policy = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        policy = None
    if not isinstance(policy, dict):
        raise InvalidParameterValue(
            "Value for parameter RedriveAllowPolicy is invalid. Reason: not a JSON object."
        )
    permission = policy.get("redrivePermission")
    if permission not in REDRIVE_PERMISSIONS:
        raise InvalidParameterValue(
            "Value for parameter RedriveAllowPolicy is invalid. Reason: redrivePermission must "
            f"be one of {', '.join(REDRIVE_PERMISSIONS)}."
        )
    sources = policy.get("sourceQueueArns")
    if permission == "byQueue":
        if (
            not isinstance(sources, list)
            or not 1 <= len(sources) <= MAX_REDRIVE_SOURCE_QUEUES
            or not all(isinstance(arn, str) and arn.startswith("arn:") for arn in sources)
        ):
            raise InvalidParameterValue(
                "Value for parameter RedriveAllowPolicy is invalid. Reason: byQueue needs "
                f"sourceQueueArns, 1 to {MAX_REDRIVE_SOURCE_QUEUES} queue ARNs."
            )
    elif sources is not None:
        raise InvalidParameterValue(
            "Value for parameter RedriveAllowPolicy is invalid. Reason: sourceQueueArns is "
            f"allowed only with byQueue, not {permission}."
        )
    return value


def redrive_allow_policy() -> None:
    """Store ``RedriveAllowPolicy`` (validated) and return it exactly as sent.

    moto's ``_set_attributes`` keeps any attribute it is given, but ``Queue.attributes`` never
    lists this one and ``GetQueueAttributes`` answers ``InvalidAttributeName`` when it is asked
    for by name. The provider creates the queue with it and then polls the attributes until they
    match what it sent, which never happens.
    """
    from moto.sqs.models import Queue

    # A new list, not an append: the unit tests' snapshot puts the class attribute back.
    Queue.BASE_ATTRIBUTES = [*Queue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
    Queue.redrive_allow_policy = None  # queues that never had one
    original_set_attributes = Queue._set_attributes
    attributes_property = Queue.attributes

    def set_attributes(self: Queue, attributes: dict[str, Any], now: float | None = None) -> None:
        if "RedriveAllowPolicy" in attributes:
            policy = _validated_redrive_allow_policy(attributes["RedriveAllowPolicy"])
            attributes = {**attributes, "RedriveAllowPolicy": policy}
        original_set_attributes(self, attributes, now)

    def attributes(self: Queue) -> dict[str, Any]:
        result = attributes_property.fget(self)
        if self.redrive_allow_policy:
            result["RedriveAllowPolicy"] = self.redrive_allow_policy
        else:
            result.pop("RedriveAllowPolicy", None)
        return result

    Queue._set_attributes = set_attributes
    Queue.attributes = property(attributes)
