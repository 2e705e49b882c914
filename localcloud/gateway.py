"""A local API Gateway (REST, v1) that serves the API Terraform deployed into moto. It is
one idea: the API as deployed and the requests served against it share every type and change
together, so they stay in one module.

There is no route table here: the gateway reads the REST APIs, resources, methods, integrations,
stages, request validators and models, gateway responses, API keys and usage plans from the local
cloud through the API Gateway API and re-reads them when a deployment, key or usage plan changes.

URLs: ``http://127.0.0.1:<port>/<stage>/<path>`` when one API has that stage (the usual case), or
``http://127.0.0.1:<port>/restapis/<api-id>/<stage>/_user_request_/<path>`` to name the API.

What it does as API Gateway does: path templates with ``{param}`` and ``{proxy+}``, ``ANY``,
``x-api-key`` against enabled keys of a usage plan bound to the stage, the key's usage plan
(throttle: ``burstLimit`` requests at once, refilled at ``rateLimit`` per second; quota: ``limit``
per UTC day, week or month; ``THROTTLED`` / ``QUOTA_EXCEEDED`` 429s), request-body validation
against the method's JSON-schema model, ``MOCK`` integrations (CORS preflight), Lambda proxy
integration (event format v1, the function invoked through the local cloud's Lambda), proxy
responses, gateway responses the API customises. What it does not: IAM or custom authorizers,
stage and method throttling, a quota's offset, caching, non-proxy integration templates beyond
MOCK.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
from botocore.config import Config

from localcloud.config import LOCAL_CREDENTIALS

log = logging.getLogger("localcloud.gateway")

# How often a request may trigger a check for a new deployment, key or usage plan.
REFRESH_INTERVAL_SECONDS = 1.0
# API Gateway's maximum integration timeout.
INTEGRATION_TIMEOUT_SECONDS = 29
# API Gateway's payload limit: a larger body is refused (413) before anything else looks at it.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

# Default gateway responses: (status, message) as API Gateway sends them.
DEFAULT_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
    "BAD_REQUEST_PARAMETERS": (400, "Missing required request parameters"),
    "INTEGRATION_FAILURE": (500, "Internal server error"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported Media Type"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "THROTTLED": (429, "Too Many Requests"),
    "QUOTA_EXCEEDED": (429, "Limit Exceeded"),
    # A Lambda proxy function that failed or answered malformed: 502, as the DEFAULT_5XX type.
    "DEFAULT_5XX": (502, "Internal server error"),
}
# Which DEFAULT_4XX / DEFAULT_5XX response a type falls back to.
_FAMILY = {status // 100: f"DEFAULT_{status // 100}XX" for status, _ in DEFAULT_RESPONSES.values()}


@dataclass
class Route:
    resource_id: str
    path: str  # the template, e.g. /payments/{payment_id}
    pattern: re.Pattern[str]
    literal_segments: int
    methods: dict[str, dict[str, Any]]


@dataclass
class Api:
    id: str
    name: str
    stages: dict[str, dict[str, Any]]
    routes: list[Route]
    binary_media_types: list[str]
    validators: dict[str, dict[str, Any]]
    models: dict[str, Any]
    gateway_responses: dict[str, dict[str, Any]]
    # API key value -> key id for enabled keys of a usage plan, per stage.
    keys_by_stage: dict[str, dict[str, str]] = field(default_factory=dict)
    # Key id -> its usage plan (as GetUsagePlans returns it), per stage.
    plans_by_stage: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


class UsagePlanLimits:
    """Each key's usage plan as API Gateway applies it: a token bucket of ``burstLimit`` tokens
    refilled at ``rateLimit`` per second, and a count per quota period (UTC day, ISO week or
    month). It outlives reloads of the API model, as a plan's counters outlive a deployment."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._used: dict[tuple[str, str, str], int] = {}

    def admit(self, plan: dict[str, Any], key_id: str, now: datetime | None = None) -> str | None:
        """None when the request may go on, else the gateway response type refusing it."""
        key = (plan["id"], key_id)
        quota = plan.get("quota") or {}
        period = _quota_period(quota.get("period"), now or datetime.now(UTC))
        throttle = plan.get("throttle") or {}
        with self._lock:
            used = self._used.get((*key, period), 0)
            if quota.get("limit") is not None and used >= int(quota["limit"]):
                return "QUOTA_EXCEEDED"
            if throttle.get("rateLimit") is not None or throttle.get("burstLimit") is not None:
                # API Gateway needs both; a plan that sets one only is limited by it alone.
                burst = float(throttle.get("burstLimit") or max(throttle.get("rateLimit") or 1, 1))
                rate = float(throttle.get("rateLimit") or burst)
                at = self._clock()
                tokens, then = self._buckets.get(key, (burst, at))
                tokens = min(burst, tokens + (at - then) * rate)
                if tokens < 1:
                    self._buckets[key] = (tokens, at)
                    return "THROTTLED"
                self._buckets[key] = (tokens - 1, at)
            if quota.get("limit") is not None:
                self._used[(*key, period)] = used + 1
        return None


