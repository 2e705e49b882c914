"""The audit archive: every audit-log entry, copied as it is written into an S3 bucket whose
objects Object Lock keeps (compliance mode outside dev) for the profile's retention.

The archiver (``handlers.archiver``) reads the audit log's stream, as the publisher does, and
writes one object per stream batch: JSON lines, one per record, each with the entry in plain JSON
and the SHA-256 of its canonical form (``digest``). The object's key holds the day and hour of the
batch's first entry and the SHA-256 of the body, so a retried batch writes the same key and is
refused by S3 (``If-None-Match: *``) instead of making a second version; a bisected retry writes
its halves under their own keys, and a reader takes the union. A ``MODIFY`` or ``REMOVE`` of an
entry (which the table's policy denies) is archived too, as evidence.

``make reconcile`` reads the archive for its time window (``ArchiveIndex``) and reports an entry
missing from the archive, an entry that differs from its archived copy, an archived entry the table
no longer has, and any archived change to an entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from payments.repository import deserialize, error_code

ARCHIVE_PREFIX = "audit/"
INSERT = "INSERT"
CONTENT_TYPE = "application/x-ndjson"


class ArchiveError(RuntimeError):
    """An archive object could not be written or read as the format says."""


def _plain(value: Any) -> Any:
    """An entry's value as plain JSON: numbers by value (10.00 and 10 are one number, as in
    DynamoDB), sets sorted, binary as base64."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return value


def canonical(entry: Mapping[str, Any]) -> str:
    """The one text of an entry (deserialized, as the table returns it) that its digest is of."""
    return json.dumps(_plain(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry).encode()).hexdigest()


def _line(record: Mapping[str, Any]) -> dict[str, Any]:
    data = record.get("dynamodb") or {}
    event = str(record.get("eventName") or "")
    keys = deserialize(data.get("Keys") or {})
    image = deserialize(data["NewImage"]) if data.get("NewImage") else None
    line: dict[str, Any] = {
        "event": event,
        "entity_id": str(keys.get("entity_id") or (image or {}).get("entity_id") or ""),
        "sk": str(keys.get("sk") or (image or {}).get("sk") or ""),
        "sequence": str(data.get("SequenceNumber", "")),
    }
    if not line["entity_id"] or not line["sk"]:
        raise ArchiveError(f"stream record {line['sequence']!r} names no entity_id and sk")
    if image is not None:
        line["entry"] = _plain(image)
        line["digest"] = digest(image)
    return line


def _hour(lines: list[dict[str, Any]], records: list[Mapping[str, Any]]) -> datetime:
    """When the batch's first entry was made: its ``at``, else the stream's creation time."""
    stamps = [str(ln["entry"]["at"]) for ln in lines if "entry" in ln and ln["entry"].get("at")]
    if stamps:
        text = min(stamps).replace("Z", "+00:00")
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except ValueError:
            pass
    created = [
        float((r.get("dynamodb") or {}).get("ApproximateCreationDateTime") or 0) for r in records
    ]
    return datetime.fromtimestamp(min(created, default=0.0), UTC)


def object_key(moment: datetime, body: bytes) -> str:
    return (
        f"{ARCHIVE_PREFIX}{moment:%Y-%m-%d}/{moment:%H}/"
        f"{moment:%Y%m%dT%H%M%S}-{hashlib.sha256(body).hexdigest()[:32]}.jsonl"
    )


def write(records: list[Mapping[str, Any]], bucket: str, s3: Any) -> str | None:
    """Archive one stream batch as one object; its key (None for an empty batch). Idempotent:
    the same records make the same key, which S3 then refuses to overwrite."""
    if not records:
        return None
    lines = [_line(record) for record in records]
    return _put(lines, _hour(lines, records), bucket, s3)


def write_entries(entries: list[Mapping[str, Any]], bucket: str, s3: Any) -> str | None:
    """Archive audit entries read from the table (``make republish --archive``: what the
    archiver gave up on), as one object of ``INSERT`` lines without a stream sequence."""
    if not entries:
        return None
    lines = [
        {
            "event": INSERT,
            "entity_id": str(entry["entity_id"]),
            "sk": str(entry["sk"]),
            "sequence": "",
            "entry": _plain(entry),
            "digest": digest(entry),
        }
        for entry in entries
    ]
    return _put(lines, _hour(lines, []), bucket, s3)


def _put(lines: list[dict[str, Any]], moment: datetime, bucket: str, s3: Any) -> str:
    body = "".join(
        json.dumps(ln, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        for ln in lines
    ).encode()
    key = object_key(moment, body)
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=CONTENT_TYPE,
            # Object Lock needs an integrity checksum on every PUT; the stored SHA-256 also lets
            # anyone check an object against its bytes later.
            ChecksumAlgorithm="SHA256",
            IfNoneMatch="*",
        )
    except ClientError as exc:
        # Written by an earlier attempt of this batch: the same bytes are there already.
        if error_code(exc) != "PreconditionFailed":
            raise
    return key


# -- reading --------------------------------------------------------------------------------
@dataclass
class Archived:
    """What the archive holds for one entry (entity_id, sk)."""

    digests: set[str] = field(default_factory=set)
    changes: list[str] = field(default_factory=list)  # "MODIFY in <object key>", ...


@dataclass
class ArchiveIndex:
    entries: dict[tuple[str, str], Archived] = field(default_factory=dict)
    objects: int = 0
    days: tuple[date, date] | None = None

    def of(self, entity_id: str) -> dict[str, Archived]:
        """Every archived sort key of one entity."""
        return {sk: found for (entity, sk), found in self.entries.items() if entity == entity_id}

    def by_entity(self) -> dict[str, dict[str, Archived]]:
        out: dict[str, dict[str, Archived]] = {}
        for (entity, sk), found in self.entries.items():
            out.setdefault(entity, {})[sk] = found
        return out


def days(since: date, until: date) -> Iterator[date]:
    day = since
    while day <= until:
        yield day
        day += timedelta(days=1)


def _keys(s3: Any, bucket: str, prefixes: Iterable[str]) -> Iterator[str]:
    paginator = s3.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"])


def read(s3: Any, bucket: str, since: date, until: date) -> ArchiveIndex:
    """Every archived line of the objects whose first entry was made from ``since`` to
    ``until`` (days, both included)."""
    index = ArchiveIndex(days=(since, until))
    prefixes = [f"{ARCHIVE_PREFIX}{day:%Y-%m-%d}/" for day in days(since, until)]
    for key in _keys(s3, bucket, prefixes):
        index.objects += 1
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for number, text in enumerate(body.splitlines(), start=1):
            try:
                line = json.loads(text)
                entry_key = (str(line["entity_id"]), str(line["sk"]))
                event = str(line["event"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ArchiveError(f"{key} line {number}: not an archive line ({exc})") from None
            found = index.entries.setdefault(entry_key, Archived())
            if event == INSERT:
                found.digests.add(str(line.get("digest")))
            else:
                found.changes.append(f"{event} in {key}")
    return index
