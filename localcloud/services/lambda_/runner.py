"""Run Lambda functions from the zip (and layers) that Terraform uploaded to moto.

Each function gets a small pool of warm worker subprocesses (``_worker.py`` beside this file): the
environment variables differ per function and ``os.environ`` is global to a process, so the
handlers cannot share the local cloud's own interpreter. A worker is reused across invocations,
like a warm Lambda execution environment, and replaced when the function's code or configuration
changes. A worker that overruns the function's timeout is killed and the invocation fails the way
Lambda reports it (``Task timed out after N seconds``).

Workers run Python with ``-S -I``: the venv's site-packages are invisible, and the only packages
besides the function's zip and layers are the ones the Lambda Python runtime itself provides
(boto3 and its dependencies), so a dependency missing from the layer fails here as it would in AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.config import LOCAL_CREDENTIALS

log = logging.getLogger("localcloud.lambda")

# What the Lambda Python runtime ships besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
WORKER_SCRIPT = Path(__file__).with_name("_worker.py")
# Real Lambda scales out per concurrent request; a few warm workers per function are plenty here.
MAX_WORKERS_PER_FUNCTION = 4


@dataclass(frozen=True)
class InvokeResult:
    payload: str
    function_error: str | None
    logs: str


@dataclass(frozen=True)
class FunctionSpec:
    """What a worker needs: everything that, when changed, requires a fresh environment."""

    name: str
    arn: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    version: str
    environment: tuple[tuple[str, str], ...]
    code_sha256: str
    layer_arns: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


class Worker:
    """One subprocess; one invocation at a time."""

    def __init__(self, spec: FunctionSpec, argv: list[str], env: dict[str, str]) -> None:
        self.spec = spec
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self.proc = subprocess.Popen(  # noqa: S603 - argv is this interpreter and our script
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
            bufsize=1,
            start_new_session=True,
        )
        self._replies: list[str] = []
        self._reply_ready = threading.Condition()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        threading.Thread(target=self._pump_stdout, daemon=True).start()

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            log.info("[%s] %s", self.spec.name, line)
            with self._lines_lock:
                self._lines.append(line)

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._reply_ready:
                self._replies.append(line)
                self._reply_ready.notify_all()
        with self._reply_ready:
            self._reply_ready.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def invoke(self, event: Any, request_id: str) -> InvokeResult:
        timeout = self.spec.timeout
        deadline = time.time() + timeout
        request = {
            "event": event,
            "request_id": request_id,
            "deadline_ms": deadline * 1000,
            "arn": self.spec.arn,
        }
        with self._lines_lock:
            self._lines.clear()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._crashed(request_id)
        with self._reply_ready:
            while not self._replies and self.alive and time.time() < deadline:
                self._reply_ready.wait(timeout=min(0.5, max(0.0, deadline - time.time())))
            reply_line = self._replies.pop(0) if self._replies else None
        # Give the stderr pump a moment so the log tail of this invocation is complete.
        time.sleep(0.01)
        with self._lines_lock:
            logs = "\n".join(self._lines)
        if reply_line is None:
            if self.alive:
                self.kill()
                message = f"Task timed out after {timeout:.2f} seconds"
                log.warning("[%s] %s (request %s)", self.spec.name, message, request_id)
                return InvokeResult(
                    json.dumps({"errorMessage": message, "errorType": "Sandbox.Timedout"}),
                    "Unhandled",
                    logs,
                )
            return self._crashed(request_id, logs)
        reply = json.loads(reply_line)
        if reply.get("exit"):
            # The worker ends itself after this reply (failed init, sys.exit): reap it now, or the
            # pool may hand the next invocation to a process that is still exiting.
            self.kill()
        return InvokeResult(reply["payload"], None if reply["ok"] else "Unhandled", logs)

    def _crashed(self, request_id: str, logs: str = "") -> InvokeResult:
        code = self.proc.poll()
        return InvokeResult(
            json.dumps(
                {
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                    f"exit status {code}",
                    "errorType": "Runtime.ExitError",
                }
            ),
            "Unhandled",
            logs,
        )

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class FunctionPool:
    def __init__(self) -> None:
        self.fingerprint = ""
        self.idle: list[Worker] = []
        self.busy = 0
        self.cond = threading.Condition()


class LambdaRunner:
    """Warm worker pools keyed by function ARN; used by the patched moto Lambda model."""

    def __init__(self, *, work_dir: Path, endpoint_url: str) -> None:
        self.work_dir = work_dir
        self.endpoint_url = endpoint_url
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()
        self._workers: set[Worker] = set()
        self._runtime_dir = self._prepare_runtime_dir()

    # -- filesystem ---------------------------------------------------------------------------
    def _prepare_runtime_dir(self) -> Path:
        """Links to the packages the Lambda runtime provides, taken from this interpreter."""
        runtime = self.work_dir / "runtime"
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir(parents=True)
        for name in RUNTIME_PACKAGES:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                continue
            origin = Path(spec.origin)
            source = origin.parent if origin.name == "__init__.py" else origin
            (runtime / source.name).symlink_to(source)
        return runtime

    def _extract(self, kind: str, key: str, zip_bytes: bytes) -> Path:
        target = self.work_dir / kind / key
        if target.is_dir():
            return target
        partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.tmp")
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            archive.extractall(partial)
        try:
            partial.rename(target)
        except OSError:  # another thread extracted the same code first
            shutil.rmtree(partial, ignore_errors=True)
        return target

    # -- workers ------------------------------------------------------------------------------
    def _start_worker(self, spec: FunctionSpec, code: bytes, layers: list[bytes]) -> Worker:
        code_dir = self._extract("code", f"{spec.name}-{spec.code_sha256[:16]}", code)
        layer_dirs = []
        # Later layers win in Lambda (extracted over earlier ones), so they go first on sys.path.
        for arn, content in reversed(list(zip(spec.layer_arns, layers, strict=True))):
            digest = hashlib.sha256(content).hexdigest()[:16]
            root = self._extract("layers", f"{arn.rsplit(':', 2)[-2]}-{digest}", content)
            layer_dirs.append(str(root / "python"))
        region = spec.arn.split(":")[3]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            # Tracing needs the X-Ray daemon, which does not exist here; a function may override.
            "POWERTOOLS_TRACE_DISABLED": "true",
            **dict(spec.environment),
            # Reserved variables: Lambda sets these and a function cannot override them.
            "_HANDLER": spec.handler,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{uuid.uuid4().hex}",
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:0",
            "LAMBDA_TASK_ROOT": str(code_dir),
            # Chaos mode (scripts/chaos.py): the worker fails some of its own AWS calls.
            **(
                {"LOCALCLOUD_CHAOS": chaos} if (chaos := os.environ.get("LOCALCLOUD_CHAOS")) else {}
            ),
            "LAMBDA_RUNTIME_DIR": str(self._runtime_dir),
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_SESSION_TOKEN": "testing",
            # Every SDK call of the handler goes to the local cloud.
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            sys.executable,
            "-S",
            "-I",
            str(WORKER_SCRIPT),
            str(code_dir),
            *layer_dirs,
            str(self._runtime_dir),
        ]
        log.info("starting worker for %s (code %s)", spec.name, spec.code_sha256[:12])
        worker = Worker(spec, argv, env)
        with self._lock:
            self._workers = {w for w in self._workers if w.alive} | {worker}
        return worker

    def _pool(self, arn: str) -> FunctionPool:
        with self._lock:
            return self._pools.setdefault(arn, FunctionPool())

    def invoke(
        self, spec: FunctionSpec, code: bytes, layers: list[bytes], event: Any
    ) -> InvokeResult:
        pool = self._pool(spec.arn)
        with pool.cond:
            if pool.fingerprint != spec.fingerprint:
                # New code or configuration: retire the warm environments of the old one.
                for worker in pool.idle:
                    worker.kill()
                pool.idle.clear()
                pool.fingerprint = spec.fingerprint
            while not pool.idle and pool.busy >= MAX_WORKERS_PER_FUNCTION:
                pool.cond.wait()
            worker = pool.idle.pop() if pool.idle else None
            pool.busy += 1
        try:
            if worker is None or not worker.alive:
                worker = self._start_worker(spec, code, layers)
            result = worker.invoke(event, str(uuid.uuid4()))
        finally:
            with pool.cond:
                pool.busy -= 1
                if (
                    worker is not None
                    and worker.alive
                    and worker.spec.fingerprint == pool.fingerprint
                ):
                    pool.idle.append(worker)
                elif worker is not None:
                    worker.kill()
                pool.cond.notify()
        return result

    def shutdown(self) -> None:
        """Kill every worker, idle or busy; they run in sessions of their own."""
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            worker.kill()
