"""Running an operator script (scripts/<name>.py) the way `make <target>` does, aimed at the
local cloud: no AWS target in its environment, so it finds the running local cloud itself."""

from __future__ import annotations

import os
import subprocess
import sys

from localcloud.config import REPO_ROOT


def operator_command(
    script: str, *args: str, extra: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    env |= {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", **(extra or {})}
    return subprocess.run(
        [sys.executable, f"scripts/{script}.py", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=timeout,
    )  # fmt: skip
