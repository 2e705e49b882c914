"""The deployed local stack as Terraform sees it: no drift after apply, checkov clean."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from localcloud.client import LocalCloud
from localcloud.config import REPO_ROOT
from localcloud.deploy import deploy_environment, stack_dir


def terraform(cloud: LocalCloud, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["terraform", *args],
        cwd=stack_dir(),
        env=deploy_environment(cloud.config),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.fixture(scope="module")
def plan_file(cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    out = tmp_path_factory.mktemp("plan") / "plan.out"
    result = terraform(
        cloud, "plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={out}"
    )
    return result.returncode, out, result.stdout + result.stderr


def test_second_plan_after_apply_shows_no_changes(plan_file: tuple[int, Path, str]) -> None:
    code, _, output = plan_file
    # -detailed-exitcode: 0 = no changes, 2 = changes, 1 = error.
    assert code == 0, output[-4000:]
    assert "No changes." in output


def test_checkov_finds_no_failed_check_in_the_plan(
    cloud: LocalCloud, plan_file: tuple[int, Path, str]
) -> None:
    _, out, _ = plan_file
    shown = terraform(cloud, "show", "-no-color", "-json", str(out))
    assert shown.returncode == 0, shown.stderr
    plan_json = out.with_name("plan.json")
    plan_json.write_text(shown.stdout)
    result = subprocess.run(
        [
            # checkov lives in its own environment (tools/checkov, `make install`).
            str(REPO_ROOT / "tools" / "checkov" / ".venv" / "bin" / "checkov"),
            "-f",
            str(plan_json),
            "--framework",
            "terraform_plan",
            "--skip-download",
            "--config-file",
            str(REPO_ROOT / ".checkov.yaml"),
            "-o",
            "json",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    report = json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None
    assert report is not None, result.stdout[-2000:] + result.stderr[-2000:]
    reports = report if isinstance(report, list) else [report]
    summary = {
        key: sum(r.get("summary", {}).get(key, 0) for r in reports)
        for key in ("passed", "failed", "parsing_errors")
    }
    failed = {
        (c["check_id"], c["resource"])
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    }
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, "checkov ran (almost) no checks"
    unexpected = sorted(
        f"{check} {resource}"
        for check, resource in failed
        if check not in profile_dependent_checks(cloud)
    )
    assert unexpected == []


def profile_dependent_checks(cloud: LocalCloud) -> set[str]:
    """Checks the deployed profile turns off on purpose (tests/infra/test_gates.py: dev).

    Derived from the settings the stack was built with, so a production-profile local
    deployment gets the full gate.
    """
    from lib.settings import Settings

    profile = Settings.from_env(deploy_environment(cloud.config)).profile
    checks = set()
    if profile.log_retention_days < 365:
        checks.add("CKV_AWS_338")  # log groups keep logs for at least a year
    if not profile.vpc_enabled:
        checks.add("CKV_AWS_117")  # functions run inside a VPC
    return checks
