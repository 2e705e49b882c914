"""A run's outcome as clients read it: the report object under ``reports/`` (streamed, so a
million rejected rows never sit in memory) and the ``GET /batches/{id}`` view."""

from __future__ import annotations

import io
import json
import tempfile
from typing import Any

from payments import aws
from payments.batch.context import BatchContext
from payments.batch.states import BATCH_COMPLETED, DUPLICATE, REJECTED
from payments.repository import to_int


def write_report(
    ctx: BatchContext,
    state: dict[str, Any],
    summary: dict[str, Any],
    counts: dict[str, int],
    key: str,
    finished: str,
) -> None:
    """Stream the report through a temporary file: 1M rejected rows never sit in memory."""
    batch_id, run = state["batch_id"], state["run"]
    head = {
        "batch_id": batch_id,
        "bucket": state["bucket"],
        "key": state["key"],
        "version_id": state.get("version_id"),
        "status": BATCH_COMPLETED,
        **counts,
        "started_at": summary.get("started_at"),
        "finished_at": finished,
    }
    with tempfile.TemporaryFile() as out:
        out.write(json.dumps(head, indent=None)[:-1].encode())
        for kind, name in ((REJECTED, "rejected_rows"), (DUPLICATE, "duplicate_rows")):
            out.write(f', "{name}": ['.encode())
            for i, item in enumerate(ctx.repo.row_outcomes(batch_id, kind, run)):
                out.write((b", " if i else b"") + json.dumps(row_view(item)).encode())
            out.write(b"]")
        out.write(b"}")

        def upload() -> None:
            out.seek(0)  # a repeat sends the whole report again
            ctx.s3.upload_fileobj(
                _KeptOpen(out),  # boto3's transfer closes what it read from when it fails
                state["bucket"],
                key,
                ExtraArgs={"ContentType": "application/json"},
            )

        aws.retrying(upload)


def batch_view(ctx: BatchContext, batch_id: str, *, max_rows: int = 1000) -> dict[str, Any] | None:
    """``GET /batches/{id}``: the summary and up to ``max_rows`` rejected rows."""
    summary = ctx.repo.get_batch_summary(batch_id)
    if summary is None:
        return None
    run = summary.get("run", "")
    rejected = [
        row_view(item)
        for item in ctx.repo.row_outcomes(batch_id, REJECTED, run, limit=max_rows + 1)
    ]
    return {
        "batch_id": batch_id,
        "status": summary["status"],
        "reason_code": summary.get("reason_code"),
        "reason": summary.get("reason"),
        "total_rows": to_int(summary.get("total_rows")),
        "accepted": to_int(summary.get("accepted")),
        "rejected": to_int(summary.get("rejected")),
        "duplicates": to_int(summary.get("duplicates")),
        "rejected_rows": rejected[:max_rows],
        "rejected_rows_truncated": len(rejected) > max_rows,
        "report_key": summary.get("report_key"),
        "version_id": summary.get("version_id"),
        "started_at": summary.get("started_at"),
        "finished_at": summary.get("finished_at"),
        "updated_at": summary.get("updated_at"),
    }


def row_view(item: dict[str, Any]) -> dict[str, Any]:
    view = {"line": to_int(item.get("line")), "payment_id": item.get("payment_id")}
    if "code" in item:
        view["code"] = item["code"]
    view["reason"] = item.get("reason")
    return view


class _KeptOpen(io.RawIOBase):
    """A file handed to someone who may close it: reads, seeks and tells go to the file, and
    closing leaves it open for the next attempt."""

    def __init__(self, file: Any) -> None:
        super().__init__()
        self._file = file

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()
