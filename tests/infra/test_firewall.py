"""The WAF web ACL in front of the API stage."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.wafv2_web_acl import Wafv2WebAcl
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import (
    Wafv2WebAclLoggingConfiguration,
)

from lib.firewall import RATE_WINDOW_SECONDS


class TestFirewall:
    def test_regional_web_acl_with_managed_rules_and_a_flood_limit(self, each):
        acl = each.one(Wafv2WebAcl.TF_RESOURCE_TYPE)
        assert acl["scope"] == "REGIONAL" and acl["default_action"] == {"allow": {}}
        rules = {r["name"]: r for r in acl["rule"]}
        managed = {
            r["statement"]["managed_rule_group_statement"]["name"]
            for r in rules.values()
            if "managed_rule_group_statement" in r["statement"]
        }
        assert managed == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"}
        flood = rules["per-ip-flood"]["statement"]["rate_based_statement"]
        assert flood["limit"] == each.profile.api.rate_limit * RATE_WINDOW_SECONDS
        assert len({r["priority"] for r in rules.values()}) == len(rules)

    def test_web_acl_protects_the_api_stage(self, each):
        association = each.one(Wafv2WebAclAssociation.TF_RESOURCE_TYPE)
        assert association["resource_arn"].startswith("${aws_api_gateway_stage.api_stage_")

    def test_waf_logs_redact_the_api_key(self, each):
        logging = each.one(Wafv2WebAclLoggingConfiguration.TF_RESOURCE_TYPE)
        assert logging["redacted_fields"] == [{"single_header": {"name": "x-api-key"}}]
        assert logging["log_destination_configs"][0].startswith(
            "${aws_cloudwatch_log_group.firewall_logs_"
        )
