"""Control-plane gaps of moto that a deploy of the stack runs into, bridged in the local cloud.

``localcloud.patches.apply`` calls ``apply`` once, in the local-cloud process only; nothing here
changes the stack that production deploys. Each patch names the gap it bridges, as observed with
Terraform 1.11 and provider 5.100.0 (docs/LOCALCLOUD.md lists them all):

- SQS ``RedriveAllowPolicy`` is stored by moto but never returned (and ``GetQueueAttributes``
  refuses the name), so the provider waits for it to appear and every deploy with a redrive-allow
  policy hangs on the DLQs.
- Lambda provisioned concurrency (``Put``/``Get``/``Delete``/``ListProvisionedConcurrencyConfig``)
  has no route in moto: the production profile's ``live`` alias cannot be deployed.
- EC2 security-group rules that reference a security group or a prefix list lose their
  ``Description`` in ``DescribeSecurityGroupRules``, so every plan after apply sets it again.
- A request an SDK retries after its first attempt took effect (the answer lost on the way, or
  an error after the write) is carried out again: a retried ``CreateFunction`` answers
  ``ResourceConflictException``, which the provider retries for five minutes, holding its lock on
  every other function's create, and then fails the deploy.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

log = logging.getLogger("localcloud.control_plane")

REDRIVE_PERMISSIONS = ("allowAll", "denyAll", "byQueue")
# SQS accepts at most ten source queues in a byQueue policy.
MAX_REDRIVE_SOURCE_QUEUES = 10


def apply() -> None:
    """Patch moto's control plane for the local cloud (once: ``patches.apply`` guards it)."""
    retried_requests_answered_once()
    sqs_redrive_allow_policy()
    lambda_provisioned_concurrency()
    ec2_security_group_rule_descriptions()


# -- every service -----------------------------------------------------------------------------

# Answers remembered for retries: the last ones, small ones only (a retry follows its attempt
# within seconds to minutes; a large answer is a read, which a retry simply repeats).
REPLAY_ENTRIES = 1024
REPLAY_MAX_BODY_BYTES = 64 * 1024
# How long a retry waits for its first attempt, still being carried out, to answer.
REPLAY_WAIT_SECONDS = 300.0
_READS = ("GET", "HEAD", "OPTIONS")


