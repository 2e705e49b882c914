"""``up`` / ``down`` / ``status``: run the local cloud in the background and deploy the stack to it.

``up`` starts ``python -m localcloud serve`` (pid file and log in ``.local/``), waits until it
answers, creates the Terraform state bucket inside it, runs the pinned ``cdktf deploy`` against it
(real Terraform, real AWS provider, S3 backend with lock file) with the output streamed, first of
the account stack (``PAYMENTS_STACK=account``: what an account holds once per region, as the
README's "Once per account and region" prepares AWS), then of the environment, writes
``.local/outputs.json`` and returns when the API answers through the gateway. ``down`` stops the
process it started, by pid, and removes ``.local/``; everything deployed lived in that process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from localcloud.config import HOST, LOCAL_CREDENTIALS, REPO_ROOT, LocalCloudConfig, LocalCloudError

STACK = "payments"
# lib/account.py's ACCOUNT_STACK_NAME (tests/infra/test_account.py holds them equal); the local
# cloud does not import lib/, whose provider import costs seconds.
ACCOUNT_STACK = "payments-account"
DEFAULT_SUFFIX = "local"
DEFAULT_STATE_BUCKET = "payments-terraform-state-local"
START_TIMEOUT_SECONDS = 60
API_READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
# cdktf redraws a status footer with cursor movements; a log wants the resource lines only.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_SPINNER = re.compile(r"^[\u2800-\u28ff]\s*")
# Reads and refreshes of data sources and existing resources, and `terraform init`'s advice.
_LOG_ONLY = re.compile(
    r"Refreshing state\.\.\.|: Reading\.\.\.$|: Read complete after|"
    r"^(You may now begin|any changes that are required|should now work|If you ever set|"
    r"rerun this command|commands will detect)"
)
_PLAN_SUMMARY = re.compile(r"Plan: \d+ to add|No changes\.")
_STACK_PROGRESS = re.compile(r"^\d+ Stacks? deploying|^\d+ Stacks? destroying")


def _say(message: str) -> None:
    print(f"[localcloud] {message}", flush=True)


# -- process bookkeeping ------------------------------------------------------------------------


def _read_pid(config: LocalCloudConfig) -> int | None:
    try:
        return int(config.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int) -> bool:
    """The pid is alive and is a ``localcloud serve`` (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the pid file
    return b"localcloud" in cmdline and b"serve" in cmdline


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def http_get(url: str, timeout: float) -> int:
    """Status of a GET to one of the local cloud's own http:// URLs (errors raise)."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"not a local-cloud URL: {url}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - checked above
        return response.status


def _healthy(config: LocalCloudConfig) -> bool:
    try:
        return (
            http_get(f"{config.gateway_url}/_localcloud/health", 2) == 200
            and http_get(f"{config.endpoint_url}/moto-api/", 2) == 200
        )
    except (urllib.error.URLError, OSError):
        return False


def running_server(config: LocalCloudConfig) -> int | None:
    pid = _read_pid(config)
    if pid is not None and _is_our_server(pid):
        return pid
    return None


# -- the pieces of `up` ----------------------------------------------------------------------


def _start_server(config: LocalCloudConfig) -> int:
    for name, port in (
        ("LOCALCLOUD_PORT", config.port),
        ("LOCALCLOUD_GATEWAY_PORT", config.gateway_port),
    ):
        if _port_in_use(port):
            raise LocalCloudError(
                f"port {port} on {HOST} is in use by another program (not a local cloud started "
                f"from this checkout); stop it or choose another port with {name}=<port>"
            )
    config.state_dir.mkdir(parents=True, exist_ok=True)
    log = config.log_file.open("ab")
    env = {**os.environ, "LOCALCLOUD_STATE_DIR": str(config.state_dir)}
    process = subprocess.Popen(  # noqa: S603 - this interpreter running this package
        [
            sys.executable,
            "-m",
            "localcloud",
            "serve",
            "--port",
            str(config.port),
            "--gateway-port",
            str(config.gateway_port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # survives the terminal of `make local-up`
    )
    config.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = config.log_file.read_text(errors="replace")[-2000:]
            config.pid_file.unlink(missing_ok=True)
            raise LocalCloudError(f"the local cloud exited during start-up:\n{tail}")
        if _healthy(config):
            return process.pid
        time.sleep(0.3)
    raise LocalCloudError(
        f"the local cloud did not answer within {START_TIMEOUT_SECONDS}s; see {config.log_file}"
    )


def deploy_environment(config: LocalCloudConfig) -> dict[str, str]:
    """The environment of every Terraform/cdktf command that targets the local cloud."""
    env = {
        key: value
        for key, value in os.environ.items()
        # Real-account settings must not leak into a local deploy.
        if not key.startswith(("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"))
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": config.endpoint_url,
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "ENVIRONMENT_SUFFIX": os.environ.get("ENVIRONMENT_SUFFIX", "").strip()
            or DEFAULT_SUFFIX,
            # The suffix "local" names no profile, and the stack asks for one: the dev profile
            # unless the caller chose another.
            "ENVIRONMENT": os.environ.get("ENVIRONMENT", "").strip() or "dev",
            "TERRAFORM_STATE_BUCKET": os.environ.get("TERRAFORM_STATE_BUCKET", "").strip()
            or DEFAULT_STATE_BUCKET,
            "TERRAFORM_STATE_BUCKET_REGION": config.region,
            # The environment's stack; _deploy_account asks for the account stack by name.
            "PAYMENTS_STACK": "environment",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "CHECKPOINT_DISABLE": "1",
            "PIPENV_VENV_IN_PROJECT": "1",
            "PIPENV_VERBOSITY": "-1",
        }
    )
    rc = REPO_ROOT / "build" / "terraform.rc"
    if rc.is_file():
        env["TF_CLI_CONFIG_FILE"] = str(rc)
    elif not Path(env.get("TF_CLI_CONFIG_FILE", "")).is_file():
        raise LocalCloudError(
            "no Terraform CLI configuration for the provider mirror: run `make install` "
            "(it writes build/terraform.rc) or set TF_CLI_CONFIG_FILE"
        )
    return env


def _client(config: LocalCloudConfig, service: str) -> Any:
    import boto3

    return boto3.client(
        service, endpoint_url=config.endpoint_url, region_name=config.region, **LOCAL_CREDENTIALS
    )


def _create_state_bucket(config: LocalCloudConfig, bucket: str) -> None:
    s3 = _client(config, "s3")
    try:
        if config.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": config.region}
            )
    except s3.exceptions.BucketAlreadyOwnedByYou:
        return
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # As a state bucket should be (make preflight checks both).
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def _stream(command: list[str], env: dict[str, str], log_path: Path) -> None:
    """Run ``command``; echo its progress with the elapsed time and keep all of it in a log.

    The plan body (hundreds of lines for this stack) goes to the log only; the terminal gets the
    plan summary and every resource line of the apply.
    """
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        command,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    previous = ""
    in_plan = False
    with log_path.open("a", encoding="utf-8") as log:
        for raw in process.stdout:
            line = _SPINNER.sub("", _ANSI.sub("", raw)).strip()
            if not line or line == previous or _STACK_PROGRESS.match(line):
                continue
            previous = line
            log.write(line + "\n")
            if "Terraform will perform the following actions" in line:
                in_plan = True
                continue
            if in_plan:
                if not _PLAN_SUMMARY.search(line):
                    continue
                in_plan = False
            if _LOG_ONLY.search(line):
                continue
            elapsed = int(time.monotonic() - started)
            print(f"  {elapsed // 60:2d}:{elapsed % 60:02d} {line}", flush=True)
    if process.wait() != 0:
        raise LocalCloudError(
            f"`{' '.join(command)}` failed with exit code {process.returncode} "
            f"(full output in {log_path})"
        )


def stack_dir() -> Path:
    return REPO_ROOT / "cdktf.out" / "stacks" / STACK


def _deploy(config: LocalCloudConfig, env: dict[str, str]) -> dict[str, Any]:
    stack_outputs_file = config.state_dir / "stack-outputs.json"
    stack_outputs_file.unlink(missing_ok=True)
    command = [
        "npx",
        "--no-install",
        "cdktf",
        "deploy",
        STACK,
        "--auto-approve",
        "--no-color",
        # A missing lock entry would send `terraform providers lock` to the registry.
        "--skip-provider-lock",
        "--outputs-file",
        str(stack_outputs_file),
        "--outputs-file-include-sensitive-outputs",
    ]
    _stream(command, env, config.state_dir / "deploy.log")
    outputs = json.loads(stack_outputs_file.read_text())
    return outputs.get(STACK, outputs)


def _deploy_account(config: LocalCloudConfig, env: dict[str, str]) -> None:
    """The account stack, as an operator prepares an account before its first environment.

    Synthesized into a directory of its own so that it never shares ``cdktf.out`` with the
    environment; its state lives in the same bucket under the account's own key.
    """
    command = [
        "npx",
        "--no-install",
        "cdktf",
        "deploy",
        ACCOUNT_STACK,
        "--auto-approve",
        "--no-color",
        "--skip-provider-lock",
        "--output",
        str(config.state_dir / "cdktf-account.out"),
    ]
    _stream(command, {**env, "PAYMENTS_STACK": "account"}, config.state_dir / "deploy.log")


def _wait_for_api(url: str) -> None:
    deadline = time.monotonic() + API_READY_TIMEOUT_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            if http_get(f"{url}/health", 20) == 200:
                return
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}: {error.read()[:200]!r}"
        except (urllib.error.URLError, OSError) as error:
            last = error
        time.sleep(1)
    raise LocalCloudError(f"the API at {url} did not answer GET /health: {last}")


def write_outputs(config: LocalCloudConfig, stack_outputs: dict[str, Any], suffix: str) -> dict:
    stage = stack_outputs.get("stage_name") or suffix
    outputs = {
        "endpoint_url": config.endpoint_url,
        "gateway_url": config.gateway_url,
        "api_url": f"{config.gateway_url}/{stage}",
        "api_key": stack_outputs.get("api_key_value"),
        "region": config.region,
        "environment_suffix": suffix,
        "batch_bucket": stack_outputs.get("batch_bucket_name"),
        "stack_outputs": stack_outputs,
    }
    config.outputs_file.write_text(json.dumps(outputs, indent=2) + "\n")
    return outputs


def load_outputs(config: LocalCloudConfig | None = None) -> dict[str, Any]:
    config = config or LocalCloudConfig.from_env()
    try:
        return json.loads(config.outputs_file.read_text())
    except (OSError, ValueError) as error:
        raise LocalCloudError(
            f"{config.outputs_file} is missing; run `make local-up` first ({error})"
        ) from error


# -- commands ---------------------------------------------------------------------------------


def up(config: LocalCloudConfig) -> int:
    started = time.monotonic()
    steps: list[tuple[str, float]] = []
    pid = running_server(config)
    if pid is not None and _healthy(config):
        if config.outputs_file.is_file():
            outputs = load_outputs(config)
            _say(f"already up (pid {pid}): API {outputs['api_url']}, outputs {config.outputs_file}")
            return 0
        _say(f"already running (pid {pid}) without a finished deployment; deploying again")
    else:
        if pid is None and config.pid_file.exists():
            _say("removing the stale pid file of a local cloud that is no longer running")
            config.pid_file.unlink()
        _say(
            f"starting the local cloud: AWS endpoint {config.endpoint_url}, "
            f"REST gateway {config.gateway_url}"
        )
        pid = _start_server(config)
        steps.append(("start server", time.monotonic() - started))
        _say(f"local cloud running (pid {pid}, log {config.log_file})")

    env = deploy_environment(config)
    mark = time.monotonic()
    _create_state_bucket(config, env["TERRAFORM_STATE_BUCKET"])
    steps.append(("state bucket", time.monotonic() - mark))
    _say(f"deploying stack '{ACCOUNT_STACK}' (once per account and region) with `cdktf deploy`")
    mark = time.monotonic()
    _deploy_account(config, env)
    steps.append(("account stack", time.monotonic() - mark))
    _say(
        f"deploying stack '{STACK}' (suffix {env['ENVIRONMENT_SUFFIX']}) with `cdktf deploy`; "
        "SQS queues take ~25 s and the S3 lifecycle rule ~55 s to create"
    )
    mark = time.monotonic()
    stack_outputs = _deploy(config, env)
    steps.append(("cdktf deploy", time.monotonic() - mark))
    outputs = write_outputs(config, stack_outputs, env["ENVIRONMENT_SUFFIX"])
    mark = time.monotonic()
    _wait_for_api(outputs["api_url"])
    steps.append(("API answers", time.monotonic() - mark))
    total = time.monotonic() - started
    _say(f"up in {total:.0f}s (" + ", ".join(f"{name} {sec:.0f}s" for name, sec in steps) + ")")
    _say(f"API {outputs['api_url']}  (x-api-key in {config.outputs_file})")
    _say(f"batch bucket s3://{outputs['batch_bucket']} at {config.endpoint_url}")
    return 0


def down(config: LocalCloudConfig) -> int:
    pid = running_server(config)
    if pid is None:
        _say("not running")
    else:
        _say(f"stopping the local cloud (pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and _is_our_server(pid):
            time.sleep(0.2)
        if _is_our_server(pid):
            _say(f"pid {pid} did not stop within {STOP_TIMEOUT_SECONDS}s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if config.state_dir.exists():
        _remove_tree(config.state_dir)
        _say(f"removed {config.state_dir}")
    return 0


def _remove_tree(path: Path) -> None:
    """Remove ``path``; a Lambda worker still exiting may delete files of its own under it
    meanwhile (its runtime directory, bytecode), which must not fail the removal."""

    def gone_already(function: Any, name: str, exc_info: Any) -> None:
        if not issubclass(exc_info[0], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=gone_already)


def status(config: LocalCloudConfig) -> int:
    """Exit 0 when up (server healthy and deployed), 3 when not, like ``systemctl status``."""
    pid = running_server(config)
    if pid is None:
        _say("down")
        return 3
    healthy = _healthy(config)
    deployed = config.outputs_file.is_file()
    _say(
        f"pid {pid}, {'healthy' if healthy else 'NOT answering'}, "
        f"{'deployed' if deployed else 'no deployment yet'}"
    )
    if deployed:
        outputs = load_outputs(config)
        _say(f"API {outputs['api_url']}; AWS endpoint {outputs['endpoint_url']}")
    return 0 if healthy and deployed else 3
