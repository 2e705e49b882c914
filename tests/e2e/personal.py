"""The personal values the e2e suite sends, so that test_log_scan can look for each in every log
line the local cloud wrote.

Every value carries the session's MARK, which nothing else the suite sends contains: the scan
looks for the whole values and for the mark alone, so a field logged cut short is found too.
"""

from __future__ import annotations

import uuid

MARK = f"pii{uuid.uuid4().hex[:12]}"
_sent: list[str] = []


def personal(field: str) -> str:
    """A new personal value for ``field`` (``customer_id``, ``description``, a metadata value)."""
    value = f"{field.replace('_', '-')}-{MARK}-{len(_sent)}"
    _sent.append(value)
    return value


def sent() -> list[str]:
    """Every value handed out so far, in order."""
    return list(_sent)
