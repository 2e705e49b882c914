"""The batch workflow's tasks: register and plan a file, process one chunk, finalize the report.

Register reads the header and then the whole file once (streaming, quote-aware, the rules of
``csv_reader``) to *plan* it: each chunk's byte range ``[offset, end)``, first line number and
row count, and which of its lines repeat the payment_id of an earlier valid row of the file
("payment_id already on line N of this file"). The chunks then run in parallel (the workflow's
Map state) and in any order, because nothing a chunk decides depends on another chunk.

Every task is safe to run again with the same input, because Step Functions retries them:

- the plan is deterministic; a retried Register re-plans and rewrites the same plan items;
- a payment row is written with a condition; a row that finds its payment already written *by this
  run at this line* is the earlier attempt's own work and counts as accepted again (its message is
  sent again; the consumer is idempotent);
- a chunk's counts are added to the batch summary in one transaction with the chunk's marker item,
  conditional on the marker not existing, so a retried chunk never adds twice;
- rejected and duplicate rows are stored under keys made of their line numbers (puts overwrite).

Hence ``accepted + rejected + duplicates == total_rows`` holds after every chunk.

A chunk's transactions, then its queue sends, run on ``WRITE_WORKERS`` threads: one chunk is a few
hundred calls that each wait ~10-25 ms on the network, one after another ~18 s per 5,000 rows.
They can run in parallel because the transactions of a chunk (and of all chunks) touch disjoint
payment ids (a repeated payment_id is a duplicate before anything is written), each worker
classifies its own rows into its own ``ChunkOutcome``, and the outcomes are merged in row order.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from botocore.exceptions import ClientError

from payments import aws, csv_reader, errors, events
from payments.config import Config
from payments.errors import InvalidBatchFileError, PaymentError, TransientError, ValidationError
from payments.lifecycle import RECEIVED, SOURCE_BATCH, new_payment_item
from payments.repository import (
    RUNNING,
    Repository,
    TransactionCanceled,
    now_iso,
    row_sk,
    to_int,
)
from payments.validation import BATCH_ID, BATCH_ID_PATTERN, Payment, validate_payment

INCOMING_KEY = re.compile(rf"\Aincoming/(?P<batch_id>{BATCH_ID_PATTERN})\.csv\Z", re.ASCII)
REPORTS_PREFIX = "reports/"
# 25 rows = 50 transaction items (payment + audit each), half of DynamoDB's 100-item limit, so
# one conflicting row costs a retry of at most 24 others.
ROWS_PER_TRANSACTION = 25
SQS_BATCH = 10
# Threads per chunk for the transactions and the SQS sends: one pooled connection each (see aws).
# More threads buy little: at 16 x 50 items x 2 write units per ~25 ms transaction a chunk can ask
# for more than a new on-demand table serves (4,000 writes/s, doubling as it adapts), and
# throttled transactions are retried (SDK, then ``aws.backoff`` here, then Step Functions).
WRITE_WORKERS = aws.MAX_POOL_CONNECTIONS
_SQS_ATTEMPTS = 5
_TRANSACTION_ATTEMPTS = 5
HEADER_PROBE_BYTES = 1024 * 1024
REJECTED = "REJECT"
DUPLICATE = "DUPLICATE"
BATCH_PROCESSING = "PROCESSING"
BATCH_COMPLETED = "COMPLETED"
BATCH_FAILED = "FAILED"
# Stable reason codes of a failed batch (``reason_code``; ``reason`` is the plain sentence).
INVALID_FILE = "INVALID_FILE"
PROCESSING_ERROR = "PROCESSING_ERROR"
TIMED_OUT = "TIMED_OUT"
# The plan's set of payment ids seen on valid rows holds a 16-byte BLAKE2b digest per id, not the
# id: ~118 MB per 1,000,000 distinct ids in CPython (dict of 128-bit ints -> line numbers; measured
# with tracemalloc), within batch-tasks' 1,024 MB. At 128 bits, two different ids of a 1M-row file
# share a digest with probability ~1e-27.
PLAN_DIGEST_BYTES = 16
# Chunks one file may have. Each is an item of the Map state (~90 bytes of its 256 KiB input and
# output) and ~7 events of the execution's 25,000-event history; 3,000 chunks keep both at about
# a quarter of the limit.
MAX_CHUNKS = 3_000
# Rows one file may have: the plan's digests take ~118 MB per 1,000,000 distinct ids, so 3,000,000
# rows stay near 350 MB of batch-tasks' 1,024 MB (1,500 chunks at the deployed 2,000 rows).
MAX_ROWS = 3_000_000
# Plan items and chunk markers are needed while the run can still be retried (the workflow times
# out after two hours); they expire a week later (TTL), the report keeps the outcome.
PLAN_TTL_SECONDS = 7 * 24 * 3600
# S3 sequencers are hex strings of varying length, compared after left-padding with zeros.
SEQUENCER_WIDTH = 32
_T = TypeVar("_T")
_R = TypeVar("_R")


def batch_id_from_key(key: str) -> str | None:
    """``incoming/<batch_id>.csv`` -> batch_id; anything else is not a batch file."""
    match = INCOMING_KEY.fullmatch(key)
    return match.group("batch_id") if match else None


def report_key(batch_id: str, run: str) -> str:
    """One report per run: a superseded run's late finalize cannot overwrite the newer report."""
    return f"{REPORTS_PREFIX}{batch_id}/{run}.json"


