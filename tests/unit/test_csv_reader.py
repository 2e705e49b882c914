"""CSV reading: RFC 4180 on bytes, resumable at byte offsets, every row accounted for."""

import io
import tracemalloc
from unittest import mock

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


line_cell = st.text(alphabet=st.sampled_from([*'ab1.,"\r \u00e9-_', "\u20ac"]), max_size=8)
text_cell = st.text(alphabet=st.sampled_from([*'ab1.,"\n\r \u00e9-_', "\u20ac"]), max_size=8)


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(line_cell, line_cell, line_cell, text_cell, text_cell), max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.integers(1, 5),
)
def test_random_quoted_rows_round_trip_in_any_chunking(rows, eol, chunk_rows):
    # Line breaks only where a value may hold one: description and a column the reader ignores.
    text = "payment_id,amount,currency,description,notes" + eol
    for row in rows:
        text += ",".join(_quote(v) for v in row) + eol
    read = read_all(text.encode(), max_rows=chunk_rows)
    # A row whose cells are all empty-quoted is still a record ("","",""), never blank.
    columns = ("payment_id", "amount", "currency", "description")
    assert [tuple(r.values[c] for c in columns) for r in read] == [row[:4] for row in rows]


def test_rows_split_across_read_blocks_are_whole(monkeypatch):
    lines = [f'p{i},{i}.00,USD,"multi\nline {i}"' for i in range(1, 40)]
    data = ("payment_id,amount,currency,description\n" + "\n".join(lines)).encode()
    expected = read_all(data, max_rows=7)
    monkeypatch.setattr(csv_reader, "_READ_BLOCK", 5)  # every line spans several reads
    assert read_all(data, max_rows=7) == expected
    assert [r.payment_id for r in expected] == [f"p{i}" for i in range(1, 40)]


# -- a broken quote never swallows the lines after it --------------------------------------------

VALID_ROWS = [f"p{i},{i}.00,USD" for i in range(3, 42)]  # 39 rows, lines 3-41


@pytest.mark.parametrize(
    ("broken", "closing"),
    [
        pytest.param('p2,"12.50,USD', 'p42,1.00,USD,"later"', id="in-amount-quote-later"),
        pytest.param('p2,12.50,USD,"never closed', 'p42,1.00,USD,"later"', id="in-description"),
        pytest.param('p2,12.50,USD,"runs to a stray', 'p42,1.00,USD,x,a stray"', id="clean-close"),
        pytest.param('p2,12.50,USD,x,"notes', 'p42,1.00,USD,x,"a""b"', id="in-ignored-column"),
        pytest.param('p2,"12.50,USD', "", id="to-the-end-of-the-file"),
    ],
)
def test_a_missing_closing_quote_rejects_its_line_and_every_later_row_is_read(broken, closing):
    lines = ["payment_id,amount,currency,description,notes", broken, *VALID_ROWS]
    data = ("\n".join([*lines, closing]) + "\n").encode()
    rows = read_all(data, max_rows=7)
    assert rows[0].line == 2 and rows[0].values is None
    assert rows[0].error.startswith("unterminated quoted field")
    assert [(r.line, r.payment_id) for r in rows[1:40]] == [
        (line, f"p{line}") for line in range(3, 42)
    ]
    assert len(rows) == (41 if closing else 40)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ('p2,"1\n.00",USD', "amount cannot hold a line break"),
        ('"p\n2",1.00,USD', "payment_id cannot hold a line break"),
        ('p2,1.00,USD,"a\nb",x,"c"', "the lines it would join have 6 fields, the header 5"),
        ('p2,1.00,USD,"a\nb"x', "malformed CSV"),
        ('p2,1.00,USD,"a' + "\nb" * 40 + '"', f"within {csv_reader.MAX_RECORD_LINES} lines"),
        ('p2,1.00,USD,"a\np3,3.00,USD\nb"', "line 3 would be swallowed, but it is a row"),
    ],
)
def test_a_record_that_cannot_span_lines_rejects_only_its_first_line(record, reason):
    data = f"payment_id,amount,currency,description,notes\n{record}\np99,1,USD\n".encode()
    rows = read_all(data)
    assert rows[0].line == 2 and reason in rows[0].error
    # Every later line is read again on its own: none is consumed by the broken record.
    physical = data.split(b"\n")
    later = [n for n in range(3, len(physical)) if physical[n - 1].strip()]
    assert [r.line for r in rows[1:]] == later
    assert rows[-1].payment_id == "p99"


def test_quoted_line_breaks_in_description_and_ignored_columns_are_one_row():
    data = (
        b"payment_id,amount,currency,description,notes\n"
        b'p1,1.00,USD,"first\r\nsecond, third","n1\n\nn2"\n'
        b"p2,2.00,USD\n"
    )
    rows = read_all(data)
    assert [(r.line, r.payment_id) for r in rows] == [(2, "p1"), (6, "p2")]
    assert rows[0].values["description"] == "first\r\nsecond, third"


def test_a_chunk_boundary_inside_the_look_ahead_of_a_broken_record_loses_nothing():
    data = ("payment_id,amount,currency,description\n" + 'p1,1,USD,"x\n' * 30).encode()
    for size in (1, 2, 7, 100):
        assert [r.line for r in read_all(data, max_rows=size)] == list(range(2, 32))