class _Attempt:
    """The first attempt of one SDK invocation: its answer, once it has one."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.ended = 0.0
        self.done = threading.Event()
        self.started: tuple[str, list[tuple[str, str]]] | None = None  # a 2xx status and headers
        self.answer: tuple[str, list[tuple[str, str]], bytes] | None = None  # set when complete


def retried_requests_answered_once() -> None:
    """Answer a retried request with the answer its first attempt got, instead of redoing it.

    AWS SDKs send the same ``amz-sdk-invocation-id`` header with every attempt of one call
    (botocore and the Go SDK that the provider uses alike), and ``amz-sdk-request: attempt=N``.
    A retry follows an attempt whose answer the client did not get or could not use: if that
    attempt took effect, moto carries the request out a second time, and a create answers
    ``ResourceConflictException`` (Lambda ``CreateFunction``: the provider then retries for five
    minutes, holding its lock on every other function's create, and fails the deploy) or creates
    a duplicate (an event source mapping, a REST API). AWS makes such retries safe with its own
    idempotency tokens; here every write is remembered by its invocation id for the time a retry
    can follow it, and a retry gets the first attempt's successful answer (waiting for it when
    the first attempt is still running). A first attempt that failed leaves nothing to replay,
    so its retry runs as usual. Reads are never remembered.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original_call = DomainDispatcherApplication.__call__
    attempts: OrderedDict[str, _Attempt] = OrderedDict()
    lock = threading.Lock()

    def call(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation or environ.get("REQUEST_METHOD") in _READS:
            return original_call(self, environ, start_response)
        with lock:
            first = attempts.get(invocation)
            if first is None:
                attempts[invocation] = attempt = _Attempt()
                while len(attempts) > REPLAY_ENTRIES:
                    attempts.popitem(last=False)
        if first is not None:
            first.done.wait(REPLAY_WAIT_SECONDS)
            if first.answer is not None:
                status, headers, body = first.answer
                log.warning(
                    "%s %s %s retried (%s, invocation %s): answered with its first attempt's %s "
                    "(that attempt took %.1f s and answered %.1f s before this retry)",
                    _api(environ),
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                    environ.get("HTTP_AMZ_SDK_REQUEST", "attempt ?"),
                    invocation,
                    status,
                    first.ended - first.began,
                    time.monotonic() - first.ended,
                )
                start_response(status, headers)
                return [body]
            return original_call(self, environ, start_response)
        try:
            return _remember(
                original_call(self, environ, _capture(attempt, start_response)), attempt
            )
        finally:
            attempt.ended = time.monotonic()
            attempt.done.set()

    DomainDispatcherApplication.__call__ = call
    _log_dropped_connections()


def _log_dropped_connections() -> None:
    """Say when an answer could not be delivered; werkzeug drops the error silently.

    A retry that the patch above answers means the client did not get or could not use the first
    answer. When the server could not send it (the client had closed or reset the connection),
    this line names the request; when no such line precedes a replayed retry, the answer was
    sent whole and lost on the client's side.
    """
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    def connection_dropped(self: Any, error: BaseException, environ: Any = None) -> None:
        environ = environ or getattr(self, "environ", None) or {}
        log.warning(
            "%s %s %s: the client's connection dropped before the answer was sent (%s, "
            "invocation %s)",
            _api(environ),
            environ.get("REQUEST_METHOD", getattr(self, "command", "?")),
            environ.get("PATH_INFO", getattr(self, "path", "?")),
            type(error).__name__,
            environ.get("HTTP_AMZ_SDK_INVOCATION_ID", "-"),
        )

    MotoRequestHandler.connection_dropped = connection_dropped


def _api(environ: dict[str, Any]) -> str:
    """The service and operation, as far as the headers tell (the SDK's user agent names the
    service; JSON protocols name the operation in X-Amz-Target)."""
    agent = environ.get("HTTP_USER_AGENT", "")
    service = next((part for part in agent.split() if part.startswith("api/")), "api/?")
    return f"{service} {environ.get('HTTP_X_AMZ_TARGET', '')}".strip()


def _capture(attempt: _Attempt, start_response: Callable[..., Any]) -> Callable[..., Any]:
    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if status[:1] == "2":
            attempt.started = (status, list(headers))
        return start_response(status, headers, exc_info)

    return capture


def _remember(body: Iterable[bytes], attempt: _Attempt) -> list[bytes]:
    """The answer's body, read whole; kept for a retry when the answer is a small success."""
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    if attempt.started is not None and len(data) <= REPLAY_MAX_BODY_BYTES:
        attempt.answer = (*attempt.started, data)
    return [data]


# -- SQS --------------------------------------------------------------------------------------


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


def sqs_redrive_allow_policy() -> None:
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


# -- Lambda -----------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def lambda_provisioned_concurrency() -> None:
    """Answer the provisioned-concurrency calls on a version or alias.

    moto has no route for ``/functions/{name}/provisioned-concurrency``. Here a config is kept per
    function and qualifier and is ``READY`` at once with everything requested allocated (the local
    runner has no execution environments to pre-initialize). Checked as Lambda does: the qualifier
    must name a published version or an alias, never ``$LATEST``; the function and the qualifier
    must exist; at least 1 execution; the function's configs together must stay within its
    reserved concurrency, when it has one.
    """
    import moto.awslambda.urls as urls
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
    from moto.awslambda.responses import LambdaResponse

    lock = threading.Lock()
    path = r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/provisioned-concurrency/?$"  # noqa: E501
    urls.url_paths = {**urls.url_paths, path: LambdaResponse.dispatch}

    class NotFound(LambdaClientError):
        code = 404

        def __init__(self) -> None:
            super().__init__(
                "ProvisionedConcurrencyConfigNotFoundException",
                "No Provisioned Concurrency Config found for this function",
            )

    def configs(backend: Any) -> dict[tuple[str, str], dict[str, Any]]:
        if not hasattr(backend, "_localcloud_provisioned"):
            backend._localcloud_provisioned = {}
        return backend._localcloud_provisioned

    def target(response: LambdaResponse, *, required: bool = True) -> tuple[Any, str | None]:
        name = unquote(response.path.rstrip("/").rsplit("/", 2)[-2])
        qualifier = response.querystring.get("Qualifier", [None])[0]
        function = response.backend.get_function(name)  # ResourceNotFoundException if missing
        if qualifier is None and not required:
            return function, None
        if not qualifier or qualifier == "$LATEST":
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions ($LATEST); name a published version or an alias in Qualifier."
            )
        response.backend.get_function(name, qualifier)  # the version or alias must exist
        return function, qualifier

    def view(function: Any, qualifier: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"FunctionArn": f"{function.function_arn}:{qualifier}", **config}

    def put_provisioned_concurrency_config(self: LambdaResponse) -> tuple[int, dict, str]:
        function, qualifier = target(self)
        requested = self.json_body.get("ProvisionedConcurrentExecutions")
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InvalidParameterValueException(
                "ProvisionedConcurrentExecutions must be an integer of at least 1."
            )
        with lock:
            held = configs(self.backend)
            others = sum(
                c["RequestedProvisionedConcurrentExecutions"]
                for (arn, q), c in held.items()
                if arn == function.function_arn and q != qualifier
            )
            reserved = function.reserved_concurrency
            if reserved is not None and others + requested > int(reserved):
                raise InvalidParameterValueException(
                    f"Requested Provisioned Concurrency ({others + requested} for the function) "
                    f"should not be greater than the reservedConcurrentExecution ({reserved}) "
                    "for function"
                )
            config = {
                "RequestedProvisionedConcurrentExecutions": requested,
                "AvailableProvisionedConcurrentExecutions": requested,
                "AllocatedProvisionedConcurrentExecutions": requested,
                "Status": "READY",
                "LastModified": _now(),
            }
            held[(function.function_arn, qualifier)] = config
        return 202, {"status": 202}, json.dumps(config)

    def get_provisioned_concurrency_config(self: LambdaResponse) -> tuple[int, dict, str]:
        function, qualifier = target(self, required=False)
        with lock:
            held = configs(self.backend)
            if qualifier is None:  # ListProvisionedConcurrencyConfigs (same path, List=ALL)
                listed = [
                    view(function, q, c)
                    for (arn, q), c in sorted(held.items())
                    if arn == function.function_arn
                ]
                return 200, {}, json.dumps({"ProvisionedConcurrencyConfigs": listed})
            config = held.get((function.function_arn, qualifier))
        if config is None:
            raise NotFound()
        return 200, {}, json.dumps(config)

    def delete_provisioned_concurrency_config(self: LambdaResponse) -> tuple[int, dict, str]:
        function, qualifier = target(self)
        with lock:
            if configs(self.backend).pop((function.function_arn, qualifier), None) is None:
                raise NotFound()
        return 204, {"status": 204}, ""

    LambdaResponse.put_provisioned_concurrency_config = put_provisioned_concurrency_config
    LambdaResponse.get_provisioned_concurrency_config = get_provisioned_concurrency_config
    LambdaResponse.list_provisioned_concurrency_configs = get_provisioned_concurrency_config
    LambdaResponse.delete_provisioned_concurrency_config = delete_provisioned_concurrency_config


# -- EC2 --------------------------------------------------------------------------------------


def ec2_security_group_rule_descriptions() -> None:
    """Return the description of a rule that references a security group or a prefix list.

    moto's ``SecurityGroupRule.description`` reads the CIDR range only; a rule's description sent
    with ``UserIdGroupPairs`` or ``PrefixListIds`` is kept there (or, for prefix lists, dropped),
    so ``DescribeSecurityGroupRules`` answers none and the provider plans an update of every such
    rule on every plan. ``ModifySecurityGroupRules`` writes the new description into the CIDR
    range, which therefore wins when present.
    """
    from moto.ec2.models.security_groups import SecurityGroupRule

    original_init = SecurityGroupRule.__init__

    def init(self: SecurityGroupRule, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        prefix_list = kwargs.get("prefix_list_id", args[7] if len(args) > 7 else None)
        self.prefix_list_description = (prefix_list or {}).get("Description")

    def description(self: SecurityGroupRule) -> str | None:
        if "Description" in self.ip_range:
            return self.ip_range["Description"]
        if self.source_group.get("Description") is not None:
            return self.source_group["Description"]
        return getattr(self, "prefix_list_description", None)

    SecurityGroupRule.__init__ = init
    SecurityGroupRule.description = property(description)
