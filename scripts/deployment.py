"""Which deployment an operator script talks to: the local cloud when its ``outputs.json`` is
there (in ``.local/`` by default) and no table names are exported, else AWS as configured."""

from __future__ import annotations

import json
import os
from typing import Any

from payments import env


def local_outputs() -> dict[str, Any] | None:
    """The local cloud's stack outputs, with this process's AWS environment pointed at it; None
    when the target is AWS."""
    from localcloud.config import LOCAL_CREDENTIALS, LocalCloudConfig

    outputs_file = LocalCloudConfig.from_env().outputs_file
    if os.environ.get(env.PAYMENTS_TABLE) or os.environ.get(env.AUDIT_LOG_TABLE):
        return None
    if not outputs_file.is_file():
        return None
    outputs = json.loads(outputs_file.read_text())
    os.environ["AWS_ENDPOINT_URL"] = outputs["endpoint_url"]
    os.environ["AWS_DEFAULT_REGION"] = outputs["region"]
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ[name.upper()] = value
    return {**outputs["stack_outputs"], "endpoint_url": outputs["endpoint_url"]}
