"""No log line holds a request body or a personal field (issue 18, item 4).

The module sends personal values (tests/e2e/personal.py) down every path that handles them (a
payment made, replayed, refused as a conflict, refused as invalid, checked by /validate, failed
by the limit, flagged by the fraud webhook, a batch file with good and bad rows, an erasure), then
reads everything the local cloud logged during the session: every line of every function
(the server's export of them, since CloudWatch here keeps each group's latest streams only), the
server's own log, and every batch execution's history (what the state machine's log group holds
with execution data included). It runs after every other e2e module but destroy (see conftest),
so the values the other modules sent through personal() are looked for too.
"""

from __future__ import annotations

import json
import uuid

import pytest

from localcloud.client import LocalCloud, wait_for
from localcloud.services.lambda_.functions import LogExport
from tests.e2e.operator import operator_command
from tests.e2e.personal import MARK, personal, sent

FINAL = {"COMPLETED", "FAILED"}


def _final(cloud: LocalCloud, path: str) -> dict:
    def check() -> dict | None:
        response = cloud.request("GET", path)
        body = response.json() if response.status == 200 else None
        return body if body and body["status"] in FINAL else None

    return wait_for(check, timeout=120, what=f"{path} final")


def _payer(**extra: object) -> dict:
    return {
        "customer_id": personal("customer_id"),
        "description": personal("description"),
        "metadata": {"email": personal("email"), "phone": personal("phone")},
        **extra,
    }


@pytest.fixture(scope="module")
def traffic(cloud: LocalCloud) -> dict[str, str]:
    """Personal values down every path; returns the ids to check afterwards."""
    run = uuid.uuid4().hex[:8]
    made = f"logscan-{run}-made"
    payer = _payer(payment_id=made, amount="12.34", currency="EUR")
    assert cloud.request("POST", "/payments", body=payer).status == 202
    assert cloud.request("POST", "/payments", body=payer).status == 200
    conflict = {**payer, "description": personal("description")}
    assert cloud.request("POST", "/payments", body=conflict).status == 409

    keyed = _payer(amount="5.00", currency="USD")
    key = {"Idempotency-Key": f"logscan-{run}-key"}
    assert cloud.request("POST", "/payments", body=keyed, headers=key).status == 202
    other = {**keyed, "customer_id": personal("customer_id")}
    assert cloud.request("POST", "/payments", body=other, headers=key).status == 409

    # Invalid in each personal field, and valid personal fields beside an invalid amount.
    for body in (
        _payer(amount="abc", currency="USD"),
        {"amount": "1", "currency": "USD", "customer_id": f"{personal('customer_id')} spaced"},
        {"amount": "1", "currency": "USD", "description": personal("description") + "x" * 600},
        {"amount": "1", "currency": "USD", "description": personal("description") + "\u0007"},
        {"amount": "1", "currency": "USD", "metadata": {"nested": {"email": personal("email")}}},
    ):
        assert cloud.request("POST", "/payments", body=body).status == 400, body
    for amount, status in (("1", 200), ("-1", 400)):
        checked = cloud.request("POST", "/validate", body=_payer(amount=amount, currency="USD"))
        assert checked.status == status

    limited = f"logscan-{run}-limited"
    over = _payer(payment_id=limited, amount="2000000", currency="EUR")
    assert cloud.request("POST", "/payments", body=over).status == 202
    flagged = f"logscan-{run}-flagged"
    flag = _payer(payment_id=flagged, amount="7", currency="USD")
    assert cloud.request("POST", "/payments", body=flag).status == 202
    webhook = {"payment_id": flagged, "risk_score": 95, "reason": "velocity"}
    assert cloud.signed_webhook(webhook).status == 202

    batch_id = f"logscan-{run}"
    erased = personal("customer_id")
    rows = [
        "payment_id,amount,currency,customer_id,description",
        f"{batch_id}-1,3.00,USD,{erased},{personal('description')}",
        f"{batch_id}-2,4.00,GBP,{personal('customer_id')},{personal('description')}",
        f"{batch_id}-3,not-money,USD,{personal('customer_id')},{personal('description')}",
        f"{batch_id}-4,1.00,USD,{personal('customer_id')} spaced,{personal('description')}",
    ]
    cloud.upload_batch(batch_id, ("\n".join(rows) + "\n").encode())

    for payment_id in (made, limited, flagged):
        _final(cloud, f"/payments/{payment_id}")
    batch = _final(cloud, f"/batches/{batch_id}")
    assert (batch["accepted"], batch["rejected"]) == (2, 2)
    _final(cloud, f"/payments/{batch_id}-1")
    erase = operator_command("erase", "--customer", erased)
    assert erase.returncode == 0, erase.stdout + erase.stderr
    return {"made": made, "erased_payment": f"{batch_id}-1"}


def _hits(lines: list[str], values: list[str]) -> list[str]:
    return [line[:300] for line in lines if MARK in line or any(v in line for v in values)]


def test_the_paths_ran_and_the_erasure_took(cloud: LocalCloud, traffic: dict[str, str]) -> None:
    made = cloud.request("GET", f"/payments/{traffic['made']}").json()
    assert made["customer_id"].startswith("customer-id-" + MARK)
    erased = cloud.request("GET", f"/payments/{traffic['erased_payment']}").json()
    assert erased["status"] == "COMPLETED"
    assert not {"customer_id", "description", "metadata"} & set(erased)


def test_no_function_log_line_holds_a_personal_value(
    cloud: LocalCloud, traffic: dict[str, str]
) -> None:
    files = LogExport.files(cloud.config.function_logs_file)
    assert files, (
        f"{cloud.config.function_logs_file} is missing: the local cloud running predates its log "
        "export; restart it (make local-down local-up)"
    )
    lines = [line for f in files for line in f.read_text(errors="replace").splitlines()]
    # The export really holds this session's traffic: the processor logged the payment made.
    assert any(traffic["made"] in line for line in lines)
    assert _hits(lines, sent()) == []


def test_no_line_of_the_local_clouds_own_log_holds_a_personal_value(
    cloud: LocalCloud, traffic: dict[str, str]
) -> None:
    lines = cloud.config.log_file.read_text(errors="replace").splitlines()
    assert _hits(lines, sent()) == []


def test_no_batch_execution_history_holds_a_personal_value(
    cloud: LocalCloud, traffic: dict[str, str]
) -> None:
    sfn = cloud.client("stepfunctions")
    histories = []
    for machine in sfn.list_state_machines()["stateMachines"]:
        paginator = sfn.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=machine["stateMachineArn"]):
            for execution in page["executions"]:
                events = sfn.get_execution_history(
                    executionArn=execution["executionArn"], maxResults=1000
                )["events"]
                histories.append(json.dumps(events, default=str))
    assert histories
    assert _hits(histories, sent()) == []
