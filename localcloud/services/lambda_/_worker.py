"""One warm Lambda execution environment: a subprocess that runs one function's handler.

Started by ``localcloud.services.lambda_.runner`` with the function's environment already in
``os.environ`` and ``sys.path`` arguments for the extracted code and layers. It reads one JSON
request per line on stdin and writes one JSON reply per line on a private copy of the original
stdout; the handler's own ``print`` and logging go to stderr, which the parent forwards to the
local cloud's log.

Only the standard library is imported here before the handler: the handler must find its
dependencies in its own zip and layers, as it would in Lambda.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The attributes of Lambda's Python context object that handlers and Powertools read."""

    def __init__(self, request_id: str, deadline_ms: float, arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(error_type: str, message: str, exc: BaseException | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type}
    if exc is not None:
        # The first frame is this runtime's call into the handler; Lambda shows user frames only.
        tb = exc.__traceback__
        body["stackTrace"] = traceback.format_tb(tb.tb_next if tb else None)
    return body


def _load_handler(spec: str) -> Any:
    """Import ``module.path.function`` the way the Python runtime does, with its error types."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise _InitError(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack"
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise _InitError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler


def _load_chaos() -> Any:
    """``_chaos.py`` beside this file (``-I`` keeps this directory off ``sys.path``)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_chaos.py")
    spec = importlib.util.spec_from_file_location("_localcloud_chaos", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def main() -> None:
    # The protocol owns the real stdout; everything the handler prints goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    code_dir, *layer_dirs = sys.argv[1:]
    # Lambda puts the task root first, then /opt/python of the layers.
    sys.path[:0] = [code_dir, *layer_dirs]
    os.chdir(code_dir)
    handler_spec = os.environ["_HANDLER"]
    chaos = os.environ.pop("LOCALCLOUD_CHAOS", "")
    if chaos:
        _load_chaos().install(chaos)
    handler = None
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"], request["arn"])
        exit_after = False
        try:
            if handler is None:
                handler = _load_handler(handler_spec)
            result = handler(request["event"], context)
            try:
                reply = {"ok": True, "payload": json.dumps(result)}
            except (TypeError, ValueError) as exc:
                reply = {
                    "ok": False,
                    "payload": json.dumps(
                        _error(
                            "Runtime.MarshalError",
                            f"Unable to marshal response: {exc}",
                        )
                    ),
                }
        except _InitError as exc:
            # A failed init is retried by the next invocation in a fresh environment.
            reply = {"ok": False, "payload": json.dumps(_error(exc.error_type, str(exc)))}
            exit_after = True
        except Exception as exc:  # the runtime reports every handler error
            traceback.print_exc()
            reply = {
                "ok": False,
                "payload": json.dumps(_error(type(exc).__name__, str(exc), exc)),
            }
        except SystemExit as exc:
            reply = {
                "ok": False,
                "payload": json.dumps(
                    _error(
                        "Runtime.ExitError",
                        f"RequestId: {request['request_id']} "
                        f"Error: Runtime exited with error: exit status {exc.code}",
                    )
                ),
            }
            exit_after = True
        sys.stderr.flush()
        protocol.write(json.dumps({**reply, "exit": exit_after}) + "\n")
        if exit_after:
            return


if __name__ == "__main__":
    main()
