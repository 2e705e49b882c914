"""The REST API: routes, keys, validation, CORS, errors, deployment, stage and usage plan."""

from __future__ import annotations

import json
from typing import ClassVar

import fastjsonschema
import pytest
from cdktf_cdktf_provider_aws.api_gateway_deployment import ApiGatewayDeployment
from cdktf_cdktf_provider_aws.api_gateway_gateway_response import ApiGatewayGatewayResponse
from cdktf_cdktf_provider_aws.api_gateway_integration import ApiGatewayIntegration
from cdktf_cdktf_provider_aws.api_gateway_integration_response import (
    ApiGatewayIntegrationResponse,
)
from cdktf_cdktf_provider_aws.api_gateway_method import ApiGatewayMethod
from cdktf_cdktf_provider_aws.api_gateway_method_settings import ApiGatewayMethodSettings
from cdktf_cdktf_provider_aws.api_gateway_model import ApiGatewayModel
from cdktf_cdktf_provider_aws.api_gateway_resource import ApiGatewayResource
from cdktf_cdktf_provider_aws.api_gateway_rest_api import ApiGatewayRestApi
from cdktf_cdktf_provider_aws.api_gateway_stage import ApiGatewayStage
from cdktf_cdktf_provider_aws.api_gateway_usage_plan import ApiGatewayUsagePlan
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission

from lib.api_spec import GATEWAY_ERRORS, MODELS, ROUTES

ROUTE_TABLE = {  # DESIGN section 3: every route, and whether it needs x-api-key
    ("POST", "/payments"): True,
    ("GET", "/payments/{payment_id}"): True,
    ("GET", "/batches/{batch_id}"): True,
    ("POST", "/validate"): True,
    ("POST", "/fraud-webhook"): True,
    ("GET", "/health"): False,
}


ALLOW_ORIGIN = "gatewayresponse.header.Access-Control-Allow-Origin"


def _paths(synth) -> dict[str, str]:
    """Terraform resource id -> full path, rebuilt from parent references."""
    resources = synth.resources(ApiGatewayResource.TF_RESOURCE_TYPE)
    paths: dict[str, str] = {}

    def path_of(id_: str) -> str:
        if id_ not in paths:
            resource = resources[id_]
            parent = (
                resource["parent_id"].split(".")[1]
                if "aws_api_gateway_resource" in resource["parent_id"]
                else None
            )
            paths[id_] = (path_of(parent) if parent else "") + "/" + resource["path_part"]
        return paths[id_]

    return {id_: path_of(id_) for id_ in resources}


def _methods(synth) -> dict[tuple[str, str], dict]:
    paths = _paths(synth)
    return {
        (m["http_method"], paths[m["resource_id"].split(".")[1]]): m
        for m in synth.resources(ApiGatewayMethod.TF_RESOURCE_TYPE).values()
    }


