"""The words a batch run is recorded in: its statuses, the stable reason codes of a failed run,
and the kinds of row outcome stored beside it."""

from __future__ import annotations

BATCH_PROCESSING = "PROCESSING"
BATCH_COMPLETED = "COMPLETED"
BATCH_FAILED = "FAILED"
# Stable reason codes of a failed batch (``reason_code``; ``reason`` is the plain sentence).
INVALID_FILE = "INVALID_FILE"
PROCESSING_ERROR = "PROCESSING_ERROR"
TIMED_OUT = "TIMED_OUT"
# Row outcomes, keyed per run and line (``repository.row_sk``).
REJECTED = "REJECT"
DUPLICATE = "DUPLICATE"
# Plan items and chunk markers are needed while the run can still be retried (the workflow times
# out after two hours); they expire a week later (TTL), the report keeps the outcome.
PLAN_TTL_SECONDS = 7 * 24 * 3600
