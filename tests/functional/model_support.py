"""What the stateful model test (test_model.py) drives the functional world with.

- ``Faults``: one armed fault on the next matching call of the runtime's own AWS clients:
  throttled or 500 before the call reaches moto, a read timeout *after* moto committed the call,
  the function's process dying at the call, (on an eventually consistent read) an answer
  from a replica that has not seen the item yet, or (on a batch call) some entries failing
  while the others go through.
- ``other_container``: runs a second invocation in the middle of the first, as a second Lambda
  container would (the API's router keeps per-invocation state in module globals; one
  container never runs two invocations at once).
- ``StreamReader``: the audit log's stream records, as the event source mapping reads them.
- ``WeightedRules``: the next rule drawn by weight among those whose preconditions hold.
- ``Workflow``: the batch workflow's states executed one task at a time with the semantics of
  lib/workflow_definition.py (Choice, the Map's iterations in any order, Retry on its transient
  errors per iteration, Catch -> MarkFailed's transaction -> CheckFailed -> its Choice, with the
  definition's own DynamoDB parameters and Retry), so a test can interleave runs and the chunks
  of one run, and fault the failure path's own calls.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, RuleStrategy

from tests.functional.world import (
    BATCH_ENTRIES,
    REGION,
    LambdaContext,
    answer_failed,
    withhold_entries,
)

ROOT = Path(__file__).resolve().parents[2]

THROTTLE = "throttle"
SERVER_ERROR = "500"
TIMEOUT_AFTER_COMMIT = "timeout-after-commit"
CRASH = "crash"
FAULT_KINDS = (THROTTLE, SERVER_ERROR, TIMEOUT_AFTER_COMMIT, CRASH)
# moto answers every read from the latest write; DynamoDB answers an eventually consistent read
# (no ``ConsistentRead``) from any replica, which may not have the item yet (issue 7 #15).
STALE_READ = "stale-read"
EVENTUAL_READS = frozenset({("dynamodb", "GetItem")})
# A batch call whose answer lists some entries as Failed while the others went out (the entries
# a fault's ``entries`` bits name never reach moto).
PARTIAL_FAILURE = "partial-failure"
PARTIAL_ANSWERS = frozenset({("sns", "PublishBatch")})


def fault_kinds(service: str, operation: str) -> tuple[str, ...]:
    """What can go wrong with one call."""
    if (service, operation) in EVENTUAL_READS:
        return (*FAULT_KINDS, STALE_READ)
    if (service, operation) in PARTIAL_ANSWERS:
        return (*FAULT_KINDS, PARTIAL_FAILURE)
    return FAULT_KINDS


# The calls the runtime makes, by the service of the client that makes them.
RUNTIME_CALLS: dict[str, tuple[str, ...]] = {
    "dynamodb": (
        "TransactWriteItems",
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "BatchWriteItem",
    ),
    "sqs": ("SendMessage", "SendMessageBatch"),
    "sns": ("PublishBatch",),
    "s3": ("GetObject", "PutObject"),
    "ssm": ("GetParameter",),
    "stepfunctions": ("StartExecution",),
}
# Step Functions' own DynamoDB calls (the failure path's), faulted apart from the runtime's.
STATES_DYNAMODB = "states-dynamodb"
_THROTTLE_CODES = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    STATES_DYNAMODB: ("ProvisionedThroughputExceededException", 400),
    "sqs": ("RequestThrottled", 400),
    "sns": ("Throttling", 400),
    "s3": ("SlowDown", 503),
    "ssm": ("ThrottlingException", 400),
    "stepfunctions": ("ThrottlingException", 400),
}
_SERVER_CODES = {
    "dynamodb": "InternalServerError",
    STATES_DYNAMODB: "InternalServerError",
    "ssm": "InternalServerError",
}


class Crash(BaseException):
    """The function's process died at an AWS call (a BaseException: no handler catches it)."""


class _Http:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""
        self.text = ""


