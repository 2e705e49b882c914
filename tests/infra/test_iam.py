"""No IAM statement allows every action, and "*" resources only where AWS offers nothing else."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.kms_key import KmsKey

from lib.iam import UNSCOPED_ACTIONS


def _identity_statements(synth) -> list[dict]:
    """Statements of every role's permission policy (aws_iam_policy_document data sources)."""
    documents = synth.data("aws_iam_policy_document")
    statements = []
    for policy in synth.resources(IamRolePolicy.TF_RESOURCE_TYPE).values():
        statements += documents[policy["policy"].split(".")[2]]["statement"]
    return statements


def _all_allow_actions(synth) -> list[str]:
    actions = []
    for document in synth.data("aws_iam_policy_document").values():
        actions += [
            a
            for s in document["statement"]
            if s.get("effect", "Allow") == "Allow"
            for a in s["actions"]
        ]
    key_policy = json.loads(synth.one(KmsKey.TF_RESOURCE_TYPE)["policy"])
    actions += [a for s in key_policy["Statement"] for a in s["Action"]]
    return actions


class TestIam:
    def test_no_allow_statement_grants_all_actions_of_a_service(self, each):
        for action in _all_allow_actions(each):
            assert action != "*" and not action.endswith(":*"), action

    def test_star_resources_only_for_actions_without_resource_level_permissions(self, each):
        for statement in _identity_statements(each):
            if "*" in statement["resources"]:
                assert statement["resources"] == ["*"]
                assert set(statement["actions"]) <= UNSCOPED_ACTIONS, statement["actions"]

    def test_unscoped_actions_are_xray_vpc_describe_and_log_delivery_only(self):
        services = {action.split(":")[0] for action in UNSCOPED_ACTIONS}
        assert services == {"xray", "ec2", "logs"}
        assert all(a.startswith("ec2:Describe") for a in UNSCOPED_ACTIONS if a.startswith("ec2:"))

    def test_every_role_has_exactly_one_inline_policy(self, each):
        roles = each.resources(IamRole.TF_RESOURCE_TYPE)
        policies = [p["role"] for p in each.resources(IamRolePolicy.TF_RESOURCE_TYPE).values()]
        assert sorted(policies) == sorted(f"${{aws_iam_role.{id_}.id}}" for id_ in roles)

    def test_policies_are_documents_checkov_can_read(self, each):
        documents = each.data("aws_iam_policy_document")
        for policy in each.resources(IamRolePolicy.TF_RESOURCE_TYPE).values():
            assert policy["policy"].startswith("${data.aws_iam_policy_document.")
            assert policy["policy"].split(".")[2] in documents