def _quota_period(period: str | None, now: datetime) -> str:
    if period == "WEEK":
        # With offset 0 a week starts on Sunday (the usage plan's QuotaSettings).
        sunday = now.date() - timedelta(days=(now.weekday() + 1) % 7)
        return f"week of {sunday.isoformat()}"
    if period == "MONTH":
        return now.strftime("%Y-%m")
    return now.strftime("%Y-%m-%d")


def _compile_path(template: str) -> tuple[re.Pattern[str], int]:
    parts = []
    literal = 0
    for segment in template.strip("/").split("/"):
        if not segment:
            continue
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        param = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif param:
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
        else:
            literal += 1
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$"), literal


class ApiModel:
    """The deployed APIs as read from the local cloud, refreshed when they change."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self._client = boto3.client(
            "apigateway",
            endpoint_url=endpoint_url,
            region_name=region,
            **LOCAL_CREDENTIALS,
            config=Config(retries={"max_attempts": 2}),
        )
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._signature: Any = None
        self.apis: dict[str, Api] = {}

    def current(self) -> dict[str, Api]:
        with self._lock:
            if time.monotonic() - self._checked_at >= REFRESH_INTERVAL_SECONDS:
                self._checked_at = time.monotonic()
                signature = self._read_signature()
                if signature != self._signature:
                    self.apis = self._load()
                    self._signature = signature
                    log.info(
                        "API model loaded: %s",
                        ", ".join(
                            f"{a.name} ({a.id}) stages {list(a.stages)}" for a in self.apis.values()
                        )
                        or "no APIs",
                    )
            return self.apis

    def _read_signature(self) -> Any:
        c = self._client
        apis = c.get_rest_apis(limit=500)["items"]
        stages = [
            (s["stageName"], s.get("deploymentId"), str(s.get("lastUpdatedDate")))
            for api in apis
            for s in c.get_stages(restApiId=api["id"])["item"]
        ]
        keys = [(k["id"], k["enabled"]) for k in c.get_api_keys(limit=500)["items"]]
        plans = [
            (
                p["id"],
                json.dumps(p.get("apiStages", []), sort_keys=True),
                # A change of limits only is a change too.
                json.dumps([p.get("throttle"), p.get("quota")], sort_keys=True, default=str),
                tuple(sorted(k["id"] for k in c.get_usage_plan_keys(usagePlanId=p["id"])["items"])),
            )
            for p in c.get_usage_plans(limit=500)["items"]
        ]
        return ([(a["id"], str(a.get("createdDate"))) for a in apis], stages, keys, plans)

    def _load(self) -> dict[str, Api]:
        c = self._client
        keys = {k["id"]: k for k in c.get_api_keys(limit=500, includeValues=True)["items"]}
        plans = c.get_usage_plans(limit=500)["items"]
        apis: dict[str, Api] = {}
        for item in c.get_rest_apis(limit=500)["items"]:
            api_id = item["id"]
            routes = []
            for resource in c.get_resources(restApiId=api_id, limit=500, embed=["methods"])[
                "items"
            ]:
                pattern, literal = _compile_path(resource["path"])
                routes.append(
                    Route(
                        resource_id=resource["id"],
                        path=resource["path"],
                        pattern=pattern,
                        literal_segments=literal,
                        methods=resource.get("resourceMethods") or {},
                    )
                )
            # API Gateway prefers the most specific template: more literal segments first,
            # greedy {proxy+} last.
            routes.sort(key=lambda r: ("+}" in r.path, -r.literal_segments, -len(r.path)))
            api = Api(
                id=api_id,
                name=item.get("name", ""),
                stages={s["stageName"]: s for s in c.get_stages(restApiId=api_id)["item"]},
                routes=routes,
                binary_media_types=item.get("binaryMediaTypes") or [],
                validators={
                    v["id"]: v for v in c.get_request_validators(restApiId=api_id)["items"]
                },
                models={
                    m["name"]: m.get("schema")
                    for m in c.get_models(restApiId=api_id, limit=500)["items"]
                },
                gateway_responses={
                    r["responseType"]: r for r in c.get_gateway_responses(restApiId=api_id)["items"]
                },
            )
            for plan in plans:
                plan_keys = c.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
                for stage in plan.get("apiStages", []):
                    if stage.get("apiId") != api_id:
                        continue
                    bucket = api.keys_by_stage.setdefault(stage.get("stage", ""), {})
                    stage_plans = api.plans_by_stage.setdefault(stage.get("stage", ""), {})
                    for plan_key in plan_keys:
                        key = keys.get(plan_key["id"])
                        if key and key.get("enabled") and key.get("value"):
                            bucket[key["value"]] = key["id"]
                            stage_plans[key["id"]] = plan
            apis[api_id] = api
        return apis


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Gateway:
    def __init__(self, *, host: str, port: int, endpoint_url: str, region: str) -> None:
        self.model = ApiModel(endpoint_url, region)
        self.limits = UsagePlanLimits()
        self.region = region
        self._lambda = boto3.client(
            "lambda",
            endpoint_url=endpoint_url,
            region_name=region,
            **LOCAL_CREDENTIALS,
            config=Config(
                retries={"max_attempts": 0},
                read_timeout=INTEGRATION_TIMEOUT_SECONDS,
                connect_timeout=5,
            ),
        )
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def version_string(self) -> str:
                return "localcloud-gateway"

            def _serve(self) -> None:
                raw_length = (self.headers.get("Content-Length") or "0").strip()
                length = int(raw_length) if raw_length.isdigit() else -1
                if length < 0:
                    # Unreadable framing: answer and drop the connection (what follows is junk).
                    self.close_connection = True
                    response = _json_response(400, _error_body("BAD_REQUEST", "Bad Request"))
                elif length > MAX_PAYLOAD_BYTES:
                    # Not read: the connection is closed after the answer instead.
                    self.close_connection = True
                    response = self._answer(None)
                else:
                    response = self._answer(self.rfile.read(length) if length else b"")
                self.send_response(response.status)
                for name, value in response.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            def _answer(self, body: bytes | None) -> Response:
                try:
                    return gateway.handle(self.command, self.path, list(self.headers.items()), body)
                except Exception:  # a gateway bug must still answer the client
                    log.exception("gateway failure on %s %s", self.command, self.path)
                    return _json_response(
                        500, _error_body("INTERNAL_ERROR", "Internal server error")
                    )

            def __getattr__(self, name: str) -> Any:
                # Every method token (TRACE, QUERY, ...), not only those http.server knows,
                # which it would answer with a 501 page: an API's ANY method takes them all.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.info("%s %s", self.address_string(), fmt % args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- request handling ---------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Response:
        """Answer one request; ``body`` None means it was over ``MAX_PAYLOAD_BYTES`` (unread)."""
        url = urlsplit(raw_path)
        path = unquote(url.path)
        if path == "/_localcloud/health":
            return _json_response(200, {"status": "ok"})
        apis = self.model.current()
        located = _locate(apis, path)
        request_id = str(uuid.uuid4())
        if located is None:
            return _json_response(
                404 if not apis else 403,
                {"message": "Missing Authentication Token"},
                request_id,
            )
        api, stage_name, resource_path = located
        if body is None:
            return self._gateway_response(api, "REQUEST_TOO_LARGE", request_id)
        stage = api.stages[stage_name]
        match = _match_route(api, resource_path, method)
        if match is None:
            return self._gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", request_id)
        route, method_config, path_params = match
        header_map = _multi(headers, lower=True)

        api_key_value = (header_map.get("x-api-key") or [None])[-1]
        api_key_id = None
        if method_config.get("apiKeyRequired"):
            api_key_id = api.keys_by_stage.get(stage_name, {}).get(api_key_value or "")
            if api_key_id is None:
                return self._gateway_response(api, "INVALID_API_KEY", request_id)
        elif api_key_value:
            api_key_id = api.keys_by_stage.get(stage_name, {}).get(api_key_value)
        plan = api.plans_by_stage.get(stage_name, {}).get(api_key_id or "")
        if method_config.get("apiKeyRequired") and plan is not None:
            refused = self.limits.admit(plan, api_key_id or "")
            if refused is not None:
                return self._gateway_response(api, refused, request_id)

        invalid = self._validate(api, method_config, header_map, body)
        if invalid is not None:
            return self._gateway_response(
                api, "BAD_REQUEST_BODY", request_id, validation_error=invalid
            )

        integration = method_config.get("methodIntegration") or {}
        kind = integration.get("type")
        if kind == "MOCK":
            return _mock_response(integration, request_id)
        if kind != "AWS_PROXY" or ":lambda:path/" not in (integration.get("uri") or ""):
            log.error("unsupported integration %s on %s %s", kind, method, route.path)
            return self._gateway_response(api, "INTEGRATION_FAILURE", request_id)

        event = self._proxy_event(
            api=api,
            stage=stage,
            route=route,
            method=method,
            path=path,
            resource_path=resource_path,
            path_params=path_params,
            query=url.query,
            headers=headers,
            body=body,
            request_id=request_id,
            api_key=api_key_value if api_key_id else None,
            api_key_id=api_key_id,
        )
        function_arn = lambda_function_arn(integration["uri"])
        return self._invoke(api, function_arn, event, request_id)

    def _validate(
        self,
        api: Api,
        method_config: dict[str, Any],
        header_map: dict[str, list[str]],
        body: bytes,
    ) -> str | None:
        validator = api.validators.get(method_config.get("requestValidatorId") or "")
        if not validator or not validator.get("validateRequestBody"):
            return None
        models = method_config.get("requestModels") or {}
        content_type = (header_map.get("content-type") or ["application/json"])[-1]
        model_name = models.get(content_type.split(";")[0].strip()) or models.get("$default")
        schema_text = api.models.get(model_name or "")
        if not schema_text:
            return None
        import fastjsonschema

        try:
            document = json.loads(body or b"null")
        except ValueError as exc:
            return f"[Invalid JSON: {exc}]"
        except RecursionError:
            # A body nested a few thousand levels deep: the parser recurses once per level.
            return "[Invalid JSON: nested too deeply]"
        try:
            _schema_validator(schema_text)(document)
        except fastjsonschema.JsonSchemaException as exc:
            return f"[{exc.message}]"
        return None

    def _proxy_event(
        self,
        *,
        api: Api,
        stage: dict[str, Any],
        route: Route,
        method: str,
        path: str,
        resource_path: str,
        path_params: dict[str, str],
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        request_id: str,
        api_key: str | None,
        api_key_id: str | None,
    ) -> dict[str, Any]:
        multi_headers = _multi(headers)
        multi_query = _multi(parse_qsl(query, keep_blank_values=True))
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        binary = any(
            _media_type_matches(pattern, content_type) for pattern in api.binary_media_types
        )
        try:
            text = None if binary else body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        now = datetime.now(UTC)
        stage_name = stage["stageName"]
        return {
            "resource": route.path,
            "path": resource_path,
            "httpMethod": method,
            "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": stage.get("variables") or None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": api.id,
                "resourceId": route.resource_id,
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{stage_name}{resource_path}",
                "stage": stage_name,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "protocol": "HTTP/1.1",
                "domainName": "127.0.0.1",
                "domainPrefix": "127",
                "identity": {
                    "apiKey": api_key,
                    "apiKeyId": api_key_id,
                    "sourceIp": "127.0.0.1",
                    "userAgent": multi_headers.get("User-Agent", [None])[-1],
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    "cognitoIdentityPoolId": None,
                    "cognitoIdentityId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                },
            },
            "body": (base64.b64encode(body).decode() if text is None else text) if body else None,
            "isBase64Encoded": bool(body) and text is None,
        }

    def _invoke(
        self, api: Api, function_arn: str, event: dict[str, Any], request_id: str
    ) -> Response:
        try:
            result = self._lambda.invoke(
                FunctionName=function_arn, Payload=json.dumps(event).encode()
            )
        except Exception as exc:  # any failure to invoke is a 5xx to the client
            if "timed out" in str(exc).lower():
                return self._gateway_response(api, "INTEGRATION_TIMEOUT", request_id)
            log.error("invoking %s failed: %s", function_arn, exc)
            return self._gateway_response(api, "INTEGRATION_FAILURE", request_id)
        payload = result["Payload"].read()
        if result.get("FunctionError"):
            log.warning("function %s failed: %s", function_arn, payload[:500])
            return self._gateway_response(api, "DEFAULT_5XX", request_id)
        try:
            proxy = json.loads(payload)
            status = int(proxy["statusCode"])
        except (ValueError, KeyError, TypeError):
            # API Gateway's answer to a malformed Lambda proxy response.
            log.warning("malformed proxy response from %s: %s", function_arn, payload[:500])
            return self._gateway_response(api, "DEFAULT_5XX", request_id)
        headers: list[tuple[str, str]] = []
        seen = set()
        for name, values in (proxy.get("multiValueHeaders") or {}).items():
            for value in values:
                headers.append((name, str(value)))
            seen.add(name.lower())
        for name, value in (proxy.get("headers") or {}).items():
            if name.lower() not in seen:
                headers.append((name, str(value)))
        headers.append(("x-amzn-RequestId", request_id))
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        raw = proxy.get("body")
        if raw is None:
            data = b""
        elif proxy.get("isBase64Encoded"):
            data = base64.b64decode(raw)
        else:
            data = str(raw).encode()
        return Response(status, headers, data)

    def _gateway_response(
        self, api: Api, response_type: str, request_id: str, validation_error: str = ""
    ) -> Response:
        status, message = DEFAULT_RESPONSES[response_type]
        custom = api.gateway_responses.get(response_type) or api.gateway_responses.get(
            _FAMILY.get(status // 100, "")
        )
        if not custom or (
            not custom.get("responseTemplates")
            and not custom.get("responseParameters")
            and not custom.get("statusCode")
        ):
            return _json_response(status, {"message": message}, request_id)
        status = int(custom.get("statusCode") or status)
        headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
        headers.extend(_static_parameters(custom.get("responseParameters"), "gatewayresponse"))
        template = (custom.get("responseTemplates") or {}).get("application/json")
        if template is None:
            return _json_response(status, {"message": message}, request_id, headers)
        context = {
            "$context.error.messageString": json.dumps(message),
            "$context.error.message": message,
            "$context.error.validationErrorString": validation_error,
            "$context.error.responseType": response_type,
            "$context.requestId": request_id,
            "$context.extendedRequestId": request_id,
        }
        body = template
        # Longest names first so $context.error.message does not eat ...messageString.
        for name in sorted(context, key=len, reverse=True):
            body = body.replace("${" + name[1:] + "}", context[name]).replace(name, context[name])
        return Response(status, headers, body.encode())


# -- helpers ----------------------------------------------------------------------------------


def lambda_function_arn(uri: str) -> str:
    """The function of a Lambda integration URI (``.../functions/<arn>/invocations``)."""
    return uri.split("/functions/", 1)[1].rsplit("/invocations", 1)[0]


def _locate(apis: dict[str, Api], path: str) -> tuple[Api, str, str] | None:
    explicit = re.fullmatch(r"/restapis/([^/]+)/([^/]+)/_user_request_(/.*)?", path)
    if explicit:
        api = apis.get(explicit.group(1))
        stage = explicit.group(2)
        if api is None or stage not in api.stages:
            return None
        return api, stage, explicit.group(3) or "/"
    stage, _, rest = path.lstrip("/").partition("/")
    candidates = [api for api in apis.values() if stage in api.stages]
    if len(candidates) != 1:
        return None
    return candidates[0], stage, "/" + rest


def _match_route(
    api: Api, resource_path: str, method: str
) -> tuple[Route, dict[str, Any], dict[str, str]] | None:
    normalized = "/" + resource_path.strip("/") if resource_path.strip("/") else "/"
    for route in api.routes:
        found = route.pattern.match(normalized)
        if not found:
            continue
        method_config = route.methods.get(method) or route.methods.get("ANY")
        if method_config is None:
            return None
        return route, method_config, found.groupdict()
    return None


def _multi(pairs: Any, lower: bool = False) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name.lower() if lower else name, []).append(value)
    return result


@functools.lru_cache(maxsize=64)
def _schema_validator(schema_text: str) -> Callable[[Any], Any]:
    """The model's schema compiled once: fastjsonschema generates and compiles code per schema."""
    import fastjsonschema

    return fastjsonschema.compile(json.loads(schema_text))


