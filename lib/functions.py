"""The Lambda functions: code asset, dependency layer, log groups and one role each;
one idea: each function's spec, environment and exact grant side by side, so that a review of
what a function may do reads one place.

Handlers, timeouts and env vars follow docs/CONTRACT.md; the env-var names come from
``lambda/payments/env.py`` so the stack and the runtime cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdktf import AssetType, TerraformAsset
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import DataAwsIamPolicyDocumentStatement
from cdktf_cdktf_provider_aws.data_aws_ssm_parameters_by_path import DataAwsSsmParametersByPath
from cdktf_cdktf_provider_aws.lambda_alias import LambdaAlias
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionLoggingConfig,
    LambdaFunctionTracingConfig,
    LambdaFunctionVpcConfig,
)
from cdktf_cdktf_provider_aws.lambda_layer_version import LambdaLayerVersion
from cdktf_cdktf_provider_aws.lambda_provisioned_concurrency_config import (
    LambdaProvisionedConcurrencyConfig,
)
from constructs import Construct

from lib.iam import (
    VPC_DESCRIBE_ACTIONS,
    VPC_NETWORK_INTERFACE_ACTIONS,
    XRAY_WRITE_ACTIONS,
    AwsAccount,
    Condition,
    service_role,
    statement,
)
from lib.logs import encrypted_log_group, lambda_log_group_name
from lib.packaging import source_code_hash, write_deterministic_zip
from lib.runtime import ENV, LAMBDA_DIR, LAYER_ZIP
from lib.settings import METRICS_NAMESPACE, SERVICE, Settings
from lib.storage import AUDIT_ARCHIVE_PREFIX
from lib.tables import MINIMISE_INDEX, PENDING_INDEX, RUNNING_INDEX
from lib.workflow_definition import WORKFLOW_TIMEOUT_SECONDS

API = "api"
BATCH_TRIGGER = "batch-trigger"
BATCH_TASKS = "batch-tasks"
PROCESSOR = "processor"
PUBLISHER = "publisher"
SWEEPER = "sweeper"
ARCHIVER = "archiver"
RUNTIME = "python3.12"
# Graviton: about 20% cheaper per GB-second than x86 for the same Python code.
ARCHITECTURE = "arm64"
# Rows per process_chunk run: 5,000 rows of conditional writes take a few seconds (make bench:
# ~3-4 s estimated in AWS, ~5 s against the local cloud) of the 300 s timeout, and the largest
# file (3,000,000 rows) is 600 chunks, within one execution's history and state limits even when
# every chunk is retried to its limit (2,000 rows made 1,500 chunks: 37,500 events at worst).
BATCH_CHUNK_ROWS = 5000
LOG_LEVEL = "INFO"
# The API invokes this alias of the API function, never $LATEST: every deploy publishes a
# version and moves the alias to it, and pointing the alias back rolls a release back.
LIVE_ALIAS = "live"


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    handler: str
    timeout: int
    memory: int
    description: str


FUNCTIONS: Mapping[str, FunctionSpec] = {
    API: FunctionSpec(
        handler="handlers.api.handler", timeout=15, memory=512, description="REST API handler"
    ),
    BATCH_TRIGGER: FunctionSpec(
        handler="handlers.batch_trigger.handler",
        timeout=30,
        memory=256,
        description="Starts the batch workflow for an uploaded CSV file",
    ),
    BATCH_TASKS: FunctionSpec(
        handler="handlers.batch_tasks.handler",
        timeout=300,
        memory=1024,
        description="Tasks of the batch workflow: register, process_chunk, finalize",
    ),
    PROCESSOR: FunctionSpec(
        handler="handlers.processor.handler",
        timeout=30,
        memory=512,
        description="Moves queued payments through their status transitions",
    ),
    PUBLISHER: FunctionSpec(
        handler="handlers.publisher.handler",
        timeout=60,
        memory=256,
        description="Outbox: publishes each new audit-log entry on payment-events",
    ),
    SWEEPER: FunctionSpec(
        handler="handlers.sweeper.handler",
        timeout=120,
        memory=256,
        description="Re-queues payments left non-final and fails batches past the timeout",
    ),
    ARCHIVER: FunctionSpec(
        handler="handlers.archiver.handler",
        timeout=60,
        memory=256,
        description="Copies each new audit-log entry into the Object Lock archive",
    ),
}


class LayerMissingError(FileNotFoundError):
    """The dependencies layer has not been built; synth never runs pip itself."""


@dataclass(frozen=True, kw_only=True)
class FunctionResources:
    """The ARNs and names the functions are wired to (their env vars and role policies)."""

    kms_key_arn: str
    payments_table_arn: str
    payments_table_name: str
    processing_status_table_arn: str
    processing_status_table_name: str
    audit_log_table_arn: str
    audit_log_table_name: str
    processing_queue_arn: str
    processing_queue_url: str
    batch_trigger_dlq_arn: str
    outbox_dlq_arn: str
    audit_archive_dlq_arn: str
    audit_archive_bucket_arn: str
    audit_archive_bucket_name: str
    payment_events_topic_arn: str
    batch_bucket_arn: str
    batch_bucket_name: str
    state_machine_arn: str
    webhook_secret_parameter_name: str
    webhook_secret_parameter_arn: str


@dataclass(frozen=True, kw_only=True)
class VpcPlacement:
    subnet_ids: Sequence[str]
    security_group_ids: Sequence[str]


def _table_access(
    sid: str, table_arn: str, *operations: str, conditions: Sequence[Condition] = ()
) -> DataAwsIamPolicyDocumentStatement:
    """``dynamodb:<operation>`` on one table, or on one index when given its ARN.

    DynamoDB has no TransactWriteItems action: a transaction is authorised by the per-item
    actions (PutItem, UpdateItem, ConditionCheckItem) of the items it contains.
    """
    return statement(
        sid=sid,
        actions=[f"dynamodb:{op}" for op in operations],
        resources=[table_arn],
        conditions=conditions,
    )


# The attributes the sweeper's updates name (keys and condition attributes included, as IAM's
# ``dynamodb:Attributes`` counts them): a payment's pending clock, a run's end.
SWEPT_PAYMENT_ATTRIBUTES = ("payment_id", "pending_at", "pending_shard")
MINIMISED_PAYMENT_ATTRIBUTES = (
    "payment_id", "customer_id", "description", "metadata", "minimise_shard",
)  # fmt: skip
ENDED_RUN_ATTRIBUTES = (
    "pk", "sk", "run", "status", "reason_code", "reason", "version", "finished_at",
    "updated_at", "running",
)  # fmt: skip


def _only_attributes(attributes: tuple[str, ...]) -> list[Condition]:
    """Requests naming only ``attributes`` and returning nothing: an update can neither write
    another attribute nor read one back with ``ReturnValues``."""
    return [
        Condition(
            test="ForAllValues:StringEquals", variable="dynamodb:Attributes", values=attributes
        ),
        Condition(test="StringEqualsIfExists", variable="dynamodb:ReturnValues", values=["NONE"]),
    ]


def _read_audit_stream(r: FunctionResources) -> DataAwsIamPolicyDocumentStatement:
    """What an event source mapping reads the audit log's stream with: the audit log's streams
    only (the DynamoDB guide's policy for stream-triggered Lambdas)."""
    return statement(
        sid="ReadAuditStream",
        actions=[
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        ],
        resources=[f"{r.audit_log_table_arn}/stream/*"],
    )


def rollback_path(settings: Settings) -> str:
    """Where ``make rollback`` pins the API's ``live`` alias: ``<path>/api`` holds a version."""
    return settings.parameter_name("rollback")


class Functions(Construct):
    """The functions, sharing one code asset and one dependencies layer."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        resources: FunctionResources,
        build_dir: Path,
        vpc: VpcPlacement | None = None,
    ) -> None:
        super().__init__(scope, id_)
        layer_zip = build_dir / LAYER_ZIP
        if not layer_zip.is_file():
            raise LayerMissingError(
                f"{layer_zip} is missing: run `make layer` to build the Lambda dependencies layer"
            )
        code_zip = write_deterministic_zip(LAMBDA_DIR, build_dir / "lambda.zip")
        code = TerraformAsset(self, "code", path=str(code_zip), type=AssetType.FILE)
        layer_asset = TerraformAsset(self, "layer-code", path=str(layer_zip), type=AssetType.FILE)
        self.layer = LambdaLayerVersion(
            self,
            "dependencies",
            layer_name=settings.name("dependencies"),
            filename=layer_asset.path,
            source_code_hash=source_code_hash(layer_zip),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )
        r = resources
        profile = settings.profile
        common_env = {
            ENV.ENVIRONMENT: settings.environment,
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_LOG_LEVEL": LOG_LEVEL,
            # Embedded metrics: business figures (processor, batch-tasks) and sweeps (sweeper).
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        max_amount = {ENV.MAX_PAYMENT_AMOUNT: str(profile.max_payment_amount)}
        env: dict[str, dict[str, str]] = {
            API: {
                ENV.PAYMENTS_TABLE: r.payments_table_name,
                ENV.PROCESSING_STATUS_TABLE: r.processing_status_table_name,
                ENV.AUDIT_LOG_TABLE: r.audit_log_table_name,
                ENV.PROCESSING_QUEUE_URL: r.processing_queue_url,
                ENV.WEBHOOK_SECRET_PARAMETER: r.webhook_secret_parameter_name,
                ENV.CORS_ALLOWED_ORIGIN: settings.cors_origin,
                **max_amount,
            },
            BATCH_TRIGGER: {
                ENV.STATE_MACHINE_ARN: r.state_machine_arn,
                ENV.PROCESSING_STATUS_TABLE: r.processing_status_table_name,
            },
            BATCH_TASKS: {
                ENV.BATCH_BUCKET: r.batch_bucket_name,
                ENV.PAYMENTS_TABLE: r.payments_table_name,
                ENV.PROCESSING_STATUS_TABLE: r.processing_status_table_name,
                ENV.AUDIT_LOG_TABLE: r.audit_log_table_name,
                ENV.PROCESSING_QUEUE_URL: r.processing_queue_url,
                ENV.BATCH_CHUNK_ROWS: str(BATCH_CHUNK_ROWS),
                **max_amount,
            },
            PROCESSOR: {
                ENV.PAYMENTS_TABLE: r.payments_table_name,
                ENV.AUDIT_LOG_TABLE: r.audit_log_table_name,
                **max_amount,
            },
            PUBLISHER: {ENV.PAYMENT_EVENTS_TOPIC_ARN: r.payment_events_topic_arn},
            SWEEPER: {
                ENV.PAYMENTS_TABLE: r.payments_table_name,
                ENV.PROCESSING_STATUS_TABLE: r.processing_status_table_name,
                ENV.AUDIT_LOG_TABLE: r.audit_log_table_name,
                ENV.PROCESSING_QUEUE_URL: r.processing_queue_url,
                ENV.STUCK_AFTER_SECONDS: str(profile.stuck_after_minutes * 60),
                ENV.WORKFLOW_TIMEOUT_SECONDS: str(WORKFLOW_TIMEOUT_SECONDS),
                ENV.PAYER_DATA_DAYS: str(profile.payer_data_days),
            },
            ARCHIVER: {ENV.AUDIT_ARCHIVE_BUCKET: r.audit_archive_bucket_name},
        }
        reserved = profile.reserved_concurrency()
        self.functions: dict[str, LambdaFunction] = {}
        self.log_groups: dict[str, CloudwatchLogGroup] = {}
        for key, spec in FUNCTIONS.items():
            name = settings.name(key)
            log_group = encrypted_log_group(
                self,
                f"{key}-logs",
                name=lambda_log_group_name(settings, key),
                settings=settings,
                kms_key_arn=r.kms_key_arn,
            )
            statements = [
                statement(
                    sid="OwnLogGroupOnly",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[f"{log_group.arn}:*"],
                ),
                # X-Ray trace segments have no resource-level permissions.
                statement(sid="XRayTraces", actions=XRAY_WRITE_ACTIONS, resources=["*"]),
                # The CMK encrypts every queue, topic, object and parameter a function reads or
                # writes (batch-trigger: its dead-letter queue); these two are what SQS, SNS, S3
                # and SSM ask KMS for on the caller's behalf.
                statement(
                    sid="UseDataKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[r.kms_key_arn],
                ),
                *self._permissions(key, r),
            ]
            if vpc:
                statements += [
                    # Lambda manages the function's ENIs with its role; the ENIs do not exist yet
                    # when the policy is written, so the account's ENIs are the narrowest scope
                    # for them, and creating one needs this environment's subnets and security
                    # group, not any other's.
                    statement(
                        sid="VpcNetworkInterfaces",
                        actions=VPC_NETWORK_INTERFACE_ACTIONS,
                        resources=[
                            account.arn("ec2", "network-interface/*"),
                            *(account.arn("ec2", f"subnet/{i}") for i in vpc.subnet_ids),
                            *(
                                account.arn("ec2", f"security-group/{i}")
                                for i in vpc.security_group_ids
                            ),
                        ],
                    ),
                    # EC2 Describe calls have no resource-level permissions.
                    statement(sid="VpcDescribe", actions=VPC_DESCRIBE_ACTIONS, resources=["*"]),
                ]
            role = service_role(
                self,
                f"{key}-role",
                name=name,
                service="lambda.amazonaws.com",
                account=account,
                statements=statements,
            )
            self.log_groups[key] = log_group
            self.functions[key] = LambdaFunction(
                self,
                key,
                function_name=name,
                description=spec.description,
                role=role.arn,
                handler=spec.handler,
                runtime=RUNTIME,
                architectures=[ARCHITECTURE],
                filename=code.path,
                source_code_hash=source_code_hash(code_zip),
                layers=[self.layer.arn],
                timeout=spec.timeout,
                memory_size=spec.memory,
                environment=LambdaFunctionEnvironment(variables={**common_env, **env[key]}),
                kms_key_arn=r.kms_key_arn,
                tracing_config=LambdaFunctionTracingConfig(mode="Active"),
                logging_config=LambdaFunctionLoggingConfig(
                    log_format="JSON", log_group=log_group.name
                ),
                # Every function is bounded (lib/settings.py, Concurrency): the API's executions
                # are reserved, so a batch burst cannot starve it of account concurrency.
                reserved_concurrent_executions=reserved[key],
                dead_letter_config=(
                    LambdaFunctionDeadLetterConfig(target_arn=r.batch_trigger_dlq_arn)
                    if key == BATCH_TRIGGER
                    else None
                ),
                vpc_config=(
                    LambdaFunctionVpcConfig(
                        subnet_ids=list(vpc.subnet_ids),
                        security_group_ids=list(vpc.security_group_ids),
                    )
                    if vpc
                    else None
                ),
                # Only the API is released through versions and an alias (see LIVE_ALIAS).
                publish=key == API,
                depends_on=[log_group, role.policy],
            )
        api = self.functions[API]
        # `make rollback` pins the alias to an earlier version in SSM
        # (/payments/<suffix>/rollback/api): the deploy keeps `live` there instead of moving it
        # to the version it builds, until `make rollback ARGS=--release` removes the pin. The
        # pin is the operator's, not Terraform's: read by path, an empty list when there is none.
        pins = DataAwsSsmParametersByPath(
            self, "api-rollback-pin", path=rollback_path(settings), with_decryption=False
        )
        self.api_live = LambdaAlias(
            self,
            "api-live",
            name=LIVE_ALIAS,
            description="The version the REST API invokes; make rollback points it back",
            function_name=api.function_name,
            function_version=(
                f"${{element(concat(nonsensitive({pins.fqn}.values), [{api.fqn}.version]), 0)}}"
            ),
        )
        if profile.api_provisioned_concurrency:
            LambdaProvisionedConcurrencyConfig(
                self,
                "api-live-provisioned",
                function_name=api.function_name,
                qualifier=self.api_live.name,
                provisioned_concurrent_executions=profile.api_provisioned_concurrency,
            )

    @staticmethod
    def _permissions(key: str, r: FunctionResources) -> list[DataAwsIamPolicyDocumentStatement]:
        """Exactly the calls each handler makes (docs/CONTRACT.md, "IAM actions").

        Only the publisher may publish on payment-events: every other function records its
        changes in the audit log, and the outbox publishes them.
        """
        if key == API:
            # DescribeTable and GetQueueAttributes are GET /health's dependency checks.
            return [
                _table_access(
                    "Payments",
                    r.payments_table_arn,
                    "GetItem",
                    "PutItem",
                    "UpdateItem",
                    "DescribeTable",
                ),
                # Batch status and rejected rows; Idempotency-Key bindings are put (in the
                # payment's transaction, or alone for a payment made without the key).
                _table_access(
                    "ProcessingStatus",
                    r.processing_status_table_arn,
                    "GetItem",
                    "Query",
                    "PutItem",
                    "DescribeTable",
                ),
                _table_access("AppendAudit", r.audit_log_table_arn, "PutItem", "DescribeTable"),
                statement(
                    sid="EnqueuePayments",
                    actions=["sqs:SendMessage", "sqs:GetQueueAttributes"],
                    resources=[r.processing_queue_arn],
                ),
                statement(
                    sid="WebhookSecret",
                    actions=["ssm:GetParameter"],
                    resources=[r.webhook_secret_parameter_arn],
                ),
            ]
        if key == BATCH_TRIGGER:
            return [
                statement(
                    sid="StartBatchWorkflow",
                    actions=["states:StartExecution"],
                    resources=[r.state_machine_arn],
                ),
                # Lambda delivers failed asynchronous events with the function's own role.
                statement(
                    sid="DeadLetters",
                    actions=["sqs:SendMessage"],
                    resources=[r.batch_trigger_dlq_arn],
                ),
            ]
        if key == BATCH_TASKS:
            # The summary event is published by the workflow itself, not by these tasks.
            return [
                statement(
                    sid="ReadUploadedFiles",
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=[f"{r.batch_bucket_arn}/incoming/*"],
                ),
                statement(
                    sid="WriteReports",
                    actions=["s3:PutObject"],
                    resources=[f"{r.batch_bucket_arn}/reports/*"],
                ),
                _table_access("Payments", r.payments_table_arn, "GetItem", "PutItem"),
                _table_access(
                    "ProcessingStatus",
                    r.processing_status_table_arn,
                    "GetItem",
                    "Query",
                    "PutItem",
                    "UpdateItem",
                    "BatchWriteItem",
                    # A chunk's row transactions check that its run is still current.
                    "ConditionCheckItem",
                ),
                _table_access("AppendAudit", r.audit_log_table_arn, "PutItem"),
                # sqs:SendMessage also authorises SendMessageBatch.
                statement(
                    sid="EnqueuePayments",
                    actions=["sqs:SendMessage"],
                    resources=[r.processing_queue_arn],
                ),
            ]
        if key == PROCESSOR:
            return [
                # What the event source mapping polls with; Lambda needs nothing else.
                statement(
                    sid="ConsumeProcessingQueue",
                    actions=[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                    ],
                    resources=[r.processing_queue_arn],
                ),
                _table_access(
                    "Payments", r.payments_table_arn, "GetItem", "BatchGetItem", "UpdateItem"
                ),
                _table_access("AppendAudit", r.audit_log_table_arn, "PutItem"),
            ]
        if key == PUBLISHER:
            return [
                _read_audit_stream(r),
                statement(
                    sid="PublishPaymentEvents",
                    actions=["sns:Publish"],
                    resources=[r.payment_events_topic_arn],
                ),
                # The mapping's on-failure destination, sent to with the function's role.
                statement(
                    sid="OutboxDeadLetters",
                    actions=["sqs:SendMessage"],
                    resources=[r.outbox_dlq_arn],
                ),
            ]
        if key == SWEEPER:
            return [
                _table_access("Payments", f"{r.payments_table_arn}/index/{PENDING_INDEX}", "Query"),
                # Restarts a re-queued payment's pending_at clock (conditional on not final):
                # that attribute only.
                _table_access(
                    "SweptPayments",
                    r.payments_table_arn,
                    "UpdateItem",
                    conditions=_only_attributes(SWEPT_PAYMENT_ATTRIBUTES),
                ),
                # Removes a final payment's payer fields after the profile's days: those only.
                _table_access(
                    "FinalPaymentsToMinimise",
                    f"{r.payments_table_arn}/index/{MINIMISE_INDEX}",
                    "Query",
                ),
                _table_access(
                    "MinimisedPayments",
                    r.payments_table_arn,
                    "UpdateItem",
                    conditions=_only_attributes(MINIMISED_PAYMENT_ATTRIBUTES),
                ),
                # A run past the workflow timeout is marked FAILED with its audit entry (its
                # version read first): the summary's ending attributes only.
                _table_access(
                    "EndTimedOutRuns",
                    r.processing_status_table_arn,
                    "UpdateItem",
                    conditions=_only_attributes(ENDED_RUN_ATTRIBUTES),
                ),
                _table_access("ReadRuns", r.processing_status_table_arn, "GetItem"),
                _table_access(
                    "RunningBatches",
                    f"{r.processing_status_table_arn}/index/{RUNNING_INDEX}",
                    "Query",
                ),
                _table_access("AppendAudit", r.audit_log_table_arn, "PutItem"),
                statement(
                    sid="RequeuePayments",
                    actions=["sqs:SendMessage"],
                    resources=[r.processing_queue_arn],
                ),
            ]
        if key == ARCHIVER:
            return [
                _read_audit_stream(r),
                # Writes only: no read, no delete, no retention change; Object Lock's default
                # retention applies to each new object without s3:PutObjectRetention.
                statement(
                    sid="ArchiveAuditEntries",
                    actions=["s3:PutObject"],
                    resources=[f"{r.audit_archive_bucket_arn}/{AUDIT_ARCHIVE_PREFIX}*"],
                ),
                statement(
                    sid="ArchiveDeadLetters",
                    actions=["sqs:SendMessage"],
                    resources=[r.audit_archive_dlq_arn],
                ),
            ]
        raise KeyError(key)

    def name_the_default_key(self, key_id: str) -> None:
        """Hand the API function the id of the deployment's own API key, the ``default`` client
        (payments.clients). The key belongs to the API construct, made after the functions;
        Terraform orders the two by the reference (the key depends on nothing here)."""
        self.functions[API].add_override(f"environment.variables.{ENV.DEFAULT_API_KEY_ID}", key_id)

    @property
    def api(self) -> LambdaFunction:
        return self.functions[API]

    @property
    def batch_trigger(self) -> LambdaFunction:
        return self.functions[BATCH_TRIGGER]

    @property
    def batch_tasks(self) -> LambdaFunction:
        return self.functions[BATCH_TASKS]

    @property
    def processor(self) -> LambdaFunction:
        return self.functions[PROCESSOR]

    @property
    def publisher(self) -> LambdaFunction:
        return self.functions[PUBLISHER]

    @property
    def sweeper(self) -> LambdaFunction:
        return self.functions[SWEEPER]

    @property
    def archiver(self) -> LambdaFunction:
        return self.functions[ARCHIVER]
