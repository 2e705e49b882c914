"""VPC mode: on in production, absent in dev."""

from __future__ import annotations

import pytest
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule

from lib.settings import ConfigError, Settings


class TestNetwork:
    def test_dev_has_no_network(self, dev):
        assert dev.profile.vpc_enabled is False
        assert dev.resources(Vpc.TF_RESOURCE_TYPE) == {}
        assert dev.resources(VpcEndpoint.TF_RESOURCE_TYPE) == {}

    def test_three_private_subnets_in_three_zones(self, production):
        subnets = production.resources(Subnet.TF_RESOURCE_TYPE).values()
        assert len(subnets) == 3
        assert len({s["availability_zone"] for s in subnets}) == 3
        assert all(s["map_public_ip_on_launch"] is False for s in subnets)

    def test_gateway_endpoints_for_s3_and_dynamodb(self, production):
        endpoints = production.resources(VpcEndpoint.TF_RESOURCE_TYPE).values()
        gateways = {
            e["service_name"].rsplit(".", 1)[1]
            for e in endpoints
            if e["vpc_endpoint_type"] == "Gateway"
        }
        assert gateways == {"s3", "dynamodb"}

    def test_interface_endpoints_with_private_dns(self, production):
        endpoints = [
            e
            for e in production.resources(VpcEndpoint.TF_RESOURCE_TYPE).values()
            if e["vpc_endpoint_type"] == "Interface"
        ]
        assert {e["service_name"].rsplit(".", 1)[1] for e in endpoints} == {
            "sqs",
            "sns",
            "states",
            "ssm",
            "xray",
        }
        assert all(
            e["private_dns_enabled"] is True and len(e["subnet_ids"]) == 3 for e in endpoints
        )

    def test_security_group_rules_allow_https_only_and_never_the_internet(self, production):
        rules = [
            *production.resources(VpcSecurityGroupIngressRule.TF_RESOURCE_TYPE).values(),
            *production.resources(VpcSecurityGroupEgressRule.TF_RESOURCE_TYPE).values(),
        ]
        assert rules
        for rule in rules:
            assert (rule["ip_protocol"], rule["from_port"], rule["to_port"]) == ("tcp", 443, 443)
            assert "cidr_ipv4" not in rule and "cidr_ipv6" not in rule

    def test_default_security_group_is_closed(self, production):
        default = production.one(DefaultSecurityGroup.TF_RESOURCE_TYPE)
        assert "ingress" not in default and "egress" not in default

    def test_flow_logs_capture_all_traffic(self, production):
        assert production.has(
            FlowLog.TF_RESOURCE_TYPE,
            {"traffic_type": "ALL", "log_destination_type": "cloud-watch-logs"},
        )


class TestPinnedZones:
    def test_subnets_sit_in_the_pinned_zones(self, production):
        subnets = production.resources(Subnet.TF_RESOURCE_TYPE).values()
        assert sorted(s["availability_zone"] for s in subnets) == sorted(production.settings.zones)
        assert production.settings.zones == tuple(f"{production.settings.region}{z}" for z in "abc")

    def test_zone_lookup_is_filtered_by_zone_name(self, production):
        (zones,) = production.data("aws_availability_zones").values()
        (name_filter,) = zones["filter"]
        assert name_filter["name"] == "zone-name"
        assert sorted(name_filter["values"]) == sorted(production.settings.zones)

    def test_a_pinned_zone_the_account_lacks_fails_the_plan(self, production):
        for subnet in production.resources(Subnet.TF_RESOURCE_TYPE).values():
            (precondition,) = subnet["lifecycle"]["precondition"]
            assert "contains(data.aws_availability_zones." in precondition["condition"]
            assert "AVAILABILITY_ZONES" in precondition["error_message"]

    def test_zones_can_be_chosen_and_are_checked(self):
        zones = "us-west-1b,us-west-1c,us-west-1d"
        settings = Settings.from_env({"AWS_REGION": "us-west-1", "AVAILABILITY_ZONES": zones})
        assert settings.zones == tuple(zones.split(","))
        for bad in ("us-west-1b,us-west-1c", "us-east-1a,us-east-1b,us-east-1c", "a,a,a"):
            with pytest.raises(ConfigError, match="AVAILABILITY_ZONES="):
                Settings.from_env({"AWS_REGION": "us-west-1", "AVAILABILITY_ZONES": bad})
