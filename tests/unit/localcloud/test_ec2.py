"""EC2 on the patched moto (``localcloud/services/ec2.py``): security-group rules that reference a
group or a prefix list keep their description (moto as it ships drops it)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("localcloud-ec2")


class TestSecurityGroupRuleDescriptions:
    def test_rules_keep_their_description_whatever_they_reference(self, cloud):
        ec2 = cloud.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        functions = ec2.create_security_group(
            GroupName="functions", Description="functions", VpcId=vpc
        )["GroupId"]
        endpoints = ec2.create_security_group(
            GroupName="endpoints", Description="endpoints", VpcId=vpc
        )["GroupId"]
        prefix_list = ec2.create_managed_prefix_list(
            PrefixListName="s3", MaxEntries=2, AddressFamily="IPv4"
        )["PrefixList"]["PrefixListId"]
        https = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}
        ingress = ec2.authorize_security_group_ingress(
            GroupId=endpoints,
            IpPermissions=[
                {**https, "UserIdGroupPairs": [{"GroupId": functions, "Description": "in"}]}
            ],
        )["SecurityGroupRules"][0]["SecurityGroupRuleId"]
        to_group, to_list, to_cidr = (
            ec2.authorize_security_group_egress(GroupId=functions, IpPermissions=[permission])[
                "SecurityGroupRules"
            ][0]["SecurityGroupRuleId"]
            for permission in (
                {**https, "UserIdGroupPairs": [{"GroupId": endpoints, "Description": "group"}]},
                {**https, "PrefixListIds": [{"PrefixListId": prefix_list, "Description": "list"}]},
                {**https, "IpRanges": [{"CidrIp": "10.9.0.0/24", "Description": "cidr"}]},
            )
        )

        def descriptions() -> dict[str, str | None]:
            rules = ec2.describe_security_group_rules(
                SecurityGroupRuleIds=[ingress, to_group, to_list, to_cidr]
            )["SecurityGroupRules"]
            return {rule["SecurityGroupRuleId"]: rule.get("Description") for rule in rules}

        assert descriptions() == {
            ingress: "in",
            to_group: "group",
            to_list: "list",
            to_cidr: "cidr",
        }

        ec2.modify_security_group_rules(
            GroupId=functions,
            SecurityGroupRules=[
                {
                    "SecurityGroupRuleId": to_group,
                    "SecurityGroupRule": {
                        **https,
                        "ReferencedGroupId": endpoints,
                        "Description": "changed",
                    },
                }
            ],
        )
        assert descriptions()[to_group] == "changed"
