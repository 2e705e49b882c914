"""The production profile on the local cloud, next to the session's environment (issue 9, Proof).

VPC mode, alarms, reserved and provisioned concurrency, deletion protection: deployed by
`cdktf deploy` as a second environment on the same local cloud, re-planned with no changes, then
destroyed the way an operator would (deletion protection lifted, versioned buckets emptied), after
which the session's own environment still answers and keeps its logs.

It costs a few minutes (about 2 to deploy, 1 to destroy), so it runs only with
``PAYMENTS_E2E_PRODUCTION=1`` (``make test-e2e-production``), not in ``make test``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from localcloud.client import LocalCloud
from localcloud.config import REPO_ROOT
from localcloud.deploy import STACK, deploy_environment

SUFFIX = "e2e-prod"
OUT = REPO_ROOT / "build" / "e2e-production"

pytestmark = pytest.mark.skipif(
    os.environ.get("PAYMENTS_E2E_PRODUCTION") != "1",
    reason="the production-profile deploy takes minutes: make test-e2e-production",
)


@dataclass
class Production:
    env: dict[str, str]
    outputs: dict[str, Any]
    deploy: subprocess.CompletedProcess


def _cdktf(action: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "npx", "--no-install", "cdktf", action, STACK, "--auto-approve", "--no-color",
            "--skip-provider-lock", "--output", str(OUT), *extra,
        ],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=1500,
    )  # fmt: skip


@pytest.fixture(scope="module")
def production(cloud: LocalCloud) -> Iterator[Production]:
    env = deploy_environment(cloud.config) | {
        "ENVIRONMENT": "production",
        "ENVIRONMENT_SUFFIX": SUFFIX,
        "KMS_ADMIN_ROLE_ARN": "arn:aws:iam::123456789012:role/payments-key-admins",
        "ALARM_SUBSCRIPTIONS": "sqs:arn:aws:sqs:us-east-1:123456789012:payments-incidents-e2e",
    }
    outputs_file = OUT / "outputs.json"
    outputs_file.unlink(missing_ok=True)
    result = _cdktf(
        "deploy",
        env,
        "--outputs-file", str(outputs_file), "--outputs-file-include-sensitive-outputs",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    outputs = json.loads(outputs_file.read_text())
    yield Production(env=env, outputs=outputs.get(STACK, outputs), deploy=result)


def _gateway_get(cloud: LocalCloud, stage: str, path: str, key: str | None = None) -> int:
    url = f"{cloud.outputs['gateway_url']}/{stage}{path}"
    request = urllib.request.Request(url, headers={"x-api-key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_production_answers_next_to_the_sessions_environment(cloud, production):
    stage = production.outputs["stage_name"]
    assert stage == SUFFIX != cloud.stack["stage_name"]
    assert _gateway_get(cloud, stage, "/health") == 200
    key = production.outputs["api_key_value"]
    assert _gateway_get(cloud, stage, "/payments/pay_missing", key) == 404
    assert _gateway_get(cloud, stage, "/payments/pay_missing") == 403


def test_production_has_its_profiles_resources(cloud, production):
    functions = {
        f["FunctionName"]: f
        for f in cloud.client("lambda").list_functions()["Functions"]
        if f["FunctionName"].endswith(f"-{SUFFIX}")
    }
    assert functions and all(f.get("VpcConfig", {}).get("SubnetIds") for f in functions.values())
    table = production.outputs["payments_table_name"]
    description = cloud.client("dynamodb").describe_table(TableName=table)["Table"]
    assert description["DeletionProtectionEnabled"] is True
    alarms = cloud.client("cloudwatch").describe_alarms(AlarmNamePrefix="payments-")
    assert [a for a in alarms["MetricAlarms"] if a["AlarmName"].endswith(f"-{SUFFIX}-errors")]


def test_production_replans_with_no_changes(production):
    result = subprocess.run(
        ["terraform", "plan", "-input=false", "-no-color", "-detailed-exitcode", "-lock=false"],
        cwd=OUT / "stacks" / STACK, env=production.env, capture_output=True, text=True,
        check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _empty_bucket(s3: Any, bucket: str) -> None:
    """What an operator does before destroying buckets that keep their data (force_destroy off)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [
            {"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def test_destroy_after_lifting_deletion_protection_leaves_the_other_environment(cloud, production):
    dynamodb, s3 = cloud.client("dynamodb"), cloud.client("s3")
    for output in ("payments_table_name", "processing_status_table_name", "audit_log_table_name"):
        dynamodb.update_table(TableName=production.outputs[output], DeletionProtectionEnabled=False)
    ours = [b["Name"] for b in s3.list_buckets()["Buckets"] if f"-{SUFFIX}-" in b["Name"]]
    assert len(ours) == 2  # the batch bucket and its access-log bucket
    # Stop the writer first: access logging would refill the log bucket while the rest goes.
    s3.put_bucket_logging(Bucket=production.outputs["batch_bucket_name"], BucketLoggingStatus={})
    for bucket in ours:
        _empty_bucket(s3, bucket)
    result = _cdktf("destroy", production.env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    assert not [t for t in dynamodb.list_tables()["TableNames"] if t.endswith(f"-{SUFFIX}")]
    functions = cloud.client("lambda").list_functions()["Functions"]
    assert not [f for f in functions if f["FunctionName"].endswith(f"-{SUFFIX}")]
    # The session's environment is untouched: it answers, and its API's log groups remain.
    assert cloud.request("GET", "/health", api_key=None).status == 200
    api = f"payments-api-{cloud.stack['stage_name']}"
    groups = cloud.client("logs").describe_log_groups(logGroupNamePrefix=f"/aws/apigateway/{api}")
    assert [g["logGroupName"] for g in groups["logGroups"]] == [f"/aws/apigateway/{api}"]
