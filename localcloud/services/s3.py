"""S3: bucket-policy conditions evaluated, the logging-target check, events as S3 sends them,
url-encoded version listings."""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote, quote_plus

log = logging.getLogger("localcloud.s3")


# Values the local cloud reports for request-context condition keys. Requests reach moto over plain
# HTTP on the loopback interface; the TLS the policy insists on is AWS's front door, which has no
# counterpart here, so every request counts as the HTTPS request it would be in AWS.
REQUEST_CONTEXT = {"aws:securetransport": "true", "s3:tlsversion": "1.3"}


def _condition_holds(operator: str, values: dict[str, Any]) -> bool:
    """Evaluate one condition operator against ``REQUEST_CONTEXT`` (IAM semantics)."""
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    for key, expected in values.items():
        actual = REQUEST_CONTEXT.get(key.lower())
        wanted = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
        if actual is None:
            if base == "Null":
                if not any(w.lower() == "true" for w in wanted):
                    return False
                continue
            # IAM: a key missing from the request fails every operator but the negated ones.
            negated = ("StringNot", "NumericNot", "DateNot", "ArnNot", "NotIpAddress")
            if if_exists or base.startswith(negated):
                continue
            return False
        if base == "Bool" or base in ("StringEquals", "StringEqualsIgnoreCase"):
            holds = actual.lower() in (w.lower() for w in wanted)
        elif base in ("StringNotEquals", "StringNotEqualsIgnoreCase"):
            holds = actual.lower() not in (w.lower() for w in wanted)
        elif base == "NumericLessThan":
            holds = any(float(actual) < float(w) for w in wanted)
        elif base == "NumericLessThanEquals":
            holds = any(float(actual) <= float(w) for w in wanted)
        elif base == "NumericGreaterThan":
            holds = any(float(actual) > float(w) for w in wanted)
        elif base == "NumericGreaterThanEquals":
            holds = any(float(actual) >= float(w) for w in wanted)
        elif base == "Null":
            holds = not any(w.lower() == "true" for w in wanted)
        else:
            log.warning("bucket policy condition %s is not evaluated; treated as met", operator)
            holds = True
        if not holds:
            return False
    return True


def effective_policy(policy: dict[str, Any]) -> dict[str, Any]:
    """The statements whose conditions hold for a local request, without their conditions."""
    statements = policy.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = []
    for statement in statements:
        conditions = statement.get("Condition") or {}
        if all(_condition_holds(op, values) for op, values in conditions.items()):
            kept.append({k: v for k, v in statement.items() if k != "Condition"})
    return {**policy, "Statement": kept}


