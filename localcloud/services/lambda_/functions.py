"""Lambda functions: their configuration as sent, and invocations by the warm-worker runner.

moto's function model stays; the one method that would start a Docker container hands the
invocation to ``localcloud.services.lambda_.runner``, and asynchronous invocations get Lambda's
retries and dead-letter target.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from pathlib import Path
from typing import Any

from localcloud.services.lambda_.runner import FunctionSpec, InvokeResult, LambdaRunner

log = logging.getLogger("localcloud.lambda")


# Log streams kept per function (one per invocation); the oldest go first.
LOG_STREAMS_KEPT = 1000
# The export of every function's log lines (LogExport) starts a new file past this size.
LOG_EXPORT_MAX_BYTES = 512 * 1024 * 1024


class LogExport:
    """Every log line the functions write, as a CloudWatch Logs export to S3 would keep them.

    CloudWatch here keeps only each group's last LOG_STREAMS_KEPT streams; the export keeps
    every line (``<log group>\t<line>``) this server's functions wrote, so that a check can read
    all of them, the e2e suite's personal-data scan among them. It starts empty with the server
    (whose cloud starts empty too); past LOG_EXPORT_MAX_BYTES the file moves to ``<name>.1`` (one
    earlier file kept), so a soak cannot fill the disk.
    """

    def __init__(self, path: Path, *, max_bytes: int = LOG_EXPORT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_name(path.name + ".1").unlink(missing_ok=True)
        self._file = path.open("w", encoding="utf-8")

    @staticmethod
    def files(path: Path) -> list[Path]:
        """The export's files, oldest first."""
        return [f for f in (path.with_name(path.name + ".1"), path) if f.exists()]

    def write(self, group: str, logs: str) -> None:
        lines = "".join(f"{group}\t{line}\n" for line in logs.splitlines() if line.strip())
        with self._lock:
            self._file.write(lines)
            self._file.flush()
            if self._file.tell() > self.max_bytes:
                self._file.close()
                self.path.replace(self.path.with_name(self.path.name + ".1"))
                self._file = self.path.open("a", encoding="utf-8")


# Async invocations are retried twice by Lambda (after ~1 and ~2 minutes); locally much sooner so
# that a failing function reaches its dead-letter target while someone is still watching.
ASYNC_RETRY_DELAYS_SECONDS = (1.0, 2.0)


def config_round_trip() -> None:
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


def runs_real_handlers(runner: LambdaRunner, export: LogExport | None = None) -> None:
    """Replace the container start of moto's Docker-backed Lambda with the warm-worker runner.

    ``_invoke_lambda`` is the one method that would start a container; everything else (the
    function model, versions, permissions, event sources) stays moto's; each invocation's output
    goes to the function's log group and to ``export``. ``invoke`` is wrapped only
    to report errors as Lambda does (``Unhandled``, where moto says ``Handled``) and to make
    ``Event`` invocations asynchronous, with Lambda's retries and the dead-letter target.
    """
    from moto.awslambda.models import LambdaFunction

    results = threading.local()
    logs_lock = threading.Lock()

    def invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        spec, code, layers = _function_spec(self)
        result: InvokeResult = runner.invoke(spec, code, layers, {} if event is None else event)
        results.last = result
        # As moto's own runner: the function's log group receives each invocation's output.
        self.logs_backend.ensure_log_group(self.logs_group_name)
        self.save_logs(result.logs or f"invoked {spec.name}")
        if export is not None and result.logs:
            export.write(self.logs_group_name, result.logs)
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
