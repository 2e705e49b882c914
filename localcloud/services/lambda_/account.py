"""Lambda's account settings (GetAccountSettings), which moto has no route for."""

from __future__ import annotations

import json
import os
from typing import Any

# Lambda's default regional quota of concurrent executions, and what it always keeps unreserved.
DEFAULT_CONCURRENCY_QUOTA = 1000
UNRESERVED_MINIMUM = 100
# The quota moto enforces reservations against (moto's own variable, read per call).
QUOTA_VARIABLE = "MOTO_LAMBDA_CONCURRENCY_QUOTA"


def account_settings() -> None:
    """Answer ``GetAccountSettings`` with the account's concurrency quota and what the
    functions' reservations leave of it, as ``make preflight`` reads it before a deploy.

    The quota is ``MOTO_LAMBDA_CONCURRENCY_QUOTA`` (which moto's ``PutFunctionConcurrency`` also
    enforces, keeping 100 unreserved), 1,000 when unset: a new account's reduced quota can be
    played by starting the local cloud with a smaller one.
    """
    import moto.awslambda.urls as urls
    from moto.awslambda.responses import LambdaResponse

    path = r"{0}/(?P<api_version>[^/]+)/account-settings/?$"
    urls.url_paths = {**urls.url_paths, path: LambdaResponse.dispatch}

    def get_account_settings(self: LambdaResponse) -> tuple[int, dict[str, Any], str]:
        quota = int(os.environ.get(QUOTA_VARIABLE) or DEFAULT_CONCURRENCY_QUOTA)
        functions = list(self.backend.list_functions())
        reserved = sum(int(f.reserved_concurrency or 0) for f in functions)
        code = sum(int(getattr(f, "code_size", 0) or 0) for f in functions)
        body = {
            "AccountLimit": {
                "TotalCodeSize": 80 * 1024**3,
                "CodeSizeUnzipped": 250 * 1024**2,
                "CodeSizeZipped": 50 * 1024**2,
                "ConcurrentExecutions": quota,
                "UnreservedConcurrentExecutions": quota - reserved,
            },
            "AccountUsage": {"TotalCodeSize": code, "FunctionCount": len(functions)},
        }
        return 200, {}, json.dumps(body)

    LambdaResponse.get_account_settings = get_account_settings