@dataclass
class Fault:
    service: str
    operation: str
    kind: str
    skip: int = 0  # matching calls to let through first
    entries: int = 1  # PARTIAL_FAILURE: bit i set -> entry i of the call fails


@dataclass
class Faults:
    """At most one armed fault, fired on the runtime clients it was attached to."""

    armed: Fault | None = None
    fired: list[Fault] = field(default_factory=list)
    _timeout_due: threading.local = field(default_factory=threading.local)
    _withheld: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, client: Any, service: str) -> None:
        """Watch ``client``, the runtime's client for ``service`` (as ``aws.client`` names it)."""
        client.meta.events.register("before-parameter-build", self._partial(service))
        client.meta.events.register("before-call", self._before(service))
        client.meta.events.register("after-call", self._after)

    def arm(self, fault: Fault) -> None:
        self.armed = fault

    def disarm(self) -> None:
        self.armed = None

    def _take(
        self, service: str, operation: str, request: dict[str, Any], *, partial: bool = False
    ) -> Fault | None:
        """The armed fault if it fires on this call; a partial failure fires while the call's
        parameters are built (``partial``), every other kind just before the call."""
        with self._lock:
            fault = self.armed
            if fault is None or (fault.service, fault.operation) != (service, operation):
                return None
            if (fault.kind == PARTIAL_FAILURE) != partial:
                return None
            if fault.kind == STALE_READ and _consistent(request):
                return None  # a strongly consistent read always sees the latest write
            if fault.skip > 0:
                fault.skip -= 1
                return None
            self.armed = None
            self.fired.append(fault)
            return fault

    def _partial(self, service: str) -> Callable[..., Any]:
        def build(model: Any = None, params: Any = None, **_: Any) -> None:
            self._withheld.ids, self._withheld.all = [], False
            fault = self._take(service, model.name, {}, partial=True)
            if fault is None:
                return
            count = len(params[BATCH_ENTRIES[model.name]])
            bits = fault.entries % (1 << count) or 1 << (fault.entries % count)
            self._withheld.ids = withhold_entries(model.name, params, lambda i, _: bits >> i & 1)
            self._withheld.all = not params[BATCH_ENTRIES[model.name]]

        return build

    def _before(self, service: str) -> Callable[..., Any]:
        def before(model: Any = None, params: Any = None, **_: Any) -> Any:
            if getattr(self._withheld, "all", False):
                # Every entry failed: SNS answers so without publishing any.
                return _Http(200), answer_failed(None, self._withheld.ids)
            fault = self._take(service, model.name, params or {})
            if fault is None:
                return None
            if fault.kind == STALE_READ:
                return _Http(200), {"ResponseMetadata": {"HTTPStatusCode": 200}}  # no Item
            if fault.kind == CRASH:
                raise Crash(f"process died at {service}:{model.name}")
            if fault.kind == TIMEOUT_AFTER_COMMIT:
                self._timeout_due.value = True
                return None
            if fault.kind == THROTTLE:
                code, status = _THROTTLE_CODES[service]
            else:
                code, status = _SERVER_CODES.get(service, "InternalError"), 500
            return _Http(status), {
                "Error": {"Code": code, "Message": f"injected {code}"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }

        return before

    def _after(self, model: Any = None, parsed: Any = None, **_: Any) -> None:
        if getattr(self._withheld, "ids", None):
            if not self._withheld.all:
                answer_failed(parsed, self._withheld.ids)
            self._withheld.ids, self._withheld.all = [], False
        if getattr(self._timeout_due, "value", False):
            self._timeout_due.value = False
            # moto has applied the call; the caller never hears back.
            raise ReadTimeoutError(endpoint_url=f"https://{model.service_model.endpoint_prefix}")


def _consistent(request: dict[str, Any]) -> bool:
    body = request.get("body") or b"{}"
    return bool(json.loads(body).get("ConsistentRead"))


@contextmanager
def other_container() -> Iterator[None]:
    """Run a nested invocation as if in another container: save and restore what the API
    handler keeps per invocation in module globals."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
    from handlers import api

    missing = object()
    event = BaseRouter.__dict__.get("current_event", missing)
    context = BaseRouter.__dict__.get("lambda_context", missing)
    routing = dict(api.app.context)
    try:
        yield
    finally:
        for name, value in (("current_event", event), ("lambda_context", context)):
            if value is not missing:
                setattr(BaseRouter, name, value)
        api.app.context.clear()
        api.app.context.update(routing)


@contextmanager
def interleave(
    client: Any, operation: str, nested: Callable[[], None], *, skip: int = 0
) -> Iterator[None]:
    """Inside the block, run ``nested`` (another container's invocation) just before
    ``client``'s next ``operation`` call (after ``skip`` of them), once.

    What ``nested`` raises (a failed check) is raised when the block ends, not into the outer
    invocation, whose handler would turn it into an error answer of its own.
    """
    state: dict[str, Any] = {"ran": False, "skip": skip, "error": None}
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-call.{service}.{operation}"

    def before(**_: Any) -> None:
        if state["ran"]:
            return
        if state["skip"] > 0:
            state["skip"] -= 1
            return
        state["ran"] = True
        try:
            with other_container():
                nested()
        except BaseException as exc:  # re-raised when the block ends
            state["error"] = exc

    client.meta.events.register(event, before)
    try:
        yield
    finally:
        client.meta.events.unregister(event, before)
    if state["error"] is not None:
        raise state["error"]


@contextmanager
def queued_payments(client: Any, operation: str, into: set[str]) -> Iterator[None]:
    """Inside the block, add the payment ids ``client`` queues with ``operation`` to ``into``."""
    service = client.meta.service_model.service_id.hyphenize()
    event = f"provide-client-params.{service}.{operation}"

    def record(params: dict[str, Any], **_: Any) -> None:
        entries = params.get("Entries") or [{"MessageBody": params.get("MessageBody", "{}")}]
        into.update(json.loads(e["MessageBody"]).get("payment_id") for e in entries)

    client.meta.events.register(event, record)
    try:
        yield
    finally:
        client.meta.events.unregister(event, record)


class StreamReader:
    """New records of the audit log's stream since the last read (one shard, as moto has)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.client = boto3.client("dynamodbstreams", region_name=REGION)
        self.arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.shard = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][
            0
        ]["ShardId"]
        self.after: str | None = None

    def read(self) -> list[dict[str, Any]]:
        position = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self.after}
            if self.after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self.client.get_shard_iterator(
            StreamArn=self.arn, ShardId=self.shard, **position
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self.client.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records += page["Records"]
            iterator = page.get("NextShardIterator")
        if records:
            self.after = records[-1]["dynamodb"]["SequenceNumber"]
        return [{**r, "eventSourceARN": self.arn} for r in records]


def workflow_definition(status_table: str, audit_table: str) -> dict[str, Any]:
    # Loaded by path: importing the ``lib`` package would load the CDKTF provider (seconds).
    spec = importlib.util.spec_from_file_location(
        "workflow_definition", ROOT / "lib" / "workflow_definition.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.batch_workflow_definition(
        tasks_function_arn="arn:aws:lambda:us-east-1:123456789012:function:payments-batch-tasks",
        status_table_name=status_table,
        audit_table_name=audit_table,
    )


_MISSING = object()


class _StepFailed(Exception):
    """A service-integration state failed for good, with Step Functions' error name."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


REGISTER, CHUNK, FINALIZE, SUCCEEDED, FAILED = (
    "register",
    "process_chunk",
    "finalize",
    "Succeeded",
    "Failed",
)
_FORMAT = re.compile(r"States\.Format\('(?P<template>[^']*)',\s*(?P<path>[^)]+)\)")
_MATH_ADD = re.compile(r"States\.MathAdd\((?P<path>.+),\s*(?P<step>-?\d+)\)")
_STRING_TO_JSON = re.compile(r"States\.StringToJson\((?P<path>[^)]+)\)")


@dataclass
class Execution:
    name: str
    input: dict[str, Any]
    position: str = REGISTER
    state: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None
    steps: int = 0
    # The Map's iterations not yet succeeded (their inputs) and each one's retries so far.
    pending: list[dict[str, Any]] = field(default_factory=list)
    chunk_attempts: dict[int, int] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.position not in (SUCCEEDED, FAILED)


class Workflow:
    """Step Functions' side of the batch workflow, one state at a time.

    The task states call the real batch-tasks handler; a task error named in the definition's
    Retry is retried (up to its MaxAttempts), any other goes to the failure path (MarkFailed,
    CheckFailed), whose DynamoDB parameters are taken from the definition and resolved like
    Step Functions does; ``dynamodb`` is Step Functions' own client (faults can be attached).
    """

    def __init__(self, definition: dict[str, Any], dynamodb: Any) -> None:
        self.states = definition["States"]
        retry = self.states["Register"]["Retry"][0]
        self.transient = frozenset(retry["ErrorEquals"])
        self.max_attempts = int(retry["MaxAttempts"])
        self.map = self.states["Chunks"]
        chunk_retry = self.map["ItemProcessor"]["States"]["ProcessChunk"]["Retry"][0]
        assert frozenset(chunk_retry["ErrorEquals"]) == self.transient
        self.dynamodb = dynamodb

    def step(
        self, execution: Execution, *, lose_response: bool = False, chunk: int = 0
    ) -> str | None:
        """Run the execution's current task once; the task's error, if it raised one.

        ``lose_response``: the task ran but its answer never reached Step Functions, which
        retries the state with the same input. ``chunk``: which of the Map's unfinished
        iterations runs (modulo their number): Step Functions runs up to MaxConcurrency of them
        at once, so they finish in any order."""
        from handlers import batch_tasks

        assert execution.running
        execution.steps += 1
        if execution.position == REGISTER:
            task_input = execution.input
        elif execution.position == CHUNK:
            task_input = execution.pending[chunk % len(execution.pending)]
        else:
            task_input = execution.state
        try:
            output = batch_tasks.handler(
                {"task": execution.position, "state": task_input},
                LambdaContext("payments-batch-tasks"),
            )
        except Crash:
            error = "Runtime.ExitError"
        except Exception as exc:  # the Lambda error's name is the exception's class name
            error = type(exc).__name__
            execution.error = f"{error}: {exc}"
        else:
            if lose_response:
                error = "Lambda.ServiceException"
            else:
                self._advance(execution, task_input, output)
                return None
        if execution.position == CHUNK:
            index = int(task_input["chunk"]["index"])
            attempts = execution.chunk_attempts.get(index, 0)
            if error in self.transient and attempts < self.max_attempts:
                execution.chunk_attempts[index] = attempts + 1
            else:
                # The iteration failed: the Map fails (the other iterations are stopped) and
                # its Catch leads to MarkFailed.
                execution.pending = []
                self._mark_failed(execution, error)
        elif error in self.transient and execution.attempts < self.max_attempts:
            execution.attempts += 1
        else:
            self._mark_failed(execution, error)
        return error if error != "Lambda.ServiceException" else None

    def _advance(
        self, execution: Execution, task_input: dict[str, Any], output: dict[str, Any]
    ) -> None:
        execution.attempts = 0
        if execution.position == REGISTER:
            execution.state = output
            if output.get("done"):
                execution.position = SUCCEEDED
                return
            execution.pending = [
                self._resolve(self.map["ItemSelector"], execution, output, item=item)
                for item in output[self.map["ItemsPath"][2:]]
            ]
            execution.position = CHUNK if execution.pending else FINALIZE
        elif execution.position == CHUNK:
            # The iteration's output is dropped (ResultPath null): Finalize gets the Map's input.
            execution.pending.remove(task_input)
            if not execution.pending:
                execution.position = FINALIZE
        else:
            execution.state = output
            execution.position = SUCCEEDED

    def fail(self, execution: Execution, error: str) -> None:
        """The current task fails for good with ``error``: the Catch path runs (the Map's
        Catch stops the other iterations)."""
        assert execution.running
        execution.steps += 1
        execution.pending = []
        execution.error = error
        self._mark_failed(execution, error)

    def _mark_failed(self, execution: Execution, error: str) -> None:
        """The Catch path, state by state as the definition has it: CurrentVersion's read,
        the Choice and Pass states that make the next version, MarkFailed's transaction (the
        FAILED status and its audit entry) retried as its Retry says, and when it stays
        cancelled, CheckFailed's read and the FailedOrSuperseded Choice. A call of Step
        Functions' own that fails otherwise, or whose answer is lost, fails the execution
        there (no Catch)."""
        data: dict[str, Any] = {"error": {"Error": error}}
        name = self.map["Catch"][0]["Next"]
        while True:
            state = self.states[name]
            if state["Type"] in ("Succeed", "Fail"):
                execution.position = SUCCEEDED if state["Type"] == "Succeed" else FAILED
                return
            if state["Type"] == "Choice":
                name = next(
                    (c["Next"] for c in state["Choices"] if self._holds(c, execution, data)),
                    state["Default"],
                )
                continue
            if state["Type"] == "Pass":
                if "Parameters" in state:
                    result = self._resolve(state["Parameters"], execution, data)
                else:
                    result = state["Result"]
                data[state["ResultPath"][2:]] = result
                name = state["Next"]
                continue
            assert state["Type"] == "Task", state
            service, call = self._integration(
                state, self._resolve(state["Parameters"], execution, data)
            )
            try:
                answer = self._call(state, service, call)
            except _StepFailed as failed:
                caught = [c for c in state.get("Catch", []) if failed.error in c["ErrorEquals"]]
                if not caught:
                    execution.position = FAILED
                    return
                assert caught[0]["ResultPath"] is None, caught[0]
                name = caught[0]["Next"]
                continue
            if state.get("ResultPath") is not None:
                data[state["ResultPath"][2:]] = {k: v for k, v in answer.items() if k == "Item"}
            name = state["Next"]

    def _integration(
        self, state: dict[str, Any], params: dict[str, Any]
    ) -> tuple[str, Callable[[], Any]]:
        """The service a Task state calls and the call, for the integrations the failure path
        uses (errors are ``DynamoDB.`` for the optimized one, ``DynamoDb.`` for the SDK's)."""
        resource = state["Resource"]
        if resource.endswith(":::dynamodb:getItem"):
            return "DynamoDB", lambda: self.dynamodb.get_item(**params)
        if resource.endswith(":::aws-sdk:dynamodb:transactWriteItems"):
            return "DynamoDb", lambda: self.dynamodb.transact_write_items(**params)
        raise AssertionError(f"the model does not run {resource}")

    def _call(self, state: dict[str, Any], service: str, call: Callable[[], Any]) -> Any:
        """One service-integration call with the state's Retry; ``_StepFailed`` with Step
        Functions' error name when it fails for good."""
        attempts: dict[int, int] = {}
        while True:
            try:
                return call()
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                name = f"{service}.{code}"
                if not name.endswith("Exception"):
                    name += "Exception"  # how Step Functions names a service's errors
            except (ReadTimeoutError, Crash):
                raise _StepFailed("States.Timeout") from None
            for index, retrier in enumerate(state.get("Retry", [])):
                if name in retrier["ErrorEquals"]:
                    if attempts.get(index, 0) < retrier["MaxAttempts"]:
                        attempts[index] = attempts.get(index, 0) + 1
                        break
                    raise _StepFailed(name) from None
            else:
                raise _StepFailed(name) from None

    def _holds(self, rule: dict[str, Any], execution: Execution, data: dict[str, Any]) -> bool:
        """A Choice rule, for the comparisons the definition uses."""
        if "And" in rule:
            return all(self._holds(r, execution, data) for r in rule["And"])
        if "Or" in rule:
            return any(self._holds(r, execution, data) for r in rule["Or"])
        if "Not" in rule:
            return not self._holds(rule["Not"], execution, data)
        try:
            value = self._evaluate(rule["Variable"], execution, data)
        except KeyError:
            value = _MISSING
        if "IsPresent" in rule:
            return (value is not _MISSING) == rule["IsPresent"]
        if value is _MISSING:
            return False  # a comparison with a missing variable fails the state in AWS
        if "StringEquals" in rule:
            return value == rule["StringEquals"]
        if "StringEqualsPath" in rule:
            return value == self._evaluate(rule["StringEqualsPath"], execution, data)
        if "StringLessThanPath" in rule:
            return value < self._evaluate(rule["StringLessThanPath"], execution, data)
        raise AssertionError(f"the model does not evaluate the Choice rule {rule}")

    def _resolve(
        self, value: Any, execution: Execution, context: dict[str, Any], *, item: Any = None
    ) -> Any:
        if isinstance(value, dict):
            return {
                (k[:-2] if k.endswith(".$") else k): (
                    self._evaluate(v, execution, context, item=item)
                    if k.endswith(".$")
                    else self._resolve(v, execution, context, item=item)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._resolve(v, execution, context, item=item) for v in value]
        return value

    def _evaluate(
        self, expression: str, execution: Execution, context: dict[str, Any], *, item: Any = None
    ) -> Any:
        match = _FORMAT.fullmatch(expression.strip())
        if match:
            found = self._evaluate(match["path"].strip(), execution, context, item=item)
            return match["template"].replace("{}", str(found), 1)
        match = _MATH_ADD.fullmatch(expression.strip())
        if match:
            found = self._evaluate(match["path"].strip(), execution, context, item=item)
            assert isinstance(found, int) and not isinstance(found, bool), found
            return found + int(match["step"])
        match = _STRING_TO_JSON.fullmatch(expression.strip())
        if match:
            return json.loads(self._evaluate(match["path"].strip(), execution, context, item=item))
        if expression == "$$.Map.Item.Value":
            return item
        if expression == "$$.State.EnteredTime":
            return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if expression.startswith("$$.Execution.Input."):
            value: Any = execution.input
            parts = expression[len("$$.Execution.Input.") :].split(".")
        elif expression.startswith("$."):
            value = context
            parts = expression[2:].split(".")
        else:
            raise AssertionError(f"the model does not evaluate {expression!r}")
        for part in parts:
            value = value[part]
        return value


def execution_input(sfn: Any, execution_arn: str) -> dict[str, Any]:
    return json.loads(sfn.describe_execution(executionArn=execution_arn)["input"])


class WeightedRules(RuleStrategy):
    """Draws the next rule by weight among the rules whose preconditions hold.

    Hypothesis' own choice (a random subset of rules enabled per example, then the first
    rules in its order favoured) ran the batch workflow's steps in ~0.1 % of all steps: they
    are valid only while a run is in flight. Weights keep every rule in play; shrinking still
    works (the draw shrinks towards the first valid rule).
    """

    def __init__(self, machine: RuleBasedStateMachine, weights: dict[str, int]) -> None:
        super().__init__(machine)
        missing = {r.function.__name__ for r in self.rules} ^ set(weights)
        assert not missing, f"rules and weights differ: {sorted(missing)}"
        self.weights = weights

    def do_draw(self, data: Any) -> tuple[Any, dict[str, Any]]:
        valid = [r for r in self.rules if self.is_valid(r)]
        pick = data.draw(st.integers(0, sum(self.weights[r.function.__name__] for r in valid) - 1))
        for rule in valid:
            pick -= self.weights[rule.function.__name__]
            if pick < 0:
                break
        arguments = {k: data.draw(s) for k, s in rule.arguments_strategies.items()}
        return rule, arguments
