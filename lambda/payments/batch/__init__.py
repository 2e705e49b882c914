"""The batch workflow's tasks, one module per step, over the repository and the CSV reader:

- ``plan``: Register records the run and plans the file into chunks (the Map's items);
- ``chunk``: each chunk stores (``rows``), queues (``queue``) and counts its rows, in any order,
  once;
- ``finalize``: the run's report, then COMPLETED (or FAILED) with its audit entry;
- ``report``: the report object and the ``GET /batches/{id}`` view;
- ``uploads``: what names an upload (batch id, sequencer order, report key);
- ``states``: statuses, reason codes and row-outcome kinds.

``Batches`` is the one entry point the handlers and the sweeper call.
"""

from __future__ import annotations

from typing import Any

from payments.batch import chunk, finalize, plan, report
from payments.batch.context import WRITE_WORKERS, BatchContext
from payments.batch.plan import MAX_CHUNKS, MAX_ROWS, PlannedChunk, plan_chunks
from payments.batch.queue import SQS_BATCH
from payments.batch.report import row_view
from payments.batch.rows import ROWS_PER_TRANSACTION, ChunkOutcome
from payments.batch.states import (
    BATCH_COMPLETED,
    BATCH_FAILED,
    BATCH_PROCESSING,
    DUPLICATE,
    INVALID_FILE,
    PLAN_TTL_SECONDS,
    PROCESSING_ERROR,
    REJECTED,
    TIMED_OUT,
)
from payments.batch.uploads import (
    INCOMING_KEY,
    REPORTS_PREFIX,
    batch_id_from_key,
    report_key,
    sequencer_order,
)

__all__ = [
    "BATCH_COMPLETED",
    "BATCH_FAILED",
    "BATCH_PROCESSING",
    "DUPLICATE",
    "INCOMING_KEY",
    "INVALID_FILE",
    "MAX_CHUNKS",
    "MAX_ROWS",
    "PLAN_TTL_SECONDS",
    "PROCESSING_ERROR",
    "REJECTED",
    "REPORTS_PREFIX",
    "ROWS_PER_TRANSACTION",
    "SQS_BATCH",
    "TIMED_OUT",
    "WRITE_WORKERS",
    "Batches",
    "ChunkOutcome",
    "PlannedChunk",
    "batch_id_from_key",
    "plan_chunks",
    "report_key",
    "row_view",
    "sequencer_order",
]


class Batches(BatchContext):
    """The workflow's tasks (register, process_chunk, finalize), failing a run, and its view."""

    def register(self, event: dict[str, Any]) -> dict[str, Any]:
        return plan.register(self, event)

    def process_chunk(self, state: dict[str, Any]) -> dict[str, Any]:
        return chunk.process_chunk(self, state)

    def finalize(self, state: dict[str, Any]) -> dict[str, Any]:
        return finalize.finalize(self, state)

    def fail(self, batch_id: str, run: str, code: str, reason: str) -> bool:
        return finalize.fail(self, batch_id, run, code, reason)

    def batch_view(self, batch_id: str, *, max_rows: int = 1000) -> dict[str, Any] | None:
        return report.batch_view(self, batch_id, max_rows=max_rows)
