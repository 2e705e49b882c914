"""Run moto's Lambda functions in-process from the ``lambda/`` source (DESIGN section 5).

moto's Docker-backed Lambda model stays; only ``LambdaFunction._invoke_lambda``, the one method
that would start a container, is replaced: it imports the function's handler and calls it with
the function's environment variables, returning what the Lambda runtime would (the result, or
``{"errorType", "errorMessage"}`` with the error flag so Step Functions sees the error name).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from tests.functional.world import LambdaContext

_lock = threading.Lock()
invocations: list[tuple[str, str]] = []


def _invoke_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
    from handlers import common

    if isinstance(event, str | bytes):
        event = json.loads(event or "{}")
    module_name, function_name = self.handler.rsplit(".", 1)
    with _lock:  # os.environ is process-wide: one invocation at a time
        saved = dict(os.environ)
        os.environ.update(self.environment_vars or {})
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = self.function_name
        common.settings.cache_clear()
        try:
            handler = getattr(importlib.import_module(module_name), function_name)
            invocations.append((self.function_name, (event or {}).get("task", "")))
            result = handler(event, LambdaContext(function_name=self.function_name))
            return json.dumps(result, default=str), False, ""
        except Exception as exc:  # what the Lambda runtime reports for an unhandled error
            payload = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return json.dumps(payload), True, ""
        finally:
            os.environ.clear()
            os.environ.update(saved)
            common.settings.cache_clear()


@contextmanager
def in_process_lambdas() -> Iterator[None]:
    with mock.patch("moto.awslambda.models.LambdaFunction._invoke_lambda", _invoke_in_process):
        yield


def code_zip() -> bytes:
    """A placeholder deployment package: the runner imports from ``lambda/`` instead."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handlers/__init__.py", "")
    return buffer.getvalue()
