"""What names an upload and its outcome: the batch id in its key, its place among the uploads of
that key (the S3 event's ``sequencer``), and the key of each run's report. One place each."""

from __future__ import annotations

import re

from payments.validation import BATCH_ID_PATTERN

INCOMING_KEY = re.compile(rf"\Aincoming/(?P<batch_id>{BATCH_ID_PATTERN})\.csv\Z", re.ASCII)
REPORTS_PREFIX = "reports/"
# S3 sequencers are hex strings of varying length. S3's rule for ordering two of them (S3 User
# Guide, "Event message structure"): pad the shorter one *on the right* with zeros, then compare
# them as strings. Padding every one to the same width on the right keeps that order for any two,
# and lets DynamoDB conditions and Step Functions compare the stored strings directly.
SEQUENCER_WIDTH = 64


def batch_id_from_key(key: str) -> str | None:
    """``incoming/<batch_id>.csv`` -> batch_id; anything else is not a batch file."""
    match = INCOMING_KEY.fullmatch(key)
    return match.group("batch_id") if match else None


def upload_key(batch_id: str) -> str:
    """Where a batch's file is uploaded (``batch_id_from_key`` reads it back)."""
    return f"incoming/{batch_id}.csv"


def report_key(batch_id: str, run: str) -> str:
    """One report per run: a superseded run's late finalize cannot overwrite the newer report."""
    return f"{REPORTS_PREFIX}{batch_id}/{run}.json"


def sequencer_order(sequencer: str | None) -> str:
    """An S3 event ``sequencer`` as a string that sorts in upload order ("" when unknown or
    longer than ``SEQUENCER_WIDTH``): upper case, right-padded with zeros."""
    value = (sequencer or "").strip().upper()
    if not value or len(value) > SEQUENCER_WIDTH or any(c not in "0123456789ABCDEF" for c in value):
        return ""
    return value.ljust(SEQUENCER_WIDTH, "0")
