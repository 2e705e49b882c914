"""The batch workflow's ASL executed by moto's Step Functions interpreter, with the real handlers.

S3 event -> batch-trigger handler -> StartExecution -> Register / ProcessChunk loop / Finalize
(batch-tasks, run in-process) -> DynamoDB + SNS integrations.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from payments import aws, env
from payments.batch import report_key

from tests.functional.lambda_runner import code_zip, in_process_lambdas
from tests.functional.world import (
    REGION,
    LambdaContext,
    build_world,
    inject_failures,
    s3_event,
    serialized_moto_transactions,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _definition_module():
    # Loaded by path: importing the ``lib`` package would load the CDKTF provider (seconds).
    spec = importlib.util.spec_from_file_location(
        "workflow_definition", ROOT / "lib" / "workflow_definition.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sfn_world():
    from handlers import common

    saved = dict(os.environ)
    with (
        mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        in_process_lambdas(),
        serialized_moto_transactions(),
    ):
        common.reset()
        world = build_world(chunk_rows=4)
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(
            RoleName="batch-tasks", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
        )["Role"]["Arn"]
        function = boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="payments-batch-tasks-test",
            Runtime="python3.12",
            Role=role,
            Handler="handlers.batch_tasks.handler",
            Code={"ZipFile": code_zip()},
            Timeout=300,
            Environment={"Variables": dict(world.env)},
        )
        definition = _definition_module().batch_workflow_definition(
            tasks_function_arn=function["FunctionArn"],
            status_table_name=world.env[env.PROCESSING_STATUS_TABLE],
            audit_table_name=world.env[env.AUDIT_LOG_TABLE],
        )
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="payments-batch-test", definition=json.dumps(definition), roleArn=role
        )["stateMachineArn"]
        os.environ[env.STATE_MACHINE_ARN] = machine
        world.extra.update(sfn=sfn, machine=machine)
        try:
            yield world
        finally:
            common.reset()
            os.environ.clear()
            os.environ.update(saved)


def upload_and_run(world, batch_id: str, body: bytes, *, times: int = 1) -> list[dict]:
    from handlers import batch_trigger

    key = f"incoming/{batch_id}.csv"
    version = world.s3.put_object(Bucket=world.bucket, Key=key, Body=body)["VersionId"]
    event = s3_event(world.bucket, key, version, len(body))
    for _ in range(times):
        batch_trigger.handler(event, LambdaContext(function_name="batch-trigger"))
    sfn, machine = world.extra["sfn"], world.extra["machine"]
    deadline = time.monotonic() + 60
    while True:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        if executions and all(e["status"] != "RUNNING" for e in executions):
            return [sfn.describe_execution(executionArn=e["executionArn"]) for e in executions]
        assert time.monotonic() < deadline, "workflow did not finish"
        time.sleep(0.1)


def batch_record(world, batch_id: str) -> dict:
    from payments.batch import Batches
    from payments.config import load

    return Batches(load()).batch_view(batch_id)


def test_small_file_runs_to_completion_with_report_and_summary(sfn_world):
    rows = "".join(f"p{i},{i}.00,usd\n" for i in range(1, 11))
    executions = upload_and_run(sfn_world, "small", f"payment_id,amount,currency\n{rows}".encode())
    assert [e["status"] for e in executions] == ["SUCCEEDED"]
    record = batch_record(sfn_world, "small")
    assert (record["status"], record["total_rows"], record["accepted"]) == ("COMPLETED", 10, 10)
    assert record["report_key"] == report_key("small", record["version_id"])
    report = json.loads(
        sfn_world.s3.get_object(Bucket=sfn_world.bucket, Key=record["report_key"])["Body"].read()
    )
    assert report["accepted"] == 10 and report["rejected_rows"] == []
    assert len(sfn_world.payments()) == 10
    assert len(sfn_world.receive_all()) == 10
    summaries = [e for e in sfn_world.events() if e["type"] == "batch.completed"]
    assert len(summaries) == 1 and summaries[0]["accepted"] == 10
    assert summaries[0]["event_id"] == f"BATCH#small#{record['version_id']}#COMPLETED"


def test_bad_rows_are_rejected_with_line_numbers_and_counted(sfn_world):
    sfn_world.dynamodb  # noqa: B018
    body = (
        b"Currency,Amount,PAYMENT_ID,notes\r\n"
        b"usd,1.00,ok1,x\r\n"
        b"usd,-1,neg,x\r\n"
        b"\r\n"
        b"usd,1.00,ok1,dup\r\n"
        b"xyz,1.00,badcur,x\r\n"
        b'usd,"2.50",ok2,"multi\r\nline"\r\n'
        b"usd,1.001,toomany,x\r\n"
        b"usd,1.00,bad\xffid,x\r\n"
        b"usd,1.00,,x\r\n"
    )
    executions = upload_and_run(sfn_world, "mixed", body)
    assert executions[0]["status"] == "SUCCEEDED"
    record = batch_record(sfn_world, "mixed")
    assert (record["total_rows"], record["accepted"], record["rejected"], record["duplicates"]) == (
        8,
        2,
        5,
        1,
    )
    rejected = {r["line"]: r for r in record["rejected_rows"]}
    assert sorted(rejected) == [3, 6, 9, 10, 11]
    assert "amount: must be greater than 0" in rejected[3]["reason"]
    assert "currency" in rejected[6]["reason"]
    assert "more than 2 decimal" in rejected[9]["reason"]
    assert rejected[10]["code"] == "INVALID_ENCODING"
    assert rejected[11]["reason"] == "payment_id: is required"


def test_file_without_required_header_is_a_failed_batch_but_a_successful_run(sfn_world):
    # A customer's bad file is a business rejection: it must not trip ExecutionsFailed.
    executions = upload_and_run(sfn_world, "noheader", b"id,amount,currency\np1,1,USD\n")
    assert executions[0]["status"] == "SUCCEEDED"
    record = batch_record(sfn_world, "noheader")
    assert (record["status"], record["reason_code"]) == ("FAILED", "INVALID_FILE")
    assert record["reason"].startswith("missing required column(s) payment_id")
    failures = [e for e in sfn_world.events() if e["type"] == "batch.failed"]
    assert [f["event_id"] for f in failures] == [f"BATCH#noheader#{record['version_id']}#FAILED"]
    assert failures[0]["reason_code"] == "INVALID_FILE"
    assert sfn_world.payments() == []


def test_a_platform_failure_fails_the_run_with_a_plain_reason_and_one_event(sfn_world):
    from payments import aws

    # Every S3 read of the tasks fails (not transient): the Register task fails for good.
    inject_failures(aws.client("s3"), "GetObject", times=1000, code="AccessDenied", status=403)
    executions = upload_and_run(sfn_world, "broken", b"payment_id,amount,currency\na,1,USD\n")
    assert executions[0]["status"] == "FAILED"
    record = batch_record(sfn_world, "broken")
    assert (record["status"], record["reason_code"]) == ("FAILED", "PROCESSING_ERROR")
    # A plain sentence for the client: no stack trace, no file path, no ARN, no AWS error text.
    for leak in ("Traceback", ".py", "arn:", "AccessDenied", "injected"):
        assert leak not in record["reason"]
    failures = [e for e in sfn_world.events() if e["type"] == "batch.failed"]
    assert [f["event_id"] for f in failures] == [f"BATCH#broken#{record['version_id']}#FAILED"]


def test_same_s3_event_three_times_starts_one_execution(sfn_world):
    body = b"payment_id,amount,currency\na,1,USD\nb,2,USD\n"
    executions = upload_and_run(sfn_world, "replayed", body, times=3)
    assert len(executions) == 1 and executions[0]["status"] == "SUCCEEDED"
    assert len(sfn_world.payments()) == 2
    assert len(sfn_world.audit()) == 2 + 1  # one RECEIVED per payment + batch completion


def test_new_version_of_same_batch_counts_stored_rows_as_duplicates(sfn_world):
    upload_and_run(sfn_world, "again", b"payment_id,amount,currency\na,1,USD\n")
    executions = upload_and_run(
        sfn_world, "again", b"payment_id,amount,currency\na,1,USD\nb,1,USD\n"
    )
    assert sorted(e["status"] for e in executions) == ["SUCCEEDED", "SUCCEEDED"]
    record = batch_record(sfn_world, "again")
    assert (record["total_rows"], record["accepted"], record["duplicates"]) == (2, 1, 1)


def test_moto_runs_the_chunks_as_map_iterations_and_duplicates_span_chunks(sfn_world):
    # chunk_rows=4: three chunks; line 7 (chunk 2) repeats line 3 (chunk 1), whose id first
    # appeared on line 2 in a row that is invalid (so line 3 is the first valid one).
    body = (
        b"payment_id,amount,currency\n"
        b"m1,-1,USD\nm1,1,USD\nm2,1,USD\nm3,1,USD\n"
        b"m4,1,USD\nm1,1,USD\nm5,1,USD\nm6,1,USD\n"
        b"m2,9,USD\n"
    )
    (execution,) = upload_and_run(sfn_world, "mapped", body)
    assert execution["status"] == "SUCCEEDED"
    history = sfn_world.extra["sfn"].get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000
    )["events"]
    iterations = [e for e in history if e["type"] == "MapIterationSucceeded"]
    assert len(iterations) == 3
    record = batch_record(sfn_world, "mapped")
    assert (record["status"], record["total_rows"], record["accepted"]) == ("COMPLETED", 9, 6)
    assert (record["rejected"], record["duplicates"]) == (1, 2)
    report = json.loads(
        sfn_world.s3.get_object(Bucket=sfn_world.bucket, Key=record["report_key"])["Body"].read()
    )
    assert [(d["line"], d["reason"]) for d in report["duplicate_rows"]] == [
        (7, "payment_id already on line 3 of this file"),
        (10, "payment_id already on line 4 of this file"),
    ]
    assert {p["payment_id"]: int(p["batch_line"]) for p in sfn_world.payments()} == {
        "m1": 3, "m2": 4, "m3": 5, "m4": 6, "m5": 8, "m6": 9,
    }  # fmt: skip


def test_a_file_with_only_its_header_maps_no_chunks_and_completes_empty(sfn_world):
    (execution,) = upload_and_run(sfn_world, "empty", b"payment_id,amount,currency\r\n\r\n")
    assert execution["status"] == "SUCCEEDED"
    record = batch_record(sfn_world, "empty")
    assert (record["status"], record["total_rows"], record["accepted"]) == ("COMPLETED", 0, 0)
    assert sfn_world.payments() == []


def test_a_chunk_that_fails_transiently_inside_the_map_is_retried_by_its_iteration(sfn_world):
    """moto runs the Retry inside the Map's ItemProcessor: two failed reads of chunk 1 cost two
    retries of that iteration, not the batch."""
    body = (
        b"payment_id,amount,currency\n"
        b"m1,1,USD\nm2,1,USD\nm3,1,USD\nm4,1,USD\n"
        b"m5,1,USD\nm6,1,USD\nm7,1,USD\nm8,1,USD\n"
    )

    def second_chunk(params):
        rng = params.get("Range", "")
        return rng.startswith("bytes=") and int(rng[6:].split("-")[0]) > 60

    injected = inject_failures(
        aws.client("s3"), "GetObject", times=2, code="InternalError", status=500, when=second_chunk
    )
    (execution,) = upload_and_run(sfn_world, "retried", body)
    record = batch_record(sfn_world, "retried")
    assert injected["injected"] == 2
    assert execution["status"] == "SUCCEEDED"
    assert (record["status"], record["total_rows"], record["accepted"]) == ("COMPLETED", 8, 8)


def test_the_failure_path_of_a_superseded_upload_reads_back_and_leaves_the_newer_run(sfn_world):
    """The older upload's Register fails for good after the newer upload completed: its
    failure transaction is cancelled (the newer run owns the summary), CheckFailed reads the
    summary, and the Choice ends the execution as superseded (no ExecutionsFailed)."""
    from handlers import batch_trigger
    from payments import aws

    key = "incoming/late.csv"
    old_body = b"payment_id,amount,currency\nold,1,USD\n"
    old_version = sfn_world.s3.put_object(Bucket=sfn_world.bucket, Key=key, Body=old_body)[
        "VersionId"
    ]
    old_event = s3_event(sfn_world.bucket, key, old_version, len(old_body))
    [newer] = upload_and_run(sfn_world, "late", b"payment_id,amount,currency\nnew,2,USD\n")
    assert newer["status"] == "SUCCEEDED"
    inject_failures(aws.client("s3"), "GetObject", times=1000, code="AccessDenied", status=403)
    batch_trigger.handler(old_event, LambdaContext(function_name="batch-trigger"))
    sfn, machine = sfn_world.extra["sfn"], sfn_world.extra["machine"]
    deadline = time.monotonic() + 60
    while any(
        e["status"] == "RUNNING" for e in sfn.list_executions(stateMachineArn=machine)["executions"]
    ):
        assert time.monotonic() < deadline, "workflow did not finish"
        time.sleep(0.2)
    statuses = sorted(
        e["status"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]
    )
    assert statuses == ["SUCCEEDED", "SUCCEEDED"]
    record = batch_record(sfn_world, "late")
    assert (record["status"], record["version_id"]) == ("COMPLETED", newer_version(newer))
    audited = [e["sk"] for e in sfn_world.audit() if e["entity_id"] == "BATCH#late"]
    assert audited == [f"{newer_version(newer)}#COMPLETED"]


def newer_version(execution: dict) -> str:
    return json.loads(execution["input"])["version_id"]


def test_a_batchs_events_carry_a_version_that_grows_across_runs_and_the_failure_path(
    sfn_world,
):
    """Completed, rejected and platform-failed runs of one batch_id, in upload order: each
    end event is one version above its run's registration (the workflow's own MarkFailed
    included), the versions grow from run to run, and a consumer applying them by version in
    any order ends with the batch's status."""
    from payments import aws

    from tests.functional.consumer import Consumer

    good = b"payment_id,amount,currency\nv1,1,USD\n"
    upload_and_run(sfn_world, "versions", good)
    upload_and_run(sfn_world, "versions", b"id,amount,currency\nv1,1,USD\n")  # INVALID_FILE
    injected = inject_failures(
        aws.client("s3"), "GetObject", times=1000, code="AccessDenied", status=403
    )
    upload_and_run(sfn_world, "versions", good)  # Register fails: MarkFailed takes over
    injected["left"] = 0
    upload_and_run(sfn_world, "versions", b"payment_id,amount,currency\nv1,1,USD\nv2,2,USD\n")
    ends = [e for e in sfn_world.events() if e["type"].startswith("batch.")]
    assert [(e["type"], e.get("reason_code")) for e in ends] == [
        ("batch.completed", None),
        ("batch.failed", "INVALID_FILE"),
        ("batch.failed", "PROCESSING_ERROR"),
        ("batch.completed", None),
    ]
    # Register writes n+1, the end n+2; MarkFailed, with no registration of its run, n+1.
    assert [e["version"] for e in ends] == [2, 4, 5, 7]
    record = batch_record(sfn_world, "versions")
    assert (record["status"], record["accepted"], record["duplicates"]) == ("COMPLETED", 1, 1)
    for order in (ends, ends[::-1], [ends[2], ends[0], ends[3], ends[1], ends[3]]):
        consumer = Consumer().consume(order)
        assert consumer.state[("batch", "versions")] == (7, "COMPLETED")
