"""Patches that bridge the gaps between moto's server and what the AWS provider and AWS do.

They are applied by ``localcloud.server`` inside the local-cloud process only; nothing here changes
the stack that production deploys. Each patch names the gap it bridges, as observed with Terraform
1.11 and provider 5.100.0; docs/LOCALCLOUD.md lists them all. ``apply`` is idempotent.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from moto.core.config import default_user_config

from localcloud.config import HOST, LOCAL_CREDENTIALS
from localcloud.lambda_runner import FunctionSpec, InvokeResult, LambdaRunner

log = logging.getLogger("localcloud.patches")

# Values the local cloud reports for request-context condition keys. Requests reach moto over plain
# HTTP on the loopback interface; the TLS the policy insists on is AWS's front door, which has no
# counterpart here, so every request counts as the HTTPS request it would be in AWS.
REQUEST_CONTEXT = {"aws:securetransport": "true", "s3:tlsversion": "1.3"}

# Async invocations are retried twice by Lambda (after ~1 and ~2 minutes); locally much sooner so
# that a failing function reaches its dead-letter target while someone is still watching.
ASYNC_RETRY_DELAYS_SECONDS = (1.0, 2.0)

_applied = False


def apply(*, runner: LambdaRunner, port: int, on_sqs_message: Callable[[], None]) -> None:
    """Patch moto for the local cloud; ``on_sqs_message`` wakes the event-source poller."""
    global _applied
    if _applied:
        return
    _applied = True
    _enable_step_functions_execution(port)
    _step_functions_validate_and_versions()
    _step_functions_execution_names()
    _s3_bucket_policy_conditions()
    _s3_logging_target_policy_check()
    _s3_event_fields_and_async_lambda()
    _s3_list_object_versions_url_encoding()
    _lambda_config_round_trip()
    _kms_rotation_period()
    isolate_dynamodb_transactions()
    _sqs_redrive_policy_as_sent()
    _sqs_event_sources_by_poller(on_sqs_message)
    _lambda_runs_real_handlers(runner)


# -- Step Functions ---------------------------------------------------------------------------


def _enable_step_functions_execution(port: int) -> None:
    """Run executions (service integrations call this server) instead of returning stubs.

    The switch must be on before the first state machine exists: moto keeps executing and
    non-executing state machines in different backends. The interpreter's SDK clients call
    ``http://localhost:$MOTO_PORT``; they are pointed at 127.0.0.1 and this server's port, since
    ``localhost`` may resolve to ``::1`` where nothing listens.
    """
    default_user_config["stepfunctions"] = {"execute_state_machine": True}

    import boto3
    import moto.stepfunctions.parser as parser_package
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        return boto3.client(
            service_name=service,
            region_name=region,
            **LOCAL_CREDENTIALS,
            endpoint_url=f"http://{HOST}:{port}",
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
        )

    # The interpreter's modules import the helper by name, so each module's reference is replaced.
    root = Path(parser_package.__path__[0])
    for source in root.rglob("*.py"):
        if "boto_client_for" not in source.read_text(encoding="utf-8"):
            continue
        relative = source.relative_to(root).with_suffix("")
        name = ".".join((parser_package.__name__, *relative.parts))
        module = importlib.import_module(name)
        if hasattr(module, "boto_client_for"):
            module.boto_client_for = boto_client_for


def _step_functions_validate_and_versions() -> None:
    """Answer the two read-only calls the provider makes while planning a state machine.

    moto implements neither ``ValidateStateMachineDefinition`` nor ``ListStateMachineVersions``;
    the provider retries the resulting error until it times out, so ``plan`` seems to hang.
    """
    from moto.core.responses import ActionResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def validate_state_machine_definition(self: StepFunctionResponse) -> ActionResult:
        definition = self._get_param("definition") or ""
        try:
            document = json.loads(definition)
            ok = isinstance(document, dict) and "States" in document
        except ValueError:
            ok = False
        if ok:
            return ActionResult({"result": "OK", "diagnostics": []})
        return ActionResult(
            {
                "result": "FAIL",
                "diagnostics": [
                    {
                        "severity": "ERROR",
                        "code": "SCHEMA_VALIDATION_FAILED",
                        "message": "The definition is not a JSON object with States",
                    }
                ],
            }
        )

    def list_state_machine_versions(self: StepFunctionResponse) -> ActionResult:
        arn = self._get_param("stateMachineArn")
        machine = self.stepfunction_backend.describe_state_machine(arn)
        versions = [
            {"stateMachineVersionArn": version.arn, "creationDate": version.creation_date}
            for version in sorted(
                getattr(machine, "versions", {}).values(), key=lambda v: -v.version
            )
        ]
        return ActionResult({"stateMachineVersions": versions})

    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition
    StepFunctionResponse.list_state_machine_versions = list_state_machine_versions


def _step_functions_execution_names() -> None:
    """Name an unnamed execution with a UUID, as AWS does; moto names every one ``None``."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kw: Any):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kw)

    StepFunctionsParserBackend.start_execution = start_execution


# -- S3 ---------------------------------------------------------------------------------------


def _condition_holds(operator: str, values: dict[str, Any]) -> bool:
    """Evaluate one condition operator against ``REQUEST_CONTEXT`` (IAM semantics)."""
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    for key, expected in values.items():
        actual = REQUEST_CONTEXT.get(key.lower())
        wanted = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
        if actual is None:
            if base == "Null":
                if not any(w.lower() == "true" for w in wanted):
                    return False
                continue
            # IAM: a key missing from the request fails every operator but the negated ones.
            negated = ("StringNot", "NumericNot", "DateNot", "ArnNot", "NotIpAddress")
            if if_exists or base.startswith(negated):
                continue
            return False
        if base == "Bool" or base in ("StringEquals", "StringEqualsIgnoreCase"):
            holds = actual.lower() in (w.lower() for w in wanted)
        elif base in ("StringNotEquals", "StringNotEqualsIgnoreCase"):
            holds = actual.lower() not in (w.lower() for w in wanted)
        elif base == "NumericLessThan":
            holds = any(float(actual) < float(w) for w in wanted)
        elif base == "NumericLessThanEquals":
            holds = any(float(actual) <= float(w) for w in wanted)
        elif base == "NumericGreaterThan":
            holds = any(float(actual) > float(w) for w in wanted)
        elif base == "NumericGreaterThanEquals":
            holds = any(float(actual) >= float(w) for w in wanted)
        elif base == "Null":
            holds = not any(w.lower() == "true" for w in wanted)
        else:
            log.warning("bucket policy condition %s is not evaluated; treated as met", operator)
            holds = True
        if not holds:
            return False
    return True


def effective_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """The statements whose conditions hold for a local request, without their conditions."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        conditions = statement.get("Condition") or {}
        if all(_condition_holds(op, values) for op, values in conditions.items()):
            kept.append({k: v for k, v in statement.items() if k != "Condition"})
    return {**policy, "Statement": kept}


def _s3_bucket_policy_conditions() -> None:
    """Evaluate bucket-policy conditions instead of ignoring them.

    moto treats a statement's unsupported condition (``Bool``) as met, so the TLS-only policy's
    ``Deny`` when ``aws:SecureTransport`` is ``false`` denies every PutObject. Here conditions are
    evaluated against the local request context, in which every request is secure.
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = effective_policy(json.loads(self.policy.decode()))
        return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _s3_logging_target_policy_check() -> None:
    """Check the log bucket's policy for the logging service without crashing on ``"*"``.

    moto reads every statement's ``Principal`` as a dict; the TLS-only ``Deny`` has
    ``"Principal": "*"``, so PutBucketLogging fails with a 500 that the provider retries forever.
    Same rule as moto's, tolerant of the string and list forms IAM allows.
    """
    from moto.s3.models import FakeBucket

    service = "logging.s3.amazonaws.com"

    def log_permissions_enabled_policy(target_bucket: Any, target_prefix: str | None) -> bool:
        if not target_bucket.policy:
            return False
        arn = f"arn:{target_bucket.partition}:s3:::{target_bucket.name}"
        accepted = {f"{arn}/{target_prefix or ''}*", f"{arn}/*", arn}
        for stmt in _as_list(json.loads(target_bucket.policy.decode()).get("Statement")):
            principal = stmt.get("Principal")
            services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
            if (
                stmt.get("Effect") == "Allow"
                and service in services
                and {"s3:PutObject", "s3:*"} & set(_as_list(stmt.get("Action")))
                and accepted & set(_as_list(stmt.get("Resource")))
            ):
                return True
        return False

    FakeBucket._log_permissions_enabled_policy = staticmethod(log_permissions_enabled_policy)


