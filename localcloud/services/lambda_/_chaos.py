"""Chaos mode of a Lambda worker (``LOCALCLOUD_CHAOS``): fail some of the function's AWS calls.

Loaded by ``_worker.py`` (standard library and botocore only, like the worker) when the local
cloud runs with ``LOCALCLOUD_CHAOS=faults=0.05,kills=0.002[,seed=7]``. Every AWS call a handler
makes then fails with probability ``faults``, the failure drawn evenly from:

- a throttle (``ThrottlingException``, HTTP 400), as if the SDK's own retries ran out;
- a server error (``InternalServerError``, HTTP 500), likewise;
- a timeout *after the call took effect*: the request reaches the local cloud and commits, and
  the handler gets ``ReadTimeoutError``, so a write it will retry already happened.

With probability ``kills`` per call the worker process dies on the spot (before or after the
call, as a crash can), like a Lambda environment lost mid-invocation; the runner reports it as
Lambda does and starts a fresh one. The faults sit at the handler's side of the SDK: retries
inside the SDK would hide most of them, and what is under test is what the platform does when an
AWS call fails for good.
"""

from __future__ import annotations

import os
import random
from typing import Any

ENV = "LOCALCLOUD_CHAOS"
THROTTLE, SERVER_ERROR, TIMEOUT_AFTER_COMMIT = "throttle", "500", "timeout-after-commit"


def parse(text: str) -> dict[str, float]:
    """``faults=0.05,kills=0.002,seed=7`` -> {"faults": 0.05, "kills": 0.002, "seed": 7.0}."""
    settings = {"faults": 0.0, "kills": 0.0}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in ("faults", "kills", "seed"):
            raise ValueError(f"{ENV}: unknown setting {name!r} (faults, kills, seed)")
        number = float(value)
        if name != "seed" and not 0 <= number <= 1:
            raise ValueError(f"{ENV}: {name} must be a fraction from 0 to 1, not {value!r}")
        settings[name] = number
    return settings


def install(text: str) -> None:
    """Wrap every botocore client call of this process."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError, ReadTimeoutError

    settings = parse(text)
    seed = settings.get("seed")
    rng = random.Random(None if seed is None else int(seed) + os.getpid())  # noqa: S311 - faults, not secrets
    original = BaseClient._make_api_call

    def chaotic(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        kill = rng.random() < settings["kills"] and rng.choice(("before", "after"))
        if kill == "before":
            os._exit(137)
        fault = None
        if rng.random() < settings["faults"]:
            fault = rng.choice((THROTTLE, SERVER_ERROR, TIMEOUT_AFTER_COMMIT))
        if fault == THROTTLE:
            raise ClientError(_error("ThrottlingException", 400), operation_name)
        if fault == SERVER_ERROR:
            raise ClientError(_error("InternalServerError", 500), operation_name)
        try:
            result = original(self, operation_name, api_params)
        finally:
            if kill == "after":
                os._exit(137)  # the call took effect (or failed), then the process died
        if fault == TIMEOUT_AFTER_COMMIT:
            raise ReadTimeoutError(endpoint_url=self.meta.endpoint_url)
        return result

    BaseClient._make_api_call = chaotic  # type: ignore[method-assign]


def _error(code: str, status: int) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": f"chaos: injected {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
    }
