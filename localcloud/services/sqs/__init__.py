"""SQS: queue attributes, a queue's messages, and the Lambda service's poller."""

from localcloud.services.sqs.attributes import (
    messages_without_counting_the_queue,
    redrive_allow_policy,
    redrive_policy_as_sent,
)
from localcloud.services.sqs.messages import (
    deleted_handles_kept_small,
    queue_operations_per_message,
)
from localcloud.services.sqs.poller import event_sources_by_poller

__all__ = [
    "deleted_handles_kept_small",
    "event_sources_by_poller",
    "messages_without_counting_the_queue",
    "queue_operations_per_message",
    "redrive_allow_policy",
    "redrive_policy_as_sent",
]
