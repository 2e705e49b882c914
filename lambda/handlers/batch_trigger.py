"""S3 ObjectCreated on ``incoming/*.csv`` -> start the batch workflow once per object version.

The execution name is derived from bucket, key and version, so a redelivered or repeated S3 event
asks for an execution that already exists, which Step Functions refuses: that is success here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError
from payments import aws, env
from payments.batch import batch_id_from_key, sequencer_order

from handlers.common import logger, settings

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def execution_name(bucket: str, key: str, version: str) -> str:
    """<= 80 characters of [A-Za-z0-9_-]: a readable batch id prefix plus a digest."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()[:40]
    batch = _NAME_UNSAFE.sub("_", batch_id_from_key(key) or "batch")[:39]
    return f"{batch}-{digest}"


def start(record: dict[str, Any]) -> str:
    s3 = record.get("s3") or {}
    bucket = (s3.get("bucket") or {}).get("name", "")
    obj = s3.get("object") or {}
    key = unquote_plus(obj.get("key", ""))
    batch_id = batch_id_from_key(key)
    if not bucket or batch_id is None:
        logger.info("object ignored: not incoming/<batch_id>.csv", bucket=bucket, key=key)
        return "ignored"
    # Unversioned buckets have no versionId; the sequencer then tells two uploads apart.
    version = obj.get("versionId") or obj.get("sequencer") or "null"
    name = execution_name(bucket, key, version)
    cfg = settings().require(env.STATE_MACHINE_ARN)
    try:
        aws.client("stepfunctions").start_execution(
            stateMachineArn=cfg.state_machine_arn,
            name=name,
            input=json.dumps(
                {
                    "bucket": bucket,
                    "key": key,
                    "version_id": version,
                    "batch_id": batch_id,
                    "size": obj.get("size"),
                    # Orders uploads of one key: an event that arrives late must not win.
                    # Always a string (zero-padded hex, "" when S3 sent none): the failure
                    # path compares it in a DynamoDB condition.
                    "sequencer": sequencer_order(obj.get("sequencer")),
                }
            ),
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        logger.info("workflow already started for this object version", execution=name)
        return "already-started"
    logger.info("workflow started", execution=name, batch_id=batch_id, key=key)
    return "started"


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results = [start(record) for record in event.get("Records") or []]
    return {"results": results}
