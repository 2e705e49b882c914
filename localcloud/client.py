"""A small client of a running local cloud, shared by ``scripts/demo.py`` and ``tests/e2e``.

It reads ``.local/outputs.json`` (written by ``up``), talks to the REST API through the gateway
over real HTTP and to S3/SSM/Lambda through the local cloud's AWS endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localcloud.config import HOST, LOCAL_CREDENTIALS, REPO_ROOT, LocalCloudConfig
from localcloud.deploy import load_outputs
from localcloud.gateway import lambda_function_arn


def _runtime_env_names() -> Any:
    """``lambda/payments/env.py``, the one definition of the functions' variable names.

    Loaded by path: importing the ``payments`` package would pull in the whole runtime.
    """
    spec = importlib.util.spec_from_file_location(
        "_payments_env", REPO_ROOT / "lambda" / "payments" / "env.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class LocalCloud:
    def __init__(self, config: LocalCloudConfig | None = None) -> None:
        self.config = config or LocalCloudConfig.from_env()
        self.outputs = load_outputs(self.config)
        self.api_url: str = self.outputs["api_url"]
        self.api_key: str = self.outputs["api_key"]
        self.batch_bucket: str = self.outputs["batch_bucket"]
        self.stack: dict[str, Any] = self.outputs["stack_outputs"]

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.outputs["endpoint_url"],
            region_name=self.outputs["region"],
            **LOCAL_CREDENTIALS,
        )

    # -- REST API through the gateway ---------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        api_key: str | bool | None = True,
    ) -> HttpResponse:
        """``api_key``: True = the deployed key, a string = that key, None/False = no header."""
        url = self.api_url + path
        if not url.startswith(f"http://{HOST}:"):
            raise ValueError(f"not a local-cloud URL: {url}")
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        all_headers = {"content-type": "application/json", **(headers or {})}
        if api_key is True:
            all_headers["x-api-key"] = self.api_key
        elif isinstance(api_key, str):
            all_headers["x-api-key"] = api_key
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310 - checked above
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return HttpResponse(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, dict(error.headers), error.read())

    # -- fraud webhook ------------------------------------------------------------------------
    def webhook_secret(self) -> bytes:
        """The HMAC secret, read from the SSM parameter the API function is configured with."""
        api_function = self._api_function_arn()
        variables = (
            self.client("lambda")
            .get_function_configuration(FunctionName=api_function)
            .get("Environment", {})
            .get("Variables", {})
        )
        name = variables[_runtime_env_names().WEBHOOK_SECRET_PARAMETER]
        parameter = self.client("ssm").get_parameter(Name=name, WithDecryption=True)
        return parameter["Parameter"]["Value"].encode()

    def _api_function_arn(self) -> str:
        """The Lambda behind the REST API, from the API's own integrations."""
        apigateway = self.client("apigateway")
        resources = apigateway.get_resources(
            restApiId=self.stack["api_id"], limit=500, embed=["methods"]
        )
        for resource in resources["items"]:
            for method in (resource.get("resourceMethods") or {}).values():
                uri = (method.get("methodIntegration") or {}).get("uri") or ""
                if "/functions/" in uri:
                    return lambda_function_arn(uri)
        raise LookupError("the REST API has no Lambda integration")

    def signed_webhook(
        self, payload: dict[str, Any], secret: bytes | None = None, *, at: int | None = None
    ) -> HttpResponse:
        """POST /fraud-webhook signed as the provider signs: ``X-Signature: t=<unix>,v1=<hex>``,
        the HMAC-SHA256 of ``"<t>.<body>"`` (``at`` overrides the time, e.g. to go stale)."""
        raw = json.dumps(payload).encode()
        return self.request(
            "POST", "/fraud-webhook", raw=raw, headers={"X-Signature": self.sign(raw, secret, at)}
        )

    def sign(self, raw: bytes, secret: bytes | None = None, at: int | None = None) -> str:
        timestamp = int(time.time()) if at is None else at
        key = (
            secret or self.webhook_secret().split(b",")[0]
        )  # "current,previous": sign with current
        digest = hmac.new(key, f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    # -- S3 -----------------------------------------------------------------------------------
    def upload_batch(self, batch_id: str, content: bytes) -> str:
        response = self.client("s3").put_object(
            Bucket=self.batch_bucket, Key=f"incoming/{batch_id}.csv", Body=content
        )
        return response.get("VersionId", "")


def wait_for(
    check: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.5,
    what: str = "condition",
    progress: Callable[[Any, float], None] | None = None,
) -> Any:
    """Poll ``check`` until it returns something truthy; raise ``TimeoutError`` with ``what``."""
    started = time.monotonic()
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        elapsed = time.monotonic() - started
        if progress:
            progress(last, elapsed)
        if elapsed > timeout:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)
