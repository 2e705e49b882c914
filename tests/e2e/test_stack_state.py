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


def test_an_apply_with_another_profile_is_refused_at_plan_with_one_clear_line(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    """The deployed environment recorded its profile (dev); the same suffix synthesized as
    staging, planned against the same state, stops before any change, naming the override."""
    env = deploy_environment(cloud.config) | {
        "ENVIRONMENT": "staging",
        "KMS_ADMIN_ROLE_ARN": "arn:aws:iam::123456789012:role/payments-key-admins",
        "CDKTF_OUTDIR": str(tmp_path / "cdktf.out"),
    }
    synth = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), "main.py"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert synth.returncode == 0, synth.stderr[-2000:]
    stack = tmp_path / "cdktf.out" / "stacks" / "payments"
    for args in (("init", "-input=false", "-no-color"), ("plan", "-input=false", "-no-color")):
        result = subprocess.run(
            ["terraform", *args], cwd=stack, env=env, capture_output=True, text=True,
            check=False, timeout=600,
        )  # fmt: skip
    assert result.returncode == 1, result.stdout[-3000:]
    assert "Resource precondition failed" in result.stderr, result.stderr[-3000:]
    suffix = env["ENVIRONMENT_SUFFIX"]
    assert (
        f"ENVIRONMENT=staging is not the profile environment '{suffix}' was deployed with"
        in " ".join(result.stderr.split())
    ), result.stderr[-3000:]
    assert "ALLOW_PROFILE_CHANGE=staging" in result.stderr