def sequencer_order(sequencer: str | None) -> str:
    """An S3 event ``sequencer`` as a string that sorts in upload order ("" when unknown)."""
    value = (sequencer or "").strip().upper()
    if not value or len(value) > SEQUENCER_WIDTH or any(c not in "0123456789ABCDEF" for c in value):
        return ""
    return value.rjust(SEQUENCER_WIDTH, "0")


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

    A row is valid when it splits and passes ``validate_payment``, exactly as ``process_chunk``
    decides; a valid row whose payment_id an earlier valid row has is that row's duplicate (the
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


@dataclass
class ChunkOutcome:
    accepted: list[str] = field(default_factory=list)
    # Duplicates whose stored payment is still RECEIVED: queued again (an earlier run may have
    # stored them and then failed to queue them).
    requeue: list[str] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # rejected + duplicate rows
    rejected: int = 0
    duplicates: int = 0

    def reject(self, line: int, payment_id: str | None, code: str, reason: str, run: str) -> None:
        self.rejected += 1
        self.outcomes.append(
            {
                "sk": row_sk(REJECTED, run, line),
                "run": run,
                "line": line,
                "payment_id": payment_id,
                "code": code,
                "reason": reason,
            }
        )

    def duplicate(self, line: int, payment_id: str, reason: str, run: str) -> None:
        self.duplicates += 1
        self.outcomes.append(
            {
                "sk": row_sk(DUPLICATE, run, line),
                "run": run,
                "line": line,
                "payment_id": payment_id,
                "reason": reason,
            }
        )

    def merge(self, other: ChunkOutcome) -> None:
        self.accepted.extend(other.accepted)
        self.requeue.extend(other.requeue)
        self.outcomes.extend(other.outcomes)
        self.rejected += other.rejected
        self.duplicates += other.duplicates