def _s3_event_fields_and_async_lambda() -> None:
    """S3 events carry ``versionId``/``sequencer`` and invoke Lambda asynchronously, as in AWS.

    moto's event leaves out the object version (the batch trigger names the workflow execution
    after it) and invokes the function synchronously inside the PutObject request.
    """
    import moto.s3.notifications as notifications

    original_event = notifications._get_s3_event

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
        event = original_event(event_name, bucket, key, notification_id)
        record = event["Records"][0]
        obj = record["s3"]["object"]
        # S3 URL-encodes the key in events but keeps "/"; moto encodes "/" as %2F too.
        obj["key"] = quote_plus(key.name, safe="/")
        version = getattr(key, "version_id", None)
        if version and version != "null":
            obj["versionId"] = version
        obj["sequencer"] = f"{time.time_ns():X}"
        record["userIdentity"] = {"principalId": "AWS:LOCALCLOUD"}
        record["requestParameters"] = {"sourceIPAddress": "127.0.0.1"}
        record["responseElements"] = {
            "x-amz-request-id": f"{time.time_ns():X}"[-16:],
            "x-amz-id-2": "localcloud",
        }
        return event

    def invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region: str) -> None:
        from moto.awslambda.utils import get_backend

        try:
            function = get_backend(account_id, region).get_function(fn_arn)
        except Exception:  # S3 drops events for a missing function, like AWS
            log.warning("S3 notification for missing function %s dropped", fn_arn)
            return
        function.invoke(json.dumps(event_body), {"X-Amz-Invocation-Type": "Event"}, {})

    notifications._get_s3_event = get_s3_event
    notifications._invoke_awslambda = invoke_awslambda


def _s3_list_object_versions_url_encoding() -> None:
    """Honour ``encoding-type=url`` in ListObjectVersions, as moto does for ListObjects.

    The provider empties a ``force_destroy`` bucket with url-encoded listings and decodes the keys
    it gets back; moto returns them raw, so a key containing ``%`` is never deleted and
    ``destroy`` loops on DeleteBucket forever.
    """
    from moto.core.responses import ActionResult
    from moto.s3.responses import S3Response

    original = S3Response.list_object_versions

    def list_object_versions(self: S3Response) -> Any:
        if self.querystring.get("encoding-type", [None])[0] != "url":
            return original(self)
        serialized = self.serialized

        def encode(action_result: ActionResult) -> Any:
            result = dict(action_result.result)  # type: ignore[arg-type]
            for entry in (*result.get("Versions", []), *result.get("DeleteMarkers", [])):
                entry["Key"] = quote(entry["Key"])
            for entry in result.get("CommonPrefixes", []):
                entry["Prefix"] = quote(entry["Prefix"])
            for name in ("Prefix", "KeyMarker", "NextKeyMarker", "Delimiter"):
                if result.get(name):
                    result[name] = quote(result[name])
            result["EncodingType"] = "url"
            return serialized(ActionResult(result))

        self.serialized = encode  # this response object serves one request
        return original(self)

    S3Response.list_object_versions = list_object_versions


# -- Lambda -----------------------------------------------------------------------------------


