"""Register and plan a file: the workflow's first task.

Register records the run as PROCESSING, reads the header and then the whole file once
(streaming, quote-aware, the rules of ``csv_reader``) to *plan* it: each chunk's byte range
``[offset, end)``, first line number and row count, and which of its lines repeat the payment_id
of an earlier valid row of the file ("payment_id already on line N of this file"). The chunks
then run in parallel (the workflow's Map state) and in any order, because nothing a chunk
decides depends on another chunk. The plan is a function of the file version, so a retried
Register re-plans and rewrites the same plan items.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from payments import csv_reader
from payments.batch.context import BatchContext
from payments.batch.finalize import fail
from payments.batch.states import (
    BATCH_FAILED,
    BATCH_PROCESSING,
    INVALID_FILE,
    PLAN_TTL_SECONDS,
)
from payments.batch.uploads import batch_id_from_key, sequencer_order
from payments.errors import InvalidBatchFileError, TransientError, ValidationError
from payments.repository import RUNNING, now_iso, to_int
from payments.validation import BATCH_ID, CSV_FIELDS, validate_payment

# The plan's set of payment ids seen on valid rows holds a 16-byte BLAKE2b digest per id, not the
# id: ~118 MB per 1,000,000 distinct ids in CPython (dict of 128-bit ints -> line numbers; measured
# with tracemalloc), within batch-tasks' 1,024 MB. At 128 bits, two different ids of a 1M-row file
# share a digest with probability ~1e-27.
PLAN_DIGEST_BYTES = 16
# Chunks one file may have: each is a Map iteration of one execution, whose history holds at
# most 25,000 events; an iteration whose task is retried to its limit takes 25 of them, so 750
# keep a run within 80 % of the limit however its chunks retry, and their items (~100 bytes
# each) a third of its 256 KiB of state (tests/infra/test_workflow_limits.py computes both).
MAX_CHUNKS = 750
# Rows one file may have: the plan's digests take ~118 MB per 1,000,000 distinct ids, so 3,000,000
# rows stay near 350 MB of batch-tasks' 1,024 MB (600 chunks at the deployed 5,000 rows).
MAX_ROWS = 3_000_000
# Writes of a run's summary before Register gives up (Step Functions retries it): each failed
# one means another run of the batch ended or registered in between.
REGISTER_ATTEMPTS = 5


@dataclass
class PlannedChunk:
    """One chunk of a planned file: rows ``[offset, end)``, reading starts at line ``line``;
    ``duplicates``: (line, earlier line) for its valid rows whose payment_id an earlier valid
    row of the file already has."""

    index: int
    offset: int
    end: int
    line: int
    rows: int = 0
    duplicates: list[tuple[int, int]] = field(default_factory=list)

    def item(self) -> dict[str, int]:
        """The Map state's item: small, the duplicate lines stay in DynamoDB."""
        return {
            "index": self.index,
            "offset": self.offset,
            "end": self.end,
            "line": self.line,
            "rows": self.rows,
            "duplicates": len(self.duplicates),
        }


def register(ctx: BatchContext, event: dict[str, Any]) -> dict[str, Any]:
    """Record the run as PROCESSING, read the header and plan the chunks; the Map's state.

    A file without the required header is a business rejection, not a platform failure:
    the batch ends FAILED (``INVALID_FILE``, audited, so ``batch.failed`` goes out) and the
    workflow succeeds. An upload older than the batch's current run is refused.
    """
    bucket, key = event["bucket"], event["key"]
    batch_id = event.get("batch_id") or batch_id_from_key(key)
    if not batch_id or not BATCH_ID.match(batch_id):
        raise InvalidBatchFileError(f"object key {key!r} is not incoming/<batch_id>.csv")
    run = event.get("version_id") or "null"
    now = now_iso()
    summary = {
        "batch_id": batch_id,
        "status": BATCH_PROCESSING,
        "run": run,
        "sequencer": sequencer_order(event.get("sequencer")) or None,
        "bucket": bucket,
        "key": key,
        "version_id": event.get("version_id"),
        "size": event.get("size"),
        "total_rows": 0,
        "accepted": 0,
        "rejected": 0,
        "duplicates": 0,
        "chunks_done": 0,
        "started_at": now,
        "updated_at": now,
        "running": RUNNING,
    }
    state = {
        "bucket": bucket,
        "key": key,
        "version_id": event.get("version_id"),
        "batch_id": batch_id,
        "run": run,
        "superseded": False,
        "done": False,
    }
    existing = ctx.repo.get_batch_summary(batch_id)
    if existing is not None and existing.get("run") == run:
        # A retry of this very Register (its answer was lost, or it timed out after its
        # write): carry on with what the run recorded, never reset it.
        return _resume(ctx, state, existing)
    try:
        header = ctx.header(state)
    except InvalidBatchFileError as exc:
        version = _register(ctx, summary, existing)
        if version is None:
            return {**state, "superseded": True, "done": True}
        fail(ctx, batch_id, run, INVALID_FILE, exc.message, version=version)
        return {**state, "failed": True, "done": True}
    version = _register(ctx, summary, existing)
    if version is None:
        return {**state, "superseded": True, "done": True}
    return _plan(ctx, state, header, version)


