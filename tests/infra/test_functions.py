"""The Lambda functions, their code, layer, logs and roles."""

from __future__ import annotations

import re
import zipfile

import pytest
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_alias import LambdaAlias
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction
from cdktf_cdktf_provider_aws.lambda_layer_version import LambdaLayerVersion
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.lambda_provisioned_concurrency_config import (
    LambdaProvisionedConcurrencyConfig,
)

from lib.functions import (
    API,
    BATCH_TASKS,
    BATCH_TRIGGER,
    FUNCTIONS,
    LIVE_ALIAS,
    PROCESSOR,
    SWEEPER,
    LayerMissingError,
)
from lib.packaging import write_deterministic_zip
from lib.runtime import ENV, LAMBDA_DIR
from lib.settings import API_SECONDS_PER_REQUEST

# docs/CONTRACT.md "Functions": the env vars each function gets (names from lambda/payments/env.py).
CONTRACT_ENV = {
    "api": {ENV.ENVIRONMENT, ENV.PAYMENTS_TABLE, ENV.PROCESSING_STATUS_TABLE, ENV.AUDIT_LOG_TABLE,
            ENV.PROCESSING_QUEUE_URL, ENV.MAX_PAYMENT_AMOUNT,
            ENV.WEBHOOK_SECRET_PARAMETER, "CORS_ALLOWED_ORIGIN", ENV.DEFAULT_API_KEY_ID},
    "batch-trigger": {ENV.ENVIRONMENT, ENV.STATE_MACHINE_ARN, ENV.PROCESSING_STATUS_TABLE},
    "batch-tasks": {ENV.ENVIRONMENT, ENV.BATCH_BUCKET, ENV.PAYMENTS_TABLE,
                    ENV.PROCESSING_STATUS_TABLE, ENV.AUDIT_LOG_TABLE, ENV.PROCESSING_QUEUE_URL,
                    ENV.MAX_PAYMENT_AMOUNT, ENV.BATCH_CHUNK_ROWS},
    "processor": {ENV.ENVIRONMENT, ENV.PAYMENTS_TABLE, ENV.AUDIT_LOG_TABLE,
                  ENV.MAX_PAYMENT_AMOUNT},
    # Only the outbox publisher knows the topic.
    "publisher": {ENV.ENVIRONMENT, ENV.PAYMENT_EVENTS_TOPIC_ARN},
    "sweeper": {ENV.ENVIRONMENT, ENV.PAYMENTS_TABLE, ENV.PROCESSING_STATUS_TABLE,
                ENV.AUDIT_LOG_TABLE, ENV.PROCESSING_QUEUE_URL, ENV.STUCK_AFTER_SECONDS,
                ENV.WORKFLOW_TIMEOUT_SECONDS, ENV.PAYER_DATA_DAYS},
    # Only the archiver knows the archive.
    "archiver": {ENV.ENVIRONMENT, ENV.AUDIT_ARCHIVE_BUCKET},
}  # fmt: skip
# Every function may emit embedded metrics (processor, batch-tasks, sweeper do) into one namespace.
POWERTOOLS_ENV = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE"}
_DATA_KEY = {"kms:Decrypt", "kms:GenerateDataKey"}
# docs/CONTRACT.md "IAM actions the runtime calls": per function, resource -> actions. batch-trigger
# also sends to its dead-letter queue, an SSE-KMS queue, which Lambda does with the function's role.
CONTRACT_ACTIONS = {
    "api": {
        "payments": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                     "dynamodb:DescribeTable"},
        "processing-status": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                              "dynamodb:DescribeTable"},
        "audit-log": {"dynamodb:PutItem", "dynamodb:DescribeTable"},
        "processing-queue": {"sqs:SendMessage", "sqs:GetQueueAttributes"},
        "webhook-secret": {"ssm:GetParameter"},
        "cmk": _DATA_KEY,
    },
    "batch-trigger": {
        "state-machine": {"states:StartExecution"},
        "batch-trigger-dlq": {"sqs:SendMessage"},
        "cmk": _DATA_KEY,
    },
    "batch-tasks": {
        "incoming/*": {"s3:GetObject", "s3:GetObjectVersion"},
        "reports/*": {"s3:PutObject"},
        "payments": {"dynamodb:GetItem", "dynamodb:PutItem"},
        "processing-status": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                              "dynamodb:BatchWriteItem", "dynamodb:Query",
                              "dynamodb:ConditionCheckItem"},
        "audit-log": {"dynamodb:PutItem"},
        "processing-queue": {"sqs:SendMessage"},
        "cmk": _DATA_KEY,
    },
    "processor": {
        "payments": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"},
        "audit-log": {"dynamodb:PutItem"},
        "processing-queue": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
        "cmk": _DATA_KEY,
    },
    # No other function may publish: events come from the audit log (the outbox).
    "publisher": {
        "audit-log stream": {"dynamodb:DescribeStream", "dynamodb:GetRecords",
                             "dynamodb:GetShardIterator", "dynamodb:ListStreams"},
        "payment-events": {"sns:Publish"},
        "outbox-dlq": {"sqs:SendMessage"},
        "cmk": _DATA_KEY,
    },
    "sweeper": {
        "payments index pending-index": {"dynamodb:Query"},
        "payments index minimise-index": {"dynamodb:Query"},
        "payments": {"dynamodb:UpdateItem"},
        "processing-status": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "processing-status index running-index": {"dynamodb:Query"},
        "audit-log": {"dynamodb:PutItem"},
        "processing-queue": {"sqs:SendMessage"},
        "cmk": _DATA_KEY,
    },
    # Writes only: it can neither read, delete nor unlock what it archived.
    "archiver": {
        "audit-log stream": {"dynamodb:DescribeStream", "dynamodb:GetRecords",
                             "dynamodb:GetShardIterator", "dynamodb:ListStreams"},
        "audit/*": {"s3:PutObject"},
        "audit-archive-dlq": {"sqs:SendMessage"},
        "cmk": _DATA_KEY,
    },
}  # fmt: skip
# Statements every function gets whatever its code does (its logs, X-Ray, VPC networking).
PLATFORM_SIDS = {"OwnLogGroupOnly", "XRayTraces", "VpcNetworkInterfaces", "VpcDescribe"}
RESOURCE_KINDS = {
    "aws_dynamodb_table.tables_payments_": "payments",
    "aws_dynamodb_table.tables_processing-status_": "processing-status",
    "aws_dynamodb_table.tables_audit-log_": "audit-log",
    "aws_sqs_queue.messaging_processing_": "processing-queue",
    "aws_sqs_queue.messaging_batch-trigger-dlq_": "batch-trigger-dlq",
    "aws_sqs_queue.messaging_outbox-dlq_": "outbox-dlq",
    "aws_sqs_queue.messaging_audit-archive-dlq_": "audit-archive-dlq",
    "aws_sns_topic.messaging_payment-events_": "payment-events",
    "aws_kms_key.": "cmk",
    ":stateMachine:": "state-machine",
    ":parameter/": "webhook-secret",
}


