"""Bucket-policy conditions evaluated for a local request (pure; no moto, no patches applied).

Every local request counts as the HTTPS request it would be in AWS: aws:SecureTransport is true
and s3:TlsVersion is 1.3 (``patches.REQUEST_CONTEXT``).
"""

from __future__ import annotations

import logging

import pytest

from localcloud.patches import effective_policy

BUCKET = "arn:aws:s3:::payments-batch"


def statement(sid: str, condition: dict | None = None, effect: str = "Deny") -> dict:
    body = {"Sid": sid, "Effect": effect, "Principal": "*", "Action": "s3:*", "Resource": BUCKET}
    return {**body, "Condition": condition} if condition is not None else body


def kept(*statements: dict) -> list[str]:
    policy = {"Version": "2012-10-17", "Statement": list(statements)}
    return [s["Sid"] for s in effective_policy(policy)["Statement"]]


class TestTlsOnlyPolicy:
    def test_deny_over_plain_http_does_not_apply_to_local_requests(self):
        deny_http = statement("tls", {"Bool": {"aws:SecureTransport": "false"}})
        assert kept(deny_http) == []

    def test_condition_key_names_are_case_insensitive(self):
        assert kept(statement("tls", {"Bool": {"AWS:SECURETRANSPORT": "false"}})) == []
        assert kept(statement("tls", {"Bool": {"aws:securetransport": "true"}})) == ["tls"]

    def test_statement_without_condition_is_kept_and_conditions_are_dropped(self):
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                statement("always"),
                statement("secure", {"Bool": {"aws:SecureTransport": ["true"]}}, "Allow"),
            ],
        }
        result = effective_policy(policy)
        assert [s["Sid"] for s in result["Statement"]] == ["always", "secure"]
        assert all("Condition" not in s for s in result["Statement"])
        assert result["Version"] == "2012-10-17"

    def test_single_statement_object_is_accepted(self):
        policy = {"Statement": statement("one", {"Bool": {"aws:SecureTransport": "false"}})}
        assert effective_policy(policy)["Statement"] == []


class TestOperators:
    @pytest.mark.parametrize(
        ("condition", "holds"),
        [
            ({"NumericLessThan": {"s3:TlsVersion": "1.2"}}, False),
            ({"NumericLessThan": {"s3:TlsVersion": "2"}}, True),
            ({"NumericLessThanEquals": {"s3:TlsVersion": 1.3}}, True),
            ({"NumericGreaterThan": {"s3:TlsVersion": "1.3"}}, False),
            ({"NumericGreaterThanEquals": {"s3:TlsVersion": ["1.0", "1.3"]}}, True),
            ({"StringEquals": {"aws:SecureTransport": ["false", "TRUE"]}}, True),
            ({"StringNotEquals": {"aws:SecureTransport": "true"}}, False),
            ({"StringEqualsIgnoreCase": {"aws:SecureTransport": "True"}}, True),
            ({"Null": {"aws:SecureTransport": "false"}}, True),
            ({"Null": {"aws:SecureTransport": "true"}}, False),
        ],
    )
    def test_operator_against_the_local_request(self, condition, holds):
        assert kept(statement("s", condition)) == (["s"] if holds else [])

    def test_every_operator_and_every_key_must_hold(self):
        both = {
            "Bool": {"aws:SecureTransport": "true"},
            "NumericLessThan": {"s3:TlsVersion": "1.2"},
        }
        assert kept(statement("s", both)) == []


class TestKeysTheLocalCloudDoesNotKnow:
    def test_unknown_key_fails_the_condition(self):
        assert kept(statement("s", {"StringEquals": {"aws:SourceVpce": "vpce-1"}})) == []

    @pytest.mark.parametrize("operator", ["StringNotEquals", "StringNotLike", "ArnNotLike"])
    def test_negated_operator_holds_for_an_unknown_key(self, operator):
        # IAM: "Deny unless from this VPC endpoint" denies a request that has no endpoint.
        assert kept(statement("s", {operator: {"aws:SourceVpce": "vpce-1"}})) == ["s"]

    def test_if_exists_holds_for_an_unknown_key(self):
        condition = {"StringEqualsIfExists": {"aws:SourceVpce": "vpce-1"}}
        assert kept(statement("s", condition)) == ["s"]

    def test_null_true_holds_for_an_unknown_key_and_null_false_does_not(self):
        assert kept(statement("s", {"Null": {"aws:SourceVpce": "true"}})) == ["s"]
        assert kept(statement("s", {"Null": {"aws:SourceVpce": "false"}})) == []

    def test_unsupported_operator_is_treated_as_met_and_says_so(self, caplog):
        condition = {"IpAddress": {"aws:SecureTransport": "10.0.0.0/8"}}
        with caplog.at_level(logging.WARNING, logger="localcloud.patches"):
            assert kept(statement("s", condition)) == ["s"]
        assert "IpAddress is not evaluated" in caplog.text