def _lambda_config_round_trip() -> None:
    """Store and return ``DeadLetterConfig`` and ``LoggingConfig``, which moto drops.

    The provider reads both back after apply; without them the next plan wants to add them again.
    """
    from moto.awslambda.models import LambdaFunction

    original_init = LambdaFunction.__init__
    original_configuration = LambdaFunction.get_configuration
    original_update = LambdaFunction.update_configuration

    def logging_config(self: LambdaFunction, sent: dict[str, Any] | None) -> dict[str, Any]:
        # Lambda fills in the default log group when the function names none.
        return {
            "LogFormat": "Text",
            "LogGroup": f"/aws/lambda/{self.function_name}",
            **(sent or {}),
        }

    def init(self: LambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kw: Any):
        original_init(self, account_id, spec, *args, **kw)
        self.dead_letter_config = spec.get("DeadLetterConfig") or {}
        self.logging_config = logging_config(self, spec.get("LoggingConfig"))

    def get_configuration(self: LambdaFunction, on_create: bool = False) -> dict[str, Any]:
        config = original_configuration(self, on_create)
        target = getattr(self, "dead_letter_config", {}).get("TargetArn")
        if target:
            config["DeadLetterConfig"] = {"TargetArn": target}
        config["LoggingConfig"] = getattr(self, "logging_config", None) or logging_config(
            self, None
        )
        return config

    def update_configuration(self: LambdaFunction, updates: dict[str, Any]) -> dict[str, Any]:
        if "DeadLetterConfig" in updates:
            self.dead_letter_config = updates["DeadLetterConfig"] or {}
        if "LoggingConfig" in updates:
            self.logging_config = logging_config(self, updates["LoggingConfig"])
        return original_update(self, updates)

    LambdaFunction.__init__ = init
    LambdaFunction.get_configuration = get_configuration
    LambdaFunction.update_configuration = update_configuration


# -- DynamoDB ---------------------------------------------------------------------------------