def _media_type_matches(pattern: str, content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    pattern = pattern.replace("~1", "/").lower()
    if pattern == "*/*":
        return True
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), media) is not None


def _static_parameters(parameters: dict[str, str] | None, prefix: str) -> list[tuple[str, str]]:
    """Header mappings with static values ("'value'"), the only kind that needs no templates."""
    headers = []
    for name, value in (parameters or {}).items():
        head = f"{prefix}.header."
        if name.startswith(head) and len(value) >= 2 and value[0] == value[-1] == "'":
            headers.append((name[len(head) :], value[1:-1]))
    return headers


def _mock_response(integration: dict[str, Any], request_id: str) -> Response:
    template = (integration.get("requestTemplates") or {}).get("application/json") or ""
    status_match = re.search(r'"statusCode"\s*:\s*(\d+)', template)
    status = status_match.group(1) if status_match else "200"
    responses = integration.get("integrationResponses") or {}
    chosen = responses.get(status) or next(iter(responses.values()), {})
    headers = [("x-amzn-RequestId", request_id)]
    headers.extend(_static_parameters(chosen.get("responseParameters"), "method.response"))
    body = (chosen.get("responseTemplates") or {}).get("application/json") or ""
    if body and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return Response(int(chosen.get("statusCode") or status), headers, body.encode())


def _error_body(code: str, message: str) -> dict[str, Any]:
    """The REST contract's error body, for answers the gateway gives outside any API's own."""
    return {"error": {"code": code, "message": message, "details": {}}}


def _json_response(
    status: int,
    body: Any,
    request_id: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    out = list(headers or [("Content-Type", "application/json")])
    if request_id and not any(n == "x-amzn-RequestId" for n, _ in out):
        out.append(("x-amzn-RequestId", request_id))
    if status >= 400 and status < 500 and status != 404:
        out.append(("x-amzn-ErrorType", HTTPStatus(status).phrase.replace(" ", "") + "Exception"))
    return Response(status, out, json.dumps(body).encode())
