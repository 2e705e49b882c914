"""Helpers for the local cloud's unit tests: zips, waiting, and a patched moto server in-process.

``localcloud.patches.apply`` rebinds methods of moto's classes and modules for the life of the
process and has no undo. Other tests that share a pytest worker (tests/functional runs moto's
Step Functions interpreter and Lambda model in-process) need moto as it ships, so
``patched_cloud`` records every attribute of moto's modules and classes before applying the
patches and puts back whatever changed when it exits.

The server listens on a free port of 127.0.0.1, never on the local cloud's own ports.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import logging
import pkgutil
import socket
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from localcloud.config import LOCAL_CREDENTIALS

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
# The packages whose modules and classes patches.apply rebinds; every submodule is imported before
# the snapshot so that none is first imported (and patched) after it.
PATCHED_PACKAGES = (
    "moto.stepfunctions",
    "moto.s3",
    "moto.awslambda",
    "moto.sqs",
    "moto.kms",
    "moto.dynamodb",
    "moto.dynamodbstreams",
    "moto.scheduler",
    "moto.ec2",
)
_MISSING = object()
T = TypeVar("T")

# A handler that appends each event it receives to $RECORD_FILE, one JSON document a line.
RECORDING_HANDLER = """
import json, os

def record(event):
    with open(os.environ["RECORD_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(event) + "\\n")
"""


def zip_of(files: dict[str, str]) -> bytes:
    """A zip archive of ``{name: text}``, as Terraform would upload a package or a layer."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def handler_zip(source: str) -> bytes:
    """A deployment package whose handler is ``app.handler``."""
    return zip_of({"app.py": source})


def recorded(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def wait_for(probe: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """The first truthy value of ``probe()``; fails after ``timeout`` seconds with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"still {value!r} after {timeout} s"
            return value
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cloud:
    endpoint_url: str
    port: int
    _role_arn: str = field(default="", init=False)
    streams: Any = field(default=None, init=False)
    log_export: Any = field(default=None, init=False)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            config=Config(retries={"max_attempts": 0}),
            **LOCAL_CREDENTIALS,
        )

    def create_function(self, name: str, source: str, **extra: Any) -> str:
        """A Python function from ``source`` (handler ``app.handler``); returns its ARN."""
        if not self._role_arn:
            self._role_arn = self.client("iam").create_role(
                RoleName="localcloud-unit-tests", AssumeRolePolicyDocument="{}"
            )["Role"]["Arn"]
        return self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self._role_arn,
            Handler="app.handler",
            Code={"ZipFile": handler_zip(source)},
            **{"Timeout": 3, **extra},
        )["FunctionArn"]

    def create_queue(self, name: str, **attributes: str) -> tuple[str, str]:
        """A queue; returns its URL and ARN."""
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass
        self._role_arn = ""


def _import_patched_packages() -> None:
    for package_name in PATCHED_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            try:
                importlib.import_module(info.name)
            except ImportError:  # modules for localstack's optional parts; patches skip them too
                continue


def _snapshot() -> list[tuple[Any, dict[str, Any]]]:
    """Every attribute of each loaded moto module, the classes it defines, and our patches."""
    owners: list[Any] = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name.startswith("moto.") or name == "localcloud.patches"):
            continue
        owners.append(module)
        owners.extend(
            value
            for value in vars(module).values()
            if isinstance(value, type) and value.__module__ == name
        )
    return [(owner, dict(vars(owner))) for owner in owners]


def _restore(snapshot: list[tuple[Any, dict[str, Any]]]) -> None:
    for owner, saved in snapshot:
        current = vars(owner)
        # A submodule imported meanwhile stays bound to its package: the import system binds it
        # only once.
        added = [n for n, v in current.items() if n not in saved and not isinstance(v, ModuleType)]
        for name in added:
            delattr(owner, name)
        for name, value in saved.items():
            if current.get(name, _MISSING) is not value:
                setattr(owner, name, value)


@contextmanager
def patched_cloud(work_dir: Path) -> Iterator[Cloud]:
    """moto's server on a free port with ``patches.apply`` as ``localcloud.server`` applies it."""
    import os

    from moto.core.config import default_user_config
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from localcloud import patches
    from localcloud.services.dynamodb_streams.poller import StreamPoller
    from localcloud.services.lambda_.functions import LogExport
    from localcloud.services.lambda_.runner import LambdaRunner
    from localcloud.services.sqs.poller import SqsPoller

    _import_patched_packages()
    snapshot = _snapshot()
    saved_config = copy.deepcopy(default_user_config)
    saved_moto_port = os.environ.get("MOTO_PORT")
    werkzeug = logging.getLogger("werkzeug")
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    cloud = Cloud(endpoint_url=f"http://127.0.0.1:{port}", port=port)
    runner = LambdaRunner(work_dir=work_dir, endpoint_url=cloud.endpoint_url)
    poller = SqsPoller()
    streams = StreamPoller(retry_backoff=(0.0,))
    cloud.streams = streams
    cloud.log_export = LogExport(work_dir / "function-logs.log")
    try:
        cloud.reset()  # moto's backends are process-global: start from nothing
        # As localcloud.server: moto builds the URLs it hands out (queue URLs) from MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        patches.apply(
            runner=runner,
            port=port,
            on_sqs_message=poller.wake,
            on_stream_record=streams.wake,
            log_export=cloud.log_export,
        )
        poller.start()
        streams.start()
        yield cloud
    finally:
        poller.stop()
        streams.stop()
        runner.shutdown()
        cloud.reset()
        server.stop()
        _restore(snapshot)
        default_user_config.clear()
        default_user_config.update(saved_config)
        if saved_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved_moto_port
        werkzeug.setLevel(werkzeug_level)


class TablesKeyedByPk:
    """For test classes whose tests create tables keyed by a string ``pk``."""

    def _table(self, dynamodb, name, **extra):
        dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            **extra,
        )


def record_calls(monkeypatch: Any, owner: type, name: str) -> list[tuple[Any, ...]]:
    """Wrap the method ``owner.name`` so that each call's arguments (``self`` first) are
    appended to the list returned; the method still runs. Undone with ``monkeypatch``."""
    calls: list[tuple[Any, ...]] = []
    method = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return method(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls
