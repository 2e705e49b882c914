"""The REST gateway against a small API created in moto with boto3, over real HTTP.

The API has what the stack's has: literal, ``{param}`` and ``{proxy+}`` resources, an API key in a
usage plan bound to the stage, a request validator with a JSON-schema model, a customised gateway
response, a MOCK preflight and Lambda proxy integrations. The integrated function echoes the
proxy event it received, so each test reads the event the gateway built.
"""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from localcloud_support import REGION, free_port

from localcloud import gateway as gateway_module
from localcloud.gateway import Gateway

pytestmark = pytest.mark.xdist_group("localcloud-gateway")

STAGE = "test"
KEY = "unit-test-key-0123456789abcdefghij"
DISABLED_KEY = "disabled-key-0123456789abcdefghij"
UNPLANNED_KEY = "unplanned-key-0123456789abcdefghi"

ECHO = """
import json

def handler(event, context):
    if "explode" in event["path"]:
        raise RuntimeError("boom")
    if "not-proxy" in event["path"]:
        return {"no": "statusCode"}
    return {
        "statusCode": 201 if event["httpMethod"] == "POST" else 200,
        "headers": {"Content-Type": "application/json", "X-Single": "one"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(event),
    }
"""
PAYMENT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "required": ["amount", "currency"],
    "properties": {"amount": {"type": "string"}, "currency": {"type": "string"}},
}
BAD_BODY_TEMPLATE = (
    '{"message": $context.error.messageString, '
    '"detail": "$context.error.validationErrorString", '
    '"type": "$context.error.responseType"}'
)


@dataclass
class Api:
    id: str
    resources: dict[str, str]  # path -> resource id
    key_id: str
    plan_id: str


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> dict[str, Any]:
        assert self.status < 300, (self.status, self.body)
        return self.json()


def build_api(cloud) -> Api:
    function_arn = cloud.create_function("echo", ECHO)
    uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
    apigw = cloud.client("apigateway")
    api_id = apigw.create_rest_api(name="payments-unit", binaryMediaTypes=["application/pdf"])["id"]
    resources = {r["path"]: r["id"] for r in apigw.get_resources(restApiId=api_id)["items"]}

    def resource(path: str) -> str:
        parent, _, part = path.rpartition("/")
        resources[path] = apigw.create_resource(
            restApiId=api_id, parentId=resources[parent or "/"], pathPart=part
        )["id"]
        return resources[path]

    def proxy_method(path: str, method: str, *, key: bool, **extra: Any) -> None:
        apigw.put_method(
            restApiId=api_id,
            resourceId=resources[path],
            httpMethod=method,
            authorizationType="NONE",
            apiKeyRequired=key,
            **extra,
        )
        apigw.put_integration(
            restApiId=api_id,
            resourceId=resources[path],
            httpMethod=method,
            type="AWS_PROXY",
            integrationHttpMethod="POST",
            uri=uri,
        )

    # The parameter before the literal: moto lists resources in creation order, so only the
    # gateway's own precedence can make /payments/search win.
    for path in ("/payments", "/payments/{payment_id}", "/payments/search", "/files"):
        resource(path)
    resource("/files/{proxy+}")

    apigw.create_model(
        restApiId=api_id,
        name="PaymentRequest",
        contentType="application/json",
        schema=json.dumps(PAYMENT_SCHEMA),
    )
    validator = apigw.create_request_validator(
        restApiId=api_id, name="body", validateRequestBody=True, validateRequestParameters=False
    )["id"]
    proxy_method(
        "/payments",
        "POST",
        key=True,
        requestValidatorId=validator,
        requestModels={"application/json": "PaymentRequest"},
    )
    proxy_method("/payments/{payment_id}", "GET", key=True)
    proxy_method("/payments/search", "GET", key=True)
    proxy_method("/files/{proxy+}", "ANY", key=False)
    proxy_method("/", "GET", key=False)

    # The CORS preflight, as the stack declares it: a MOCK with static headers.
    payments = resources["/payments"]
    apigw.put_method(
        restApiId=api_id, resourceId=payments, httpMethod="OPTIONS", authorizationType="NONE"
    )
    apigw.put_integration(
        restApiId=api_id,
        resourceId=payments,
        httpMethod="OPTIONS",
        type="MOCK",
        requestTemplates={"application/json": '{"statusCode": 200}'},
    )
    apigw.put_method_response(
        restApiId=api_id,
        resourceId=payments,
        httpMethod="OPTIONS",
        statusCode="200",
        responseParameters={"method.response.header.Access-Control-Allow-Origin": False},
    )
    apigw.put_integration_response(
        restApiId=api_id,
        resourceId=payments,
        httpMethod="OPTIONS",
        statusCode="200",
        responseParameters={"method.response.header.Access-Control-Allow-Origin": "'*'"},
        responseTemplates={"application/json": ""},
    )

    apigw.put_gateway_response(
        restApiId=api_id,
        responseType="BAD_REQUEST_BODY",
        statusCode="400",
        responseParameters={"gatewayresponse.header.Access-Control-Allow-Origin": "'*'"},
        responseTemplates={"application/json": BAD_BODY_TEMPLATE},
    )

    apigw.create_deployment(restApiId=api_id, stageName=STAGE, variables={"flavour": "unit"})
    key_id = apigw.create_api_key(name="unit", value=KEY, enabled=True)["id"]
    disabled_id = apigw.create_api_key(name="off", value=DISABLED_KEY, enabled=False)["id"]
    apigw.create_api_key(name="unplanned", value=UNPLANNED_KEY, enabled=True)
    plan_id = apigw.create_usage_plan(name="unit", apiStages=[{"apiId": api_id, "stage": STAGE}])[
        "id"
    ]
    for planned in (key_id, disabled_id):
        apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=planned, keyType="API_KEY")
    return Api(id=api_id, resources=resources, key_id=key_id, plan_id=plan_id)


