"""Lambda provisioned concurrency, which moto has no route for."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def provisioned_concurrency() -> None:
    """Answer the provisioned-concurrency calls on a version or alias.

    moto has no route for ``/functions/{name}/provisioned-concurrency``. Here a config is kept per
    function and qualifier and is ``READY`` at once with everything requested allocated (the local
    runner has no execution environments to pre-initialize). Checked as Lambda does: the qualifier
    must name a published version or an alias, never ``$LATEST``; the function and the qualifier
    must exist; at least 1 execution; the function's configs together must stay within its
    reserved concurrency, when it has one.
    """
    import moto.awslambda.urls as urls
    from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
    from moto.awslambda.responses import LambdaResponse

    lock = threading.Lock()
    path = r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)/provisioned-concurrency/?$"  # noqa: E501
    urls.url_paths = {**urls.url_paths, path: LambdaResponse.dispatch}

    class NotFound(LambdaClientError):
        code = 404

        def __init__(self) -> None:
            super().__init__(
                "ProvisionedConcurrencyConfigNotFoundException",
                "No Provisioned Concurrency Config found for this function",
            )

    def configs(backend: Any) -> dict[tuple[str, str], dict[str, Any]]:
        if not hasattr(backend, "_localcloud_provisioned"):
            backend._localcloud_provisioned = {}
        return backend._localcloud_provisioned

    def target(response: LambdaResponse, *, required: bool = True) -> tuple[Any, str | None]:
        name = unquote(response.path.rstrip("/").rsplit("/", 2)[-2])
        qualifier = response.querystring.get("Qualifier", [None])[0]
        function = response.backend.get_function(name)  # ResourceNotFoundException if missing
        if qualifier is None and not required:
            return function, None
        if not qualifier or qualifier == "$LATEST":
            raise InvalidParameterValueException(
                "Provisioned Concurrency Configs cannot be applied to unpublished function "
                "versions ($LATEST); name a published version or an alias in Qualifier."
            )
        response.backend.get_function(name, qualifier)  # the version or alias must exist
        return function, qualifier

    def view(function: Any, qualifier: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"FunctionArn": f"{function.function_arn}:{qualifier}", **config}

    def put_provisioned_concurrency_config(self: LambdaResponse) -> tuple[int, dict, str]:
        function, qualifier = target(self)
        requested = self.json_body.get("ProvisionedConcurrentExecutions")
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InvalidParameterValueException(
                "ProvisionedConcurrentExecutions must be an integer of at least 1."
            )
        with lock:
            held = configs(self.backend)
            others = sum(
                c["RequestedProvisionedConcurrentExecutions"]
                for (arn, q), c in held.items()
                if arn == function.function_arn and q != qualifier
            )
            reserved = function.reserved_concurrency
            if reserved is not None and others + requested > int(reserved):
                raise InvalidParameterValueException(
                    f"Requested Provisioned Concurrency ({others + requested} for the function) "
                    f"should not be greater than the reservedConcurrentExecution ({reserved}) "
                    "for function"
                )
            config = {
                "RequestedProvisionedConcurrentExecutions": requested,
                "AvailableProvisionedConcurrentExecutions": requested,
                "AllocatedProvisionedConcurrentExecutions": requested,
                "Status": "READY",
                "LastModified": _now(),
            }
            held[(function.function_arn, qualifier)] = config
        return 202, {"status": 202}, json.dumps(config)

    def get_provisioned_concurrency_config(self: LambdaResponse) -> tuple[int, dict, str]:
        function, qualifier = target(self, required=False)
        with lock:
            held = configs(self.backend)
            if qualifier is None:  # ListProvisionedConcurrencyConfigs (same path, List=ALL)
                listed = [
                    view(function, q, c)
                    for (arn, q), c in sorted(held.items())
                    if arn == function.function_arn
                ]
                return 200, {}, json.dumps({"ProvisionedConcurrencyConfigs": listed})
            config = held.get((function.function_arn, qualifier))
        if config is None:
            raise NotFound()
        return 200, {}, json.dumps(config)

    def delete_provisioned_concurrency_config(self: LambdaResponse) -> tuple[int, dict, str]:
        function, qualifier = target(self)
        with lock:
            if configs(self.backend).pop((function.function_arn, qualifier), None) is None:
                raise NotFound()
        return 204, {"status": 204}, ""

    LambdaResponse.put_provisioned_concurrency_config = put_provisioned_concurrency_config
    LambdaResponse.get_provisioned_concurrency_config = get_provisioned_concurrency_config
    LambdaResponse.list_provisioned_concurrency_configs = get_provisioned_concurrency_config
    LambdaResponse.delete_provisioned_concurrency_config = delete_provisioned_concurrency_config
