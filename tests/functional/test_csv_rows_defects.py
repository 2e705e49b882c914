"""CSV files broken in ways that used to lose rows, through the batch tasks and moto."""

from __future__ import annotations

from payments import csv_reader

from tests.functional.test_processing_and_batches import counts, run_batch


def test_a_missing_closing_quote_costs_its_own_row_and_no_other(world, context):
    lines = [
        "payment_id,amount,currency,description",
        'b2,"12.50,USD',
        *[f"b{i},{i}.00,USD" for i in range(3, 42)],
        'b42,1.00,USD,"later"',
    ]
    view = run_batch(world, "swallow", ("\n".join(lines) + "\n").encode(), chunk_rows=7)
    assert counts(view) == (41, 40, 1, 0)
    [rejected] = view["rejected_rows"]
    assert rejected["line"] == 2 and "unterminated quoted field" in rejected["reason"]
    assert {p["payment_id"] for p in world.payments()} == {f"b{i}" for i in range(3, 43)}


def test_a_multi_mib_line_is_one_rejected_row_and_the_next_row_is_stored(world, context):
    body = b"payment_id,amount,currency\n" + b"x" * (6 * 1024 * 1024) + b"\nb3,1.00,USD\n"
    view = run_batch(world, "long-line", body, chunk_rows=1)
    assert counts(view) == (2, 1, 1, 0)
    [rejected] = view["rejected_rows"]
    assert rejected["line"] == 2
    assert f"longer than {csv_reader.MAX_LINE_BYTES} bytes" in rejected["reason"]
    assert [p["payment_id"] for p in world.payments()] == ["b3"]