def _functions(synth) -> dict[str, dict]:
    by_name = {
        f["function_name"]: f for f in synth.resources(LambdaFunction.TF_RESOURCE_TYPE).values()
    }
    return {key: by_name[synth.settings.name(key)] for key in FUNCTIONS}


class TestFunctions:
    def test_seven_functions_named_by_the_contract(self, each):
        assert len(each.resources(LambdaFunction.TF_RESOURCE_TYPE)) == len(FUNCTIONS) == 7
        assert set(_functions(each)) == {
            "api",
            "batch-trigger",
            "batch-tasks",
            "processor",
            "publisher",
            "sweeper",
            "archiver",
        }

    @pytest.mark.parametrize("key", list(FUNCTIONS))
    def test_handler_timeout_runtime_and_architecture(self, each, key):
        function = _functions(each)[key]
        assert function["handler"] == FUNCTIONS[key].handler
        assert function["timeout"] == FUNCTIONS[key].timeout
        assert function["runtime"] == "python3.12"
        assert function["architectures"] == ["arm64"]

    @pytest.mark.parametrize("key", list(FUNCTIONS))
    def test_env_vars_are_exactly_the_contracts(self, each, key):
        variables = _functions(each)[key]["environment"]["variables"]
        assert set(variables) == CONTRACT_ENV[key] | POWERTOOLS_ENV
        assert variables[ENV.ENVIRONMENT] == each.profile.name

    def test_the_api_function_is_told_the_id_of_the_deployments_own_key(self, each):
        """That key is the ``default`` client (payments.clients): the upgrade path of an
        environment from before clients."""
        value = _functions(each)["api"]["environment"]["variables"][ENV.DEFAULT_API_KEY_ID]
        [key] = each.resources("aws_api_gateway_api_key")
        assert value == f"${{aws_api_gateway_api_key.{key}.id}}"

    def test_max_payment_amount_is_a_decimal_string(self, each):
        value = _functions(each)["api"]["environment"]["variables"][ENV.MAX_PAYMENT_AMOUNT]
        assert value == str(each.profile.max_payment_amount)

    def test_tracing_json_logs_and_env_encryption_on_every_function(self, each):
        for function in _functions(each).values():
            assert function["tracing_config"] == {"mode": "Active"}
            assert function["logging_config"]["log_format"] == "JSON"
            assert "aws_kms_key" in function["kms_key_arn"]

    def test_each_function_has_its_own_encrypted_log_group_with_the_profiles_retention(self, each):
        groups = {
            g["name"]: g for g in each.resources(CloudwatchLogGroup.TF_RESOURCE_TYPE).values()
        }
        for key in FUNCTIONS:
            group = groups[f"/aws/lambda/{each.settings.name(key)}"]
            assert group["retention_in_days"] == each.profile.log_retention_days
            assert "aws_kms_key" in group["kms_key_id"]

    def test_production_keeps_logs_a_year_and_dev_a_week(self, production, dev):
        assert production.has(CloudwatchLogGroup.TF_RESOURCE_TYPE, {"retention_in_days": 365})
        assert not dev.has(CloudwatchLogGroup.TF_RESOURCE_TYPE, {"retention_in_days": 365})

    def test_one_role_per_function(self, each):
        roles = {f["role"] for f in _functions(each).values()}
        assert len(roles) == len(FUNCTIONS)
        role_names = {r["name"] for r in each.resources(IamRole.TF_RESOURCE_TYPE).values()}
        assert {each.settings.name(key) for key in FUNCTIONS} <= role_names

    def test_every_function_is_bounded_by_its_profiles_reservation(self, each):
        functions = _functions(each)
        expected = each.profile.reserved_concurrency()
        assert set(expected) == set(FUNCTIONS)
        for key, function in functions.items():
            assert function["reserved_concurrent_executions"] == expected[key] >= 1, key

    def test_the_api_reserves_more_than_the_batch_path_may_take(self, each):
        reserved = each.profile.reserved_concurrency()
        assert reserved[API] >= reserved[BATCH_TASKS] and reserved[API] >= reserved[BATCH_TRIGGER]

    def test_api_reservation_is_sized_from_the_profiles_rate_limit(self, dev, production):
        assert (
            production.profile.reserved_concurrency()[API] > dev.profile.reserved_concurrency()[API]
        )
        rate = production.profile.api.rate_limit
        assert production.profile.reserved_concurrency()[API] == rate * API_SECONDS_PER_REQUEST

    def test_sweeps_never_overlap(self, each):
        assert _functions(each)[SWEEPER]["reserved_concurrent_executions"] == 1

    def test_the_async_batch_trigger_has_a_dead_letter_queue(self, each):
        functions = _functions(each)
        assert "batch-trigger-dlq" in functions[BATCH_TRIGGER]["dead_letter_config"]["target_arn"]
        assert all(
            "dead_letter_config" not in f for k, f in functions.items() if k != BATCH_TRIGGER
        )

    def test_s3_may_invoke_batch_trigger_only_from_the_batch_bucket_of_this_account(self, each):
        permission = next(
            p
            for p in each.resources(LambdaPermission.TF_RESOURCE_TYPE).values()
            if p["principal"] == "s3.amazonaws.com"
        )
        assert "storage_batch_bucket" in permission["source_arn"]
        assert "aws_caller_identity" in permission["source_account"]
        assert "batch-trigger" in permission["function_name"]

    def test_all_functions_share_one_code_asset_and_the_dependencies_layer(self, each):
        functions = _functions(each).values()
        assert len({f["filename"] for f in functions}) == 1
        assert len({f["source_code_hash"] for f in functions}) == 1
        assert all(
            f["layers"] == [f["layers"][0]] and "dependencies" in f["layers"][0] for f in functions
        )
        assert each.has(
            LambdaLayerVersion.TF_RESOURCE_TYPE,
            {"compatible_runtimes": ["python3.12"], "compatible_architectures": ["arm64"]},
        )

    def test_production_functions_run_in_the_private_subnets_and_dev_functions_do_not(
        self, production, dev
    ):
        for function in _functions(production).values():
            assert len(function["vpc_config"]["subnet_ids"]) == 3
            assert len(function["vpc_config"]["security_group_ids"]) == 1
        assert all("vpc_config" not in f for f in _functions(dev).values())


def _role_statements(synth, key: str) -> list[dict]:
    documents = synth.data("aws_iam_policy_document")
    (policy,) = [
        p
        for p in synth.resources(IamRolePolicy.TF_RESOURCE_TYPE).values()
        if p["name"] == synth.settings.name(key)
    ]
    return documents[policy["policy"].split(".")[2]]["statement"]


def _role_actions(synth, key: str) -> dict[str, set[str]]:
    """The function role's statements (but the platform ones) as resource kind -> actions."""
    documents = synth.data("aws_iam_policy_document")
    (policy,) = [
        p
        for p in synth.resources(IamRolePolicy.TF_RESOURCE_TYPE).values()
        if p["name"] == synth.settings.name(key)
    ]
    granted: dict[str, set[str]] = {}
    for statement in documents[policy["policy"].split(".")[2]]["statement"]:
        if statement["sid"] in PLATFORM_SIDS:
            continue
        for resource in statement["resources"]:
            kind = next(
                (k for marker, k in RESOURCE_KINDS.items() if marker in resource),
                resource.rpartition("/")[0].rpartition("}/")[2] + "/*",
            )
            if resource.endswith("/index/*"):
                kind += " indexes"
            elif "/index/" in resource:
                kind += " index " + resource.rpartition("/index/")[2]
            elif resource.endswith("/stream/*"):
                kind += " stream"
            granted.setdefault(kind, set()).update(statement["actions"])
    return granted


class TestRoles:
    @pytest.mark.parametrize("key", list(FUNCTIONS))
    def test_each_role_grants_exactly_the_calls_its_code_makes(self, each, key):
        assert _role_actions(each, key) == CONTRACT_ACTIONS[key]

    def test_the_sweepers_updates_may_name_only_the_attributes_it_writes(self, each):
        statements = {s["sid"]: s for s in _role_statements(each, SWEEPER)}
        for sid, attributes in (
            ("SweptPayments", {"payment_id", "pending_at", "pending_shard"}),
            (
                "MinimisedPayments",
                {"payment_id", "customer_id", "description", "metadata", "minimise_shard"},
            ),
            ("EndTimedOutRuns", {"pk", "sk", "run", "status", "reason_code", "reason",
                                 "version", "finished_at", "updated_at", "running"}),
        ):  # fmt: skip
            conditions = {c["variable"]: c for c in statements[sid]["condition"]}
            named = conditions["dynamodb:Attributes"]
            assert named["test"] == "ForAllValues:StringEquals"
            assert set(named["values"]) == attributes
            assert conditions["dynamodb:ReturnValues"]["values"] == ["NONE"]
        # tests/functional/test_processing_and_batches.py checks the sweeper's real requests
        # name nothing else (a refused write would be AccessDenied in AWS).

    def test_vpc_functions_may_make_interfaces_only_in_this_environments_network(self, production):
        for key in FUNCTIONS:
            [eni] = [s for s in _role_statements(production, key)
                     if s["sid"] == "VpcNetworkInterfaces"]  # fmt: skip
            subnets = [r for r in eni["resources"] if ":subnet/" in r]
            groups = [r for r in eni["resources"] if ":security-group/" in r]
            assert len(subnets) == 3 and len(groups) == 1, eni["resources"]
            for resource in subnets + groups:
                assert not resource.endswith("/*"), resource
                assert "${aws_subnet." in resource or "${aws_security_group." in resource

    def test_no_function_may_read_a_table_it_only_writes(self, each):
        # The audit trail is append-only for every function; processor never reads batches.
        for key in FUNCTIONS:
            assert "dynamodb:GetItem" not in _role_actions(each, key).get("audit-log", set())
        assert "processing-status" not in _role_actions(each, PROCESSOR)


class TestPackaging:
    def test_code_zip_is_byte_identical_across_builds_and_has_no_caches(self, tmp_path):
        first = write_deterministic_zip(LAMBDA_DIR, tmp_path / "a.zip").read_bytes()
        (tmp_path / "b.zip").write_bytes(b"stale")
        second = write_deterministic_zip(LAMBDA_DIR, tmp_path / "b.zip").read_bytes()
        assert first == second
        with zipfile.ZipFile(tmp_path / "a.zip") as archive:
            names = archive.namelist()
            assert names == sorted(names)
            assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
            assert {info.date_time for info in archive.infolist()} <= {(1980, 1, 1, 0, 0, 0)}
            assert "payments/env.py" in names

    def test_synth_without_the_layer_fails_with_a_hint_to_run_make_layer(self, tmp_path):
        from cdktf import Testing

        from lib.settings import Settings
        from lib.stack import PaymentsStack

        with pytest.raises(LayerMissingError, match="make layer"):
            PaymentsStack(
                Testing.app(), "payments", settings=Settings.from_env({}), build_dir=tmp_path
            )


