"""`make preflight` against the local cloud: the session's environment is ready to deploy, and a
production environment aimed at an unversioned state bucket, a key administrator that does not
exist and an account without a trail gets one line per problem and exit code 1."""

from __future__ import annotations

import subprocess

from localcloud.client import LocalCloud
from tests.e2e.operator import operator_command


def preflight(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return operator_command("preflight", extra=extra)


def test_the_local_environment_is_ready_to_deploy(cloud: LocalCloud) -> None:
    result = preflight({})
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert "on the local cloud at http://127.0.0.1:" in lines[0]
    checks = [line for line in lines[1:-1]]
    assert len(checks) == 5 and all(line.startswith("ok ") for line in checks), lines
    assert lines[-1] == "ready to deploy"


def test_each_problem_is_one_line_and_fails_the_run(cloud: LocalCloud) -> None:
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="preflight-unversioned")
    try:
        result = preflight(
            {
                "ENVIRONMENT": "production",
                "ENVIRONMENT_SUFFIX": "preflight",
                "TERRAFORM_STATE_BUCKET": "preflight-unversioned",
                "TERRAFORM_STATE_BUCKET_REGION": "us-east-1",
                "KMS_ADMIN_ROLE_ARN": "arn:aws:iam::123456789012:role/no-such-key-admins",
                "ALARM_SUBSCRIPTIONS": "email:oncall@example.com",
            }
        )
    finally:
        s3.delete_bucket(Bucket="preflight-unversioned")  # the destroy test finds no strays
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert [p.split(":")[0] for p in problems] == [
        "PROBLEM  Terraform state bucket",
        "PROBLEM  KMS key administrator",
        "PROBLEM  CloudTrail management events",
    ], result.stdout
    assert "s3://preflight-unversioned is not versioned" in problems[0]
    assert "no-such-key-admins does not exist" in problems[1]
    assert "no trail logs this region's management events" in problems[2]
    assert "ok       Lambda concurrency" in result.stdout
    assert result.stdout.splitlines()[-1] == "3 problem(s)"
