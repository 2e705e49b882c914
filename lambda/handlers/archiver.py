"""Audit archiver: the audit log's DynamoDB stream -> the Object Lock archive (payments.archive).

One object per stream batch, written once (``If-None-Match: *``): a retried batch finds its object
there and succeeds. Any failure fails the whole batch; the mapping bisects and retries it, and
after its retries the on-failure queue (``audit-archive-dlq``) keeps a description of the records
for ``make republish ARGS="--archive --dlq"``.
"""

from __future__ import annotations

from typing import Any

from payments import archive, aws, env

from handlers.common import logger, settings


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    cfg = settings().require(env.AUDIT_ARCHIVE_BUCKET)
    records = event.get("Records") or []
    key = archive.write(records, cfg.audit_archive_bucket, aws.client("s3"))
    logger.info("audit entries archived", records=len(records), key=key)
    return {"archived": len(records), "key": key}
