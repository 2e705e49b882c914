"""The warm-worker Lambda runner, driven directly: real subprocesses, handlers from zips in tmp."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from localcloud_support import handler_zip, zip_of

from localcloud.services.lambda_.runner import FunctionSpec, LambdaRunner

ACCOUNT_ARN = "arn:aws:lambda:eu-west-1:123456789012"

ECHO = """
import os, sys

def handler(event, context):
    print("log line from the handler")
    return {
        "event": event,
        "pid": os.getpid(),
        "env": {name: os.environ.get(name) for name in event.get("env", [])},
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "cwd": os.getcwd(),
    }
"""


def spec_for(
    name: str, code: bytes, *, timeout: int = 3, env: dict[str, str] | None = None
) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        arn=f"{ACCOUNT_ARN}:function:{name}",
        handler="app.handler",
        runtime="python3.12",
        timeout=timeout,
        memory_size=128,
        version="$LATEST",
        environment=tuple(sorted((env or {}).items())),
        code_sha256=hashlib.sha256(code).hexdigest(),
        layer_arns=(),
    )


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaRunner]:
    runner = LambdaRunner(
        work_dir=tmp_path_factory.mktemp("runner"), endpoint_url="http://127.0.0.1:9"
    )
    yield runner
    runner.shutdown()


def invoke(runner: LambdaRunner, name: str, source: str, event: object = None, **kw):
    code = handler_zip(source)
    result = runner.invoke(spec_for(name, code, **kw), code, [], event or {})
    return result, json.loads(result.payload)


class TestResults:
    def test_return_value_is_the_json_payload_and_prints_go_to_the_logs(self, runner):
        result, payload = invoke(runner, "echo", ECHO, {"amount": "12.50"})
        assert result.function_error is None
        assert payload["event"] == {"amount": "12.50"}
        assert payload["function_name"] == "echo"
        assert 0 < payload["remaining_ms"] <= 3000
        assert "log line from the handler" in result.logs
        assert "log line" not in result.payload

    def test_raised_exception_is_unhandled_with_type_message_and_user_frames(self, runner):
        source = "def handler(event, context):\n    raise KeyError('payment_id')\n"
        result, payload = invoke(runner, "raises", source)
        assert result.function_error == "Unhandled"
        assert payload["errorType"] == "KeyError"
        assert payload["errorMessage"] == "'payment_id'"
        trace = "".join(payload["stackTrace"])
        assert "app.py" in trace
        assert "_worker.py" not in trace

    def test_overrun_is_killed_and_reported_as_lambda_timeout(self, runner):
        source = "import time\ndef handler(event, context):\n    time.sleep(30)\n"
        result, payload = invoke(runner, "sleeper", source, timeout=1)
        assert result.function_error == "Unhandled"
        assert payload == {
            "errorMessage": "Task timed out after 1.00 seconds",
            "errorType": "Sandbox.Timedout",
        }

    def test_function_recovers_after_a_timeout(self, runner):
        source = (
            "import time\ndef handler(event, context):\n"
            "    time.sleep(event['sleep'])\n    return 'done'\n"
        )
        timed_out, _ = invoke(runner, "flaky", source, {"sleep": 5}, timeout=1)
        result, payload = invoke(runner, "flaky", source, {"sleep": 0}, timeout=1)
        assert timed_out.function_error == "Unhandled"
        assert (result.function_error, payload) == (None, "done")

    def test_unserialisable_result_is_a_marshal_error(self, runner):
        result, payload = invoke(runner, "marshal", "def handler(e, c):\n    return object()\n")
        assert result.function_error == "Unhandled"
        assert payload["errorType"] == "Runtime.MarshalError"

    def test_sys_exit_is_a_runtime_exit_error_and_the_next_call_gets_a_fresh_worker(self, runner):
        # The exiting environment lingers (atexit work, like a flush of buffered telemetry): the
        # next invocation must not be handed to it.
        source = (
            "import atexit, os, sys, time\n"
            "def handler(event, context):\n"
            "    if event.get('exit'):\n"
            "        atexit.register(time.sleep, 0.5)\n"
            "        sys.exit(3)\n"
            "    return os.getpid()\n"
        )
        result, payload = invoke(runner, "exits", source, {"exit": True})
        assert result.function_error == "Unhandled"
        assert payload["errorType"] == "Runtime.ExitError"
        assert "exit status 3" in payload["errorMessage"]
        again, pid = invoke(runner, "exits", source)
        assert again.function_error is None, again.payload
        assert isinstance(pid, int)


class TestInit:
    def test_missing_handler_fails_init_and_the_next_call_inits_afresh(self, runner):
        for _ in range(2):
            result, payload = invoke(runner, "nohandler", "def other(e, c):\n    return 1\n")
            assert result.function_error == "Unhandled"
            assert payload["errorType"] == "Runtime.HandlerNotFound"
            assert payload["errorMessage"] == "Handler 'handler' missing on module 'app'"

    def test_only_the_lambda_runtime_packages_are_importable(self, runner):
        # pytest is in this venv but not in the Lambda runtime: a handler that needs it and does
        # not ship it must fail as it would in AWS, while boto3 (which the runtime has) imports.
        source = "import boto3\nimport pytest\ndef handler(e, c):\n    return 1\n"
        result, payload = invoke(runner, "needs-pytest", source)
        assert result.function_error == "Unhandled"
        assert payload["errorType"] == "Runtime.ImportModuleError"
        assert payload["errorMessage"] == "Unable to import module 'app': No module named 'pytest'"

    def test_later_layer_wins_over_earlier_and_the_code_over_every_layer(self, runner):
        def layer(who: str) -> bytes:
            return zip_of({"python/shared.py": f"WHO = {who!r}\n", "python/mine.py": "WHO = 1\n"})

        code = zip_of(
            {
                "app.py": "import shared, mine\n"
                "def handler(e, c):\n    return [shared.WHO, mine.WHO]\n",
                "mine.py": "WHO = 'code'\n",
            }
        )
        spec = replace(
            spec_for("layered", code),
            layer_arns=(f"{ACCOUNT_ARN}:layer:first:1", f"{ACCOUNT_ARN}:layer:second:1"),
        )
        result = runner.invoke(spec, code, [layer("first"), layer("second")], {})
        assert result.function_error is None, result.payload
        assert json.loads(result.payload) == ["second", "code"]


class TestEnvironment:
    def test_each_function_sees_only_its_own_variables(self, runner, monkeypatch):
        monkeypatch.setenv("LOCALCLOUD_TEST_HOST_ONLY", "leaked")
        names = ["TABLE_NAME", "LOCALCLOUD_TEST_HOST_ONLY"]
        _, a = invoke(runner, "fn-a", ECHO, {"env": names}, env={"TABLE_NAME": "table-a"})
        _, b = invoke(runner, "fn-b", ECHO, {"env": names}, env={"OTHER": "x"})
        assert a["env"] == {"TABLE_NAME": "table-a", "LOCALCLOUD_TEST_HOST_ONLY": None}
        assert b["env"] == {"TABLE_NAME": None, "LOCALCLOUD_TEST_HOST_ONLY": None}
        assert a["pid"] != b["pid"]

    def test_reserved_variables_cannot_be_overridden(self, runner):
        names = ["AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL", "_HANDLER"]
        env = {"AWS_REGION": "mars-north-1", "AWS_LAMBDA_FUNCTION_NAME": "impostor"}
        _, payload = invoke(runner, "reserved", ECHO, {"env": names}, env=env)
        assert payload["env"] == {
            "AWS_REGION": "eu-west-1",  # from the function's ARN
            "AWS_LAMBDA_FUNCTION_NAME": "reserved",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "_HANDLER": "app.handler",
        }

    def test_warm_worker_is_reused_until_the_configuration_changes(self, runner):
        _, first = invoke(runner, "warm", ECHO, env={"V": "1"})
        _, second = invoke(runner, "warm", ECHO, env={"V": "1"})
        _, changed = invoke(runner, "warm", ECHO, {"env": ["V"]}, env={"V": "2"})
        assert first["pid"] == second["pid"]
        assert changed["pid"] != first["pid"]
        assert changed["env"] == {"V": "2"}
        assert Path(changed["cwd"]).name.startswith("warm-")
