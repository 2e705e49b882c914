"""Drive the batch tasks as the workflow does: Register (which plans), one ProcessChunk per
planned chunk with the input the Map's ItemSelector builds, then Finalize."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RUN_FIELDS = ("batch_id", "run", "bucket", "key", "version_id", "columns")


def chunk_inputs(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The Map iterations' inputs (lib/workflow_definition.py ``_CHUNK_INPUT``)."""
    return [{**{k: state.get(k) for k in RUN_FIELDS}, "chunk": c} for c in state.get("chunks", [])]


def only_chunk(state: dict[str, Any]) -> dict[str, Any]:
    """The input of the one chunk of a file that fits in one."""
    (chunk,) = chunk_inputs(state)
    return chunk


def process_chunks(
    batches: Any, state: dict[str, Any], *, order: Sequence[int] | None = None
) -> dict[str, Any]:
    """Every planned chunk (in ``order`` when given: chunks may finish in any order); returns
    the state Finalize gets (the Map's ResultPath is null: its input)."""
    inputs = chunk_inputs(state)
    for index in order if order is not None else range(len(inputs)):
        batches.process_chunk(inputs[index])
    return state
