"""The REST API: routes to the API handler, API key + usage plan, validation, CORS, logging."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.api_gateway_api_key import ApiGatewayApiKey
from cdktf_cdktf_provider_aws.api_gateway_base_path_mapping import ApiGatewayBasePathMapping
from cdktf_cdktf_provider_aws.api_gateway_deployment import ApiGatewayDeployment
from cdktf_cdktf_provider_aws.api_gateway_domain_name import (
    ApiGatewayDomainName,
    ApiGatewayDomainNameEndpointConfiguration,
)
from cdktf_cdktf_provider_aws.api_gateway_gateway_response import ApiGatewayGatewayResponse
from cdktf_cdktf_provider_aws.api_gateway_integration import ApiGatewayIntegration
from cdktf_cdktf_provider_aws.api_gateway_integration_response import (
    ApiGatewayIntegrationResponse,
)
from cdktf_cdktf_provider_aws.api_gateway_method import ApiGatewayMethod
from cdktf_cdktf_provider_aws.api_gateway_method_response import ApiGatewayMethodResponse
from cdktf_cdktf_provider_aws.api_gateway_method_settings import (
    ApiGatewayMethodSettings,
    ApiGatewayMethodSettingsSettings,
)
from cdktf_cdktf_provider_aws.api_gateway_model import ApiGatewayModel
from cdktf_cdktf_provider_aws.api_gateway_request_validator import ApiGatewayRequestValidator
from cdktf_cdktf_provider_aws.api_gateway_resource import ApiGatewayResource
from cdktf_cdktf_provider_aws.api_gateway_rest_api import (
    ApiGatewayRestApi,
    ApiGatewayRestApiEndpointConfiguration,
)
from cdktf_cdktf_provider_aws.api_gateway_stage import (
    ApiGatewayStage,
    ApiGatewayStageAccessLogSettings,
)
from cdktf_cdktf_provider_aws.api_gateway_usage_plan import (
    ApiGatewayUsagePlan,
    ApiGatewayUsagePlanApiStages,
    ApiGatewayUsagePlanQuotaSettings,
    ApiGatewayUsagePlanThrottleSettings,
)
from cdktf_cdktf_provider_aws.api_gateway_usage_plan_key import ApiGatewayUsagePlanKey
from cdktf_cdktf_provider_aws.lambda_alias import LambdaAlias
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from constructs import Construct

from lib.api_spec import (
    CORS_ALLOW_HEADERS,
    GATEWAY_ERRORS,
    MODELS,
    OTHER_METHODS,
    ROUTES,
    key_required_on,
    methods_of,
    resource_paths,
)
from lib.functions import LIVE_ALIAS
from lib.logs import api_access_log_group_name, api_execution_log_group_name, encrypted_log_group
from lib.settings import Settings

ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "apiKeyId": "$context.identity.apiKeyId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "responseLatency": "$context.responseLatency",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
    # What an incident needs beyond the status: why API Gateway or the integration failed, the
    # id AWS Support asks for (it cannot be forged by the caller, unlike requestId), the client,
    # the TLS version it negotiated and whether the web ACL failed to evaluate the request.
    "extendedRequestId": "$context.extendedRequestId",
    "errorMessage": "$context.error.message",
    "integrationErrorMessage": "$context.integrationErrorMessage",
    "integrationStatus": "$context.integration.status",
    "userAgent": "$context.identity.userAgent",
    "tlsVersion": "$context.tlsVersion",
    "wafError": "$context.waf.error",
    "wafStatus": "$context.waf.status",
}


def _quoted(value: str) -> str:
    """API Gateway mapping values are expressions: a literal header value is single-quoted."""
    return f"'{value}'"


def _logical(path: str) -> str:
    return path.strip("/").replace("/", "-").replace("{", "").replace("}", "") or "root"


class Api(Construct):
    """Regional REST API; every route but GET /health needs an API key."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        kms_key_arn: str,
        handler: LambdaAlias,
    ) -> None:
        """``handler`` is the API function's ``live`` alias: a new function version reaches
        clients when the alias moves, without redeploying the API."""
        super().__init__(scope, id_)
        profile = settings.profile
        cors_origin = _quoted(settings.cors_origin)
        self.rest_api = ApiGatewayRestApi(
            self,
            "rest-api",
            name=settings.name("api"),
            description=f"Payments REST API ({settings.suffix})",
            api_key_source="HEADER",
            endpoint_configuration=ApiGatewayRestApiEndpointConfiguration(types=["REGIONAL"]),
            # With a custom domain, clients use it (TLS 1.2): the execute-api URL is switched off.
            disable_execute_api_endpoint=bool(settings.api_domain_name),
            # A replaced API gets a new id and URL; create it before the old one disappears.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        api_id = self.rest_api.id
        validator = ApiGatewayRequestValidator(
            self,
            "validator",
            rest_api_id=api_id,
            name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        models = {
            name: ApiGatewayModel(
                self,
                f"model-{name}",
                rest_api_id=api_id,
                name=name,
                content_type="application/json",
                schema=json.dumps(schema, sort_keys=True),
            )
            for name, schema in MODELS.items()
        }
        resources: dict[str, ApiGatewayResource] = {}
        for path in resource_paths():
            parent, _, part = path.rpartition("/")
            resources[path] = ApiGatewayResource(
                self,
                f"resource-{_logical(path)}",
                rest_api_id=api_id,
                parent_id=resources[parent].id if parent else self.rest_api.root_resource_id,
                path_part=part,
            )
        deployed: list = []
        for route in ROUTES:
            logical = f"{route.method.lower()}-{_logical(route.path)}"
            path_params = [
                part.strip("{}") for part in route.path.split("/") if part.startswith("{")
            ]
            method = ApiGatewayMethod(
                self,
                f"method-{logical}",
                rest_api_id=api_id,
                resource_id=resources[route.path].id,
                http_method=route.method,
                # Callers are identified by API key; payment data is authorised per key's plan.
                authorization="NONE",
                api_key_required=route.api_key_required,
                request_validator_id=validator.id,
                request_models={"application/json": models[route.request].name}
                if route.request
                else None,
                request_parameters={f"method.request.path.{p}": True for p in path_params} or None,
            )
            integration = ApiGatewayIntegration(
                self,
                f"integration-{logical}",
                rest_api_id=api_id,
                resource_id=resources[route.path].id,
                http_method=method.http_method,
                integration_http_method="POST",
                type="AWS_PROXY",
                uri=handler.invoke_arn,
            )
            deployed += [method, integration]
        for path in resource_paths():
            if methods_of(path):
                deployed += self._other_methods(path, resources[path], handler, validator)
                deployed += self._cors_preflight(path, resources[path], cors_origin, validator)
        for response_type, error in GATEWAY_ERRORS.items():
            deployed.append(
                ApiGatewayGatewayResponse(
                    self,
                    f"gateway-response-{response_type.lower().replace('_', '-')}",
                    rest_api_id=api_id,
                    response_type=response_type,
                    status_code=error.status,
                    response_templates={"application/json": error.template()},
                    response_parameters={
                        "gatewayresponse.header.Access-Control-Allow-Origin": cors_origin,
                        **(
                            {"gatewayresponse.header.Retry-After": f"'{error.retry_after}'"}
                            if error.retry_after is not None
                            else {}
                        ),
                    },
                )
            )
        definition = {
            "routes": [dataclasses.asdict(r) for r in ROUTES],
            "models": MODELS,
            "gateway_errors": {k: dataclasses.asdict(v) for k, v in GATEWAY_ERRORS.items()},
            "cors_origin": settings.cors_origin,
            "cors_allow_headers": CORS_ALLOW_HEADERS,
            "other_methods": OTHER_METHODS,
            "handler": f"{settings.name('api')}:{LIVE_ALIAS}",
            # Switching the execute-api endpoint off (a custom domain added to a live
            # environment) takes effect only with a new deployment of the stage.
            "execute_api_endpoint_disabled": bool(settings.api_domain_name),
        }
        self.definition_hash = hashlib.sha256(
            json.dumps(definition, sort_keys=True).encode()
        ).hexdigest()
        deployment = ApiGatewayDeployment(
            self,
            "deployment",
            rest_api_id=api_id,
            triggers={"redeployment": self.definition_hash},
            # The stage keeps pointing at the old deployment until the new one exists.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            depends_on=deployed,
        )
        access_logs = encrypted_log_group(
            self,
            "access-logs",
            name=api_access_log_group_name(settings),
            settings=settings,
            kms_key_arn=kms_key_arn,
        )
        # API Gateway would create the execution-log group itself, unencrypted and kept forever.
        execution_logs = encrypted_log_group(
            self,
            "execution-logs",
            name=api_execution_log_group_name(settings, api_id),
            settings=settings,
            kms_key_arn=kms_key_arn,
        )
        self.stage = ApiGatewayStage(
            self,
            "stage",
            rest_api_id=api_id,
            deployment_id=deployment.id,
            stage_name=settings.suffix,
            xray_tracing_enabled=True,
            access_log_settings=ApiGatewayStageAccessLogSettings(
                destination_arn=access_logs.arn,
                format=json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
            ),
            # Access and execution logs are written with the account's API Gateway CloudWatch
            # role, which the payments-account stack sets once per account and region
            # (lib/account.py); an environment never owns that account-wide setting.
            depends_on=[execution_logs],
        )
        ApiGatewayMethodSettings(
            self,
            "method-settings",
            rest_api_id=api_id,
            stage_name=self.stage.stage_name,
            method_path="*/*",
            settings=ApiGatewayMethodSettingsSettings(
                metrics_enabled=True,
                logging_level="INFO",
                # Full request/response logging would write payment data into the logs.
                data_trace_enabled=False,
                throttling_rate_limit=profile.api.rate_limit,
                throttling_burst_limit=profile.api.burst_limit,
                # Payment status changes by the second; a cached GET would serve stale status.
                caching_enabled=False,
                cache_data_encrypted=True,
            ),
        )
        self._domain_name = settings.api_domain_name
        self.domain = self._custom_domain(settings) if settings.api_domain_name else None
        self.api_key = ApiGatewayApiKey(
            self, "api-key", name=settings.name("api-key"), enabled=True
        )
        usage_plan = ApiGatewayUsagePlan(
            self,
            "usage-plan",
            name=settings.name("usage-plan"),
            api_stages=[ApiGatewayUsagePlanApiStages(api_id=api_id, stage=self.stage.stage_name)],
            throttle_settings=ApiGatewayUsagePlanThrottleSettings(
                rate_limit=profile.api.rate_limit, burst_limit=profile.api.burst_limit
            ),
            quota_settings=ApiGatewayUsagePlanQuotaSettings(
                limit=profile.api.daily_quota, period="DAY"
            ),
        )
        ApiGatewayUsagePlanKey(
            self,
            "usage-plan-key",
            key_id=self.api_key.id,
            key_type="API_KEY",
            usage_plan_id=usage_plan.id,
        )
        LambdaPermission(
            self,
            "invoke-handler",
            statement_id="AllowRestApi",
            action="lambda:InvokeFunction",
            function_name=handler.function_name,
            qualifier=handler.name,
            principal="apigateway.amazonaws.com",
            # <execution arn>/<stage>/<method>/<path>: this API only, any of its stages.
            source_arn=f"{self.rest_api.execution_arn}/*/*",
        )

    def _other_methods(
        self,
        path: str,
        resource: ApiGatewayResource,
        handler: LambdaAlias,
        validator: ApiGatewayRequestValidator,
    ) -> list:
        """``ANY``: every method the path does not serve goes to the handler, which answers 405
        with ``Allow`` (API Gateway prefers the explicit methods and OPTIONS)."""
        logical = f"{OTHER_METHODS.lower()}-{_logical(path)}"
        method = ApiGatewayMethod(
            self,
            f"method-{logical}",
            rest_api_id=self.rest_api.id,
            resource_id=resource.id,
            http_method=OTHER_METHODS,
            authorization="NONE",
            # Like the path's own routes: no key, no way to reach the function.
            api_key_required=key_required_on(path),
            request_validator_id=validator.id,
        )
        integration = ApiGatewayIntegration(
            self,
            f"integration-{logical}",
            rest_api_id=self.rest_api.id,
            resource_id=resource.id,
            http_method=method.http_method,
            integration_http_method="POST",
            type="AWS_PROXY",
            uri=handler.invoke_arn,
        )
        return [method, integration]

    def _cors_preflight(
        self,
        path: str,
        resource: ApiGatewayResource,
        cors_origin: str,
        validator: ApiGatewayRequestValidator,
    ) -> list:
        logical = _logical(path)
        api_id = self.rest_api.id
        method = ApiGatewayMethod(
            self,
            f"method-options-{logical}",
            rest_api_id=api_id,
            resource_id=resource.id,
            http_method="OPTIONS",
            # Browsers send preflight requests without credentials or API keys.
            authorization="NONE",
            api_key_required=False,
            request_validator_id=validator.id,
        )
        integration = ApiGatewayIntegration(
            self,
            f"integration-options-{logical}",
            rest_api_id=api_id,
            resource_id=resource.id,
            http_method=method.http_method,
            type="MOCK",
            request_templates={"application/json": '{"statusCode": 200}'},
        )
        header = "method.response.header.Access-Control-Allow-"
        method_response = ApiGatewayMethodResponse(
            self,
            f"method-response-options-{logical}",
            rest_api_id=api_id,
            resource_id=resource.id,
            http_method=method.http_method,
            status_code="200",
            response_parameters={
                f"{header}Origin": True,
                f"{header}Methods": True,
                f"{header}Headers": True,
            },
        )
        integration_response = ApiGatewayIntegrationResponse(
            self,
            f"integration-response-options-{logical}",
            rest_api_id=api_id,
            resource_id=resource.id,
            http_method=method.http_method,
            status_code=method_response.status_code,
            response_parameters={
                f"{header}Origin": cors_origin,
                f"{header}Methods": _quoted(",".join([*methods_of(path), "OPTIONS"])),
                f"{header}Headers": _quoted(CORS_ALLOW_HEADERS),
            },
            depends_on=[integration],
        )
        return [method, integration, method_response, integration_response]

    def _custom_domain(self, settings: Settings) -> ApiGatewayDomainName:
        domain = ApiGatewayDomainName(
            self,
            "domain",
            domain_name=settings.api_domain_name,
            regional_certificate_arn=settings.api_certificate_arn,
            endpoint_configuration=ApiGatewayDomainNameEndpointConfiguration(types=["REGIONAL"]),
            # TLS 1.0 and 1.1 are refused (PCI DSS 4.2.1: strong cryptography in transit).
            security_policy="TLS_1_2",
        )
        ApiGatewayBasePathMapping(
            self,
            "base-path",
            api_id=self.rest_api.id,
            stage_name=self.stage.stage_name,
            domain_name=domain.domain_name,
        )
        return domain

    @property
    def url(self) -> str:
        if self.domain is not None:
            return f"https://{self._domain_name}"
        return self.stage.invoke_url
