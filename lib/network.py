"""VPC mode (production): private subnets in three AZs, no internet path, endpoints for AWS APIs.

The functions reach DynamoDB and S3 through gateway endpoints and SQS, SNS, Step Functions, SSM
and X-Ray through interface endpoints; there is no NAT gateway and no internet gateway.
"""

from __future__ import annotations

from cdktf import Fn, Precondition, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_availability_zones import (
    DataAwsAvailabilityZones,
    DataAwsAvailabilityZonesFilter,
)
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.route_table import RouteTable
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from lib.functions import VpcPlacement
from lib.iam import AwsAccount, service_role, statement
from lib.logs import encrypted_log_group, flow_log_group_name
from lib.settings import Settings

VPC_CIDR = "10.40.0.0/16"
AZ_COUNT = 3
# /20 per subnet: 4,091 addresses each, room for Lambda ENIs at any reserved concurrency.
SUBNET_NEWBITS = 4
GATEWAY_ENDPOINTS = ("s3", "dynamodb")
INTERFACE_ENDPOINTS = ("sqs", "sns", "states", "ssm", "xray")
HTTPS = 443
# Every security-group rule of the stack: AWS APIs are only spoken over TLS.
HTTPS_ONLY = {"ip_protocol": "tcp", "from_port": HTTPS, "to_port": HTTPS}


class Network(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: Settings,
        account: AwsAccount,
        kms_key_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        name = settings.name("vpc")
        self.vpc = Vpc(
            self,
            "vpc",
            cidr_block=VPC_CIDR,
            enable_dns_support=True,
            # Private DNS of the interface endpoints needs both DNS settings.
            enable_dns_hostnames=True,
            tags={"Name": name},
        )
        # Nothing may use the default security group; an empty rule set closes it.
        DefaultSecurityGroup(
            self, "default-sg", vpc_id=self.vpc.id, tags={"Name": f"{name}-default"}
        )
        # Pinned by name: the subnets never move when AWS adds a zone, and a plan fails early
        # if one of the pinned zones is not available to the account.
        zones = DataAwsAvailabilityZones(
            self,
            "zones",
            state="available",
            filter=[DataAwsAvailabilityZonesFilter(name="zone-name", values=list(settings.zones))],
        )
        self.subnets = [
            Subnet(
                self,
                f"private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=Fn.cidrsubnet(VPC_CIDR, SUBNET_NEWBITS, index),
                availability_zone=settings.zones[index],
                lifecycle=TerraformResourceLifecycle(
                    precondition=[
                        Precondition(
                            condition=Fn.contains(zones.names, settings.zones[index]),
                            error_message=(
                                f"{settings.zones[index]} is not an available zone of this "
                                "account: set AVAILABILITY_ZONES"
                            ),
                        )
                    ]
                ),
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{index}"},
            )
            for index in range(AZ_COUNT)
        ]
        route_table = RouteTable(
            self, "private-routes", vpc_id=self.vpc.id, tags={"Name": f"{name}-private"}
        )
        for index, subnet in enumerate(self.subnets):
            RouteTableAssociation(
                self, f"private-{index}-routes", subnet_id=subnet.id, route_table_id=route_table.id
            )
        self.functions_sg = SecurityGroup(
            self,
            "functions-sg",
            name=settings.name("functions"),
            description="Payments Lambda functions: HTTPS out to AWS endpoints only",
            vpc_id=self.vpc.id,
        )
        endpoints_sg = SecurityGroup(
            self,
            "endpoints-sg",
            name=settings.name("endpoints"),
            description="Interface endpoints: HTTPS in from the payments functions only",
            vpc_id=self.vpc.id,
        )
        VpcSecurityGroupIngressRule(
            self,
            "endpoints-in",
            security_group_id=endpoints_sg.id,
            description="HTTPS from the payments functions",
            **HTTPS_ONLY,
            referenced_security_group_id=self.functions_sg.id,
        )
        VpcSecurityGroupEgressRule(
            self,
            "functions-to-endpoints",
            security_group_id=self.functions_sg.id,
            description="HTTPS to the interface endpoints",
            **HTTPS_ONLY,
            referenced_security_group_id=endpoints_sg.id,
        )
        for service in GATEWAY_ENDPOINTS:
            endpoint = VpcEndpoint(
                self,
                f"{service}-endpoint",
                vpc_id=self.vpc.id,
                service_name=f"{account.reverse_dns_prefix}.{settings.region}.{service}",
                vpc_endpoint_type="Gateway",
                route_table_ids=[route_table.id],
                tags={"Name": f"{name}-{service}"},
            )
            VpcSecurityGroupEgressRule(
                self,
                f"functions-to-{service}",
                security_group_id=self.functions_sg.id,
                description=f"HTTPS to {service} through its gateway endpoint",
                **HTTPS_ONLY,
                prefix_list_id=endpoint.prefix_list_id,
            )
        for service in INTERFACE_ENDPOINTS:
            VpcEndpoint(
                self,
                f"{service}-endpoint",
                vpc_id=self.vpc.id,
                service_name=f"{account.reverse_dns_prefix}.{settings.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in self.subnets],
                security_group_ids=[endpoints_sg.id],
                tags={"Name": f"{name}-{service}"},
            )
        flow_logs = encrypted_log_group(
            self,
            "flow-logs",
            name=flow_log_group_name(settings),
            settings=settings,
            kms_key_arn=kms_key_arn,
        )
        flow_logs_role = service_role(
            self,
            "flow-logs-role",
            name=settings.name("flow-logs"),
            service="vpc-flow-logs.amazonaws.com",
            account=account,
            source_account_condition=True,
            statements=[
                statement(
                    sid="WriteFlowLogs",
                    actions=[
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogGroups",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[flow_logs.arn, f"{flow_logs.arn}:*"],
                )
            ],
        )
        FlowLog(
            self,
            "flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=flow_logs.arn,
            iam_role_arn=flow_logs_role.arn,
            tags={"Name": name},
            depends_on=[flow_logs_role.policy],
        )

    @property
    def placement(self) -> VpcPlacement:
        return VpcPlacement(
            subnet_ids=[s.id for s in self.subnets], security_group_ids=[self.functions_sg.id]
        )
