"""Lambda's GetAccountSettings on the patched moto (``localcloud/services/lambda_/account.py``),
which as it ships has no route for it (404)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("localcloud-lambda-account")


def test_the_quota_and_what_reservations_leave_of_it(cloud):
    awslambda = cloud.client("lambda")
    before = awslambda.get_account_settings()["AccountLimit"]
    assert before["ConcurrentExecutions"] == 1000
    cloud.create_function("reserving", "def handler(event, context):\n    return 1\n")
    awslambda.put_function_concurrency(FunctionName="reserving", ReservedConcurrentExecutions=7)
    after = awslambda.get_account_settings()
    assert after["AccountLimit"]["UnreservedConcurrentExecutions"] == (
        before["UnreservedConcurrentExecutions"] - 7
    )
    assert after["AccountUsage"]["FunctionCount"] >= 1