@pytest.fixture(scope="module")
def api(cloud) -> Api:
    return build_api(cloud)


@pytest.fixture(scope="module")
def gateway(cloud, api):
    port = free_port()
    served = Gateway(host="127.0.0.1", port=port, endpoint_url=cloud.endpoint_url, region=REGION)
    served.start()
    yield port
    served.stop()


@pytest.fixture
def call(gateway):
    def send(
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: list[tuple[str, str]] | None = None,
        key: str | None = KEY,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", gateway, timeout=30)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in [*(headers or []), *([("x-api-key", key)] if key else [])]:
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body or b"")))
            connection.endheaders(body)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    return send


class TestRouting:
    def test_literal_segment_wins_over_a_parameter(self, call):
        event = call("GET", f"/{STAGE}/payments/search").event
        assert (event["resource"], event["pathParameters"]) == ("/payments/search", None)

    def test_parameter_binds_one_segment(self, call):
        event = call("GET", f"/{STAGE}/payments/pay-123").event
        assert event["resource"] == "/payments/{payment_id}"
        assert event["pathParameters"] == {"payment_id": "pay-123"}
        assert event["path"] == "/payments/pay-123"

    def test_parameter_does_not_span_segments(self, call):
        reply = call("GET", f"/{STAGE}/payments/pay-123/extra")
        assert (reply.status, reply.json()) == (403, {"message": "Missing Authentication Token"})

    def test_greedy_proxy_takes_the_rest_of_the_path_for_any_method(self, call):
        for method in ("GET", "DELETE", "PUT"):
            event = call(method, f"/{STAGE}/files/2026/11/report.csv", key=None).event
            assert event["resource"] == "/files/{proxy+}"
            assert event["pathParameters"] == {"proxy": "2026/11/report.csv"}
            assert event["httpMethod"] == method

    def test_root_resource(self, call):
        assert call("GET", f"/{STAGE}/", key=None).event["resource"] == "/"

    def test_method_not_on_the_resource_is_missing_authentication_token(self, call):
        reply = call("DELETE", f"/{STAGE}/payments/search")
        assert (reply.status, reply.json()) == (403, {"message": "Missing Authentication Token"})

    def test_unknown_stage_is_forbidden(self, call):
        assert call("GET", "/prod/payments/search").status == 403

    def test_explicit_api_url_names_the_api(self, call, api):
        path = f"/restapis/{api.id}/{STAGE}/_user_request_/payments/search"
        event = call("GET", path).event
        assert event["resource"] == "/payments/search"
        assert event["requestContext"]["apiId"] == api.id
        assert call("GET", f"/restapis/nope/{STAGE}/_user_request_/payments/search").status == 403


