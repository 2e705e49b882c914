"""Streaming, resumable reader of payment CSV files (RFC 4180) that works on bytes.

It works on the raw bytes, not on text, for two reasons: a chunk resumes at a *byte* offset (an S3
ranged GET), and a row with bytes that are not UTF-8 must be reported with its line number instead
of failing the file or being dropped. The quote character is ASCII and never part of a multi-byte
UTF-8 sequence, so counting quotes on bytes finds record boundaries correctly.

Line numbers are physical lines of the file, 1-based, the header being line 1 (when the file starts
with blank lines the header keeps its physical number). A record spanning lines (a quoted newline)
has the number of its first line.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from payments.errors import INVALID_ENCODING, VALIDATION_ERROR, InvalidBatchFileError
from payments.validation import CSV_FIELDS, CSV_REQUIRED_COLUMNS

BOM = b"\xef\xbb\xbf"
# A record longer than this is almost certainly an unterminated quote swallowing the file; it is
# rejected at its first line and reading resumes on the next line, so no row is lost.
MAX_RECORD_BYTES = 64 * 1024
_READ_BLOCK = 256 * 1024


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
class _Record:
    line: int
    end_offset: int
    next_line: int
    data: bytes | None  # None: unterminated/oversized record, see MAX_RECORD_BYTES


class _Lines:
    """Physical lines (terminator included) of a binary stream, with push-back."""

    def __init__(self, stream: BinaryIO, prefix: bytes = b"") -> None:
        self._stream = stream
        self._buffer = prefix
        # Start of the unread part of ``_buffer``: advancing it instead of slicing the rest off
        # keeps a line's cost independent of the block size (slicing copied the block per line).
        self._pos = 0
        self._eof = False
        self._pushed: deque[bytes] = deque()

    def next(self) -> bytes | None:
        if self._pushed:
            return self._pushed.popleft()
        while True:
            newline = self._buffer.find(b"\n", self._pos)
            if newline >= 0:
                line = self._buffer[self._pos : newline + 1]
                self._pos = newline + 1
                return line
            rest = self._buffer[self._pos :]
            if self._eof:
                self._buffer, self._pos = b"", 0
                return rest or None
            block = self._stream.read(_READ_BLOCK)
            if not block:
                self._eof = True
            self._buffer, self._pos = rest + block, 0

    def push_back(self, lines: list[bytes]) -> None:
        self._pushed.extendleft(reversed(lines))

    def at_end(self) -> bool:
        if self._pushed:
            return False
        line = self.next()
        if line is None:
            return True
        self._pushed.appendleft(line)
        return False


def _records(lines: _Lines, offset: int, line_no: int) -> Iterator[_Record]:
    """Non-blank records from ``offset``; blank lines only advance the counters."""
    while True:
        first = lines.next()
        if first is None:
            return
        if not first.strip():
            offset += len(first)
            line_no += 1
            continue
        parts = [first]
        size = len(first)
        quoted = _ends_quoted(first, False)
        oversized = False
        while quoted:
            more = lines.next()
            if more is None or size + len(more) > MAX_RECORD_BYTES:
                oversized = True
                if more is not None:
                    parts.append(more)
                break
            parts.append(more)
            size += len(more)
            quoted = _ends_quoted(more, True)
        if oversized:
            # Report the first line alone and re-read everything after it as ordinary lines.
            lines.push_back(parts[1:])
            offset += len(first)
            line_no += 1
            yield _Record(line=line_no - 1, end_offset=offset, next_line=line_no, data=None)
            continue
        offset += size
        start = line_no
        line_no += len(parts)
        yield _Record(line=start, end_offset=offset, next_line=line_no, data=b"".join(parts))


def _ends_quoted(line: bytes, quoted: bool) -> bool:
    """Whether a record is still inside a quoted field at the end of ``line``.

    RFC 4180: a quote opens a quoted field only at the start of a field; inside one, ``""`` is an
    escaped quote and a single quote closes it. A stray quote inside an unquoted field is left
    for the csv parser to reject, instead of swallowing the following lines.
    """
    if b'"' not in line:
        return quoted
    at_field_start = not quoted
    i, n = 0, len(line)
    while i < n:
        byte = line[i]
        if quoted:
            if byte == 0x22:
                if i + 1 < n and line[i + 1] == 0x22:
                    i += 1
                else:
                    quoted = False
        elif byte == 0x22 and at_field_start:
            quoted = True
        at_field_start = byte == 0x2C and not quoted
        i += 1
    return quoted


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
        raise InvalidBatchFileError(f"header line {record.line} has an unterminated quote")
    try:
        columns = tuple(name.strip().lower() for name in _split(record.data))
    except UnicodeDecodeError as exc:
        raise InvalidBatchFileError(
            f"header line {record.line} is not valid UTF-8 (byte {exc.start})"
        ) from None
    except csv.Error as exc:
        raise InvalidBatchFileError(f"header line {record.line} is malformed CSV: {exc}") from None
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
    for record in _records(lines, offset, line):
        rows.append(_row(record, columns))
        next_offset, next_line = record.end_offset, record.next_line
        if len(rows) >= max_rows:
            break
    else:
        return Chunk(rows=rows, next_offset=next_offset, next_line=next_line, eof=True)
    return Chunk(rows=rows, next_offset=next_offset, next_line=next_line, eof=lines.at_end())


def _row(record: _Record, columns: tuple[str, ...]) -> Row:
    if record.data is None:
        return Row(
            line=record.line,
            error=f"unterminated quoted field (no closing quote within {MAX_RECORD_BYTES} bytes)",
        )
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
