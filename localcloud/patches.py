"""Every patch that bridges a gap between moto's server and what the AWS provider and AWS do, in
the order it is applied.

The patches live with the service they patch (``localcloud/services/``); each names the gap it
bridges, as observed with Terraform 1.11 and provider 5.100.0, and docs/LOCALCLOUD.md lists them
all with the test that shows each. They are applied by ``localcloud.server`` inside the
local-cloud process only; nothing here changes the stack that production deploys. ``apply`` is
idempotent.
"""

from __future__ import annotations

from collections.abc import Callable

from localcloud.services import (
    core,
    dynamodb,
    dynamodb_streams,
    ec2,
    kms,
    lambda_,
    s3,
    sns,
    sqs,
    stepfunctions,
)
from localcloud.services.lambda_.functions import LogExport
from localcloud.services.lambda_.runner import LambdaRunner

_applied = False


def apply(
    *,
    runner: LambdaRunner,
    port: int,
    on_sqs_message: Callable[[], None],
    on_stream_record: Callable[[], None],
    log_export: LogExport | None = None,
) -> None:
    """Patch moto for the local cloud; the callbacks wake the SQS and DynamoDB Streams pollers."""
    global _applied
    if _applied:
        return
    _applied = True
    core.models_not_tracked()
    core.server_keeps_connections_alive()
    core.server_routes_by_credential_scope()
    # Before the first state machine exists: moto keeps executing ones in another backend.
    stepfunctions.enable_execution(port)
    stepfunctions.validate_and_versions()
    stepfunctions.execution_names()
    s3.bucket_policy_conditions()
    s3.logging_target_policy_check()
    s3.event_fields_and_async_lambda()
    s3.list_object_versions_url_encoding()
    s3.object_lock_changes_on_a_used_bucket()
    lambda_.config_round_trip()
    kms.rotation_period()
    # Streams first: the transaction patch wraps the stream's add to hold records back.
    dynamodb_streams.records_kept_for_their_readers(on_stream_record)
    # Each of the next patches that touches UpdateItem or moto's ``copy`` wraps the one before.
    dynamodb.simple_updates_applied_directly()
    dynamodb.items_built_once_with_shared_strings()
    dynamodb.isolate_transactions()
    dynamodb.expressions_parsed_once()
    dynamodb.update_copies_only_for_streams()
    dynamodb.expression_trees_copied_directly()
    dynamodb.query_reads_its_partition()
    dynamodb.attribute_values_as_sent()
    # The queue-attribute patches wrap ``Queue.attributes`` in this order (redrive-allow last).
    sqs.redrive_policy_as_sent()
    sqs.messages_without_counting_the_queue()
    sqs.queue_operations_per_message()
    sqs.deleted_handles_kept_small()
    sns.sent_notifications_bounded()
    sqs.event_sources_by_poller(on_sqs_message)
    lambda_.runs_real_handlers(runner, log_export)
    # What a deploy meets: retried writes, SQS redrive-allow, provisioned concurrency, SG rules.
    core.retried_requests_answered_once()
    sqs.redrive_allow_policy()
    lambda_.provisioned_concurrency()
    # What `make preflight` reads before a deploy.
    lambda_.account_settings()
    ec2.security_group_rule_descriptions()