def bucket_policy_conditions() -> None:
    """Evaluate bucket-policy conditions instead of ignoring them.

    moto treats a statement's unsupported condition (``Bool``) as met, so the TLS-only policy's
    ``Deny`` when ``aws:SecureTransport`` is ``false`` denies every PutObject. Here conditions are
    evaluated against the local request context, in which every request is secure.
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = effective_policy(json.loads(self.policy.decode()))
        return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def logging_target_policy_check() -> None:
    """Check the log bucket's policy for the logging service without crashing on ``"*"``.

    moto reads every statement's ``Principal`` as a dict; the TLS-only ``Deny`` has
    ``"Principal": "*"``, so PutBucketLogging fails with a 500 that the provider retries forever.
    Same rule as moto's, tolerant of the string and list forms IAM allows.
    """
    from moto.s3.models import FakeBucket

    service = "logging.s3.amazonaws.com"

    def log_permissions_enabled_policy(target_bucket: Any, target_prefix: str | None) -> bool:
        if not target_bucket.policy:
            return False
        arn = f"arn:{target_bucket.partition}:s3:::{target_bucket.name}"
        accepted = {f"{arn}/{target_prefix or ''}*", f"{arn}/*", arn}
        for stmt in _as_list(json.loads(target_bucket.policy.decode()).get("Statement")):
            principal = stmt.get("Principal")
            services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
            if (
                stmt.get("Effect") == "Allow"
                and service in services
                and {"s3:PutObject", "s3:*"} & set(_as_list(stmt.get("Action")))
                and accepted & set(_as_list(stmt.get("Resource")))
            ):
                return True
        return False

    FakeBucket._log_permissions_enabled_policy = staticmethod(log_permissions_enabled_policy)


def event_fields_and_async_lambda() -> None:
    """S3 events carry ``versionId``/``sequencer`` and invoke Lambda asynchronously, as in AWS.

    moto's event leaves out the object version (the batch trigger names the workflow execution
    after it) and invokes the function synchronously inside the PutObject request.
    """
    import moto.s3.notifications as notifications

    original_event = notifications._get_s3_event

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
        event = original_event(event_name, bucket, key, notification_id)
        record = event["Records"][0]
        obj = record["s3"]["object"]
        # S3 URL-encodes the key in events but keeps "/"; moto encodes "/" as %2F too.
        obj["key"] = quote_plus(key.name, safe="/")
        version = getattr(key, "version_id", None)
        if version and version != "null":
            obj["versionId"] = version
        obj["sequencer"] = f"{time.time_ns():X}"
        record["userIdentity"] = {"principalId": "AWS:LOCALCLOUD"}
        record["requestParameters"] = {"sourceIPAddress": "127.0.0.1"}
        record["responseElements"] = {
            "x-amz-request-id": f"{time.time_ns():X}"[-16:],
            "x-amz-id-2": "localcloud",
        }
        return event

    def invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region: str) -> None:
        from moto.awslambda.utils import get_backend

        try:
            function = get_backend(account_id, region).get_function(fn_arn)
        except Exception:  # S3 drops events for a missing function, like AWS
            log.warning("S3 notification for missing function %s dropped", fn_arn)
            return
        function.invoke(json.dumps(event_body), {"X-Amz-Invocation-Type": "Event"}, {})

    notifications._get_s3_event = get_s3_event
    notifications._invoke_awslambda = invoke_awslambda


def list_object_versions_url_encoding() -> None:
    """Honour ``encoding-type=url`` in ListObjectVersions, as moto does for ListObjects.

    The provider empties a ``force_destroy`` bucket with url-encoded listings and decodes the keys
    it gets back; moto returns them raw, so a key containing ``%`` is never deleted and
    ``destroy`` loops on DeleteBucket forever.
    """
    from moto.core.responses import ActionResult
    from moto.s3.responses import S3Response

    original = S3Response.list_object_versions

    def list_object_versions(self: S3Response) -> Any:
        if self.querystring.get("encoding-type", [None])[0] != "url":
            return original(self)
        serialized = self.serialized

        def encode(action_result: ActionResult) -> Any:
            result = dict(action_result.result)  # type: ignore[arg-type]
            for entry in (*result.get("Versions", []), *result.get("DeleteMarkers", [])):
                entry["Key"] = quote(entry["Key"])
            for entry in result.get("CommonPrefixes", []):
                entry["Prefix"] = quote(entry["Prefix"])
            for name in ("Prefix", "KeyMarker", "NextKeyMarker", "Delimiter"):
                if result.get(name):
                    result[name] = quote(result[name])
            result["EncodingType"] = "url"
            return serialized(ActionResult(result))

        self.serialized = encode  # this response object serves one request
        return original(self)

    S3Response.list_object_versions = list_object_versions


def object_lock_changes_on_a_used_bucket() -> None:
    """``PutObjectLockConfiguration`` on a bucket that holds objects, as in AWS.

    moto refuses it (``InvalidBucket: Bucket needs to be empty``) once a bucket has an object,
    which AWS does only when Object Lock is being *enabled* on an existing bucket without it. A
    bucket created with Object Lock may change or drop its default retention at any time:
    Terraform's destroy of ``aws_s3_bucket_object_lock_configuration`` does exactly that, before
    the bucket (and its locked objects, in governance mode) go. And its versioning stays on.
    """
    from moto.s3.exceptions import InvalidBucketState
    from moto.s3.models import S3Backend

    original = S3Backend.put_object_lock_configuration

    def put_object_lock_configuration(
        self: S3Backend,
        bucket_name: str,
        lock_enabled: bool,
        mode: str | None = None,
        days: int | None = None,
        years: int | None = None,
    ) -> None:
        bucket = self.get_bucket(bucket_name)
        if not bucket.object_lock_enabled:
            return original(self, bucket_name, lock_enabled, mode, days, years)
        # Object Lock stays enabled (it cannot be turned off); only the default retention changes.
        bucket.default_lock_mode = mode
        bucket.default_lock_days = days
        bucket.default_lock_years = years
        return None

    S3Backend.put_object_lock_configuration = put_object_lock_configuration

    # The other half of the same rule: a lock-enabled bucket's versioning cannot be suspended.
    # moto suspends it, and the lock configuration's own destroy then fails on an unversioned
    # bucket; AWS refuses with this message, which the provider's destroy of
    # aws_s3_bucket_versioning accepts as "nothing to undo".
    original_versioning = S3Backend.put_bucket_versioning

    def put_bucket_versioning(self: S3Backend, bucket_name: str, status: str) -> None:
        if status != "Enabled" and self.get_bucket(bucket_name).object_lock_enabled:
            raise InvalidBucketState(
                "An Object Lock configuration is present on this bucket, "
                "so the versioning state cannot be changed."
            )
        return original_versioning(self, bucket_name, status)

    S3Backend.put_bucket_versioning = put_bucket_versioning
