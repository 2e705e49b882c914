"""`make rollback` on the local cloud: live moves to the pinned version at once, a re-plan of the
stack keeps it there instead of moving it back, and after --release the plan follows the
function's version again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from localcloud.client import LocalCloud
from tests.e2e.operator import operator_command
from tests.e2e.test_stack_state import terraform

FUNCTION = "payments-api-local"


def rollback(*args: str) -> subprocess.CompletedProcess[str]:
    return operator_command("rollback", *args)


def release(awslambda) -> str:
    """Publish a new version of the deployed code and configuration (Lambda publishes one only
    after an update: the update here sets what is already set, so nothing drifts)."""
    description = awslambda.get_function_configuration(FunctionName=FUNCTION)["Description"]
    awslambda.update_function_configuration(FunctionName=FUNCTION, Description=description)
    return awslambda.publish_version(FunctionName=FUNCTION)["Version"]


def planned_versions(cloud: LocalCloud, out: Path) -> tuple[str, str]:
    """What a re-plan gives the live alias, and the API function's version."""
    plan = terraform(cloud, "plan", "-input=false", "-no-color", f"-out={out}")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    shown = json.loads(terraform(cloud, "show", "-json", str(out)).stdout)
    changes = {(c["type"], c["change"]["after"].get("function_name")): c["change"]["after"]
               for c in shown["resource_changes"]
               if c["type"] in ("aws_lambda_alias", "aws_lambda_function")}  # fmt: skip
    alias = changes[("aws_lambda_alias", FUNCTION)]
    function = changes[("aws_lambda_function", FUNCTION)]
    return str(alias["function_version"]), str(function["version"])


def test_a_rollback_is_kept_by_the_next_deploy_until_released(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    awslambda = cloud.client("lambda")
    live = awslambda.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"]
    # Two more releases: the pin goes to the older one, so it differs from the function's
    # latest version (a real rollback goes below the deployed one: the same mechanism).
    pinned, newest = release(awslambda), release(awslambda)
    assert len({live, pinned, newest}) == 3
    refused = rollback("--to", "999")
    assert refused.returncode == 1 and "no published version '999'" in refused.stdout
    moved = rollback("--to", pinned)
    assert moved.returncode == 0, moved.stdout + moved.stderr[-2000:]
    assert awslambda.get_alias(FunctionName=FUNCTION, Name="live")["FunctionVersion"] == pinned
    alias, function = planned_versions(cloud, tmp_path / "pinned.plan")
    assert (alias, function) == (pinned, newest)
    assert f"live -> version {pinned}; pinned: {pinned}" in rollback().stdout
    released = rollback("--release")
    assert released.returncode == 0 and "pin removed" in released.stdout
    alias, function = planned_versions(cloud, tmp_path / "released.plan")
    assert alias == function == newest
    assert "pinned: no" in rollback().stdout
    # Where the next deploy would put it, so the session's stack has no drift (test_stack_state).
    awslambda.update_alias(FunctionName=FUNCTION, Name="live", FunctionVersion=newest)
