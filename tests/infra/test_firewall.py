"""The WAF web ACL in front of the API stage."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.wafv2_web_acl import Wafv2WebAcl
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import (
    Wafv2WebAclLoggingConfiguration,
)

from lib.firewall import RATE_WINDOW_SECONDS


class TestFirewall:
    def _rules(self, synth) -> dict[str, dict]:
        return {r["name"]: r for r in synth.one(Wafv2WebAcl.TF_RESOURCE_TYPE)["rule"]}

    def test_regional_web_acl_with_the_managed_groups_for_bad_inputs_and_bad_addresses(self, each):
        acl = each.one(Wafv2WebAcl.TF_RESOURCE_TYPE)
        assert acl["scope"] == "REGIONAL" and acl["default_action"] == {"allow": {}}
        rules = self._rules(each)
        managed = {
            r["statement"]["managed_rule_group_statement"]["name"]
            for r in rules.values()
            if "managed_rule_group_statement" in r["statement"]
        }
        assert managed == {
            "AWSManagedRulesCommonRuleSet",
            "AWSManagedRulesKnownBadInputsRuleSet",  # Log4Shell
            "AWSManagedRulesAmazonIpReputationList",
            "AWSManagedRulesAnonymousIpList",
        }
        assert len({r["priority"] for r in rules.values()}) == len(rules)

    def test_per_ip_limit_is_a_client_not_the_whole_plan(self, each):
        flood = self._rules(each)["per-ip-flood"]["statement"]["rate_based_statement"]
        assert flood["limit"] == each.profile.waf_requests_per_ip
        assert flood["evaluation_window_sec"] == RATE_WINDOW_SECONDS
        # One IP may never send what the whole usage plan allows (the old limit).
        assert flood["limit"] < each.profile.api.rate_limit * RATE_WINDOW_SECONDS
        assert 10 <= flood["limit"] <= 2_000_000_000  # WAF's bounds

    def test_the_fraud_webhook_has_a_tighter_limit_of_its_own(self, each):
        rule = self._rules(each)["webhook-flood"]
        assert rule["action"] == {"block": {}}
        statement = rule["statement"]["rate_based_statement"]
        assert statement["limit"] == each.profile.waf_webhook_requests_per_ip
        assert statement["limit"] < each.profile.waf_requests_per_ip
        match = statement["scope_down_statement"]["byte_match_statement"]
        assert match["search_string"] == "/fraud-webhook"
        assert match["field_to_match"] == {"uri_path": {}}
        assert match["positional_constraint"] == "ENDS_WITH"

    def test_hosting_providers_are_only_counted_where_clients_run(self, each):
        group = self._rules(each)["AWSManagedRulesAnonymousIpList"]["statement"][
            "managed_rule_group_statement"
        ]
        assert group["rule_action_override"] == [
            {"name": "HostingProviderIPList", "action_to_use": {"count": {}}}
        ]
        reputation = self._rules(each)["AWSManagedRulesAmazonIpReputationList"]["statement"]
        assert "rule_action_override" not in reputation["managed_rule_group_statement"]

    def test_production_allows_more_per_ip_than_dev(self, production, dev):
        assert production.profile.waf_requests_per_ip > dev.profile.waf_requests_per_ip

    def test_web_acl_protects_the_api_stage(self, each):
        association = each.one(Wafv2WebAclAssociation.TF_RESOURCE_TYPE)
        assert association["resource_arn"].startswith("${aws_api_gateway_stage.api_stage_")

    def test_waf_logs_redact_the_api_key(self, each):
        logging = each.one(Wafv2WebAclLoggingConfiguration.TF_RESOURCE_TYPE)
        assert logging["redacted_fields"] == [{"single_header": {"name": "x-api-key"}}]
        assert logging["log_destination_configs"][0].startswith(
            "${aws_cloudwatch_log_group.firewall_logs_"
        )
