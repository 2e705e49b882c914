"""IAM building blocks: the account context, policy statements and least-privilege roles.

Every policy is a ``DataAwsIamPolicyDocument`` rather than an inline JSON string: checkov reads
those data sources in ``cdk.tf.json`` and cannot read a JSON string (DESIGN section 5), and
``tests/infra`` checks the same statements for wildcards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
)
from cdktf_cdktf_provider_aws.data_aws_iam_session_context import DataAwsIamSessionContext
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

# Actions for which AWS offers no resource-level permissions, so "*" is the narrowest resource.
# tests/infra/test_iam.py allows Resource "*" for exactly these.
XRAY_WRITE_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
XRAY_SAMPLING_ACTIONS = ("xray:GetSamplingRules", "xray:GetSamplingTargets")
VPC_DESCRIBE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")
# These accept resource ARNs; the functions scope them to the account's ENIs, subnets and groups.
VPC_NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
UNSCOPED_ACTIONS = frozenset(
    XRAY_WRITE_ACTIONS + XRAY_SAMPLING_ACTIONS + VPC_DESCRIBE_ACTIONS + LOG_DELIVERY_ACTIONS
)


class AwsAccount(Construct):
    """The account, partition and region the stack deploys into, for building ARNs."""

    def __init__(self, scope: Construct, id_: str, *, region: str) -> None:
        super().__init__(scope, id_)
        self.region = region
        caller = DataAwsCallerIdentity(self, "caller")
        self.account_id = caller.account_id
        # The role behind the deploying session (an assumed-role ARN is no valid principal).
        self.deployer_arn = DataAwsIamSessionContext(self, "deployer", arn=caller.arn).issuer_arn
        partition = DataAwsPartition(self, "partition")
        self.partition = partition.partition
        # amazonaws.com, amazonaws.com.cn, c2s.ic.gov, ...: service endpoints and principals.
        self.dns_suffix = partition.dns_suffix
        # com.amazonaws, cn.com.amazonaws, gov.ic.c2s, ...: VPC endpoint service names.
        self.reverse_dns_prefix = partition.reverse_dns_prefix

    def service_endpoint(self, service: str) -> str:
        """``<service>.<region>.<dns suffix>``: how kms:ViaService and regional principals read."""
        return f"{service}.{self.region}.{self.dns_suffix}"

    def arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"


@dataclass(frozen=True, kw_only=True)
class Condition:
    test: str
    variable: str
    values: Sequence[str]


def statement(
    *,
    actions: Sequence[str],
    resources: Sequence[str],
    effect: str = "Allow",
    sid: str | None = None,
    principals: Mapping[str, Sequence[str]] | None = None,
    conditions: Sequence[Condition] = (),
) -> DataAwsIamPolicyDocumentStatement:
    return DataAwsIamPolicyDocumentStatement(
        sid=sid,
        effect=effect,
        actions=list(actions),
        resources=list(resources) or None,
        principals=[
            DataAwsIamPolicyDocumentStatementPrincipals(type=kind, identifiers=list(ids))
            for kind, ids in (principals or {}).items()
        ]
        or None,
        condition=[
            DataAwsIamPolicyDocumentStatementCondition(
                test=c.test, variable=c.variable, values=list(c.values)
            )
            for c in conditions
        ]
        or None,
    )


def deny_insecure_transport(
    *, actions: Sequence[str], resources: Sequence[str]
) -> DataAwsIamPolicyDocumentStatement:
    """The resource-policy statement that refuses every request not made over TLS, whoever
    sends it: payment data never crosses a network in clear text (PCI DSS 4.2.1)."""
    return statement(
        sid="DenyInsecureTransport",
        effect="Deny",
        actions=actions,
        resources=resources,
        principals={"*": ["*"]},
        conditions=[Condition(test="Bool", variable="aws:SecureTransport", values=["false"])],
    )


def policy_document(
    scope: Construct, id_: str, statements: Sequence[DataAwsIamPolicyDocumentStatement]
) -> DataAwsIamPolicyDocument:
    return DataAwsIamPolicyDocument(scope, id_, statement=list(statements))


@dataclass(frozen=True, kw_only=True)
class ServiceRole:
    """A role and its inline policy. Whatever AWS validates against the role's permissions when
    it is created (Lambda VPC access, Step Functions log delivery, event source mappings) must
    depend on ``policy``, not only on the role, or it races the policy's creation."""

    role: IamRole
    policy: IamRolePolicy

    @property
    def arn(self) -> str:
        return self.role.arn


def service_role(
    scope: Construct,
    id_: str,
    *,
    name: str,
    service: str,
    account: AwsAccount,
    statements: Sequence[DataAwsIamPolicyDocumentStatement],
    source_account_condition: bool = False,
) -> ServiceRole:
    """A role that only ``service`` can assume, with one inline policy.

    ``source_account_condition`` adds the confused-deputy guard for services that document
    ``aws:SourceAccount`` in trust policies (Step Functions, VPC Flow Logs).
    """
    guard = Condition(
        test="StringEquals", variable="aws:SourceAccount", values=[account.account_id]
    )
    trust = policy_document(
        scope,
        f"{id_}-trust",
        [
            statement(
                actions=["sts:AssumeRole"],
                resources=[],
                principals={"Service": [service]},
                conditions=[guard] if source_account_condition else [],
            )
        ],
    )
    role = IamRole(scope, id_, name=name, assume_role_policy=trust.json)
    permissions = policy_document(scope, f"{id_}-permissions", statements)
    policy = IamRolePolicy(scope, f"{id_}-policy", name=name, role=role.id, policy=permissions.json)
    return ServiceRole(role=role, policy=policy)
