"""CSV reading: RFC 4180 on bytes, resumable at byte offsets, every row accounted for."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from payments import csv_reader
from payments.errors import INVALID_ENCODING, InvalidBatchFileError


def read_all(data: bytes, max_rows: int = 3) -> list[csv_reader.Row]:
    header = csv_reader.read_header(io.BytesIO(data))
    rows, offset, line = [], header.data_offset, header.next_line
    while True:
        chunk = csv_reader.read_rows(
            io.BytesIO(data[offset:]),
            columns=header.columns,
            offset=offset,
            line=line,
            max_rows=max_rows,
        )
        rows.extend(chunk.rows)
        assert chunk.next_offset >= offset
        offset, line = chunk.next_offset, chunk.next_line
        if chunk.eof:
            return rows


def test_header_any_order_and_case_with_bom_and_crlf():
    data = "\ufeffCurrency, AMOUNT ,Payment_Id,notes\r\nusd,1.00,p1,x\r\n".encode()
    rows = read_all(data)
    assert rows == [
        csv_reader.Row(line=2, values={"currency": "usd", "amount": "1.00", "payment_id": "p1"})
    ]


def test_quoted_fields_with_commas_quotes_and_newlines_keep_the_first_line_number():
    data = (
        b"payment_id,amount,currency,description\n"
        b'"p1","1.00",USD,"a, ""b""\nsecond line"\np2,2,USD,x\n'
    )
    rows = read_all(data)
    assert rows[0].values["description"] == 'a, "b"\nsecond line'
    assert rows[0].line == 2
    assert rows[1].line == 4 and rows[1].values["payment_id"] == "p2"


def test_blank_lines_are_skipped_but_counted_as_lines():
    data = b"payment_id,amount,currency\n\np1,1,USD\n   \r\n\np2,2,USD"
    assert [(r.line, r.payment_id) for r in read_all(data)] == [(3, "p1"), (6, "p2")]


def test_non_utf8_row_is_reported_not_dropped():
    data = b"payment_id,amount,currency\np1,1,USD\np\xe92,1,USD\np3,1,USD\n"
    rows = read_all(data)
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[1].code == INVALID_ENCODING and "0xe9" in rows[1].error


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'p1,"1,USD', "unterminated quoted field"),
        (b'"p1"x,1,USD', "malformed CSV"),
        (b"p1,1,USD,extra", "row has 4 fields but the header has 3"),
    ],
)
def test_malformed_rows_are_rejected_with_their_line(line, problem):
    data = b"payment_id,amount,currency\n" + line + b"\np9,1,USD\n"
    rows = read_all(data)
    assert rows[0].line == 2 and problem in rows[0].error
    assert rows[-1].payment_id == "p9"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"id,amount,currency\np1,1,USD\n", "missing required column(s) payment_id"),
        (b"payment_id;amount;currency\n", "missing required column(s) payment_id, amount"),
        (b"payment_id,amount,currency,amount\n", "repeats column(s) amount"),
        (b"payment_id,amount,curr\xe9ncy\n", "not valid UTF-8"),
        (b'payment_id,"amount,currency\n', "unterminated quote"),
    ],
)
def test_a_file_without_the_required_header_fails_as_a_whole(data, problem):
    with pytest.raises(InvalidBatchFileError) as caught:
        csv_reader.read_header(io.BytesIO(data))
    assert problem in caught.value.message


def test_a_stray_quote_inside_an_unquoted_field_is_literal_and_swallows_nothing():
    rows = read_all(b'payment_id,amount,currency\np1,1"0,USD\np2,1,USD\n')
    assert rows[0].values["amount"] == '1"0'  # the validator rejects it as an amount
    assert rows[1].payment_id == "p2"


def test_offsets_resume_exactly_where_the_previous_chunk_stopped():
    lines = [f"p{i},{i}.00,USD" for i in range(1, 11)]
    data = ("payment_id,amount,currency\r\n" + "\r\n".join(lines) + "\r\n").encode()
    for size in (1, 3, 10, 11):
        assert [r.payment_id for r in read_all(data, max_rows=size)] == [
            f"p{i}" for i in range(1, 11)
        ]


cell = st.text(alphabet=st.sampled_from([*'ab1.,"\n\r \u00e9-_', "\u20ac"]), max_size=8)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(cell, cell, cell), max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.integers(1, 5),
)
def test_random_quoted_rows_round_trip_in_any_chunking(rows, eol, chunk_rows):
    text = "payment_id,amount,currency" + eol
    for row in rows:
        text += ",".join(_quote(v) for v in row) + eol
    read = read_all(text.encode(), max_rows=chunk_rows)
    # A row whose cells are all empty-quoted is still a record ("","",""), never blank.
    assert [tuple(r.values[c] for c in ("payment_id", "amount", "currency")) for r in read] == [
        tuple(row) for row in rows
    ]


def test_rows_split_across_read_blocks_are_whole(monkeypatch):
    lines = [f'p{i},{i}.00,USD,"multi\nline {i}"' for i in range(1, 40)]
    data = ("payment_id,amount,currency,description\n" + "\n".join(lines)).encode()
    expected = read_all(data, max_rows=7)
    monkeypatch.setattr(csv_reader, "_READ_BLOCK", 5)  # every line spans several reads
    assert read_all(data, max_rows=7) == expected
    assert [r.payment_id for r in expected] == [f"p{i}" for i in range(1, 40)]
