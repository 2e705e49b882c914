"""Streaming, resumable reader of payment CSV files (RFC 4180) that works on bytes.

It works on the raw bytes, not on text, for two reasons: a chunk resumes at a *byte* offset (an S3
ranged GET), and a row with bytes that are not UTF-8 must be reported with its line number instead
of failing the file or being dropped. The quote character is ASCII and never part of a multi-byte
UTF-8 sequence, so counting quotes on bytes finds record boundaries correctly.

Line numbers are physical lines of the file, 1-based, the header being line 1 (when the file starts
with blank lines the header keeps its physical number). A record spanning lines (a quoted newline)
has the number of its first line.

Every non-blank physical line after the header ends up in exactly one ``Row``, so the batch can
account for each line as accepted, rejected or duplicate. Two rules make that hold for broken
files:

- A physical line longer than ``MAX_LINE_BYTES`` (line break not counted) is one rejected row. It
  is skipped to its line break in constant memory and linear time; it is never held whole.
- RFC 4180 lets a quoted field hold line breaks, and a single missing closing quote would then turn
  the rest of the file into one field. So a record is read across lines only when all of these
  hold: its quotes close within ``MAX_RECORD_LINES`` lines and ``MAX_RECORD_BYTES`` bytes, before
  the end of the file; it splits cleanly (strict RFC 4180, UTF-8) into at most as many fields as
  the header has; each line break lies in a column that may hold one (``description`` or a column
  the reader ignores; an id, amount or currency never does); and no line after its first is, read
  on its own, a valid payment row. Otherwise the record's *first* line is rejected, saying why, and
  reading resumes on the next physical line, so no other line is consumed by it.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from payments.errors import (
    INVALID_ENCODING,
    VALIDATION_ERROR,
    InvalidBatchFileError,
    ValidationError,
)
from payments.validation import CSV_FIELDS, CSV_REQUIRED_COLUMNS, validate_payment

BOM = b"\xef\xbb\xbf"
# One physical line: a payment row is well under 1 KiB. Longer ones are rejected and skipped.
MAX_LINE_BYTES = 64 * 1024
# One record spanning lines (a quoted field with line breaks, see the module docstring).
MAX_RECORD_BYTES = 64 * 1024
MAX_RECORD_LINES = 32
# Columns a header may have. The workflow's state carries one entry per column (an ignored
# column as ""), so this bounds its size within Step Functions' 256 KiB.
MAX_HEADER_COLUMNS = 1000
# Columns whose values may contain a line break; every other validated column is one line.
MULTILINE_COLUMNS = frozenset({"description"})
_READ_BLOCK = 256 * 1024
_COMMA = 0x2C


@dataclass(frozen=True)
class Header:
    columns: tuple[str, ...]
    data_offset: int
    next_line: int


@dataclass(frozen=True)
class Row:
    """One non-blank data record: ``values`` when it could be split, else ``error``."""

    line: int
    values: dict[str, str] | None = None
    error: str | None = None
    code: str = VALIDATION_ERROR

    @property
    def payment_id(self) -> str | None:
        return (self.values or {}).get("payment_id") or None


@dataclass(frozen=True)
class Chunk:
    rows: list[Row]
    next_offset: int
    next_line: int
    eof: bool


@dataclass(frozen=True)
class _LongLine:
    """A physical line over ``MAX_LINE_BYTES``: only its size is kept (terminator included)."""

    size: int


_Line = bytes | _LongLine


@dataclass(frozen=True)
class _Record:
    line: int
    end_offset: int
    next_line: int
    data: bytes | None  # None: the first line alone is rejected with ``error``
    error: str | None = None


def _size(line: _Line) -> int:
    return line.size if isinstance(line, _LongLine) else len(line)


class _Lines:
    """Physical lines (terminator included) of a binary stream, with push-back.

    A line over ``MAX_LINE_BYTES`` comes back as a ``_LongLine``; the buffer never holds more than
    one read block plus one maximal line, so a file without line breaks costs constant memory.
    """

    def __init__(self, stream: BinaryIO, prefix: bytes = b"") -> None:
        self._stream = stream
        self._buffer = prefix
        # Start of the unread part of ``_buffer``: advancing it instead of slicing the rest off
        # keeps a line's cost independent of the block size (slicing copied the block per line).
        self._pos = 0
        self._eof = False
        self._pushed: deque[_Line] = deque()

    def next(self) -> _Line | None:
        if self._pushed:
            return self._pushed.popleft()
        while True:
            newline = self._buffer.find(b"\n", self._pos)
            if newline >= 0:
                line = self._buffer[self._pos : newline + 1]
                self._pos = newline + 1
                return _LongLine(len(line)) if _too_long(line) else line
            rest = len(self._buffer) - self._pos
            # A line break may yet come, but with more than MAX_LINE_BYTES + 1 bytes (room for a
            # "\r") before it the line is too long whatever follows.
            if rest > MAX_LINE_BYTES + 1:
                return self._skip_long_line()
            if self._eof:
                line = self._buffer[self._pos :]
                self._buffer, self._pos = b"", 0
                if not line:
                    return None
                return _LongLine(len(line)) if _too_long(line) else line
            self._fill()

    def _fill(self) -> None:
        block = self._stream.read(_READ_BLOCK)
        if not block:
            self._eof = True
        self._buffer, self._pos = self._buffer[self._pos :] + block, 0

    def _skip_long_line(self) -> _LongLine:
        """Drop the current line up to its line break, one read block at a time."""
        size = len(self._buffer) - self._pos
        while True:
            block = self._stream.read(_READ_BLOCK)
            if not block:
                self._eof = True
                self._buffer, self._pos = b"", 0
                return _LongLine(size)
            newline = block.find(b"\n")
            if newline >= 0:
                self._buffer, self._pos = block, newline + 1
                return _LongLine(size + newline + 1)
            size += len(block)

    def push_back(self, lines: Sequence[_Line]) -> None:
        self._pushed.extendleft(reversed(lines))

    def at_end(self) -> bool:
        if self._pushed:
            return False
        line = self.next()
        if line is None:
            return True
        self._pushed.appendleft(line)
        return False


def _too_long(line: bytes) -> bool:
    return len(line.rstrip(b"\r\n")) > MAX_LINE_BYTES if len(line) > MAX_LINE_BYTES else False


def _is_blank(line: _Line) -> bool:
    return isinstance(line, bytes) and not line.strip()


def _records(
    lines: _Lines, offset: int, line_no: int, columns: tuple[str, ...] | None = None
) -> Iterator[_Record]:
    """Non-blank records from ``offset``; blank lines only advance the counters.

    ``columns`` (None for the header) enables the checks on records spanning lines.
    """
    while True:
        first = lines.next()
        if first is None:
            return
        if _is_blank(first):
            offset += _size(first)
            line_no += 1
            continue
        if isinstance(first, _LongLine):
            offset += first.size
            line_no += 1
            yield _Record(
                line=line_no - 1,
                end_offset=offset,
                next_line=line_no,
                data=None,
                error=f"line is longer than {MAX_LINE_BYTES} bytes (the limit); skipped",
            )
            continue
        parts, problem = _read_record(lines, first, line_no, columns)
        if problem is not None:
            # Only the first line is rejected; everything after it is read again as new lines.
            lines.push_back(parts[1:])
            offset += len(first)
            line_no += 1
            yield _Record(
                line=line_no - 1, end_offset=offset, next_line=line_no, data=None, error=problem
            )
            continue
        data = b"".join(parts)
        offset += len(data)
        start = line_no
        line_no += len(parts)
        yield _Record(line=start, end_offset=offset, next_line=line_no, data=data)


def _read_record(
    lines: _Lines, first: bytes, line_no: int, columns: tuple[str, ...] | None
) -> tuple[list[bytes], str | None]:
    """The physical lines of the record starting with ``first``, or why it is only ``first``
    (then the caller pushes the lines after ``first`` back, to be read again)."""
    quoted, field = _scan(first, False, 0)
    if not quoted:
        return [first], None
    parts = [first]
    size = len(first)
    unterminated = "unterminated quoted field: "
    while True:
        if columns is not None and not _may_break(columns, field):
            name = columns[field] if field < len(columns) else f"field {field + 1}"
            return parts, unterminated + f"{name} cannot hold a line break"
        if len(parts) >= MAX_RECORD_LINES:
            return parts, unterminated + f"no closing quote within {MAX_RECORD_LINES} lines"
        more = lines.next()
        if more is None:
            return parts, unterminated + "no closing quote before the end of the file"
        if isinstance(more, _LongLine) or size + len(more) > MAX_RECORD_BYTES:
            lines.push_back([more])
            return parts, unterminated + f"no closing quote within {MAX_RECORD_BYTES} bytes"
        parts.append(more)
        size += len(more)
        if columns is not None and _is_row_of_its_own(more, columns):
            at = line_no + len(parts) - 1
            return parts, unterminated + f"line {at} would be swallowed, but it is a row"
        quoted, field = _scan(more, True, field)
        if not quoted:
            break
    if columns is not None:
        problem = _multiline_problem(b"".join(parts), columns)
        if problem is not None:
            return parts, unterminated + problem
    return parts, None


def _scan(line: bytes, quoted: bool, field: int) -> tuple[bool, int]:
    """Whether a record is still inside a quoted field at the end of ``line``, and in which field.

    RFC 4180: a quote opens a quoted field only at the start of a field; inside one, ``""`` is an
    escaped quote and a single quote closes it. A stray quote inside an unquoted field is left
    for the csv parser to reject, instead of swallowing the following lines. The scan jumps from
    quote to quote (and counts commas between them in C), so a line costs a few steps per quote.
    """
    at, end = 0, len(line)
    while True:
        quote = line.find(b'"', at)
        if quoted:
            if quote < 0:
                return True, field
            if line[quote + 1 : quote + 2] == b'"':
                at = quote + 2  # an escaped quote
            else:
                quoted, at = False, quote + 1
            continue
        if quote < 0:
            return False, field + line.count(b",", at, end)
        field += line.count(b",", at, quote)
        # Opening only at the start of a field: the line's start (a record's first line begins
        # unquoted) or right after a separator; a quote right after a closing one is stray.
        quoted = quote == 0 or line[quote - 1] == _COMMA
        at = quote + 1


def _may_break(columns: tuple[str, ...], field: int) -> bool:
    """Whether the value in field ``field`` (0-based) may contain a line break."""
    if field >= len(columns):
        return False  # a field the header does not have: the row is malformed anyway
    name = columns[field]
    return name in MULTILINE_COLUMNS or name not in CSV_FIELDS


def _is_row_of_its_own(line: bytes, columns: tuple[str, ...]) -> bool:
    """Whether ``line``, read alone, is a complete record that is a valid payment row."""
    if _scan(line, False, 0)[0]:
        return False
    try:
        fields = _split(line)
    except (UnicodeDecodeError, csv.Error):
        return False
    if len(fields) > len(columns):
        return False
    values = {
        name: value for name, value in zip(columns, fields, strict=False) if name in CSV_FIELDS
    }
    try:
        validate_payment(values, require_id=True, from_csv=True)
    except ValidationError:
        return False
    return True


def _multiline_problem(data: bytes, columns: tuple[str, ...]) -> str | None:
    """Why a record whose quotes close after a line break is not one record, or None."""
    try:
        fields = _split(data)
    except UnicodeDecodeError:
        return "the lines it would join are not valid UTF-8"
    except csv.Error as exc:
        return f"the lines it would join are malformed CSV ({exc})"
    if len(fields) > len(columns):
        return f"the lines it would join have {len(fields)} fields, the header {len(columns)}"
    for index, value in enumerate(fields):
        if "\n" in value and not _may_break(columns, index):
            return f"{columns[index]} cannot hold a line break"
    return None


def _split(data: bytes) -> list[str]:
    text = data.decode("utf-8")
    reader = csv.reader(io.StringIO(text.rstrip("\r\n"), newline=""), strict=True)
    fields = next(reader, [])
    if next(reader, None) is not None:  # pragma: no cover - quotes balanced, one record
        raise csv.Error("more than one record")
    return fields


def read_header(stream: BinaryIO) -> Header:
    """Read the header from the start of the file or raise ``InvalidBatchFileError``."""
    start = stream.read(len(BOM))
    offset = len(BOM) if start == BOM else 0
    # Without a BOM, the probed bytes are the start of the first line.
    lines = _Lines(stream, prefix=b"" if offset else start)
    record = next(_records(lines, offset, 1), None)
    if record is None:
        raise InvalidBatchFileError("the file is empty: no header line")
    if record.data is None:
        raise InvalidBatchFileError(f"header line {record.line}: {record.error}")
    try:
        columns = tuple(name.strip().lower() for name in _split(record.data))
    except UnicodeDecodeError as exc:
        raise InvalidBatchFileError(
            f"header line {record.line} is not valid UTF-8 (byte {exc.start})"
        ) from None
    except csv.Error as exc:
        raise InvalidBatchFileError(f"header line {record.line} is malformed CSV: {exc}") from None
    if len(columns) > MAX_HEADER_COLUMNS:
        raise InvalidBatchFileError(
            f"header line {record.line} has {len(columns):,} columns; "
            f"at most {MAX_HEADER_COLUMNS:,} are accepted",
            details={"line": record.line, "columns": len(columns)},
        )
    missing = [name for name in CSV_REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidBatchFileError(
            "missing required column(s) "
            + ", ".join(missing)
            + f" in header line {record.line} (required: "
            + ", ".join(CSV_REQUIRED_COLUMNS)
            + ")",
            details={"line": record.line, "missing": missing},
        )
    repeated = sorted({c for c in columns if c in CSV_FIELDS and columns.count(c) > 1})
    if repeated:
        raise InvalidBatchFileError(
            f"header line {record.line} repeats column(s) " + ", ".join(repeated),
            details={"line": record.line, "repeated": repeated},
        )
    return Header(columns=columns, data_offset=record.end_offset, next_line=record.next_line)


def read_rows(
    stream: BinaryIO, *, columns: tuple[str, ...], offset: int, line: int, max_rows: int
) -> Chunk:
    """Read up to ``max_rows`` records from ``stream``, which starts at byte ``offset``.

    Returns the rows and where the next chunk starts (byte offset and line number). Every
    non-blank record yields exactly one ``Row`` so callers can account for all of them.
    """
    lines = _Lines(stream)
    rows: list[Row] = []
    next_offset, next_line = offset, line
    for record in _records(lines, offset, line, columns):
        rows.append(_row(record, columns))
        next_offset, next_line = record.end_offset, record.next_line
        if len(rows) >= max_rows:
            break
    else:
        return Chunk(rows=rows, next_offset=next_offset, next_line=next_line, eof=True)
    return Chunk(rows=rows, next_offset=next_offset, next_line=next_line, eof=lines.at_end())


def iter_rows(
    stream: BinaryIO, *, columns: tuple[str, ...], offset: int, line: int
) -> Iterator[tuple[Row, int, int]]:
    """Every row from ``stream`` (which starts at byte ``offset``, line ``line``) to its end, each
    with the byte offset and line number where the next row's reading starts.

    The same records as ``read_rows``: reading resumed at any of those offsets yields the rows
    that follow it here, which is what lets a file be planned in one pass and its chunks read
    independently.
    """
    for record in _records(_Lines(stream), offset, line, columns):
        yield _row(record, columns), record.end_offset, record.next_line


def _row(record: _Record, columns: tuple[str, ...]) -> Row:
    if record.data is None:
        return Row(line=record.line, error=record.error)
    try:
        fields = _split(record.data)
    except UnicodeDecodeError as exc:
        bad = record.data[exc.start]
        return Row(
            line=record.line,
            error=f"invalid UTF-8 byte 0x{bad:02x} at byte {exc.start} of the row",
            code=INVALID_ENCODING,
        )
    except csv.Error as exc:
        return Row(line=record.line, error=f"malformed CSV: {exc}")
    if len(fields) > len(columns):
        return Row(
            line=record.line,
            error=f"row has {len(fields)} fields but the header has {len(columns)}",
        )
    values = {
        name: value for name, value in zip(columns, fields, strict=False) if name in CSV_FIELDS
    }
    return Row(line=record.line, values=values)
