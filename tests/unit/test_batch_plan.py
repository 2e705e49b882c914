"""Register's plan: chunk boundaries that read back as the sequential reading does, and the
duplicate lines of the whole file decided before any chunk runs."""

from __future__ import annotations

import io
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from payments import csv_reader
from payments.batch import plan_chunks
from payments.errors import ValidationError
from payments.validation import validate_payment

from tests.unit.test_csv_reader import FRAGMENTS, read_all

SMALL_LIMITS = {
    "MAX_LINE_BYTES": 40,
    "MAX_RECORD_BYTES": 120,
    "MAX_RECORD_LINES": 4,
    "_READ_BLOCK": 7,
}


def plan(data: bytes, chunk_rows: int) -> tuple[csv_reader.Header, list]:
    header = csv_reader.read_header(io.BytesIO(data))
    chunks = list(
        plan_chunks(
            io.BytesIO(data[header.data_offset :]),
            columns=header.columns,
            offset=header.data_offset,
            line=header.next_line,
            chunk_rows=chunk_rows,
        )
    )
    return header, chunks


def read_chunk(data: bytes, header: csv_reader.Header, chunk) -> csv_reader.Chunk:
    """What ProcessChunk reads: from the chunk's offset to the end of the file (the look-ahead of
    a broken record may pass the chunk's end), ``rows`` rows."""
    return csv_reader.read_rows(
        io.BytesIO(data[chunk.offset :]),
        columns=header.columns,
        offset=chunk.offset,
        line=chunk.line,
        max_rows=chunk.rows,
    )


def first_valid_duplicates(rows: list[csv_reader.Row]) -> list[tuple[int, int]]:
    """The contract's rule, read sequentially: a valid row repeats the first valid row with its
    payment_id."""
    first: dict[str, int] = {}
    found = []
    for row in rows:
        if row.values is None:
            continue
        try:
            payment_id = validate_payment(row.values, require_id=True, from_csv=True).payment_id
        except ValidationError:
            continue
        if payment_id in first:
            found.append((row.line, first[payment_id]))
        else:
            first[payment_id] = row.line
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*FRAGMENTS, "p1,1.00,USD,again", "p1,x,USD", "p3,3,USD"]), max_size=25
    ),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.integers(1, 6),
)
def test_planned_chunks_read_back_as_the_whole_file_reads(fragments, eol, final_eol, chunk_rows):
    text = eol.join(["payment_id,amount,currency,description", *fragments])
    data = (text + (eol if final_eol else "")).encode()
    with mock.patch.multiple(csv_reader, **SMALL_LIMITS):
        whole = read_all(data, max_rows=100)
        header, chunks = plan(data, chunk_rows)
        rows = []
        for index, chunk in enumerate(chunks):
            assert chunk.index == index
            assert 0 < chunk.rows <= chunk_rows
            read = read_chunk(data, header, chunk)
            assert (read.next_offset, len(read.rows)) == (chunk.end, chunk.rows)
            if index:
                previous = chunks[index - 1]
                assert chunk.offset == previous.end
            rows.extend(read.rows)
    assert rows == whole
    assert sum(c.rows for c in chunks) == len(whole)
    planned = sorted(d for c in chunks for d in c.duplicates)
    assert planned == first_valid_duplicates(whole)
    for chunk in chunks:  # each chunk holds exactly its own duplicate lines
        lines = {r.line for r in read_chunk(data, header, chunk).rows}
        assert {line for line, _ in chunk.duplicates} <= lines


def test_a_duplicate_names_the_first_valid_row_not_an_invalid_one_before_it():
    data = b"payment_id,amount,currency\np1,abc,USD\np1,1,USD\np2,1,USD\np1,1,USD\np1,-1,USD\n"
    _, chunks = plan(data, 1)
    assert [(c.line, c.rows, c.duplicates) for c in chunks] == [
        (2, 1, []),
        (3, 1, []),
        (4, 1, []),
        (5, 1, [(5, 3)]),
        (6, 1, []),  # invalid: rejected, not a duplicate
    ]


def test_chunks_start_where_blank_lines_begin_and_the_map_item_is_small():
    data = b"payment_id,amount,currency\n\np1,1,USD\n\n\np2,1,USD\np1,1,USD\n\n"
    _, chunks = plan(data, 2)
    assert [c.item() for c in chunks] == [
        {"index": 0, "offset": 27, "end": 48, "line": 2, "rows": 2, "duplicates": 0},
        {"index": 1, "offset": 48, "end": 57, "line": 7, "rows": 1, "duplicates": 1},
    ]


def test_a_file_with_only_its_header_has_no_chunks():
    assert plan(b"payment_id,amount,currency\n\n", 5)[1] == []
