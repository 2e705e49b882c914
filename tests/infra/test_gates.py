"""Offline `terraform validate` and the checkov gate on the synthesized JSON.

The tool runs (validate of production and dev, checkov of every profile) start together in one
fixture: each is a single-threaded process of several seconds, and side by side they take half as
long. checkov runs from its own environment (tools/checkov, `make install`): its 3.3 releases pin
boto3 1.35, which the Lambda runtime's boto3 pin excludes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
CHECKOV_PYTHON = ROOT / "tools" / "checkov" / ".venv" / "bin" / "python"
CHECKOV_RELEASE = "3.3."
VALIDATED_PROFILES = ("production", "dev")
SCANNED_PROFILES = ("production", "staging", "dev")
# What dev and staging turn off on purpose (DESIGN section 2, profiles), skipped for those two
# only: production is scanned with every check but those of .checkov.yaml.
NON_PRODUCTION_SKIPS = {
    "CKV_AWS_338": "dev and staging keep logs 7 and 30 days; production keeps a year (PCI DSS)",
    "CKV_AWS_117": "VPC mode is production's; dev and staging functions reach AWS APIs directly",
}

pytestmark = pytest.mark.slow


def _configured_skips() -> list[str]:
    return re.findall(r"^\s*-\s*(CKV\w+)", CHECKOV_CONFIG.read_text(), re.MULTILINE)


def _cli_config(tmp: Path) -> Path:
    """`make install`'s build/terraform.rc when present, else one written the same way."""
    configured = os.environ.get("TF_CLI_CONFIG_FILE")
    if configured and Path(configured).is_file():
        return Path(configured)
    path = ROOT / "scripts" / "terraform_mirror.py"
    spec = importlib.util.spec_from_file_location("terraform_mirror", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = tmp / "terraform.rc"
    config.write_text(module.render(module.find_mirror()))
    return config


def _start(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def gates(request, tmp_path_factory) -> dict[tuple[str, str], subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("gates")
    running: dict[tuple[str, str], subprocess.Popen] = {}
    terraform = shutil.which("terraform")
    tf_env = os.environ | {"TF_CLI_CONFIG_FILE": str(_cli_config(root)), "CHECKPOINT_DISABLE": "1"}
    if not CHECKOV_PYTHON.is_file():
        pytest.fail(f"{CHECKOV_PYTHON.relative_to(ROOT)} is missing: run `make install`")
    for profile in SCANNED_PROFILES:
        synth = request.getfixturevalue(profile)
        if terraform and profile in VALIDATED_PROFILES:
            workdir = root / f"validate-{profile}"
            workdir.mkdir()
            (workdir / "cdk.tf.json").write_text(synth.json)
            init = subprocess.run(
                [terraform, "init", "-backend=false", "-input=false", "-no-color"],
                cwd=workdir, env=tf_env, capture_output=True, text=True,
            )  # fmt: skip
            assert init.returncode == 0, init.stdout + init.stderr
            running["validate", profile] = _start(
                [terraform, "validate", "-no-color"], workdir, tf_env
            )
        scan = root / f"checkov-{profile}"
        scan.mkdir()
        doc = json.loads(synth.json)
        assert "required_version" in doc["terraform"]
        # checkov (3.2 and 3.3) cannot parse terraform.required_version in JSON and then silently
        # runs nothing (DESIGN section 5), so it scans a copy without that key.
        del doc["terraform"]["required_version"]
        (scan / "cdk.tf.json").write_text(json.dumps(doc))
        # --skip-check on the command line replaces the config file's list, so it carries both.
        skips = (
            []
            if profile == "production"
            else ["--skip-check", ",".join([*_configured_skips(), *NON_PRODUCTION_SKIPS])]
        )
        running["checkov", profile] = _start(
            [
                str(CHECKOV_PYTHON), "-m", "checkov.main", "-f", "cdk.tf.json",
                "--framework", "terraform_json", "--skip-download",
                "--config-file", str(CHECKOV_CONFIG), "-o", "json", *skips,
            ],
            scan,
        )  # fmt: skip
    return {key: _finish(process) for key, process in running.items()}


def _checkov_report(gates, profile: str) -> dict:
    report = json.loads(gates["checkov", profile].stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("profile", VALIDATED_PROFILES)
def test_terraform_validate_offline(gates, profile):
    if ("validate", profile) not in gates:
        pytest.skip("terraform is not installed")
    result = gates["validate", profile]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success! The configuration is valid." in result.stdout


@pytest.mark.parametrize("profile", SCANNED_PROFILES)
def test_checkov_passes_every_profile_with_checks_actually_run(gates, profile):
    report = _checkov_report(gates, profile)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert report["summary"]["checkov_version"].startswith(CHECKOV_RELEASE)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100, "checkov ran (almost) no checks: did the JSON parse?"
    assert failed == []


def test_production_is_scanned_without_the_profile_skips(gates):
    command = gates["checkov", "production"].args
    assert "--skip-check" not in command
    assert "--skip-check" in gates["checkov", "dev"].args


def test_every_profile_skip_has_a_reason():
    for check, reason in NON_PRODUCTION_SKIPS.items():
        assert check.startswith("CKV") and len(reason) > 20


def test_every_checkov_skip_has_a_reason():
    lines = CHECKOV_CONFIG.read_text().splitlines()
    skips = [line for line in lines if re.match(r"^\s*-\s*CKV", line)]
    assert skips
    for line in skips:
        reason = line.partition("#")[2].strip()
        assert len(reason) > 20, f"skip without a reason: {line.strip()}"
