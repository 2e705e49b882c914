"""S3 on the patched moto (``localcloud/services/s3.py``), through boto3, and the bucket-policy
condition logic on its own.

Every local request counts as the HTTPS request it would be in AWS: aws:SecureTransport is true
and s3:TlsVersion is 1.3 (``s3.REQUEST_CONTEXT``)."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, unquote

import pytest
from botocore.exceptions import ClientError
from localcloud_support import RECORDING_HANDLER, recorded, wait_for

from localcloud.services.s3 import effective_policy

pytestmark = pytest.mark.xdist_group("localcloud-s3")


def tls_only_policy(bucket: str, *extra: dict) -> str:
    """A TLS-only policy shaped like the stack's (Deny every principal over HTTP), plus extras."""
    deny_http = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [deny_http, *extra]})


class TestBucketPolicyConditions:
    def test_tls_only_deny_lets_local_requests_through(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="tls-only")
        s3.put_bucket_policy(Bucket="tls-only", Policy=tls_only_policy("tls-only"))
        s3.put_object(Bucket="tls-only", Key="incoming/batch.csv", Body=b"a,b\n")
        body = s3.get_object(Bucket="tls-only", Key="incoming/batch.csv")["Body"].read()
        assert body == b"a,b\n"

    def test_an_unconditional_deny_still_denies(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="locked-prefix")
        locked = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::locked-prefix/locked/*",
        }
        s3.put_bucket_policy(
            Bucket="locked-prefix", Policy=tls_only_policy("locked-prefix", locked)
        )
        s3.put_object(Bucket="locked-prefix", Key="open/a.txt", Body=b"x")
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket="locked-prefix", Key="locked/a.txt", Body=b"x")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    def test_a_deny_whose_condition_holds_locally_denies(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="old-tls")
        # Every local request is TLS 1.3 (s3.REQUEST_CONTEXT): a Deny below 2 applies.
        below_two = {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::old-tls/*",
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "2"}},
        }
        s3.put_bucket_policy(Bucket="old-tls", Policy=tls_only_policy("old-tls", below_two))
        with pytest.raises(ClientError):
            s3.put_object(Bucket="old-tls", Key="a.txt", Body=b"x")

    def test_logging_target_with_a_star_principal_statement_is_accepted(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="access-logs")
        s3.create_bucket(Bucket="served")
        allow_logging = {
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::access-logs/served/*",
        }
        s3.put_bucket_policy(
            Bucket="access-logs", Policy=tls_only_policy("access-logs", allow_logging)
        )
        target = {"TargetBucket": "access-logs", "TargetPrefix": "served/"}
        s3.put_bucket_logging(Bucket="served", BucketLoggingStatus={"LoggingEnabled": target})
        assert s3.get_bucket_logging(Bucket="served")["LoggingEnabled"] == target


class TestS3Listings:
    def test_list_object_versions_honours_encoding_type_url(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="versioned")
        s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
        # The provider decodes what it asked to be encoded: a raw "%41" would come back as "A".
        key = "reports/100%41 done+.csv"
        s3.put_object(Bucket="versioned", Key=key, Body=b"x")
        # Named explicitly, botocore leaves the keys encoded, as the Go SDK receives them.
        listing = s3.list_object_versions(Bucket="versioned", EncodingType="url")
        assert listing["EncodingType"] == "url"
        assert [v["Key"] for v in listing["Versions"]] == [quote(key)]
        assert unquote(listing["Versions"][0]["Key"]) == key


class TestObjectLock:
    def test_the_default_retention_of_a_used_lock_bucket_can_change(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
        rule = {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}
        config = {"ObjectLockEnabled": "Enabled", "Rule": rule}
        s3.put_object_lock_configuration(Bucket="locked", ObjectLockConfiguration=config)
        s3.put_object(Bucket="locked", Key="audit/a", Body=b"x", ChecksumAlgorithm="SHA256")
        # What Terraform's destroy of the lock configuration sends: the rule dropped.
        s3.put_object_lock_configuration(
            Bucket="locked", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        )
        got = s3.get_object_lock_configuration(Bucket="locked")["ObjectLockConfiguration"]
        assert got["ObjectLockEnabled"] == "Enabled" and "DefaultRetention" not in got.get(
            "Rule", {}
        )
        # The object keeps the lock it was written with.
        assert s3.head_object(Bucket="locked", Key="audit/a")["ObjectLockMode"] == "GOVERNANCE"

    def test_a_lock_bucket_keeps_its_versioning(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
        with pytest.raises(ClientError) as refused:
            s3.put_bucket_versioning(
                Bucket="locked", VersioningConfiguration={"Status": "Suspended"}
            )
        error = refused.value.response["Error"]
        assert error["Code"] == "InvalidBucketState"
        assert "versioning state cannot be changed" in error["Message"]
        assert s3.get_bucket_versioning(Bucket="locked")["Status"] == "Enabled"

    def test_a_bucket_without_object_lock_still_needs_to_be_empty(self, cloud):
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="plain")
        s3.put_bucket_versioning(Bucket="plain", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="plain", Key="a", Body=b"x")
        with pytest.raises(ClientError) as refused:
            s3.put_object_lock_configuration(
                Bucket="plain", ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
            )
        assert refused.value.response["Error"]["Code"] == "InvalidBucket"


class TestS3Notifications:
    def test_event_has_version_sequencer_and_slash_and_reaches_the_function(self, cloud, tmp_path):
        record_file = tmp_path / "events.jsonl"
        arn = cloud.create_function(
            "on-upload",
            RECORDING_HANDLER + "def handler(event, context):\n    record(event)\n",
            Environment={"Variables": {"RECORD_FILE": str(record_file)}},
        )
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="uploads")
        s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_notification_configuration(
            Bucket="uploads",
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [
                    {"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
                ]
            },
        )
        version = s3.put_object(Bucket="uploads", Key="incoming/a b.csv", Body=b"x")["VersionId"]
        (event,) = wait_for(lambda: recorded(record_file))
        obj = event["Records"][0]["s3"]["object"]
        assert obj["key"] == "incoming/a+b.csv"
        assert obj["versionId"] == version
        assert int(obj["sequencer"], 16) > 0


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
        with caplog.at_level(logging.WARNING, logger="localcloud.s3"):
            assert kept(statement("s", condition)) == ["s"]
        assert "IpAddress is not evaluated" in caplog.text
