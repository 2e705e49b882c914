"""`python main.py` with bad configuration: exit code 2, one line naming the variable, no trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = {
    "unknown profile": ({"ENVIRONMENT": "prod"}, ["ENVIRONMENT=", "dev, staging, production"]),
    "upper-case suffix": ({"ENVIRONMENT_SUFFIX": "Team_A"}, ["ENVIRONMENT_SUFFIX="]),
    "suffix too long for bucket names": ({"ENVIRONMENT_SUFFIX": "a" * 21}, ["ENVIRONMENT_SUFFIX="]),
    "state bucket without any region": (
        {"TERRAFORM_STATE_BUCKET": "team-state"},
        ["TERRAFORM_STATE_BUCKET_REGION", "AWS_REGION"],
    ),
    "state region without a bucket": (
        {"TERRAFORM_STATE_BUCKET_REGION": "us-east-1"},
        ["TERRAFORM_STATE_BUCKET"],
    ),
    "malformed state bucket": (
        {"TERRAFORM_STATE_BUCKET": "Team_State", "AWS_REGION": "us-east-1"},
        ["TERRAFORM_STATE_BUCKET="],
    ),
    "malformed region": ({"AWS_REGION": "mars-1"}, ["AWS_REGION="]),
    "unknown stack": ({"PAYMENTS_STACK": "shared"}, ["PAYMENTS_STACK=", "environment, account"]),
    "a suffix that names no profile, without ENVIRONMENT": (
        {"ENVIRONMENT_SUFFIX": "prod"},
        ["ENVIRONMENT is required", "ENVIRONMENT_SUFFIX='prod'", "dev, staging, production"],
    ),
    "staging without its key administrator": (
        {"ENVIRONMENT": "staging"},
        ["KMS_ADMIN_ROLE_ARN is required for the staging profile"],
    ),
    "production without anyone to page": (
        {"ENVIRONMENT": "production", "KMS_ADMIN_ROLE_ARN": "arn:aws:iam::123456789012:role/x"},
        ["ALARM_SUBSCRIPTIONS is required for the production profile"],
    ),
    "a malformed alarm subscription": (
        {"ALARM_SUBSCRIPTIONS": "pager:oncall"},
        ["ALARM_SUBSCRIPTIONS entry 'pager:oncall'"],
    ),
    "a runbook URL with a fragment": (
        {"RUNBOOK_URL": "https://wiki.example.com/runbook#top"},
        ["RUNBOOK_URL="],
    ),
    "a profile change naming another profile": (
        {"ALLOW_PROFILE_CHANGE": "production"},
        ["ALLOW_PROFILE_CHANGE='production'", "(dev)"],
    ),
    "production beyond a low-quota region's API throttle": (
        {"ENVIRONMENT": "production", "AWS_REGION": "eu-south-1"},
        ["API_GATEWAY_ACCOUNT_RATE_LIMIT"],
    ),
}
_INHERITED = ("PATH", "HOME", "LANG", "SYSTEMROOT")
# A real process pays the ~5 s provider load before it reads the environment, so one case runs
# as a real `python main.py` process (exit code, stderr, no traceback) and every case runs
# through main.main() in-process.
SUBPROCESS_CASES = ("state bucket without any region",)
_SETTINGS_VARS = (
    "ENVIRONMENT", "ENVIRONMENT_SUFFIX", "AWS_REGION", "TERRAFORM_STATE_BUCKET",
    "TERRAFORM_STATE_BUCKET_REGION", "AWS_ENDPOINT_URL", "CORS_ALLOWED_ORIGIN", "PAYMENTS_STACK",
    "API_GATEWAY_ACCOUNT_RATE_LIMIT", "API_GATEWAY_ACCOUNT_BURST_LIMIT",
    "LAMBDA_ACCOUNT_CONCURRENCY", "KMS_ADMIN_ROLE_ARN", "ALLOW_PROFILE_CHANGE",
    "ALARM_SUBSCRIPTIONS", "RUNBOOK_URL",
)  # fmt: skip


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    base = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    base["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    processes = {
        name: subprocess.Popen(
            [sys.executable, "main.py"],
            cwd=ROOT,
            env=base | CASES[name][0],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in SUBPROCESS_CASES
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(
            process.args, process.returncode, stdout, stderr
        )
    return results


def _assert_one_clear_line(case: str, returncode: int, stdout: str, stderr: str) -> None:
    assert returncode == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for expected in CASES[case][1]:
        assert expected in lines[0]
    assert stdout == ""


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_main_process_exits_2_with_one_line_and_no_traceback(runs, case):
    result = runs[case]
    _assert_one_clear_line(case, result.returncode, result.stdout, result.stderr)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_stops_synth_with_one_clear_line(monkeypatch, capsys, case):
    import main

    for name in _SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in CASES[case][0].items():
        monkeypatch.setenv(name, value)
    returncode = main.main()
    captured = capsys.readouterr()
    _assert_one_clear_line(case, returncode, captured.out, captured.err)
