"""Apply one planned chunk: read its byte range, validate its rows, store the new payments with
their audit entries, queue them, record the rejected and duplicate rows, and add the chunk's
counts to the run's summary once.

Every step is safe to run again with the same input, because Step Functions retries the task:

- a payment row is written with a condition, in a transaction that holds only while the run is
  current (``rows``); a row that finds its payment already written *by
  this run at this line* is the earlier attempt's own work and counts as accepted again (its
  message is sent again; the consumer is idempotent);
- the chunk's counts are added to the batch summary in one transaction with the chunk's marker
  item, conditional on the marker not existing, so a retried chunk never adds twice;
- rejected and duplicate rows are stored under keys made of their line numbers (puts overwrite).

Hence ``accepted + rejected + duplicates == total_rows`` holds after every chunk.

A chunk's transactions (``rows``), then its queue sends (``queue``), run on ``ctx.workers``
threads: one chunk is a few hundred calls that each wait ~10-25 ms on the network, one after
another ~18 s per 5,000 rows. They can run in parallel because the transactions of a chunk (and
of all chunks) touch disjoint payment ids (a repeated payment_id is a duplicate before anything
is written), each worker classifies its own rows into its own ``ChunkOutcome``, and the outcomes
are merged in row order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from payments import csv_reader
from payments.batch.context import BatchContext
from payments.batch.queue import send
from payments.batch.rows import ROWS_PER_TRANSACTION, ChunkOutcome, store_rows
from payments.batch.states import BATCH_PROCESSING, PLAN_TTL_SECONDS
from payments.errors import PaymentError, TransientError, ValidationError
from payments.validation import Payment, validate_payment


def process_chunk(ctx: BatchContext, state: dict[str, Any]) -> dict[str, Any]:
    """One planned chunk (``state["chunk"]``, a Map item), in any order relative to the others.

    A chunk of a run that a newer upload replaced, or that already ended, stops quietly; a
    chunk whose counts are already in (a retry after it committed) does nothing again.
    """
    batch_id, run = state["batch_id"], state["run"]
    planned = state["chunk"]
    index, offset, end = int(planned["index"]), int(planned["offset"]), int(planned["end"])
    done = {"index": index, "superseded": False, "counts": None}
    if not _is_processing(ctx, batch_id, run):
        return {**done, "superseded": True}
    if ctx.repo.chunk_applied(batch_id, run, index):
        return done
    body = ctx.open(state["bucket"], state["key"], state.get("version_id"), offset, None)
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
    duplicates = ctx.repo.plan_duplicates(batch_id, run, index) if planned.get("duplicates") else {}
    if len(duplicates) != int(planned.get("duplicates") or 0):
        raise TransientError(f"batch {batch_id} chunk {index}: plan items not all readable")

    outcome, valid = _sort_rows(chunk.rows, duplicates, run)
    if len({p.payment_id for _, p in valid}) != len(valid):
        # The workers' transactions must touch disjoint payments; the plan guarantees it.
        raise PaymentError(f"batch {batch_id} chunk {index}: a payment_id repeats after planning")

    # boto3 makes clients from a session that is not thread-safe; clients themselves are.
    # Make both here, before the workers share them.
    _ = ctx.repo.dynamodb
    sqs = ctx.sqs
    groups = [
        valid[start : start + ROWS_PER_TRANSACTION]
        for start in range(0, len(valid), ROWS_PER_TRANSACTION)
    ]
    for stored in ctx.in_parallel(lambda rows: store_rows(ctx, batch_id, run, rows), groups):
        outcome.merge(stored)
    outcome.outcomes.sort(key=lambda row: row["line"])
    # Only after every row of the chunk is stored: a message never names a missing payment.
    # Rows the run wrote before it stopped being current are payments like any other, so they
    # are queued even then; rows it did not write are never queued.
    send(ctx, sqs, [*outcome.accepted, *outcome.requeue])
    if outcome.superseded:
        return {**done, "superseded": True}
    ctx.repo.put_row_outcomes(batch_id, outcome.outcomes)
    counts = {
        "total_rows": len(chunk.rows),
        "accepted": len(outcome.accepted),
        "rejected": outcome.rejected,
        "duplicates": outcome.duplicates,
    }
    assert counts["total_rows"] == len(outcome.accepted) + outcome.rejected + outcome.duplicates
    if not ctx.repo.apply_chunk(
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


def _sort_rows(
    rows: Sequence[csv_reader.Row], duplicates: dict[int, int], run: str
) -> tuple[ChunkOutcome, list[tuple[int, Payment]]]:
    """Rejected and planned-duplicate rows into an outcome; the valid rest to be stored."""
    outcome = ChunkOutcome()
    valid: list[tuple[int, Payment]] = []
    for row in rows:
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
    return outcome, valid


def _is_processing(ctx: BatchContext, batch_id: str, run: str) -> bool:
    summary = ctx.repo.get_batch_summary(batch_id)
    return (
        summary is not None
        and summary.get("run") == run
        and summary.get("status") == BATCH_PROCESSING
    )
