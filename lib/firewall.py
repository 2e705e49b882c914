"""A WAF web ACL in front of the REST API stage.

API keys and the usage plan limit known callers; the web ACL stops what reaches the stage before
any key check: addresses AWS threat intelligence knows as bad, anonymizing proxies and Tor, common
exploits, known-bad inputs (Log4Shell and friends), floods from one IP and a tighter one on the
fraud webhook.
"""

from __future__ import annotations

from typing import Any

from cdktf_cdktf_provider_aws.wafv2_web_acl import (
    Wafv2WebAcl,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclDefaultActionAllow,
    Wafv2WebAclRule,
    Wafv2WebAclRuleAction,
    Wafv2WebAclRuleActionBlock,
    Wafv2WebAclRuleOverrideAction,
    Wafv2WebAclRuleOverrideActionNone,
    Wafv2WebAclRuleVisibilityConfig,
    Wafv2WebAclVisibilityConfig,
)
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import (
    Wafv2WebAclLoggingConfiguration,
    Wafv2WebAclLoggingConfigurationRedactedFields,
    Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader,
)
from constructs import Construct

from lib.logs import encrypted_log_group, waf_log_group_name
from lib.settings import Settings

# The common rule set blocks requests without a User-Agent; server-to-server payment clients
# often send none, so that one rule only counts.
COUNT_ONLY_RULES = ("NoUserAgent_HEADER",)
# The anonymous-IP group also blocks cloud hosting providers, where payment clients and the
# fraud provider run; VPNs, proxies and Tor stay blocked.
ANONYMOUS_COUNT_ONLY_RULES = ("HostingProviderIPList",)
RATE_WINDOW_SECONDS = 300
WEBHOOK_PATH = "/fraud-webhook"


def _visibility(metric: str) -> dict[str, Any]:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


def _managed(name: str, priority: int, *, count_only: tuple[str, ...] = ()) -> Wafv2WebAclRule:
    group: dict[str, Any] = {"vendor_name": "AWS", "name": name}
    if count_only:
        group["rule_action_override"] = [
            {"name": rule, "action_to_use": {"count": {}}} for rule in count_only
        ]
    return Wafv2WebAclRule(
        name=name,
        priority=priority,
        override_action=Wafv2WebAclRuleOverrideAction(none=Wafv2WebAclRuleOverrideActionNone()),
        # The provider types statements as Any (they nest too deep for bindings): Terraform names.
        statement={"managed_rule_group_statement": group},
        visibility_config=Wafv2WebAclRuleVisibilityConfig(**_visibility(name)),
    )


def _rate_limit(
    metric: str, name: str, priority: int, limit: int, *, scope_down: dict | None = None
) -> Wafv2WebAclRule:
    """Block one IP beyond ``limit`` requests in the rate window (optionally on matching
    requests only)."""
    statement: dict[str, Any] = {
        "limit": limit,
        "aggregate_key_type": "IP",
        "evaluation_window_sec": RATE_WINDOW_SECONDS,
    }
    if scope_down:
        statement["scope_down_statement"] = scope_down
    return Wafv2WebAclRule(
        name=name,
        priority=priority,
        action=Wafv2WebAclRuleAction(block=Wafv2WebAclRuleActionBlock()),
        statement={"rate_based_statement": statement},
        visibility_config=Wafv2WebAclRuleVisibilityConfig(**_visibility(metric)),
    )


class Firewall(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        kms_key_arn: str,
        stage_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        name = settings.name("api")
        profile = settings.profile
        self.web_acl = Wafv2WebAcl(
            self,
            "web-acl",
            name=name,
            scope="REGIONAL",
            default_action=Wafv2WebAclDefaultAction(allow=Wafv2WebAclDefaultActionAllow()),
            visibility_config=Wafv2WebAclVisibilityConfig(**_visibility(name)),
            rule=[
                # Cheapest and most certain first: known-bad addresses, then floods, then the
                # request inspections.
                _managed("AWSManagedRulesAmazonIpReputationList", 1),
                _managed(
                    "AWSManagedRulesAnonymousIpList", 2, count_only=ANONYMOUS_COUNT_ONLY_RULES
                ),
                _rate_limit(f"{name}-per-ip-flood", "per-ip-flood", 3, profile.waf_requests_per_ip),
                _rate_limit(
                    f"{name}-webhook-flood",
                    "webhook-flood",
                    4,
                    profile.waf_webhook_requests_per_ip,
                    scope_down={
                        "byte_match_statement": {
                            "search_string": WEBHOOK_PATH,
                            "field_to_match": {"uri_path": {}},
                            # The stage name precedes the path: /<stage>/fraud-webhook.
                            "positional_constraint": "ENDS_WITH",
                            "text_transformation": [{"priority": 0, "type": "LOWERCASE"}],
                        }
                    },
                ),
                _managed("AWSManagedRulesCommonRuleSet", 5, count_only=COUNT_ONLY_RULES),
                _managed("AWSManagedRulesKnownBadInputsRuleSet", 6),
            ],
        )
        Wafv2WebAclAssociation(self, "stage", resource_arn=stage_arn, web_acl_arn=self.web_acl.arn)
        logs = encrypted_log_group(
            self,
            "logs",
            name=waf_log_group_name(settings),
            settings=settings,
            kms_key_arn=kms_key_arn,
        )
        Wafv2WebAclLoggingConfiguration(
            self,
            "logging",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[logs.arn],
            # The API key is a credential; it must not land in the logs.
            redacted_fields=[
                Wafv2WebAclLoggingConfigurationRedactedFields(
                    single_header=Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader(
                        name="x-api-key"
                    )
                )
            ],
        )
