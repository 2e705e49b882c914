"""The largest file the platform takes fits one Step Functions execution, with room to spare.

Counted from the definition the stack deploys and the runtime's limits, not restated: the
history events of a Standard workflow per state (as Step Functions records them) and the JSON
of the largest state (Register's output, which is the Map's and Finalize's input too).
"""

from __future__ import annotations

import json
import math
from typing import Any

from payments.batch.plan import MAX_CHUNKS, MAX_ROWS, PlannedChunk
from payments.csv_reader import MAX_HEADER_COLUMNS
from payments.validation import CSV_FIELDS

from lib.functions import BATCH_CHUNK_ROWS
from lib.workflow_definition import batch_workflow_definition

HISTORY_EVENTS_LIMIT = 25_000
STATE_BYTES_LIMIT = 256 * 1024
SPARE = 0.8  # use at most 80 % of either

# History events per state of a run that succeeds (Standard workflows).
EXECUTION = 2  # ExecutionStarted, ExecutionSucceeded
TASK = 5  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
RETRY = 3  # TaskFailed (or TaskTimedOut), then TaskScheduled and TaskStarted again
CHOICE = 2  # ChoiceStateEntered, ChoiceStateExited
MAP = 4  # MapStateEntered, MapStateStarted, MapStateSucceeded, MapStateExited
ITERATION = 2  # MapIterationStarted, MapIterationSucceeded
SUCCEED = 2  # SucceedStateEntered, SucceedStateExited

DEFINITION = batch_workflow_definition(
    tasks_function_arn="arn:aws:lambda:us-east-1:123456789012:function:payments-batch-tasks-x",
    status_table_name="payments-processing-status-x",
    audit_table_name="payments-audit-log-x",
)


def retries(state: dict[str, Any]) -> int:
    """The most retries a task can take and still succeed: every retrier to its limit."""
    return sum(int(retrier["MaxAttempts"]) for retrier in state.get("Retry", []))


def worst_history(chunks: int) -> int:
    states = DEFINITION["States"]
    chunk_task = states["Chunks"]["ItemProcessor"]["States"]["ProcessChunk"]
    return (
        EXECUTION
        + TASK
        + RETRY * retries(states["Register"])
        + CHOICE
        + MAP
        + chunks * (ITERATION + TASK + RETRY * retries(chunk_task))
        + TASK
        + RETRY * retries(states["Finalize"])
        + SUCCEED
    )


def largest_state(chunks: int) -> int:
    """Register's output for a file of ``chunks`` chunks with the longest names and numbers."""
    huge = 5 * 1024**4  # S3's largest object: every offset has 13 digits
    items = [
        PlannedChunk(
            index=i, offset=huge, end=huge, line=10 * MAX_ROWS, rows=50_000, duplicates=[]
        ).item()
        | {"duplicates": 50_000}
        for i in range(chunks)
    ]
    columns = [*CSV_FIELDS, *[""] * (MAX_HEADER_COLUMNS - len(CSV_FIELDS))]
    state = {
        "bucket": "b" * 63,
        "key": f"incoming/{'x' * 128}.csv",
        "version_id": "v" * 1024,
        "batch_id": "x" * 128,
        "run": "v" * 1024,
        "superseded": False,
        "done": False,
        "columns": columns,
        "chunks": items,
        # Present when a task failed and the Catch path runs.
        "error": {"Error": "E" * 256, "Cause": "C" * 32_768},
    }
    return len(json.dumps(state, separators=(",", ":")).encode())


def test_the_largest_file_at_the_deployed_chunk_size_is_accepted():
    assert math.ceil(MAX_ROWS / BATCH_CHUNK_ROWS) <= MAX_CHUNKS


def test_the_largest_file_fits_the_history_even_when_every_task_retries_to_its_limit():
    deployed = math.ceil(MAX_ROWS / BATCH_CHUNK_ROWS)
    assert worst_history(deployed) == 15_056
    assert worst_history(MAX_CHUNKS) <= SPARE * HISTORY_EVENTS_LIMIT


def test_the_largest_state_fits_step_functions_payload_limit():
    assert largest_state(MAX_CHUNKS) <= SPARE * STATE_BYTES_LIMIT


def test_the_earlier_chunk_size_did_not_fit():
    # 2,000 rows per chunk: 1,500 chunks, over the limit once its chunks retried.
    assert worst_history(math.ceil(MAX_ROWS / 2000)) > HISTORY_EVENTS_LIMIT
