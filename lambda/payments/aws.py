"""AWS clients, created once per container on first use.

Creating a client loads its service model (tens of milliseconds); doing that lazily keeps it out
of the import, so a cold start pays only for the clients a request actually uses.
"""

from __future__ import annotations

from typing import Any

# One client is shared by the threads of a batch chunk (batch.WRITE_WORKERS); with fewer pooled
# connections than threads, urllib3 would open and then drop a connection (a new TLS handshake) on
# most calls.
MAX_POOL_CONNECTIONS = 16
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