def isolate_dynamodb_transactions() -> Callable[[], None]:
    """Run moto's TransactWriteItems one at a time, as DynamoDB isolates transactions.

    moto snapshots each table a transaction touches and, when one condition fails, puts the whole
    snapshot back: run concurrently (the server is threaded; a batch chunk writes on many threads
    and the processor polls in parallel), that rollback would also undo transactions other
    threads committed meanwhile. In DynamoDB a cancelled transaction changes nothing else.
    Returns a function that undoes the patch (the tests use it).
    """
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items
    lock = threading.Lock()

    def transact_write_items(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    DynamoDBBackend.transact_write_items = transact_write_items

    def undo() -> None:
        DynamoDBBackend.transact_write_items = original

    return undo


# -- KMS --------------------------------------------------------------------------------------


def _kms_rotation_period() -> None:
    """Keep ``RotationPeriodInDays``; moto drops it and the next plan resets it to 365."""
    from moto.kms.responses import KmsResponse

    original_enable = KmsResponse.enable_key_rotation
    original_status = KmsResponse.get_key_rotation_status

    def key(self: KmsResponse) -> Any:
        backend = self.kms_backend
        return backend.keys[backend.get_key_id(self._get_param("KeyId"))]

    def enable_key_rotation(self: KmsResponse) -> str:
        result = original_enable(self)
        # 365 days is AWS's default period when the request names none.
        key(self).rotation_period_in_days = int(self._get_param("RotationPeriodInDays") or 365)
        return result

    def get_key_rotation_status(self: KmsResponse) -> str:
        status = json.loads(original_status(self))
        cmk = key(self)
        status["KeyId"] = cmk.id
        if status.get("KeyRotationEnabled"):
            status["RotationPeriodInDays"] = getattr(cmk, "rotation_period_in_days", 365)
        return json.dumps(status)

    KmsResponse.enable_key_rotation = enable_key_rotation
    KmsResponse.get_key_rotation_status = get_key_rotation_status


def _function_spec(function: Any) -> tuple[FunctionSpec, bytes, list[bytes]]:
    from moto.awslambda.utils import get_backend

    backend = get_backend(function.account_id, function.region)
    layer_arns = tuple(layer["Arn"] for layer in function.layers)
    layers = []
    for arn in layer_arns:
        layer = backend.layers_versions_by_arn(arn)
        layers.append(layer.code_bytes if layer else b"")
    spec = FunctionSpec(
        name=function.function_name,
        arn=function.function_arn,
        handler=function.handler or "",
        runtime=function.run_time or "python3.12",
        timeout=int(function.timeout),
        memory_size=int(function.memory_size),
        version=str(function.version),
        environment=tuple(sorted((function.environment_vars or {}).items())),
        code_sha256=function.code_sha_256,
        layer_arns=layer_arns,
    )
    return spec, function.code_bytes, layers


def _lambda_runs_real_handlers(runner: LambdaRunner) -> None:
    """Replace the container start of moto's Docker-backed Lambda with the warm-worker runner.

    ``_invoke_lambda`` is the one method that would start a container; everything else (the
    function model, versions, permissions, event sources) stays moto's. ``invoke`` is wrapped only
    to report errors as Lambda does (``Unhandled``, where moto says ``Handled``) and to make
    ``Event`` invocations asynchronous, with Lambda's retries and the dead-letter target.
    """
    from moto.awslambda.models import LambdaFunction

    results = threading.local()

    def invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        spec, code, layers = _function_spec(self)
        result: InvokeResult = runner.invoke(spec, code, layers, event if event else {})
        results.last = result
        # As moto's own runner: the function's log group receives each invocation's output.
        self.logs_backend.ensure_log_group(self.logs_group_name)
        self.save_logs(result.logs or f"invoked {spec.name}")
        return result.payload, result.function_error is not None, result.logs

    original_invoke = LambdaFunction.invoke

    def run_sync(self: LambdaFunction, body: str, response_headers: dict[str, Any]) -> Any:
        payload = original_invoke(self, body, {}, response_headers)
        if "x-amz-function-error" in response_headers:
            response_headers["x-amz-function-error"] = results.last.function_error
        return payload

    def invoke(
        self: LambdaFunction, body: str, request_headers: Any, response_headers: Any
    ) -> str | bytes:
        invocation_type = _header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            threading.Thread(
                target=_run_async, args=(self, body), name=f"async-{self.function_name}"
            ).start()
            return b""
        payload = run_sync(self, body, response_headers)
        if _header(request_headers, "X-Amz-Log-Type") == "Tail":
            tail = (results.last.logs or "")[-4096:]
            response_headers["x-amz-log-result"] = base64.b64encode(tail.encode()).decode()
        return payload

    def _run_async(function: LambdaFunction, body: str) -> None:
        for attempt, delay in enumerate((0.0, *ASYNC_RETRY_DELAYS_SECONDS)):
            time.sleep(delay)
            headers: dict[str, Any] = {}
            try:
                run_sync(function, body, headers)
            except Exception:  # an async failure must not kill the thread
                log.exception("async invocation of %s failed", function.function_name)
                headers["x-amz-function-error"] = "Unhandled"
            if "x-amz-function-error" not in headers:
                return
            log.warning(
                "async invocation of %s failed (attempt %d)", function.function_name, attempt + 1
            )
        _send_to_dead_letter_target(function, body)

    LambdaFunction._invoke_lambda = invoke_lambda
    LambdaFunction.invoke = invoke


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _send_to_dead_letter_target(function: Any, body: str) -> None:
    target = (getattr(function, "dead_letter_config", None) or {}).get("TargetArn")
    if not target:
        log.error("async event for %s dropped after retries (no DLQ)", function.function_name)
        return
    _, _, service, region, account, name = target.split(":", 5)
    if service == "sqs":
        from moto.sqs.models import sqs_backends

        sqs_backends[account][region].send_message(name, body)
    elif service == "sns":
        from moto.sns.models import sns_backends

        sns_backends[account][region].publish(body, arn=target)
    log.warning("async event for %s sent to dead-letter target %s", function.function_name, target)


# -- SQS --------------------------------------------------------------------------------------


def _sqs_redrive_policy_as_sent() -> None:
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


def _sqs_event_sources_by_poller(on_message: Callable[[], None]) -> None:
    """Deliver SQS messages to Lambda from a poller, not inside ``SendMessage``.

    moto invokes the function synchronously inside the sender's request, one message per event,
    ignores ``batchItemFailures`` and never retries. ``localcloud.sqs_poller`` polls like the Lambda
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
