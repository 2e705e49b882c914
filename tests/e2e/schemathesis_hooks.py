"""Schemathesis hooks for the fuzz run (``SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks``).

Authenticates every generated request as a client would: the API key on every operation and, on
the fraud webhook, the provider's signature of the exact bytes sent. Signing happens on the
prepared request (a ``requests`` auth), because the signature covers the serialized body, which
only exists then. Schemathesis's ``ignored_auth`` check still sends probes without (and with
made-up) credentials, which must be refused.

The key and the secret come from the environment the test sets (``FUZZ_API_KEY``,
``FUZZ_WEBHOOK_SECRET``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from urllib.parse import urlsplit

import requests
import schemathesis

WEBHOOK_PATH = "/fraud-webhook"


class ClientAuth(requests.auth.AuthBase):
    def __init__(self, api_key: str, secret: bytes) -> None:
        self.api_key = api_key
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["x-api-key"] = self.api_key
        if urlsplit(request.url or "").path.endswith(WEBHOOK_PATH):
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else body
            timestamp = int(time.time())
            digest = hmac.new(self.secret, f"{timestamp}.".encode() + raw, hashlib.sha256)
            request.headers["X-Signature"] = f"t={timestamp},v1={digest.hexdigest()}"
        return request


schemathesis.auth.set_from_requests(
    ClientAuth(os.environ["FUZZ_API_KEY"], os.environ["FUZZ_WEBHOOK_SECRET"].encode())
)