class TestApiKeys:
    @pytest.mark.parametrize("key", [None, "wrong-key-0123456789", DISABLED_KEY, UNPLANNED_KEY])
    def test_required_key_missing_wrong_disabled_or_unplanned_is_forbidden(self, call, key):
        reply = call("GET", f"/{STAGE}/payments/search", key=key)
        assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})
        assert reply.headers["x-amzn-ErrorType"] == "ForbiddenException"

    def test_valid_key_reaches_the_function_and_is_in_the_identity(self, call, api):
        identity = call("GET", f"/{STAGE}/payments/search").event["requestContext"]["identity"]
        assert (identity["apiKey"], identity["apiKeyId"]) == (KEY, api.key_id)

    def test_route_without_a_key_requirement_serves_requests_without_a_key(self, call):
        identity = call("GET", f"/{STAGE}/files/a", key=None).event["requestContext"]["identity"]
        assert (identity["apiKey"], identity["apiKeyId"]) == (None, None)

    def test_a_key_added_or_disabled_later_is_seen_after_a_refresh(
        self, call, cloud, api, monkeypatch
    ):
        # Reload on every request instead of at most once a second; the reload is what's tested.
        monkeypatch.setattr(gateway_module, "REFRESH_INTERVAL_SECONDS", 0.0)
        apigw = cloud.client("apigateway")
        late = "late-key-0123456789abcdefghijklm"
        late_id = apigw.create_api_key(name="late", value=late, enabled=True)["id"]
        assert call("GET", f"/{STAGE}/payments/search", key=late).status == 403
        apigw.create_usage_plan_key(usagePlanId=api.plan_id, keyId=late_id, keyType="API_KEY")
        assert call("GET", f"/{STAGE}/payments/search", key=late).status == 200
        apigw.update_api_key(
            apiKey=late_id,
            patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}],
        )
        assert call("GET", f"/{STAGE}/payments/search", key=late).status == 403