class TestOrdering:
    def test_functions_wait_for_their_role_policy(self, each):
        # Lambda checks VPC permissions at creation, and the SQS mapping checks receive rights.
        for function in _functions(each).values():
            assert any(
                d.startswith("aws_iam_role_policy.functions_") for d in function["depends_on"]
            )


class TestSweeperSchedule:
    def test_the_sweeper_runs_on_the_profiles_rate_through_its_own_role(self, each):
        from cdktf_cdktf_provider_aws.scheduler_schedule import SchedulerSchedule

        schedule = each.one(SchedulerSchedule.TF_RESOURCE_TYPE)
        rate = each.profile.sweep_rate_minutes
        assert schedule["schedule_expression"] == f"rate({rate} minutes)"
        assert schedule["flexible_time_window"] == {"mode": "OFF"}
        assert "functions_sweeper_" in schedule["target"]["arn"]
        assert "sweeper-schedule-role" in schedule["target"]["role_arn"]

    def test_only_the_scheduler_may_assume_the_schedule_role_and_only_invoke_the_sweeper(
        self, each
    ):
        documents = each.data("aws_iam_policy_document")
        trust = next(
            v for k, v in documents.items() if k.startswith("triggers_sweeper-schedule-role-trust")
        )
        (statement,) = trust["statement"]
        assert statement["principals"] == [
            {"type": "Service", "identifiers": ["scheduler.amazonaws.com"]}
        ]
        permissions = next(
            v
            for k, v in documents.items()
            if k.startswith("triggers_sweeper-schedule-role-permissions")
        )
        invoke, decrypt = permissions["statement"]
        assert invoke["actions"] == ["lambda:InvokeFunction"]
        assert all("functions_sweeper_" in r for r in invoke["resources"])
        assert (decrypt["actions"], len(decrypt["resources"])) == (["kms:Decrypt"], 1)
        assert "aws_kms_key" in decrypt["resources"][0]

    def test_stuck_threshold_and_workflow_timeout_reach_the_sweeper(self, each):
        variables = _functions(each)["sweeper"]["environment"]["variables"]
        assert variables[ENV.STUCK_AFTER_SECONDS] == str(each.profile.stuck_after_minutes * 60)
        assert int(variables[ENV.WORKFLOW_TIMEOUT_SECONDS]) >= 3600


class TestReleases:
    def _alias(self, synth) -> dict:
        return synth.one(LambdaAlias.TF_RESOURCE_TYPE)

    def test_the_api_function_publishes_a_version_per_change(self, each):
        functions = _functions(each)
        assert functions[API]["publish"] is True
        assert all(not f.get("publish") for key, f in functions.items() if key != API)

    def test_the_live_alias_follows_the_published_version_unless_a_rollback_pins_it(self, each):
        alias = self._alias(each)
        assert alias["name"] == LIVE_ALIAS == "live"
        assert alias["function_name"].startswith("${aws_lambda_function.functions_api_")
        version = alias["function_version"]
        pins = re.fullmatch(
            r"\$\{element\(concat\(nonsensitive\(data\.aws_ssm_parameters_by_path\.(\S+)"
            r"\.values\), \[aws_lambda_function\.functions_api_\w+\.version\]\), 0\)\}",
            version,
        )
        assert pins, version
        pin = each.data("aws_ssm_parameters_by_path")[pins[1]]
        assert pin["path"] == f"/payments/{each.settings.suffix}/rollback"

    def test_production_keeps_executions_of_the_live_alias_warm(self, production, dev, staging):
        (config,) = production.resources(
            LambdaProvisionedConcurrencyConfig.TF_RESOURCE_TYPE
        ).values()
        assert config["qualifier"].startswith("${aws_lambda_alias.functions_api-live_")
        assert config["provisioned_concurrent_executions"] == (
            production.profile.api_provisioned_concurrency
        )
        assert (
            0
            < config["provisioned_concurrent_executions"]
            <= (production.profile.api_reserved_concurrency)
        )
        for synth in (dev, staging):
            assert synth.resources(LambdaProvisionedConcurrencyConfig.TF_RESOURCE_TYPE) == {}