class TestRoutes:
    def test_regional_rest_api_named_with_the_suffix(self, each):
        api = each.one(ApiGatewayRestApi.TF_RESOURCE_TYPE)
        assert api["name"] == f"payments-api-{each.settings.suffix}"
        assert api["endpoint_configuration"] == {"types": ["REGIONAL"]}

    def test_exactly_the_six_routes_of_the_contract_plus_cors_preflights(self, each):
        methods = _methods(each)
        routes = {k for k in methods if k[0] not in ("OPTIONS", "ANY")}
        assert routes == set(ROUTE_TABLE)
        assert {path for method, path in methods if method == "OPTIONS"} == {
            p for _, p in ROUTE_TABLE
        }

    def test_other_methods_reach_the_handler_for_its_405_with_the_paths_key_rule(self, each):
        methods = _methods(each)
        paths = {p for _, p in ROUTE_TABLE}
        assert {path for method, path in methods if method == "ANY"} == paths
        for path in paths:
            needs_key = any(key for (_, p), key in ROUTE_TABLE.items() if p == path)
            assert methods[("ANY", path)]["api_key_required"] is needs_key

    @pytest.mark.parametrize(("route", "key_required"), ROUTE_TABLE.items())
    def test_api_key_on_every_route_but_health(self, each, route, key_required):
        assert _methods(each)[route]["api_key_required"] is key_required

    def test_routes_are_lambda_proxy_integrations_of_the_api_function(self, each):
        integrations = [
            i
            for i in each.resources(ApiGatewayIntegration.TF_RESOURCE_TYPE).values()
            if i["type"] != "MOCK"
        ]
        assert len(integrations) == len(ROUTE_TABLE) + len({p for _, p in ROUTE_TABLE})
        for integration in integrations:
            assert integration["type"] == "AWS_PROXY"
            assert integration["integration_http_method"] == "POST"
            # The live alias, never $LATEST: a release moves the alias, a rollback moves it back.
            assert integration["uri"].startswith("${aws_lambda_alias.functions_api-live_")
            assert integration["uri"].endswith(".invoke_arn}")

    def test_post_bodies_are_validated_against_models(self, each):
        methods = _methods(each)
        for route in ROUTES:
            method = methods[(route.method, route.path)]
            assert method["request_validator_id"]
            if route.request:
                (model,) = method["request_models"].values()
                assert model.startswith(f"${{aws_api_gateway_model.api_model-{route.request}_")

    def test_api_gateway_may_invoke_the_handler_only_from_this_api(self, each):
        permission = next(
            p
            for p in each.resources(LambdaPermission.TF_RESOURCE_TYPE).values()
            if p["principal"] == "apigateway.amazonaws.com"
        )
        assert permission["source_arn"].startswith("${aws_api_gateway_rest_api.api_rest-api_")
        assert ".execution_arn}/" in permission["source_arn"]
        # The permission is the alias's: API Gateway may invoke `live` and nothing else.
        assert permission["qualifier"].startswith("${aws_lambda_alias.functions_api-live_")


@pytest.fixture(scope="module")
def payment_model(dev):
    models = {m["name"]: m for m in dev.resources(ApiGatewayModel.TF_RESOURCE_TYPE).values()}
    return fastjsonschema.compile(json.loads(models["PaymentRequest"]["schema"]))


class TestRequestModels:
    """The models must never reject what the handler would accept (it names each bad field)."""

    ACCEPTED: ClassVar[list[dict]] = [
        {"amount": "99.99", "currency": "usd"},
        {"amount": 10, "currency": "JPY", "payment_id": "p-1", "metadata": {"k": "v"}},
        {"amount": "1", "currency": "EUR", "description": None, "customer_id": None},
        # Wrong types, missing and unknown fields reach the handler, which names each field.
        {"amount": True, "currency": 5},
        {"colour": "red"},
        {},
    ]

    @pytest.mark.parametrize("body", ACCEPTED)
    def test_payment_bodies_the_handler_accepts_pass(self, payment_model, body):
        payment_model(body)

    @pytest.mark.parametrize("body", [[], "x", None, 5])
    def test_bodies_that_are_not_objects_fail_early(self, payment_model, body):
        with pytest.raises(fastjsonschema.JsonSchemaException):
            payment_model(body)

    def test_field_rules_are_left_to_the_handler(self):
        for schema in MODELS.values():
            assert "additionalProperties" not in schema and "required" not in schema
            assert all(set(field) == {"description"} for field in schema["properties"].values())


class TestErrorsAndCors:
    def test_api_gateways_own_errors_use_the_standard_error_body(self, each):
        responses = {
            r["response_type"]: r
            for r in each.resources(ApiGatewayGatewayResponse.TF_RESOURCE_TYPE).values()
        }
        assert set(responses) == set(GATEWAY_ERRORS)
        for response_type in (
            "DEFAULT_4XX",
            "DEFAULT_5XX",
            "INVALID_API_KEY",
            "THROTTLED",
            "QUOTA_EXCEEDED",
            "BAD_REQUEST_BODY",
            "MISSING_AUTHENTICATION_TOKEN",
        ):
            template = responses[response_type]["response_templates"]["application/json"]
            # $context.error.messageString is already a quoted JSON string at runtime.
            body = json.loads(template.replace("$context.error.messageString", '"message"'))
            assert set(body["error"]) == {"code", "message", "details"}
            assert body["error"]["code"] == GATEWAY_ERRORS[response_type].code

    def test_error_responses_carry_the_cors_origin_and_429s_a_retry_after(self, each):
        retry = {"THROTTLED": "'1'", "QUOTA_EXCEEDED": "'3600'"}
        for response in each.resources(ApiGatewayGatewayResponse.TF_RESOURCE_TYPE).values():
            header = response["response_parameters"]
            expected = {ALLOW_ORIGIN: f"'{each.settings.cors_origin}'"}
            if response["response_type"] in retry:
                expected["gatewayresponse.header.Retry-After"] = retry[response["response_type"]]
            assert header == expected

    def test_preflights_are_mock_integrations_answering_with_the_configured_origin(self, each):
        mocks = [
            i
            for i in each.resources(ApiGatewayIntegration.TF_RESOURCE_TYPE).values()
            if i["type"] == "MOCK"
        ]
        assert len(mocks) == len({p for _, p in ROUTE_TABLE})
        for response in each.resources(ApiGatewayIntegrationResponse.TF_RESOURCE_TYPE).values():
            origin = response["response_parameters"][
                "method.response.header.Access-Control-Allow-Origin"
            ]
            assert origin == f"'{each.settings.cors_origin}'"


