"""Where the local cloud listens and keeps its state; read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 4566
DEFAULT_GATEWAY_PORT = 4567
DEFAULT_REGION = "us-east-1"
HOST = "127.0.0.1"
# moto accepts any credentials; these keep SDKs from looking for real ones.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class LocalCloudError(RuntimeError):
    """A problem the user can fix; the CLI prints the message without a traceback."""


def _scale(env: dict[str, str] | os._Environ[str], name: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1000:
        raise LocalCloudError(f"{name}={raw!r} must be a number greater than 0 (e.g. 0.01)")
    return value


def _port(env: dict[str, str] | os._Environ[str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
        raise LocalCloudError(f"{name}={raw!r} must be a port number between 1024 and 65535")
    return int(raw)


@dataclass(frozen=True, kw_only=True)
class LocalCloudConfig:
    port: int = DEFAULT_PORT
    gateway_port: int = DEFAULT_GATEWAY_PORT
    region: str = DEFAULT_REGION
    state_dir: Path = REPO_ROOT / ".local"
    # Multiplies the period of every rate(...) schedule (LOCALCLOUD_SCHEDULE_SCALE).
    schedule_scale: float = 1.0

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.gateway_port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "localcloud.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "localcloud.log"

    @property
    def function_logs_file(self) -> Path:
        """Every line the functions logged (localcloud.services.lambda_.functions.LogExport)."""
        return self.state_dir / "function-logs.log"

    @property
    def outputs_file(self) -> Path:
        return self.state_dir / "outputs.json"

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] | None = None) -> LocalCloudConfig:
        env = os.environ if env is None else env
        port = _port(env, "LOCALCLOUD_PORT", DEFAULT_PORT)
        gateway_port = _port(env, "LOCALCLOUD_GATEWAY_PORT", DEFAULT_GATEWAY_PORT)
        if port == gateway_port:
            raise LocalCloudError(
                f"LOCALCLOUD_PORT and LOCALCLOUD_GATEWAY_PORT are both {port}; they must differ"
            )
        region = env.get("AWS_REGION", "").strip() or DEFAULT_REGION
        state_dir = Path(env.get("LOCALCLOUD_STATE_DIR", "").strip() or REPO_ROOT / ".local")
        return cls(
            port=port,
            gateway_port=gateway_port,
            region=region,
            state_dir=state_dir,
            schedule_scale=_scale(env, "LOCALCLOUD_SCHEDULE_SCALE"),
        )