class Batches:
    def __init__(
        self,
        config: Config,
        *,
        repo: Repository | None = None,
        s3: Any = None,
        sqs: Any = None,
        workers: int = WRITE_WORKERS,
    ) -> None:
        self.config = config
        self.repo = repo or Repository(config)
        self._s3 = s3
        self._sqs = sqs
        self.workers = max(1, workers)

    @property
    def s3(self) -> Any:
        return self._s3 or aws.client("s3")

    @property
    def sqs(self) -> Any:
        return self._sqs or aws.client("sqs")

    # -- register ---------------------------------------------------------------------------
    def register(self, event: dict[str, Any]) -> dict[str, Any]:
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
        existing = self.repo.get_batch_summary(batch_id)
        if existing is not None and existing.get("run") == run:
            # A retry of this very Register (its answer was lost, or it timed out after its
            # write): carry on with what the run recorded, never reset it.
            return self._resume(state, existing)
        try:
            header = self._header(state)
        except InvalidBatchFileError as exc:
            if not self.repo.register_batch(summary):
                return {**state, "superseded": True, "done": True}
            self.fail(batch_id, run, INVALID_FILE, exc.message)
            return {**state, "failed": True, "done": True}
        if not self.repo.register_batch(summary):
            return {**state, "superseded": True, "done": True}
        return self._plan(state, header)

    def _resume(self, state: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        if summary.get("status") != BATCH_PROCESSING:
            return {**state, "done": True, "failed": summary.get("status") == BATCH_FAILED}
        try:
            header = self._header(state)
        except InvalidBatchFileError as exc:
            # The first attempt found no header but its FAILED write did not land.
            self.fail(state["batch_id"], state["run"], INVALID_FILE, exc.message)
            return {**state, "failed": True, "done": True}
        # The plan is a function of the file version: planning again writes the same items.
        return self._plan(state, header)

    def _header(self, state: dict[str, Any]) -> csv_reader.Header:
        return csv_reader.read_header(
            self._open(
                state["bucket"], state["key"], state["version_id"], 0, HEADER_PROBE_BYTES - 1
            )
        )

    def _plan(self, state: dict[str, Any], header: csv_reader.Header) -> dict[str, Any]:
        """Plan the run's chunks (one streaming pass), store each chunk's duplicate lines, and
        record how many chunks Finalize must find applied."""
        batch_id, run = state["batch_id"], state["run"]
        expires_at = int(time.time()) + PLAN_TTL_SECONDS
        chunks: list[dict[str, int]] = []
        body = self._open(
            state["bucket"], state["key"], state["version_id"], header.data_offset, None
        )
        try:
            for chunk in plan_chunks(
                body,
                columns=header.columns,
                offset=header.data_offset,
                line=header.next_line,
                chunk_rows=self.config.batch_chunk_rows,
                max_rows=min(MAX_ROWS, MAX_CHUNKS * self.config.batch_chunk_rows),
            ):
                if chunk.duplicates:
                    self.repo.put_plan(batch_id, run, chunk.index, chunk.duplicates, expires_at)
                chunks.append(chunk.item())
        except InvalidBatchFileError as exc:
            self.fail(batch_id, run, INVALID_FILE, exc.message)
            return {**state, "failed": True, "done": True}
        finally:
            body.close()
        if not self.repo.update_batch_summary(
            batch_id, run, {"chunks": len(chunks), "updated_at": now_iso()}
        ):
            # A newer upload took over, or the run already ended (timed out).
            return {**state, "superseded": True, "done": True}
        return {**state, "columns": list(header.columns), "chunks": chunks}

    def fail(self, batch_id: str, run: str, code: str, reason: str) -> bool:
        """Mark ``run`` FAILED with a stable code and a plain reason, audited (the outbox
        publishes ``batch.failed``); False when a newer run replaced it or it already ended."""
        return self._end(batch_id, run, BATCH_FAILED, {"reason_code": code, "reason": reason})

    def _end(
        self,
        batch_id: str,
        run: str,
        status: str,
        fields: dict[str, Any],
        audited: dict[str, Any] | None = None,
    ) -> bool:
        """End ``run`` as ``status`` with ``fields``, leaving the running-index, and its audit
        entry in the same transaction (the outbox publishes ``batch.completed`` / ``.failed``);
        False when a newer run replaced it or it already ended."""
        now = now_iso()
        event = events.BATCH_COMPLETED if status == BATCH_COMPLETED else events.BATCH_FAILED
        return self.repo.update_batch_summary(
            batch_id,
            run,
            {"status": status, **fields, "finished_at": now, "updated_at": now},
            remove=("running",),
            audit={
                "entity_id": f"BATCH#{batch_id}",
                "sk": f"{run}#{status}",
                "at": now,
                "event": event,
                "run": run,
                **fields,
                **(audited or {}),
            },
        )

    # -- process a chunk --------------------------------------------------------------------
    def process_chunk(self, state: dict[str, Any]) -> dict[str, Any]:
        """One planned chunk (``state["chunk"]``, a Map item), in any order relative to the others.

        A chunk of a run that a newer upload replaced, or that already ended, stops quietly; a
        chunk whose counts are already in (a retry after it committed) does nothing again.
        """
        batch_id, run = state["batch_id"], state["run"]
        planned = state["chunk"]
        index, offset, end = int(planned["index"]), int(planned["offset"]), int(planned["end"])
        done = {"index": index, "superseded": False, "counts": None}
        if not self._is_processing(batch_id, run):
            return {**done, "superseded": True}
        if self.repo.chunk_applied(batch_id, run, index):
            return done
        body = self._open(state["bucket"], state["key"], state.get("version_id"), offset, None)
        try:
            chunk = csv_reader.read_rows(
                body,
                columns=tuple(state["columns"]),
                offset=offset,
                line=int(planned["line"]),
                max_rows=int(planned["rows"]),
            )
        finally:
            body.close()
        if chunk.next_offset != end or len(chunk.rows) != int(planned["rows"]):
            # Only an unversioned object overwritten after Register can do this.
            raise PaymentError(
                f"batch {batch_id} chunk {index}: the file no longer matches its plan "
                f"(rows end at byte {chunk.next_offset}, planned {end})"
            )
        duplicates = (
            self.repo.plan_duplicates(batch_id, run, index) if planned.get("duplicates") else {}
        )
        if len(duplicates) != int(planned.get("duplicates") or 0):
            raise TransientError(f"batch {batch_id} chunk {index}: plan items not all readable")

        outcome = ChunkOutcome()
        valid: list[tuple[int, Payment]] = []
        for row in chunk.rows:
            if row.values is None:
                outcome.reject(row.line, None, row.code, row.error or "unreadable row", run)
                continue
            try:
                payment = validate_payment(row.values, require_id=True, from_csv=True)
            except ValidationError as exc:
                outcome.reject(row.line, row.payment_id, exc.code, exc.reason, run)
                continue
            assert payment.payment_id is not None
            first = duplicates.get(row.line)
            if first is not None:
                outcome.duplicate(
                    row.line,
                    payment.payment_id,
                    f"payment_id already on line {first} of this file",
                    run,
                )
                continue
            valid.append((row.line, payment))
        if len({p.payment_id for _, p in valid}) != len(valid):
            # The workers' transactions must touch disjoint payments; the plan guarantees it.
            raise PaymentError(
                f"batch {batch_id} chunk {index}: a payment_id repeats after planning"
            )

        # boto3 makes clients from a session that is not thread-safe; clients themselves are.
        # Make both here, before the workers share them.
        _ = self.repo.dynamodb
        sqs = self.sqs
        groups = [
            valid[start : start + ROWS_PER_TRANSACTION]
            for start in range(0, len(valid), ROWS_PER_TRANSACTION)
        ]
        for stored in self._in_parallel(lambda rows: self._store(batch_id, run, rows), groups):
            outcome.merge(stored)
        outcome.outcomes.sort(key=lambda row: row["line"])
        # Only after every row of the chunk is stored: a message never names a missing payment.
        self._send(sqs, [*outcome.accepted, *outcome.requeue])
        self.repo.put_row_outcomes(batch_id, outcome.outcomes)
        counts = {
            "total_rows": len(chunk.rows),
            "accepted": len(outcome.accepted),
            "rejected": outcome.rejected,
            "duplicates": outcome.duplicates,
        }
        assert counts["total_rows"] == len(outcome.accepted) + outcome.rejected + outcome.duplicates
        if not self.repo.apply_chunk(
            batch_id=batch_id,
            run=run,
            index=index,
            counts=counts,
            expires_at=int(time.time()) + PLAN_TTL_SECONDS,
        ):
            # A newer upload took over or the run ended: stop quietly (a newer run counts every
            # row itself).
            return {**done, "superseded": True, "counts": counts}
        return {**done, "counts": counts}

    def _in_parallel(self, work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """``work`` over ``items`` on up to ``self.workers`` threads; results in ``items`` order.

        A failure is raised (the first in ``items`` order) only once no worker is running any
        more: the retried chunk must not race writes or sends left over from this attempt (the
        Lambda runtime would freeze and thaw such threads into the next invocation).
        """
        if self.workers == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(items)), thread_name_prefix="chunk"
        ) as pool:
            futures = [pool.submit(work, item) for item in items]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()  # not started yet; the pool waits for the running ones
                raise

    def _store(self, batch_id: str, run: str, rows: list[tuple[int, Payment]]) -> ChunkOutcome:
        """Write rows' payments + audit entries in one transaction; sort out the conflicts."""
        outcome = ChunkOutcome()
        pending = rows
        for attempt in range(_TRANSACTION_ATTEMPTS):
            if not pending:
                return outcome
            now = now_iso()
            ops: list[dict[str, Any]] = []
            hashes = []
            for line, payment in pending:
                assert payment.payment_id is not None
                item, audit = new_payment_item(
                    payment,
                    payment_id=payment.payment_id,
                    source=SOURCE_BATCH,
                    now=now,
                    batch_id=batch_id,
                    batch_run=run,
                    batch_line=line,
                )
                hashes.append(item["content_hash"])
                ops.extend(self.repo.create_payment_ops(item, audit))
            try:
                self.repo.transact(ops)
            except TransactionCanceled as exc:
                failed = exc.failed_conditions()
                retry = []
                for index, (line, payment) in enumerate(pending):
                    if 2 * index not in failed and 2 * index + 1 not in failed:
                        retry.append((line, payment))
                        continue
                    existing = failed.get(2 * index) or self.repo.get_payment(
                        payment.payment_id or ""
                    )
                    self._classify(run, batch_id, line, payment, hashes[index], existing, outcome)
                pending = retry
                continue
            except TransientError:
                if attempt == _TRANSACTION_ATTEMPTS - 1:
                    raise
                aws.backoff(attempt)
                continue
            outcome.accepted.extend(p.payment_id or "" for _, p in pending)
            return outcome
        if pending:
            raise TransientError("payment rows could not be written; the chunk will be retried")
        return outcome

    @staticmethod
    def _classify(
        run: str,
        batch_id: str,
        line: int,
        payment: Payment,
        content_hash: str,
        existing: dict[str, Any] | None,
        outcome: ChunkOutcome,
    ) -> None:
        payment_id = payment.payment_id or ""
        if existing is None:
            raise TransientError(f"payment {payment_id} write was cancelled without a reason")
        if existing.get("batch_id") == batch_id and existing.get("batch_run") == run:
            existing_line = to_int(existing.get("batch_line"))
            if existing_line == line:
                outcome.accepted.append(payment_id)  # our own earlier attempt of this chunk
            else:
                outcome.duplicate(
                    line,
                    payment_id,
                    f"payment_id already on line {existing_line} of this file",
                    run,
                )
        elif existing.get("content_hash") == content_hash:
            outcome.duplicate(line, payment_id, "payment already stored with the same content", run)
            if existing.get("status") == RECEIVED:
                outcome.requeue.append(payment_id)
        else:
            outcome.reject(
                line,
                payment_id,
                errors.CONFLICT,
                "payment_id already stored with different content",
                run,
            )

    def _send(self, sqs: Any, payment_ids: Sequence[str]) -> None:
        """Queue payments ``SendMessageBatch`` 10 at a time, retrying the entries that failed."""
        batches = [
            payment_ids[start : start + SQS_BATCH]
            for start in range(0, len(payment_ids), SQS_BATCH)
        ]
        self._in_parallel(lambda ids: self._send_batch(sqs, ids), batches)

    def _send_batch(self, sqs: Any, payment_ids: Sequence[str]) -> None:
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"payment_id": pid})}
            for i, pid in enumerate(payment_ids)
        ]
        for attempt in range(_SQS_ATTEMPTS):
            try:
                response = sqs.send_message_batch(
                    QueueUrl=self.config.processing_queue_url, Entries=entries
                )
            except ClientError as exc:
                response = {"Failed": [{"Id": e["Id"], "Code": str(exc)} for e in entries]}
            failed = {f["Id"] for f in response.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
            if not entries:
                return
            aws.backoff(attempt)
        # Raising makes Step Functions retry the chunk; rows already stored count again as this
        # run's own and are re-sent, nothing is counted twice.
        raise TransientError(f"{len(entries)} SQS message(s) could not be sent")

    def _is_processing(self, batch_id: str, run: str) -> bool:
        summary = self.repo.get_batch_summary(batch_id)
        return (
            summary is not None
            and summary.get("run") == run
            and summary.get("status") == BATCH_PROCESSING
        )

    # -- finalize ---------------------------------------------------------------------------
    def finalize(self, state: dict[str, Any]) -> dict[str, Any]:
        """Write the run's report, then mark it COMPLETED with its audit entry in one
        transaction (the outbox publishes ``batch.completed``). Safe to retry."""
        batch_id, run = state["batch_id"], state["run"]
        summary = self.repo.get_batch_summary(batch_id)
        if summary is None or summary.get("run") != run:
            return {**state, "superseded": True, "status": None}
        counts = {
            name: to_int(summary.get(name))
            for name in ("total_rows", "accepted", "rejected", "duplicates")
        }
        if counts["total_rows"] != counts["accepted"] + counts["rejected"] + counts["duplicates"]:
            raise PaymentError(f"batch {batch_id} counts do not add up: {counts}")
        key = report_key(batch_id, run)
        result = {
            "batch_id": batch_id,
            "run": run,
            "superseded": False,
            "status": BATCH_COMPLETED,
            **counts,
            "report_key": key,
        }
        if summary.get("status") == BATCH_COMPLETED:
            return result  # a retry of a finalize that committed
        if summary.get("status") != BATCH_PROCESSING:
            return {**result, "superseded": True, "status": None}  # ended (timed out) meanwhile
        if to_int(summary.get("chunks_done")) != to_int(summary.get("chunks")):
            raise PaymentError(
                f"batch {batch_id}: {to_int(summary.get('chunks_done'))} of "
                f"{to_int(summary.get('chunks'))} chunks applied at finalize"
            )
        self._write_report(state, summary, counts, key, now_iso())
        if not self._end(batch_id, run, BATCH_COMPLETED, {"report_key": key}, counts):
            return {**result, "superseded": True, "status": None}
        return result

    def _write_report(
        self,
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
                for i, item in enumerate(self.repo.row_outcomes(batch_id, kind, run)):
                    out.write((b", " if i else b"") + json.dumps(row_view(item)).encode())
                out.write(b"]")
            out.write(b"}")

            def upload() -> None:
                out.seek(0)  # a repeat sends the whole report again
                self.s3.upload_fileobj(
                    _KeptOpen(out),  # boto3's transfer closes what it read from when it fails
                    state["bucket"],
                    key,
                    ExtraArgs={"ContentType": "application/json"},
                )

            aws.retrying(upload)

    # -- helpers ----------------------------------------------------------------------------
    def _open(
        self, bucket: str, key: str, version_id: str | None, start: int, end: int | None
    ) -> Any:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id and version_id != "null":
            kwargs["VersionId"] = version_id
        kwargs["Range"] = f"bytes={start}-" + ("" if end is None else str(end))
        try:
            return self.s3.get_object(**kwargs)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "InvalidRange":
                # Reading from the very end of the file: nothing left (or an empty file).
                return _Empty()
            if code in ("NoSuchKey", "NoSuchVersion", "404"):
                raise InvalidBatchFileError(f"s3://{bucket}/{key} no longer exists") from exc
            raise

    def batch_view(self, batch_id: str, *, max_rows: int = 1000) -> dict[str, Any] | None:
        """``GET /batches/{id}``: the summary and up to ``max_rows`` rejected rows."""
        summary = self.repo.get_batch_summary(batch_id)
        if summary is None:
            return None
        run = summary.get("run", "")
        rejected = [
            row_view(item)
            for item in self.repo.row_outcomes(batch_id, REJECTED, run, limit=max_rows + 1)
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


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


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
