"""Ending a run: Finalize writes the report and marks the run COMPLETED; any task (or the
sweeper) can mark it FAILED. Either way the status and its audit entry commit in one
transaction, and the audit log's outbox publishes ``batch.completed`` / ``batch.failed``."""

from __future__ import annotations

from typing import Any

from payments import events
from payments.batch.context import BatchContext
from payments.batch.report import write_report
from payments.batch.states import BATCH_COMPLETED, BATCH_FAILED, BATCH_PROCESSING
from payments.batch.uploads import report_key
from payments.errors import PaymentError
from payments.repository import now_iso, to_int


def finalize(ctx: BatchContext, state: dict[str, Any]) -> dict[str, Any]:
    """Write the run's report, then mark it COMPLETED with its audit entry in one
    transaction (the outbox publishes ``batch.completed``). Safe to retry."""
    batch_id, run = state["batch_id"], state["run"]
    summary = ctx.repo.get_batch_summary(batch_id)
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
    write_report(ctx, state, summary, counts, key, now_iso())
    version = to_int(summary.get("version"))
    if not end(ctx, batch_id, run, version, BATCH_COMPLETED, {"report_key": key}, counts):
        return {**result, "superseded": True, "status": None}
    return result


def fail(
    ctx: BatchContext,
    batch_id: str,
    run: str,
    code: str,
    reason: str,
    *,
    version: int | None = None,
) -> bool:
    """Mark ``run`` FAILED with a stable code and a plain reason, audited (the outbox
    publishes ``batch.failed``); False when a newer run replaced it or it already ended.
    ``version``: the run's, when the caller registered it; read from the summary otherwise."""
    if version is None:
        summary = ctx.repo.get_batch_summary(batch_id)
        if summary is None or summary.get("run") != run:
            return False
        if summary.get("status") != BATCH_PROCESSING:
            return False
        version = to_int(summary.get("version"))
    fields = {"reason_code": code, "reason": reason}
    return end(ctx, batch_id, run, version, BATCH_FAILED, fields)


def end(
    ctx: BatchContext,
    batch_id: str,
    run: str,
    version: int,
    status: str,
    fields: dict[str, Any],
    audited: dict[str, Any] | None = None,
) -> bool:
    """End ``run`` (registered as the batch's ``version``) as ``status`` with ``fields``,
    leaving the running-index, and its audit entry in the same transaction (the outbox
    publishes ``batch.completed`` / ``.failed``, with the batch's next version); False when a
    newer run replaced it or it already ended.

    Nothing but registering and ending a run changes the version, and the end holds only
    while the run is the batch's and PROCESSING: the version the run registered is the
    summary's until this commits."""
    now = now_iso()
    event = events.BATCH_COMPLETED if status == BATCH_COMPLETED else events.BATCH_FAILED
    ended = version + 1
    return ctx.repo.update_batch_summary(
        batch_id,
        run,
        {"status": status, **fields, "version": ended, "finished_at": now, "updated_at": now},
        remove=("running",),
        audit={
            "entity_id": f"BATCH#{batch_id}",
            "sk": f"{run}#{status}",
            "at": now,
            "event": event,
            "run": run,
            "version": ended,
            **fields,
            **(audited or {}),
        },
    )