class TestUsagePlans:
    def _key_in_plan(self, cloud, api, monkeypatch, **plan: Any) -> str:
        monkeypatch.setattr(gateway_module, "REFRESH_INTERVAL_SECONDS", 0.0)
        apigw = cloud.client("apigateway")
        value = f"plan-key-{uuid.uuid4().hex}"
        plan_id = apigw.create_usage_plan(
            name=f"plan-{value}", apiStages=[{"apiId": api.id, "stage": STAGE}], **plan
        )["id"]
        key_id = apigw.create_api_key(name=value, value=value, enabled=True)["id"]
        apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
        return value

    def test_a_key_past_its_burst_is_throttled_with_429(self, call, cloud, api, monkeypatch):
        key = self._key_in_plan(
            cloud, api, monkeypatch, throttle={"rateLimit": 0.01, "burstLimit": 2}
        )
        statuses = [call("GET", f"/{STAGE}/payments/search", key=key).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        reply = call("GET", f"/{STAGE}/payments/search", key=key)
        assert reply.json() == {"message": "Too Many Requests"}
        # Another key's bucket is its own.
        assert call("GET", f"/{STAGE}/payments/search").status == 200

    def test_a_change_of_a_plans_limits_alone_is_applied(self, call, cloud, api, monkeypatch):
        key = self._key_in_plan(cloud, api, monkeypatch, quota={"limit": 1, "period": "DAY"})
        assert call("GET", f"/{STAGE}/payments/search", key=key).status == 200
        assert call("GET", f"/{STAGE}/payments/search", key=key).status == 429
        apigw = cloud.client("apigateway")
        [plan] = [p for p in apigw.get_usage_plans()["items"] if p["name"] == f"plan-{key}"]
        apigw.update_usage_plan(
            usagePlanId=plan["id"],
            patchOperations=[{"op": "replace", "path": "/quota/limit", "value": "5"}],
        )
        assert call("GET", f"/{STAGE}/payments/search", key=key).status == 200

    def test_a_key_past_its_quota_is_refused_until_the_period_turns(
        self, call, cloud, api, monkeypatch
    ):
        key = self._key_in_plan(cloud, api, monkeypatch, quota={"limit": 2, "period": "DAY"})
        statuses = [call("GET", f"/{STAGE}/payments/search", key=key).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert call("GET", f"/{STAGE}/payments/search", key=key).json() == {
            "message": "Limit Exceeded"
        }

    def test_the_bucket_refills_at_the_rate_and_the_quota_counts_per_utc_period(self):
        from datetime import UTC, datetime

        now = [0.0]
        limits = gateway_module.UsagePlanLimits(clock=lambda: now[0])
        plan = {"id": "p", "throttle": {"rateLimit": 2.0, "burstLimit": 2}}
        assert [limits.admit(plan, "k") for _ in range(3)] == [None, None, "THROTTLED"]
        now[0] = 0.5  # one token back at 2 per second
        assert [limits.admit(plan, "k") for _ in range(2)] == [None, "THROTTLED"]
        # Weeks start on Sunday (offset 0): Saturday and Sunday are two weeks, Monday the second.
        weekly = {"id": "w", "quota": {"limit": 1, "period": "WEEK"}}
        saturday, sunday, monday = (datetime(2026, 12, d, tzinfo=UTC) for d in (5, 6, 7))
        assert limits.admit(weekly, "k", saturday) is None
        assert limits.admit(weekly, "k", sunday) is None
        assert limits.admit(weekly, "k", monday) == "QUOTA_EXCEEDED"
        # A plan with a rate only is limited by its rate alone.
        rate_only = {"id": "r", "throttle": {"rateLimit": 1.0}}
        now[0] = 10.0
        assert [limits.admit(rate_only, "k") for _ in range(2)] == [None, "THROTTLED"]
        now[0] = 11.0
        assert limits.admit(rate_only, "k") is None


class TestProxyEvent:
    def test_query_string_single_and_multi_value(self, call):
        event = call("GET", f"/{STAGE}/payments/search?status=OK&status=FAILED&empty=").event
        assert event["queryStringParameters"] == {"status": "FAILED", "empty": ""}
        assert event["multiValueQueryStringParameters"] == {
            "status": ["OK", "FAILED"],
            "empty": [""],
        }

    def test_no_query_string_is_null(self, call):
        event = call("GET", f"/{STAGE}/payments/search").event
        assert event["queryStringParameters"] is None
        assert event["multiValueQueryStringParameters"] is None
        assert (event["body"], event["isBase64Encoded"]) == (None, False)

    def test_repeated_header_keeps_every_value_and_the_last_as_single(self, call):
        headers = [("X-Trace", "first"), ("X-Trace", "second"), ("User-Agent", "unit/1.0")]
        event = call("GET", f"/{STAGE}/payments/search", headers=headers).event
        assert event["headers"]["X-Trace"] == "second"
        assert event["multiValueHeaders"]["X-Trace"] == ["first", "second"]
        assert event["headers"]["x-api-key"] == KEY
        assert event["requestContext"]["identity"]["userAgent"] == "unit/1.0"

    def test_request_context(self, call, api):
        reply = call("GET", f"/{STAGE}/payments/pay-9")
        event = reply.event
        context = event["requestContext"]
        assert {
            k: context[k] for k in ("apiId", "stage", "path", "resourcePath", "httpMethod")
        } == {
            "apiId": api.id,
            "stage": STAGE,
            "path": f"/{STAGE}/payments/pay-9",
            "resourcePath": "/payments/{payment_id}",
            "httpMethod": "GET",
        }
        assert context["resourceId"] == api.resources["/payments/{payment_id}"]
        assert context["requestId"] == reply.headers["x-amzn-RequestId"]
        assert context["identity"]["sourceIp"] == "127.0.0.1"
        assert isinstance(context["requestTimeEpoch"], int)
        assert event["stageVariables"] == {"flavour": "unit"}

    def test_text_body_is_passed_as_text(self, call):
        body = json.dumps({"amount": "12.50", "currency": "EUR"}).encode()
        headers = [("Content-Type", "application/json")]
        event = call("POST", f"/{STAGE}/payments", body=body, headers=headers).event
        assert (event["body"], event["isBase64Encoded"]) == (body.decode(), False)

    def test_binary_media_type_body_is_base64(self, call):
        body = b"%PDF-1.7\x00\xff\xfe"
        headers = [("Content-Type", "application/pdf")]
        event = call("PUT", f"/{STAGE}/files/r.pdf", body=body, headers=headers, key=None).event
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == body


class TestResponses:
    def test_proxy_response_status_and_headers_single_and_multi(self, call):
        body = json.dumps({"amount": "1.00", "currency": "USD"}).encode()
        reply = call("POST", f"/{STAGE}/payments", body=body)
        assert reply.status == 201
        assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert reply.headers["X-Single"] == "one"

    def test_invalid_body_gets_the_customised_gateway_response(self, call):
        body = json.dumps({"amount": "1.00"}).encode()
        reply = call("POST", f"/{STAGE}/payments", body=body)
        assert reply.status == 400
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        answer = reply.json()
        assert (answer["message"], answer["type"]) == ("Invalid request body", "BAD_REQUEST_BODY")
        assert "currency" in answer["detail"]

    def test_body_that_is_not_json_is_invalid(self, call):
        reply = call("POST", f"/{STAGE}/payments", body=b"amount=1")
        assert reply.status == 400
        assert reply.json()["detail"].startswith("[Invalid JSON")

    @pytest.mark.parametrize("depth", [5_000, 100_000])
    def test_a_deeply_nested_body_is_an_invalid_body_not_a_500(self, call, depth):
        reply = call("POST", f"/{STAGE}/payments", body=b"[" * depth + b"]" * depth)
        assert reply.status == 400
        answer = reply.json()
        assert (answer["type"], answer["detail"]) == (
            "BAD_REQUEST_BODY",
            "[Invalid JSON: nested too deeply]",
        )

    def test_a_body_over_the_payload_limit_is_a_413_before_the_key_or_the_route(
        self, call, monkeypatch
    ):
        monkeypatch.setattr(gateway_module, "MAX_PAYLOAD_BYTES", 64)
        reply = call("POST", f"/{STAGE}/payments", body=b"{}" + b" " * 100, key=None)
        assert (reply.status, reply.json()) == (413, {"message": "Request Too Long"})

    @pytest.mark.parametrize("method", ["TRACE", "QUERY"])
    def test_any_method_token_reaches_the_route_not_a_501_page(self, call, method):
        reply = call(method, f"/{STAGE}/payments", key=None)
        assert reply.status == 403  # routed: /payments has no such method (missing token)
        assert reply.json() == {"message": "Missing Authentication Token"}

    def test_a_malformed_content_length_is_a_400_with_the_error_body(self, gateway):
        connection = http.client.HTTPConnection("127.0.0.1", gateway, timeout=30)
        try:
            connection.putrequest("POST", f"/{STAGE}/payments")
            connection.putheader("Content-Length", "ten")
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == 400
            assert json.loads(response.read())["error"]["code"] == "BAD_REQUEST"
        finally:
            connection.close()

    def test_api_key_is_checked_before_the_body(self, call):
        reply = call("POST", f"/{STAGE}/payments", body=b"{}", key=None)
        assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})

    def test_mock_preflight_answers_with_its_static_headers(self, call):
        reply = call("OPTIONS", f"/{STAGE}/payments", key=None)
        assert reply.status == 200
        assert reply.headers["Access-Control-Allow-Origin"] == "*"

    def test_function_error_is_a_502(self, call):
        reply = call("GET", f"/{STAGE}/files/explode", key=None)
        assert (reply.status, reply.json()) == (502, {"message": "Internal server error"})

    def test_malformed_proxy_response_is_a_502(self, call):
        reply = call("GET", f"/{STAGE}/files/not-proxy", key=None)
        assert (reply.status, reply.json()) == (502, {"message": "Internal server error"})

    def test_health_endpoint(self, call):
        reply = call("GET", "/_localcloud/health", key=None)
        assert (reply.status, reply.json()) == (200, {"status": "ok"})