# -- a physical line is capped ---------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_a_multi_mib_line_is_rejected_naming_the_cap_and_the_next_row_is_read(eol):
    long_line = b"p1,1.00,USD," + b"x" * (5 * 1024 * 1024)
    data = b"payment_id,amount,currency" + eol + long_line + eol + b"p2,2.00,USD" + eol
    rows = read_all(data, max_rows=1)
    assert rows[0].line == 2 and rows[0].values is None
    assert f"longer than {csv_reader.MAX_LINE_BYTES} bytes" in rows[0].error
    assert [(r.line, r.payment_id) for r in rows[1:]] == [(3, "p2")]


def test_a_long_line_without_a_line_break_at_the_end_of_the_file():
    data = b"payment_id,amount,currency\np1,1,USD\n" + b'"' * (3 * 1024 * 1024)
    rows = read_all(data, max_rows=1)
    assert [r.line for r in rows] == [2, 3]
    assert "longer than" in rows[1].error


def test_the_cap_is_on_the_line_without_its_line_break():
    cap = csv_reader.MAX_LINE_BYTES
    fits = b"p1,1.00,USD," + b"x" * (cap - len(b"p1,1.00,USD,"))
    over = fits + b"x"
    data = b"payment_id,amount,currency,notes\r\n" + fits + b"\r\n" + over + b"\r\np3,1,USD\r\n"
    rows = read_all(data)
    assert [(r.line, r.payment_id, r.error is None) for r in rows] == [
        (2, "p1", True),
        (3, None, False),
        (4, "p3", True),
    ]


def test_a_long_line_is_skipped_in_memory_that_does_not_grow_with_it():
    header = b"payment_id,amount,currency\n"
    stream = io.BytesIO(b"x" * (16 * 1024 * 1024) + b"\np2,1,USD\n")
    tracemalloc.start()
    try:
        chunk = csv_reader.read_rows(
            stream,
            columns=("payment_id", "amount", "currency"),
            offset=len(header),
            line=2,
            max_rows=10,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.line for r in chunk.rows] == [2, 3] and chunk.rows[1].payment_id == "p2"
    assert chunk.next_offset == len(header) + len(stream.getvalue()) and chunk.eof
    # A few read blocks and one capped line, not the 16 MiB line (nor copies of it).
    assert peak < 4 * csv_reader._READ_BLOCK + 2 * csv_reader.MAX_LINE_BYTES


def test_a_header_line_over_the_cap_fails_the_file():
    with pytest.raises(InvalidBatchFileError) as caught:
        csv_reader.read_header(io.BytesIO(b"payment_id,amount,currency," + b"x" * 70_000 + b"\n"))
    assert "header line 1" in caught.value.message and "longer than" in caught.value.message


# -- the file-level invariant ------------------------------------------------------------------

FRAGMENTS = [
    "p1,1.00,USD",
    "p2,2,usd,plain",
    'p3,"3.00",USD,"two\nlines"',
    'p4,4,USD,"three\n\nlines"',
    'p5,"5,USD',  # unterminated in amount
    'p6,6,USD,"never closed',  # unterminated in description
    'p7,7,USD,x"',  # a stray quote that may close someone else's field
    'x",1',
    '"',
    "",
    "   ",
    "p8,1,USD," + "y" * 60,  # over the cap patched below
    "a,b,c,d,e,f",
    "p\u00e99,1,USD",
]


def spans(rows):
    """The physical lines each row covers: its first, plus one per line break in its values."""
    for row in rows:
        extra = sum(v.count("\n") for v in (row.values or {}).values())
        yield row, range(row.line, row.line + 1 + extra)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(FRAGMENTS), max_size=25),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.integers(1, 6),
)
def test_every_non_blank_line_ends_in_exactly_one_row(fragments, eol, final_eol, chunk_rows):
    text = eol.join(["payment_id,amount,currency,description", *fragments])
    data = (text + (eol if final_eol else "")).encode()
    small = {"MAX_LINE_BYTES": 40, "MAX_RECORD_BYTES": 120, "MAX_RECORD_LINES": 4, "_READ_BLOCK": 7}
    with mock.patch.multiple(csv_reader, **small):
        rows = read_all(data, max_rows=chunk_rows)
        assert rows == read_all(data, max_rows=100)  # chunking changes nothing
    physical = data.split(b"\n")
    if physical[-1] == b"":
        physical.pop()
    covered: list[int] = []
    for row, lines in spans(rows):
        covered.extend(lines)
        assert len(lines) <= small["MAX_RECORD_LINES"]
        if len(lines) > 1:  # only description may hold a line break
            assert all("\n" not in row.values[c] for c in ("payment_id", "amount", "currency"))
    assert covered == sorted(set(covered)), "a line is in two rows"
    non_blank = [n for n in range(2, len(physical) + 1) if physical[n - 1].strip()]
    assert set(non_blank) <= set(covered), "a line is in no row"
    assert set(covered) <= set(range(2, len(physical) + 1))


def test_a_header_with_more_columns_than_the_workflow_carries_is_refused():
    import io

    from payments.csv_reader import MAX_HEADER_COLUMNS, read_header
    from payments.errors import InvalidBatchFileError

    names = ["payment_id", "amount", "currency"]
    at_limit = names + [f"c{i}" for i in range(MAX_HEADER_COLUMNS - len(names))]
    assert len(read_header(io.BytesIO((",".join(at_limit) + "\n").encode())).columns) == 1000
    over = ",".join([*at_limit, "one-more"]) + "\n"
    try:
        read_header(io.BytesIO(over.encode()))
    except InvalidBatchFileError as exc:
        assert exc.message == "header line 1 has 1,001 columns; at most 1,000 are accepted"
    else:
        raise AssertionError("a 1,001-column header was accepted")
