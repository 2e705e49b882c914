"""Lambda functions on the patched moto (``localcloud/services/lambda_/functions.py``): real
handlers run by the warm-worker runner, errors as Lambda reports them, bounded logs, the
configuration as sent, async retries and the dead-letter queue."""

from __future__ import annotations

import base64
import json

import pytest
from localcloud_support import RECORDING_HANDLER, recorded, wait_for

from localcloud.services.lambda_ import functions

pytestmark = pytest.mark.xdist_group("localcloud-lambda-functions")


class TestLambda:
    def test_handler_error_is_reported_unhandled_with_its_type(self, cloud):
        cloud.create_function(
            "fails", "def handler(event, context):\n    raise ValueError('bad amount')\n"
        )
        response = cloud.client("lambda").invoke(FunctionName="fails", Payload=b"{}")
        assert response["FunctionError"] == "Unhandled"
        payload = json.loads(response["Payload"].read())
        assert (payload["errorType"], payload["errorMessage"]) == ("ValueError", "bad amount")

    def test_success_runs_the_uploaded_handler_and_tails_its_log(self, cloud):
        cloud.create_function(
            "doubles", "def handler(event, context):\n    print('doubling')\n    return event * 2\n"
        )
        response = cloud.client("lambda").invoke(
            FunctionName="doubles", Payload=b"21", LogType="Tail"
        )
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == 42
        assert "doubling" in base64.b64decode(response["LogResult"]).decode()

    def test_a_functions_log_keeps_the_latest_invocations(self, cloud, monkeypatch):
        """Stock moto keeps a log stream for every invocation forever: a soak's logs outgrew
        everything else in the server's memory."""
        monkeypatch.setattr(functions, "LOG_STREAMS_KEPT", 3)
        cloud.create_function(
            "chatty", "def handler(event, context):\n    print('call', event)\n    return event\n"
        )
        for n in range(5):
            cloud.client("lambda").invoke(FunctionName="chatty", Payload=str(n).encode())
        logs = cloud.client("logs")
        streams = logs.describe_log_streams(logGroupName="/aws/lambda/chatty")["logStreams"]
        assert len(streams) == 3
        messages = [
            event["message"]
            for stream in streams
            for event in logs.get_log_events(
                logGroupName="/aws/lambda/chatty", logStreamName=stream["logStreamName"]
            )["events"]
        ]
        assert sorted(m for m in messages if m.startswith("call")) == ["call 2", "call 3", "call 4"]
        # The export keeps every line, the dropped streams' included.
        exported = cloud.log_export.path.read_text().splitlines()
        assert [line for line in exported if line.startswith("/aws/lambda/chatty\tcall")] == [
            f"/aws/lambda/chatty\tcall {n}" for n in range(5)
        ]

    def test_the_log_export_moves_aside_past_its_bound_and_keeps_one_earlier_file(self, tmp_path):
        export = functions.LogExport(tmp_path / "logs", max_bytes=80)
        for n in range(6):
            export.write("/aws/lambda/f", f"line {n}\n\n")
        files = functions.LogExport.files(export.path)
        assert [f.name for f in files] == ["logs.1", "logs"]
        lines = [line for f in files for line in f.read_text().splitlines()]
        # Each file holds whole lines; one move happened, so the oldest file was not dropped.
        assert lines == [f"/aws/lambda/f\tline {n}" for n in range(6)]
        # A new server starts a new export.
        assert functions.LogExport.files(functions.LogExport(export.path).path) == [export.path]
        assert export.path.read_text() == ""

    def test_dead_letter_and_logging_config_read_back_as_sent(self, cloud):
        _, dlq_arn = cloud.create_queue("fn-dlq")
        cloud.create_function(
            "with-dlq",
            "def handler(e, c):\n    return 1\n",
            DeadLetterConfig={"TargetArn": dlq_arn},
        )
        lam = cloud.client("lambda")
        config = lam.get_function_configuration(FunctionName="with-dlq")
        assert config["DeadLetterConfig"] == {"TargetArn": dlq_arn}
        # Lambda's defaults when the function names no logging configuration.
        assert config["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/aws/lambda/with-dlq"}

        lam.update_function_configuration(
            FunctionName="with-dlq",
            DeadLetterConfig={},
            LoggingConfig={"LogFormat": "JSON", "LogGroup": "/payments/with-dlq"},
        )
        updated = lam.get_function_configuration(FunctionName="with-dlq")
        assert "DeadLetterConfig" not in updated
        assert updated["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": "/payments/with-dlq"}

    def test_async_failure_is_retried_twice_then_sent_to_the_dead_letter_queue(
        self, cloud, tmp_path, monkeypatch
    ):
        # What is under test is the number of attempts and the DLQ, not Lambda's minutes of delay.
        retries = len(functions.ASYNC_RETRY_DELAYS_SECONDS)
        monkeypatch.setattr(functions, "ASYNC_RETRY_DELAYS_SECONDS", (0.05,) * retries)
        record_file = tmp_path / "attempts.jsonl"
        dlq_url, dlq_arn = cloud.create_queue("async-dlq")
        cloud.create_function(
            "async-fails",
            RECORDING_HANDLER + "def handler(event, context):\n    record(event)\n    1 / 0\n",
            Environment={"Variables": {"RECORD_FILE": str(record_file)}},
            DeadLetterConfig={"TargetArn": dlq_arn},
        )
        response = cloud.client("lambda").invoke(
            FunctionName="async-fails", InvocationType="Event", Payload=b'{"n": 1}'
        )
        assert response["StatusCode"] == 202
        sqs = cloud.client("sqs")
        messages = wait_for(
            lambda: sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages")
        )
        assert [json.loads(m["Body"]) for m in messages] == [{"n": 1}]
        assert recorded(record_file) == [{"n": 1}] * (1 + retries)