class TestStage:
    def test_deployment_is_redeployed_on_api_changes_and_replaced_safely(self, each):
        deployment = each.one(ApiGatewayDeployment.TF_RESOURCE_TYPE)
        assert deployment["triggers"] == {
            "redeployment": each.stack.node.find_child("api").definition_hash
        }
        assert len(deployment["triggers"]["redeployment"]) == 64
        assert deployment["lifecycle"] == {"create_before_destroy": True}

    def test_stage_named_after_the_suffix_with_tracing_and_json_access_logs(self, each):
        stage = each.one(ApiGatewayStage.TF_RESOURCE_TYPE)
        assert stage["stage_name"] == each.settings.suffix
        assert stage["xray_tracing_enabled"] is True
        assert "requestId" in json.loads(stage["access_log_settings"]["format"])
        assert stage["access_log_settings"]["destination_arn"].startswith(
            "${aws_cloudwatch_log_group.api_access-logs_"
        )

    def test_access_logs_carry_what_an_incident_needs(self, each):
        stage = each.one(ApiGatewayStage.TF_RESOURCE_TYPE)
        fields = json.loads(stage["access_log_settings"]["format"])
        for variable in (
            "$context.integrationErrorMessage",
            "$context.error.message",
            "$context.extendedRequestId",
            "$context.identity.userAgent",
            "$context.tlsVersion",
            "$context.waf.error",
        ):
            assert variable in fields.values(), variable
        # Never the request body or the API key's value: only its id.
        assert not [v for v in fields.values() if "body" in v or "apiKey}" in v]

    def test_method_settings_enable_metrics_info_logs_and_the_profiles_throttling(self, each):
        settings = each.one(ApiGatewayMethodSettings.TF_RESOURCE_TYPE)
        assert settings["method_path"] == "*/*"
        for key, value in {
            "metrics_enabled": True,
            "logging_level": "INFO",
            "data_trace_enabled": False,
            "throttling_rate_limit": each.profile.api.rate_limit,
            "throttling_burst_limit": each.profile.api.burst_limit,
        }.items():
            assert settings["settings"][key] == value

    def test_usage_plan_quota_follows_the_profile(self, each):
        plan = each.one(ApiGatewayUsagePlan.TF_RESOURCE_TYPE)
        quota = each.profile.api
        assert plan["throttle_settings"] == {
            "rate_limit": quota.rate_limit,
            "burst_limit": quota.burst_limit,
        }
        assert plan["quota_settings"] == {"limit": quota.daily_quota, "period": "DAY"}

    def test_production_allows_far_more_traffic_than_dev(self, production, dev):
        assert production.profile.api.daily_quota > dev.profile.api.daily_quota
        assert production.has(
            ApiGatewayUsagePlan.TF_RESOURCE_TYPE,
            {"quota_settings": {"limit": production.profile.api.daily_quota, "period": "DAY"}},
        )

    @pytest.mark.parametrize("profile", ["dev", "staging", "production"])
    def test_no_profiles_quota_switches_the_api_off_before_the_day_ends_at_its_rate(self, profile):
        from lib.settings import PROFILES

        api = PROFILES[profile].api
        assert api.daily_quota >= api.rate_limit * 86_400
