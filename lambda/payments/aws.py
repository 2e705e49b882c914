"""AWS clients, created once per container on first use.

Creating a client loads its service model (tens of milliseconds); doing that lazily keeps it out
of the import, so a cold start pays only for the clients a request actually uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

# One client is shared by the threads of a batch chunk (batch.WRITE_WORKERS); with fewer pooled
# connections than threads, urllib3 would open and then drop a connection (a new TLS handshake) on
# most calls.
MAX_POOL_CONNECTIONS = 16
# A patient client tries each call this many times in all; with full-jitter backoff from 0.1 s,
# doubling up to 5 s, the last try comes at most ~16 s after the first.
PATIENT_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 0.1  # the functional tests shrink it: they do not wait in real time
BACKOFF_CAP_SECONDS = 5.0
# Error codes that say "try again" across the services the functions call (DynamoDB, S3, SQS,
# SNS, Step Functions); any 5xx says the same.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "TransactionConflictException",
        "TransactionInProgressException",
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """The shared client for ``service`` (standard retry mode: backoff on throttling)."""
    found = _clients.get(service)
    if found is None:
        import boto3  # deferred, see module docstring
        from botocore.config import Config

        found = boto3.client(
            service,
            config=Config(
                retries={"mode": "standard", "max_attempts": 5},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=MAX_POOL_CONNECTIONS,
            ),
        )
        _clients[service] = found
    return found


def reset() -> None:
    """Forget every client (tests start each moto world with fresh clients)."""
    _clients.clear()


def retryable(exc: BaseException) -> bool:
    """True for a failure a retry of the same call can fix: throttling, a 5xx, a timeout or a
    lost connection. (A write that timed out may have taken effect: only repeat safe calls.)"""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, HTTPClientError | BotoConnectionError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or exc.response.get("Error", {}).get("Code") in RETRYABLE_CODES
    if isinstance(exc, S3UploadFailedError):  # boto3's transfer wraps the call's error
        cause = exc.__cause__ or exc.__context__
        return cause is None or retryable(cause)
    return False


def retrying(operation: Callable[[], _T], *, attempts: int = PATIENT_ATTEMPTS) -> _T:
    """``operation()``, tried again after a full-jitter backoff while it fails in a way a retry
    can fix (``retryable``), at most ``attempts`` times in all; then its error is raised."""
    for attempt in range(attempts):
        try:
            return operation()
        except Exception as exc:
            if attempt == attempts - 1 or not retryable(exc):
                raise
        backoff(attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def patient(service: str, *, attempts: int = PATIENT_ATTEMPTS) -> Any:
    """``client(service)`` whose every operation is tried again, after a full-jitter backoff,
    while it fails in a way a retry can fix, even after the SDK's own retries gave up.

    For tasks of many calls, each safe to repeat: a batch chunk makes hundreds, and one that
    failed for good must not fail the chunk (and the batch after the workflow's retries). Every
    write of the batch tasks is conditional or an overwrite, so a repeat of one that timed out
    after it took effect finds its own work done.
    """
    return _Patient(service, attempts)


class _Patient:
    def __init__(self, service: str, attempts: int) -> None:
        self._service = service
        self._attempts = attempts

    def __getattr__(self, name: str) -> Any:
        target = client(self._service)
        attribute = getattr(target, name)
        if name not in target.meta.method_to_api_mapping:
            return attribute  # meta, exceptions, paginators, boto3's transfer helpers
        return lambda *args, **kwargs: retrying(
            lambda: attribute(*args, **kwargs), attempts=self._attempts
        )


def backoff(attempt: int) -> None:
    """Sleep before retry ``attempt`` + 1. Full jitter: callers throttled together must not all
    come back at the same instant and be throttled together again."""
    import random  # deferred like boto3: only a retry needs it
    import time

    ceiling = min(BACKOFF_BASE_SECONDS * 2**attempt, BACKOFF_CAP_SECONDS)
    time.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret
