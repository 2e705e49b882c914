"""Schemathesis hooks for the fuzz run (``SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks``).

The API key is Schemathesis's own auth (``tests/e2e/schemathesis.toml``). The webhook signature
covers the exact bytes sent, which exist only once the request is prepared, so it is made by a
``requests`` auth attached just before the call, and only where the generated case carries an
``X-Signature`` header: a case that leaves the header out on purpose (negative data, the
``ignored_auth`` probes) is sent without one and must be refused.

The secret comes from the environment the test sets (``FUZZ_WEBHOOK_SECRET``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any

import requests
import schemathesis

SIGNATURE_HEADER = "X-Signature"


class WebhookSigner(requests.auth.AuthBase):
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        timestamp = int(time.time())
        digest = hmac.new(self.secret, f"{timestamp}.".encode() + raw, hashlib.sha256)
        request.headers[SIGNATURE_HEADER] = f"t={timestamp},v1={digest.hexdigest()}"
        return request


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if any(name.lower() == SIGNATURE_HEADER.lower() for name in case.headers or {}):
        kwargs["auth"] = WebhookSigner(os.environ["FUZZ_WEBHOOK_SECRET"].encode())
