"""Patches that bridge the gaps between moto's server and what the AWS provider and AWS do.

They are applied by ``localcloud.server`` inside the local-cloud process only; nothing here changes
the stack that production deploys. Each patch names the gap it bridges, as observed with Terraform
1.11 and provider 5.100.0; docs/LOCALCLOUD.md lists them all. ``apply`` is idempotent.
"""

from __future__ import annotations

import base64
import collections
import copy
import hashlib
import heapq
import importlib
import io
import itertools
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from moto.core.config import default_user_config

from localcloud import control_plane
from localcloud.config import HOST, LOCAL_CREDENTIALS
from localcloud.lambda_runner import FunctionSpec, InvokeResult, LambdaRunner

log = logging.getLogger("localcloud.patches")

# Values the local cloud reports for request-context condition keys. Requests reach moto over plain
# HTTP on the loopback interface; the TLS the policy insists on is AWS's front door, which has no
# counterpart here, so every request counts as the HTTPS request it would be in AWS.
REQUEST_CONTEXT = {"aws:securetransport": "true", "s3:tlsversion": "1.3"}

# Log streams kept per function (one per invocation); the oldest go first.
LOG_STREAMS_KEPT = 1000

# Messages a topic keeps of what it published (moto's test helpers read them; SNS's API does not).
SENT_NOTIFICATIONS_KEPT = 1_000
# moto's DynamoDB item size limit (DynamoDB's is 400 KB; moto measures a little differently).
ITEM_SIZE_LIMIT = 405_000
# Strings stored in DynamoDB items up to this length are shared between items (interned):
# statuses, currencies, timestamps, ids; longer ones (hashes, notes) are rarely repeated.
SHARED_STRING_LENGTH = 40

# Distinct DynamoDB expressions whose parse is kept (the platform sends a handful).
EXPRESSION_CACHE_SIZE = 1024

# Shard iterators expire after 15 minutes in AWS.
STREAM_ITERATOR_LIFETIME_SECONDS = 15 * 60

# Async invocations are retried twice by Lambda (after ~1 and ~2 minutes); locally much sooner so
# that a failing function reaches its dead-letter target while someone is still watching.
ASYNC_RETRY_DELAYS_SECONDS = (1.0, 2.0)

_applied = False


def apply(
    *,
    runner: LambdaRunner,
    port: int,
    on_sqs_message: Callable[[], None],
    on_stream_record: Callable[[], None],
) -> None:
    """Patch moto for the local cloud; the callbacks wake the SQS and DynamoDB Streams pollers."""
    global _applied
    if _applied:
        return
    _applied = True
    _models_not_tracked()
    _server_keeps_connections_alive()
    _server_routes_by_credential_scope()
    _enable_step_functions_execution(port)
    _step_functions_validate_and_versions()
    _step_functions_execution_names()
    _s3_bucket_policy_conditions()
    _s3_logging_target_policy_check()
    _s3_event_fields_and_async_lambda()
    _s3_list_object_versions_url_encoding()
    _lambda_config_round_trip()
    _kms_rotation_period()
    # Streams first: the transaction patch wraps the stream's add to hold records back.
    _dynamodb_streams(on_stream_record)
    _dynamodb_simple_updates_applied_directly()
    _dynamodb_items_built_once_with_shared_strings()
    isolate_dynamodb_transactions()
    _dynamodb_expressions_parsed_once()
    _dynamodb_update_copies_only_for_streams()
    _dynamodb_expression_trees_copied_directly()
    _dynamodb_query_reads_its_partition()
    _dynamodb_attribute_values_as_sent()
    _sqs_redrive_policy_as_sent()
    _sqs_messages_without_counting_the_queue()
    _sqs_queue_operations_per_message()
    _sqs_deleted_handles_kept_small()
    _sns_sent_notifications_bounded()
    _sqs_event_sources_by_poller(on_sqs_message)
    _lambda_runs_real_handlers(runner)
    # What a deploy meets (SQS redrive-allow, provisioned concurrency, SG rule descriptions).
    control_plane.apply()