def _register(
    ctx: BatchContext, summary: dict[str, Any], existing: dict[str, Any] | None
) -> int | None:
    """Write the run's summary one version above the batch's; the run's version, or None when
    the batch's run is this one already or a newer upload's.

    The version is read before the write and the write is conditional on it still being the
    highest: an older run that ends in between (its own version one higher) makes this write
    fail, and it is made again one above that."""
    for _ in range(REGISTER_ATTEMPTS):
        version = (to_int(existing.get("version")) if existing else 0) + 1
        if ctx.repo.register_batch({**summary, "version": version}):
            return version
        existing = ctx.repo.get_batch_summary(summary["batch_id"])
        if existing is None:
            continue
        if existing.get("run") == summary["run"] or _not_older(existing, summary):
            return None
    raise TransientError(
        f"batch {summary['batch_id']}: its summary changed on each of {REGISTER_ATTEMPTS} "
        "attempts to register the run"
    )


def _not_older(current: dict[str, Any], upload: dict[str, Any]) -> bool:
    """The batch's current run came from an upload at least as new as ``upload`` (S3's order;
    an upload without a sequencer is taken as the newest, as ``register_batch`` does)."""
    ours, theirs = upload.get("sequencer"), current.get("sequencer")
    return bool(ours and theirs and theirs >= ours)


def _resume(ctx: BatchContext, state: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    if summary.get("status") != BATCH_PROCESSING:
        return {**state, "done": True, "failed": summary.get("status") == BATCH_FAILED}
    version = to_int(summary.get("version"))
    try:
        header = ctx.header(state)
    except InvalidBatchFileError as exc:
        # The first attempt found no header but its FAILED write did not land.
        fail(ctx, state["batch_id"], state["run"], INVALID_FILE, exc.message, version=version)
        return {**state, "failed": True, "done": True}
    # The plan is a function of the file version: planning again writes the same items.
    return _plan(ctx, state, header, version)


def _plan(
    ctx: BatchContext, state: dict[str, Any], header: csv_reader.Header, version: int
) -> dict[str, Any]:
    """Plan the run's chunks (one streaming pass), store each chunk's duplicate lines, and
    record how many chunks Finalize must find applied (``version``: the run's, for a failure
    found on the way)."""
    batch_id, run = state["batch_id"], state["run"]
    chunk_rows = ctx.config.batch_chunk_rows
    expires_at = int(time.time()) + PLAN_TTL_SECONDS
    chunks: list[dict[str, int]] = []
    body = ctx.open(state["bucket"], state["key"], state["version_id"], header.data_offset, None)
    try:
        for chunk in plan_chunks(
            body,
            columns=header.columns,
            offset=header.data_offset,
            line=header.next_line,
            chunk_rows=chunk_rows,
            max_rows=min(MAX_ROWS, MAX_CHUNKS * chunk_rows),
        ):
            if chunk.duplicates:
                ctx.repo.put_plan(batch_id, run, chunk.index, chunk.duplicates, expires_at)
            chunks.append(chunk.item())
    except InvalidBatchFileError as exc:
        fail(ctx, batch_id, run, INVALID_FILE, exc.message, version=version)
        return {**state, "failed": True, "done": True}
    finally:
        body.close()
    if not ctx.repo.update_batch_summary(
        batch_id, run, {"chunks": len(chunks), "updated_at": now_iso()}
    ):
        # A newer upload took over, or the run already ended (timed out).
        return {**state, "superseded": True, "done": True}
    # An ignored column travels as "": the rows are read the same way (only the payment fields'
    # names matter to the reader) and the state stays small.
    columns = [name if name in CSV_FIELDS else "" for name in header.columns]
    return {**state, "columns": columns, "chunks": chunks}


def plan_chunks(
    stream: BinaryIO,
    *,
    columns: tuple[str, ...],
    offset: int,
    line: int,
    chunk_rows: int,
    max_rows: int | None = None,
) -> Iterator[PlannedChunk]:
    """Split the rows of ``stream`` (from the header's end) into chunks of ``chunk_rows`` rows,
    one pass, in constant memory apart from one digest per distinct valid payment_id.

    A row is valid when it splits and passes ``validate_payment``, exactly as a chunk decides;
    a valid row whose payment_id an earlier valid row has is that row's duplicate (the
    contract's "seen earlier in the same file"), wherever the two rows fall. More than
    ``max_rows`` rows raise ``InvalidBatchFileError`` before the digests outgrow the memory.
    """
    first_valid: dict[int, int] = {}
    chunk = PlannedChunk(index=0, offset=offset, end=offset, line=line)
    rows = csv_reader.iter_rows(stream, columns=columns, offset=offset, line=line)
    for total, (row, end, next_line) in enumerate(rows, start=1):
        if max_rows is not None and total > max_rows:
            raise InvalidBatchFileError(
                f"the file has more than {max_rows:,} rows, the most one batch takes; "
                "split it into several files"
            )
        chunk.rows += 1
        chunk.end = end
        payment_id = _valid_payment_id(row)
        if payment_id is not None:
            key = int.from_bytes(
                hashlib.blake2b(payment_id.encode(), digest_size=PLAN_DIGEST_BYTES).digest()
            )
            first = first_valid.setdefault(key, row.line)
            if first != row.line:
                chunk.duplicates.append((row.line, first))
        if chunk.rows >= chunk_rows:
            yield chunk
            chunk = PlannedChunk(index=chunk.index + 1, offset=end, end=end, line=next_line)
    if chunk.rows:
        yield chunk


def _valid_payment_id(row: csv_reader.Row) -> str | None:
    if row.values is None:
        return None
    try:
        return validate_payment(row.values, require_id=True, from_csv=True).payment_id
    except ValidationError:
        return None
