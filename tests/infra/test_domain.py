"""The optional custom domain of the API: TLS 1.2, a base-path mapping, execute-api switched off."""

from __future__ import annotations

import json

import pytest
from cdktf import Testing as CdktfTesting
from cdktf_cdktf_provider_aws.api_gateway_base_path_mapping import ApiGatewayBasePathMapping
from cdktf_cdktf_provider_aws.api_gateway_deployment import ApiGatewayDeployment
from cdktf_cdktf_provider_aws.api_gateway_domain_name import ApiGatewayDomainName
from cdktf_cdktf_provider_aws.api_gateway_rest_api import ApiGatewayRestApi

from lib.settings import ConfigError, Settings
from lib.stack import STACK_NAME, PaymentsStack

DOMAIN = "api.payments.example.com"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"


@pytest.fixture(scope="module")
def with_domain(build_dir) -> dict:
    settings = Settings.from_env(
        {
            "ENVIRONMENT_SUFFIX": "ci-domain",
            "ENVIRONMENT": "dev",
            "API_DOMAIN_NAME": DOMAIN,
            "API_CERTIFICATE_ARN": CERTIFICATE,
        }
    )
    stack = PaymentsStack(CdktfTesting.app(), STACK_NAME, settings=settings, build_dir=build_dir)
    return json.loads(CdktfTesting.synth(stack))


def _one(doc: dict, resource_type: str) -> dict:
    (only,) = doc["resource"][resource_type].values()
    return only


class TestCustomDomain:
    def test_regional_domain_with_tls_1_2_and_the_certificate(self, with_domain):
        domain = _one(with_domain, ApiGatewayDomainName.TF_RESOURCE_TYPE)
        assert domain["domain_name"] == DOMAIN
        assert domain["security_policy"] == "TLS_1_2"
        assert domain["regional_certificate_arn"] == CERTIFICATE
        assert domain["endpoint_configuration"] == {"types": ["REGIONAL"]}

    def test_the_stage_is_mapped_at_the_domains_root(self, with_domain):
        mapping = _one(with_domain, ApiGatewayBasePathMapping.TF_RESOURCE_TYPE)
        assert mapping["stage_name"].startswith("${aws_api_gateway_stage.api_stage_")
        assert mapping["api_id"].startswith("${aws_api_gateway_rest_api.api_rest-api_")
        assert "base_path" not in mapping

    def test_the_default_endpoint_is_switched_off(self, with_domain, each):
        assert _one(with_domain, ApiGatewayRestApi.TF_RESOURCE_TYPE)["disable_execute_api_endpoint"]
        assert not each.one(ApiGatewayRestApi.TF_RESOURCE_TYPE)["disable_execute_api_endpoint"]

    def test_adding_the_domain_to_a_live_environment_redeploys_the_stage(
        self, with_domain, build_dir
    ):
        # The same environment without the domain: only the switched-off endpoint differs in
        # what the deployment's trigger hashes, and the endpoint closes only with a redeploy.
        settings = Settings.from_env({"ENVIRONMENT_SUFFIX": "ci-domain", "ENVIRONMENT": "dev"})
        stack = PaymentsStack(
            CdktfTesting.app(), STACK_NAME, settings=settings, build_dir=build_dir
        )
        without = json.loads(CdktfTesting.synth(stack))
        before = _one(without, ApiGatewayDeployment.TF_RESOURCE_TYPE)["triggers"]
        after = _one(with_domain, ApiGatewayDeployment.TF_RESOURCE_TYPE)["triggers"]
        assert before["redeployment"] != after["redeployment"]

    def test_outputs_the_domain_url_and_the_dns_target(self, with_domain):
        outputs = with_domain["output"]
        assert outputs["api_url"]["value"] == f"https://{DOMAIN}"
        assert outputs["api_domain_target"]["value"].endswith(".regional_domain_name}")
        assert outputs["api_domain_zone_id"]["value"].endswith(".regional_zone_id}")

    def test_no_domain_unless_configured(self, each):
        assert each.resources(ApiGatewayDomainName.TF_RESOURCE_TYPE) == {}
        assert each.resources(ApiGatewayBasePathMapping.TF_RESOURCE_TYPE) == {}
        assert "api_domain_target" not in each.doc["output"]


class TestDomainSettings:
    @pytest.mark.parametrize(
        "env",
        [
            {"API_DOMAIN_NAME": DOMAIN},
            {"API_CERTIFICATE_ARN": CERTIFICATE},
            {"API_DOMAIN_NAME": "not a domain", "API_CERTIFICATE_ARN": CERTIFICATE},
            # A regional API needs its certificate in its own region.
            {
                "API_DOMAIN_NAME": DOMAIN,
                "API_CERTIFICATE_ARN": CERTIFICATE,
                "AWS_REGION": "eu-west-1",
            },
            {"API_DOMAIN_NAME": DOMAIN, "API_CERTIFICATE_ARN": "arn:aws:iam::123456789012:role/x"},
        ],
    )
    def test_incomplete_or_malformed_domain_settings_stop_synth(self, env):
        with pytest.raises(ConfigError, match=r"API_DOMAIN_NAME|API_CERTIFICATE_ARN"):
            Settings.from_env(env)