def _models_not_tracked() -> None:
    """Stop keeping every model object moto ever made.

    ``BaseModel.__new__`` appends every instance to its class's ``instances_tracked`` list, for
    moto's test helpers: every DynamoDB item (and every copy of one a transaction's rollback or
    an update's answer makes), every SQS message, for the server's life, whatever was deleted.
    Only S3's keys and multipart uploads stay tracked: S3's reset closes their buffers through
    those lists. Measured on the 100,000-row soak: the server grew about 21 KB per processed
    payment before (2 MB/s at 95 payments/s), about 6 KB after.
    """
    from moto.core.common_models import BaseModel
    from moto.s3.models import FakeKey, FakeMultipart

    kept = (FakeKey, FakeMultipart)

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = object.__new__(cls)
        if issubclass(cls, kept):
            cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
        return instance

    BaseModel.__new__ = new  # type: ignore[method-assign, assignment]


def _server_keeps_connections_alive() -> None:
    """Answer requests on kept-alive connections instead of one connection (and thread) each.

    Werkzeug's development server, which moto's runs on, closes every connection after one
    response and then waits 10 ms for stray request bytes before it lets go, so each SDK call of
    a function paid a TCP connect, a new server thread and 10 ms of idle time: the processor
    makes three calls per payment. Requests with a known body length (every SDK call but
    streamed uploads and ``Expect: 100-continue``) are answered here with a ``Content-Length``
    and the connection is kept for the client's next request, as AWS's endpoints do; the body
    is read to its declared end so the next request starts where it should. Anything else takes
    werkzeug's way and closes as before.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import WSGIRequestHandler

    def run_wsgi(self: MotoRequestHandler) -> None:
        length = self.headers.get("Content-Length")
        if (
            self.request_version != "HTTP/1.1"
            or self.headers.get("Transfer-Encoding")
            or self.headers.get("Expect")
            or (length is not None and not length.isdigit())
        ):
            self.close_connection = True
            return WSGIRequestHandler.run_wsgi(self)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = self.rfile.read(int(length)) if length else b""
        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):  # type: ignore[no-untyped-def]
            started[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            log.exception("request %s %s failed", self.command, self.path)
            started[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
        status, headers = started
        payload = b"".join(chunks)
        code, _, message = status.partition(" ")
        self.send_response(int(code), message)
        declared = False
        for name, value in headers:
            if name.lower() == "connection":
                continue
            declared = declared or name.lower() == "content-length"
            self.send_header(name, value)
        if not declared:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:  # the client asked for it
            self.send_header("Connection", "close")
        # Head and body in one write: written apart on a kept connection, the body would wait
        # for the client's delayed ACK of the head (Nagle), up to 40 ms per request.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and int(code) not in (204, 304):
            self._headers_buffer.append(payload)
        self.flush_headers()

    MotoRequestHandler.run_wsgi = run_wsgi


# Services whose signed requests moto routes by the credential scope alone (its
# ``infer_service_region_host`` makes ``<service>.<region>.amazonaws.com`` of them, or
# ``dynamodb``/``dynamodbstreams`` by the target): the ones the platform's data plane calls.
_ROUTED_BY_SCOPE = frozenset({"sqs", "sns", "lambda", "states", "ssm", "kms", "logs", "sts"})


def _server_routes_by_credential_scope() -> None:
    """Remember which of moto's service apps serves a credential scope.

    For every request moto's server finds the backend by trying the host against the URL pattern
    of every service, then by parsing the signature's credential scope and trying again, under
    a server-wide lock: about a tenth of the server's time under load went there. For the
    services above the answer depends only on the scope's service and region (and, for DynamoDB,
    whether the target is the Streams API), so it is looked up once per key; anything else takes
    moto's way.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_application

    def route_key(environ: dict[str, Any]) -> tuple[str, ...] | None:
        path = environ.get("PATH_INFO", "")
        if not isinstance(path, str) or path.startswith(("/moto-api", "/latest/")):
            return None
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        try:
            _, _, region, service, _ = auth.split(",")[0].split()[1].split("/")
        except (IndexError, ValueError):
            return None
        if service == "dynamodb":
            target = environ.get("HTTP_X_AMZ_TARGET") or ""
            if target.startswith("DynamoDBStreams"):
                return ("dynamodbstreams",)
            if target.startswith("DynamoDB_2012"):
                return ("dynamodb",)
            return None
        if service in _ROUTED_BY_SCOPE:
            host = environ.get("HTTP_HOST", "")
            # A service host name in the URL is matched first by moto; keep that path too.
            return None if "amazonaws.com" in host else (service, region)
        return None

    def get_application(self: DomainDispatcherApplication, environ: dict[str, Any]) -> Any:
        key = route_key(environ)
        if key is None:
            return original(self, environ)
        routes = self.__dict__.setdefault("_localcloud_routes", {})
        app = routes.get(key)
        if app is None:
            app = routes[key] = original(self, environ)
        return app

    DomainDispatcherApplication.get_application = get_application


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
    """Give moto's DynamoDB requests isolation, and its transactions all-or-nothing stream records.

    To make TransactWriteItems undoable, moto deep-copies every table a transaction touches (once
    per transact item) and, when one condition fails, puts those copies back. On a threaded server
    that rollback also undoes what other requests wrote meanwhile (a batch chunk writes on many
    threads, the processor polls in parallel); the copies cost the size of the table per item, so
    a batch costs the square of its size; and a restored copy replaces the live table object, its
    stream with it. The stream records of a cancelled transaction's first items are written
    before it is cancelled, and an UpdateItem that creates an item writes two records (the bare
    key, then the item).

    Reads race with writes too: moto updates items in place and iterates the live item dicts, so
    a query of a sparse index that meets an UpdateItem removing the index key fails with a
    KeyError (HTTP 500), and a scan or query during a PutItem of a new key can fail with
    "dictionary changed size during iteration".

    Here DynamoDB requests run one at a time under one lock (the GIL serializes moto's pure-Python
    work anyway), and so do the backend's writes for callers that skip the request layer; a
    transaction journals the items it is about to touch and a cancelled one restores only those;
    its stream records are held back until it commits, in order, and dropped when it is
    cancelled; an UpdateItem writes one record. Returns a function that undoes the patch (the
    functional tests use it).
    """
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import StreamShard, Table
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    local = threading.local()
    names = ("transact_write_items", "put_item", "update_item", "delete_item")
    saved = {name: getattr(DynamoDBBackend, name) for name in names}
    saved_add = StreamShard.add
    saved_copy = models.copy
    saved_call_action = DynamoHandler.call_action

    class TablesNotCopied:
        """``copy`` as moto's transaction code sees it: a journaled transaction copies no table."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if isinstance(value, Table) and getattr(local, "journaled", False):
                return value  # moto's "rollback" then puts the live table back in its own place
            return copy.deepcopy(value, memo)

    def collectors() -> list[list[tuple[Any, Any, Any]]]:
        if not hasattr(local, "collectors"):
            local.collectors = []
        return local.collectors

    def emit(changes: list[tuple[Any, Any, Any]]) -> None:
        """Pass stream changes to the enclosing transaction, or record them now."""
        stack = collectors()
        for change in changes:
            if stack:
                stack[-1].append(change)
            else:
                saved_add(*change)

    def add(self: Any, old: Any, new: Any) -> None:
        stack = collectors()
        if stack:
            stack[-1].append((self, old, new))
        else:
            saved_add(self, old, new)

    def call_action(self: Any) -> Any:
        with lock:
            return saved_call_action(self)

    def put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return saved["put_item"](self, *args, **kwargs)

    def delete_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return saved["delete_item"](self, *args, **kwargs)

    def update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            changes: list[tuple[Any, Any, Any]] = []
            collectors().append(changes)
            try:
                return saved["update_item"](self, *args, **kwargs)
            finally:
                collectors().pop()
                if changes:
                    # One record from the item before the update to the item after it.
                    emit([(changes[-1][0], changes[0][1], changes[-1][2])])

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with lock:
            journal = _journal(self, transact_items)
            changes: list[tuple[Any, Any, Any]] = []
            collectors().append(changes)
            local.journaled = True
            try:
                saved["transact_write_items"](self, transact_items)
            except BaseException:
                for table, hash_key, range_key, original in reversed(journal):
                    _restore_item(table, hash_key, range_key, original)
                changes.clear()
                raise
            finally:
                local.journaled = False
                collectors().pop()
                emit(changes)

    DynamoDBBackend.transact_write_items = transact_write_items
    DynamoDBBackend.put_item = put_item
    DynamoDBBackend.update_item = update_item
    DynamoDBBackend.delete_item = delete_item
    StreamShard.add = add
    models.copy = TablesNotCopied()
    DynamoHandler.call_action = call_action

    def undo() -> None:
        for name, method in saved.items():
            setattr(DynamoDBBackend, name, method)
        StreamShard.add = saved_add
        models.copy = saved_copy
        DynamoHandler.call_action = saved_call_action

    return undo


def _dynamodb_simple_updates_applied_directly() -> Callable[[], None]:
    """Apply a simple ``UpdateExpression`` to the item directly instead of through moto's walk.

    moto validates and executes every update by deep-copying the expression's tree, walking it
    with ten processors and measuring the whole item once per attribute set: a quarter of the
    server while payments were processed, most of it for ``SET #a = :a`` and ``#v = #v + :one``.
    ``localcloud.dynamodb_updates`` applies the top-level SET / REMOVE / ADD forms itself, with
    moto's own condition check before and stream record after; anything else, or anything its
    checks find wrong, goes to moto unchanged, before the item has changed. Returns a function
    that undoes the patch (the unit tests compare both ways on random updates).
    """
    from moto.dynamodb.comparisons import create_condition_expression_parser
    from moto.dynamodb.exceptions import ConditionalCheckFailed
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    from localcloud import dynamodb_updates as updates

    moto_update_item = DynamoDBBackend.update_item

    def update_item(
        self: Any,
        table_name: str,
        key: dict[str, Any],
        update_expression: str,
        expression_attribute_names: dict[str, Any],
        expression_attribute_values: dict[str, Any],
        attribute_updates: dict[str, Any] | None = None,
        expected: dict[str, Any] | None = None,
        condition_expression: str | None = None,
        return_values_on_condition_check_failure: str | None = None,
    ) -> Any:
        arguments = (
            table_name,
            key,
            update_expression,
            expression_attribute_names,
            expression_attribute_values,
            attribute_updates,
            expected,
            condition_expression,
            return_values_on_condition_check_failure,
        )
        simple = not attribute_updates and not expected and update_expression
        plan = updates.compile_plan(update_expression) if simple else None
        table = self.get_table(table_name)
        keys = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
        if plan is None or set(keys) != set(key):
            return moto_update_item(self, *arguments)
        item = table.get_item(*[DynamoType(key[name]) for name in keys])
        if item is None:  # an update that creates its item: moto's way
            return moto_update_item(self, *arguments)
        condition = create_condition_expression_parser(
            condition_expression, expression_attribute_names, expression_attribute_values
        ).parse()
        if not condition.expr(item):
            if return_values_on_condition_check_failure == "ALL_OLD":
                raise ConditionalCheckFailed(item=item.to_json()["Attributes"])
            raise ConditionalCheckFailed
        before = copy.deepcopy(item) if table.stream_shard is not None else None
        try:
            updates.apply_plan(
                plan,
                item,
                table,
                expression_attribute_names,
                expression_attribute_values,
                store=share_strings,
            )
        except updates.NotSimple:
            return moto_update_item(self, *arguments)  # the item is as it was
        if before is not None:
            table.stream_shard.add(before, item)
        return item

    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]

    def undo() -> None:
        DynamoDBBackend.update_item = moto_update_item  # type: ignore[method-assign]

    return undo


def _dynamodb_items_built_once_with_shared_strings() -> Callable[[], None]:
    """Build a stored item in one pass and share its repeated strings with every other item.

    moto builds an item attribute by attribute into a dict that re-measures the whole item on
    every insertion (its 400 KB check): 154 µs for a payment, once per ``PutItem`` and every
    transact put. And every item keeps its own copy of every string the request's JSON held:
    attribute names, statuses, currencies, the timestamp a payment repeats in four places, a
    batch run's id on each of its rows; 100,000 payments and their 300,000 audit entries are
    about 1.3 GB that way. Here an item is built in one pass and measured once (the same limit
    on the same sum), and attribute names, map keys and short values (up to
    ``SHARED_STRING_LENGTH`` characters) are interned: equal strings are one object.
    ``share_strings`` does the same for the values the direct update path stores. Returns a
    function that undoes the patch.
    """
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    moto_init = Item.__init__

    def init(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        stored = LimitedSizeDict()
        for key, value in attrs.items():
            dict.__setitem__(stored, sys.intern(key), share_strings(DynamoType(value)))
        if sum(bytesize(k) + v.size() for k, v in stored.items()) > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = stored

    Item.__init__ = init  # type: ignore[method-assign]

    def undo() -> None:
        Item.__init__ = moto_init  # type: ignore[method-assign]

    return undo


def share_strings(value: Any) -> Any:
    """``value`` (a moto ``DynamoType``) with its type, map keys and short strings interned."""
    value.type = sys.intern(value.type)
    kind, inner = value.type, value.value
    if kind in ("S", "N"):
        if type(inner) is str and len(inner) <= SHARED_STRING_LENGTH:
            value.value = sys.intern(inner)
    elif kind == "M":
        value.value = {sys.intern(k): share_strings(v) for k, v in inner.items()}
    elif kind == "L":
        for element in inner:
            share_strings(element)
    elif kind in ("SS", "NS"):
        value.value = [
            sys.intern(v) if type(v) is str and len(v) <= SHARED_STRING_LENGTH else v for v in inner
        ]
    return value


def _dynamodb_expressions_parsed_once() -> None:
    """Parse each distinct update expression once, and lex each condition expression once.

    moto tokenizes an ``UpdateExpression`` character by character and parses it on every
    request, and a transaction's request layer parses each item's expression a second time to
    collect its placeholders (the platform sends a handful of distinct expressions, with
    different values each time; tokenizing alone was 7 % of the server while payments were
    processed). The tree depends only on the text, and everything that asks for it only reads
    it (the validator works on its own deep copy), so each text's tree is kept (up to
    ``EXPRESSION_CACHE_SIZE``); an invalid expression raises every time, as before.
    """
    import functools

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
    def parsed(cls: type, expression: str) -> Any:
        return parse(cls, expression)

    UpdateExpressionParser.make = classmethod(parsed)  # type: ignore[method-assign,assignment]

    # Condition expressions are lexed token by token with a freshly built list of patterns;
    # the tokens likewise depend only on the text, and the parser consumes its own copy.
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression

    @functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
    def condition_tokens(expression: str) -> tuple[Any, ...]:
        parser = ConditionExpressionParser(expression, {}, {})
        return tuple(lex(parser))

    def lex_once(self: Any) -> deque[Any]:
        return deque(condition_tokens(self.condition_expression))

    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


def _dynamodb_update_copies_only_for_streams() -> None:
    """Copy the item an ``UpdateItem`` changes only when a stream wants its old image.

    moto deep-copies the item before every update (and every update of a transaction) to hand
    the old image to the table's stream, whether the table has a stream or not: every step of a
    payment copied the whole payment, history and all, for no reader (the payments table has no
    stream). The copy is only ever read by the stream; without one, the item is used as it is.
    (A transaction's rollback keeps its own copy: ``isolate_dynamodb_transactions``.)
    """
    import contextvars

    from moto.dynamodb import models

    streamless = contextvars.ContextVar("streamless", default=False)
    previous = models.copy  # the transaction patch's: it copies no table either

    class StreamlessNotCopied:
        def __getattr__(self, name: str) -> Any:
            return getattr(previous, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if streamless.get() else previous.deepcopy(value, memo)

    models.copy = StreamlessNotCopied()  # type: ignore[attr-defined]
    update_item = models.DynamoDBBackend.update_item

    def update_without_copy(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        token = streamless.set(self.get_table(table_name).stream_shard is None)
        try:
            return update_item(self, table_name, *args, **kwargs)
        finally:
            streamless.reset(token)

    models.DynamoDBBackend.update_item = update_without_copy  # type: ignore[method-assign]


def _dynamodb_expression_trees_copied_directly() -> None:
    """Deep-copy an update expression's syntax tree node by node.

    moto's update validator deep-copies the expression's tree for every update (the processors
    rewrite nodes); the nodes have no ``__deepcopy__``, so each goes through pickle's
    ``__reduce_ex__`` protocol: 11 % of the server while payments were processed. A node is
    copied here by its attributes: text and numbers shared (immutable), children, parents and
    values deep-copied with the same memo, so the copy is the same tree as before.
    """
    from moto.dynamodb.parsing.ast_nodes import Node

    immutable = (str, int, float, bool, type(None))

    def node_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
        found = memo.get(id(self))
        if found is not None:
            return found
        result = self.__class__.__new__(self.__class__)
        memo[id(self)] = result
        state = result.__dict__
        for name, value in self.__dict__.items():
            state[name] = value if isinstance(value, immutable) else copy.deepcopy(value, memo)
        return result

    Node.__deepcopy__ = node_deepcopy  # type: ignore[attr-defined]


def _dynamodb_query_reads_its_partition() -> None:
    """A Query of a table's own key reads the items of that partition key, not the table.

    moto answers every Query by listing all the table's items, sorting them, and keeping the
    ones with the partition key asked for: each query of an audit trail cost the whole audit
    log (reconciling 20,000 payments against 60,000 entries was 1.2 billion item checks). Here a
    Query without an index lists only the items stored under its partition key (moto keeps them
    in a dict by that key), sorted as before; index queries and scans take moto's way.
    """
    import inspect

    from moto.dynamodb.models.table import Table

    original_query = Table.query
    original_all_items = Table.all_items
    signature = inspect.signature(original_query)
    partition = threading.local()

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        key = arguments.get("hash_key")
        partition.key = key if key is not None and not arguments.get("index_name") else None
        try:
            return original_query(self, *args, **kwargs)
        finally:
            partition.key = None

    def all_items(self: Table) -> list[Any]:
        key = getattr(partition, "key", None)
        if key is None:
            return original_all_items(self)
        stored = self.items.get(key)
        if stored is None:
            return []
        if not self.range_key_attr:
            return [stored]
        return sorted(stored.values(), key=lambda item: item.range_key)

    Table.query = query
    Table.all_items = all_items


def _dynamodb_attribute_values_as_sent() -> Callable[[], None]:
    """Read and answer attribute values as they are instead of walking each through its shape.

    moto serializes every response by walking the operation's output shapes, member by member:
    each attribute value of each item (a payment's history, nested maps and lists) goes through
    a dozen calls to come out unchanged. It was 15 % of the server while payments were processed,
    almost all of it the processor's ``BatchGetItem``. An ``AttributeValue`` whose parts are
    already what the wire carries (strings, numbers as strings, booleans, lists, maps; no
    binary, which the shape walk base64-encodes) is placed in the response as it is, and taken
    from a request as it is; anything else takes moto's walk. Returns a function that undoes the
    patch (the tests compare both).
    """
    from moto.core.serialize import BaseJSONSerializer

    services = ("dynamodb", "dynamodbstreams")
    original = BaseJSONSerializer._serialize

    def _serialize(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in services
            and _wire_ready(value)
        ):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize = _serialize  # type: ignore[method-assign]

    # Requests likewise: each attribute value was rebuilt member by member from the JSON it
    # already is (15 % of the server while a large file was stored, its rows' puts).
    from moto.core.parse import BaseJSONParser

    original_parse = BaseJSONParser._parse_shape

    def _parse_shape(self: Any, shape: Any, node: Any) -> Any:
        if (
            shape.name == "AttributeValue"
            and self.operation_model.service_model.service_name in services
            and _wire_ready(node)
        ):
            return node
        return original_parse(self, shape, node)

    BaseJSONParser._parse_shape = _parse_shape  # type: ignore[method-assign]

    def undo() -> None:
        BaseJSONSerializer._serialize = original  # type: ignore[method-assign]
        BaseJSONParser._parse_shape = original_parse  # type: ignore[method-assign]

    return undo


def _wire_ready(value: Any) -> bool:
    """An attribute value in the form DynamoDB's JSON carries it, with no binary part."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return type(inner) is str
    if kind in ("BOOL", "NULL"):
        return type(inner) is bool
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "L":
        return type(inner) is list and all(_wire_ready(v) for v in inner)
    if kind == "M":
        return type(inner) is dict and all(
            type(k) is str and _wire_ready(v) for k, v in inner.items()
        )
    return False


def _journal(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(table, hash key, range key, item as it is now) for each item a transaction writes."""
    import copy

    journal = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            if op_type == "ConditionCheck":
                continue
            table = backend.get_table(op["TableName"])
            if op_type == "Put":
                key_names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
                key = {name: op["Item"][name] for name in key_names}
            else:
                key = op["Key"]
            hash_key, range_key = backend.get_keys_value(table, key)
            current = table.get_item(hash_key, range_key)
        except Exception:  # noqa: S112 - moto rejects a malformed item itself, before any write
            continue
        # Puts and deletes replace or drop the item object; only an update changes it in place.
        original = copy.deepcopy(current) if op_type == "Update" else current
        journal.append((table, hash_key, range_key, original))
    return journal


def _restore_item(table: Any, hash_key: Any, range_key: Any, original: Any) -> None:
    if table.range_key_attr is None:
        if original is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = original
    elif original is None:
        bucket = table.items.get(hash_key)
        if bucket is not None:
            bucket.pop(range_key, None)
    else:
        table.items[hash_key][range_key] = original


def _dynamodb_streams(on_record: Callable[[], None]) -> None:
    """Keep stream records for their readers instead of handing them to Lambda inside the write.

    moto's ``StreamShard.add`` invokes every mapped function synchronously, inside the write
    request, with every record the shard holds, then empties the shard: a slow or failing function
    slows or fails the write, GetRecords and other mappings never see the records, and sequence
    numbers start again (two writes in a row both got the shard's first number). It also writes a
    record for a write that changed nothing, which DynamoDB does not.

    Here a write only appends its record (numbers ascending under a lock) and wakes
    ``localcloud.dynamodb_streams.StreamPoller``, which runs the mappings as Lambda does.
    GetShardIterator/GetRecords read the records held; the poller drops what every mapping has
    read, and those reads answer ``TrimmedDataAccessException``. Iterators expire after 15
    minutes as in AWS (moto keeps every one ever issued) and a wrong shard id is
    ``ResourceNotFoundException`` (moto fails an assertion: HTTP 500).
    """
    import moto.dynamodbstreams.models as stream_models
    from moto.awslambda.models import LambdaBackend
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models.table import StreamShard

    from localcloud import dynamodb_streams as streams

    def add(self: StreamShard, old: Any, new: Any) -> None:
        record = streams.build_record(self.table, old, new)
        if record is None:
            return
        streams.append(self, record)
        on_record()

    def read(shard: Any, position: int, limit: int) -> list[dict[str, Any]]:
        try:
            return [stored.record for stored in streams.read(shard, position, limit)]
        except streams.TrimmedError as error:
            raise JsonRESTError("TrimmedDataAccessException", str(error)) from error

    def get(self: StreamShard, start: int, quantity: int) -> list[dict[str, Any]]:
        return read(self, start, quantity)

    def to_json(self: StreamShard) -> dict[str, Any]:
        first = streams.first_sequence_number(self)
        return {"ShardId": self.id, "SequenceNumberRange": {"StartingSequenceNumber": str(first)}}

    class ShardIterator:
        """moto's iterator, positioned by what the shard holds now, with AWS's lifetime."""

        def __init__(
            self,
            streams_backend: Any,
            stream_shard: Any,
            shard_iterator_type: str,
            sequence_number: int | None = None,
        ) -> None:
            oldest, end = streams.bounds(stream_shard)
            if shard_iterator_type == "TRIM_HORIZON":
                position = oldest
            elif shard_iterator_type == "LATEST":
                position = end
            elif shard_iterator_type in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                if sequence_number is None:
                    raise JsonRESTError("ValidationException", "SequenceNumber is required")
                position = int(sequence_number) + (shard_iterator_type == "AFTER_SEQUENCE_NUMBER")
                if position < oldest:
                    raise JsonRESTError(
                        "TrimmedDataAccessException",
                        f"sequence number {sequence_number} is beyond the trim horizon",
                    )
            else:
                raise JsonRESTError(
                    "ValidationException", f"unknown ShardIteratorType {shard_iterator_type}"
                )
            self.id = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
            self.streams_backend = streams_backend
            self.stream_shard = stream_shard
            self.sequence_number = position
            self.expires = time.monotonic() + STREAM_ITERATOR_LIFETIME_SECONDS

        @property
        def arn(self) -> str:
            table = self.stream_shard.table
            return f"{table.table_arn}/stream/{table.latest_stream_label}|1|{self.id}"

        def get(self, limit: int = 1000) -> dict[str, Any]:
            records = read(self.stream_shard, self.sequence_number, limit)
            following = ShardIterator.__new__(ShardIterator)
            following.__dict__.update(self.__dict__)
            following.id = base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
            following.expires = time.monotonic() + STREAM_ITERATOR_LIFETIME_SECONDS
            if records:
                following.sequence_number = int(records[-1]["dynamodb"]["SequenceNumber"]) + 1
            register(self.streams_backend, following)
            return {"NextShardIterator": following.arn, "Records": records}

    def register(backend: Any, iterator: ShardIterator) -> None:
        iterators = backend.shard_iterators
        # Insertion order is expiry order: drop the expired ones from the front.
        now = time.monotonic()
        while iterators:
            oldest = next(iter(iterators))
            if iterators[oldest].expires > now:
                break
            del iterators[oldest]
        iterators[iterator.arn] = iterator

    def get_shard_iterator(
        self: Any,
        arn: str,
        shard_id: str,
        shard_iterator_type: str,
        sequence_number: int | None = None,
    ) -> ShardIterator:
        table = self._get_table_from_arn(arn)
        if table.stream_shard is None or table.stream_shard.id != shard_id:
            raise JsonRESTError(
                "ResourceNotFoundException",
                f"Requested resource not found: Shard: {shard_id} in Stream: {arn} not found",
            )
        iterator = ShardIterator(self, table.stream_shard, shard_iterator_type, sequence_number)
        register(self, iterator)
        return iterator

    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is None or iterator.expires < time.monotonic():
            raise JsonRESTError(
                "ExpiredIteratorException",
                "Iterator expired. The iterator was created over 15 minutes ago.",
            )
        return iterator.get(limit)

    original_create_mapping = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        mapping = original_create_mapping(self, spec)
        shard = streams.shard_for(mapping.event_source_arn)
        if shard is not None:
            # LATEST means the records written after the mapping was created, not after the
            # poller first looks at it.
            oldest, end = streams.bounds(shard)
            start = end if mapping.starting_position == "LATEST" else oldest
            setattr(mapping, streams.START_ATTR, start)
            on_record()
        return mapping

    StreamShard.add = add
    StreamShard.get = get
    StreamShard.to_json = to_json
    stream_models.ShardIterator = ShardIterator
    stream_models.DynamoDBStreamsBackend.get_shard_iterator = get_shard_iterator
    stream_models.DynamoDBStreamsBackend.get_records = get_records
    LambdaBackend.create_event_source_mapping = create_event_source_mapping


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
    logs_lock = threading.Lock()

    def invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        spec, code, layers = _function_spec(self)
        result: InvokeResult = runner.invoke(spec, code, layers, event if event else {})
        results.last = result
        # As moto's own runner: the function's log group receives each invocation's output.
        self.logs_backend.ensure_log_group(self.logs_group_name)
        self.save_logs(result.logs or f"invoked {spec.name}")
        group = self.logs_backend.groups[self.logs_group_name]
        # One stream per invocation, kept until the group's retention in AWS: here the last
        # LOG_STREAMS_KEPT, or a long run's logs would outgrow everything else in memory.
        with logs_lock:
            while len(group.streams) > LOG_STREAMS_KEPT:
                del group.streams[next(iter(group.streams))]
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


def _sqs_messages_without_counting_the_queue() -> None:
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


def _sqs_deleted_handles_kept_small() -> None:
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


def _sns_sent_notifications_bounded() -> None:
    """moto's topics keep every message ever published (``sent_notifications``, read by its
    test helpers, never by SNS's API): three events per payment, each with its body and
    attributes, for the server's life. A topic keeps its last ``SENT_NOTIFICATIONS_KEPT``."""
    from collections import deque

    from moto.sns.models import Topic

    init = Topic.__init__

    def init_bounded(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.sent_notifications = deque(maxlen=SENT_NOTIFICATIONS_KEPT)

    Topic.__init__ = init_bounded  # type: ignore[method-assign]


def indexed_messages(queue: Any) -> IndexedMessages:
    """The queue's ``IndexedMessages``, built from moto's list the first time (or after a purge)."""
    store = queue._messages
    if not isinstance(store, IndexedMessages):
        store = queue._messages = IndexedMessages(store)
    return store


def _sqs_queue_operations_per_message() -> None:
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
