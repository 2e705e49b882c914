"""API clients on the local cloud: made, suspended, rotated and removed by `make client`, told
apart by the key API Gateway checks, and kept apart on every route."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from localcloud.client import LocalCloud, wait_for
from tests.e2e.operator import operator_command

# payments.clients.CLIENT_CACHE_SECONDS, and the gateway's re-read of keys on top.
CHANGE_BOUND_SECONDS = 30 + 10


def make_client(name: str, *args: str) -> str:
    result = operator_command("client", "add", name, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    [key] = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("api key")]
    return key


@pytest.fixture(scope="module")
def keys(cloud: LocalCloud) -> Iterator[dict[str, str]]:
    run = uuid.uuid4().hex[:6]
    names = {"a": f"acme-{run}", "b": f"globex-{run}", "fraud": f"fraud-{run}"}
    made = {
        "a": make_client(names["a"]),
        "b": make_client(names["b"], "--rate", "20", "--burst", "40"),
        "fraud": make_client(names["fraud"], "--kind", "fraud-webhook"),
    }
    yield {**made, **{f"{k}_name": v for k, v in names.items()}}
    # Keys made outside Terraform are the operator's to remove (destroy checks none is left).
    for name in names.values():
        operator_command("client", "remove", name)


def post(cloud: LocalCloud, key: str, body: dict, headers: dict | None = None):
    return cloud.request("POST", "/payments", body=body, api_key=key, headers=headers)


def test_list_shows_each_client_once_with_its_status(keys: dict[str, str]) -> None:
    listed = operator_command("client", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()}
    assert rows[keys["a_name"]] == rows[keys["b_name"]] == "ACTIVE"
    assert rows["default"] in ("ACTIVE", "SUSPENDED")


def test_the_same_id_and_key_are_each_clients_own_payment(
    cloud: LocalCloud, keys: dict[str, str]
) -> None:
    order = f"order-{uuid.uuid4().hex[:8]}"
    body = {"payment_id": order, "amount": "10.00", "currency": "USD"}
    idem = {"Idempotency-Key": f"key-{order}"}
    assert post(cloud, keys["a"], body, idem).status == 202
    # B's order-1234 is B's own payment, not A's replayed: 202, and another amount is no conflict.
    assert post(cloud, keys["b"], body, idem).status == 202
    other = {**body, "amount": "99.00"}
    assert post(cloud, keys["b"], other).status == 409  # B's own conflict with B's own payment
    assert cloud.request("GET", f"/payments/{order}", api_key=keys["a"]).json()["amount"] == "10.00"
    # The deployment's own key is the default client: none of the two is its.
    missing = cloud.request("GET", f"/payments/{order}")
    never = cloud.request("GET", f"/payments/never-{order}")
    assert missing.status == never.status == 404
    assert missing.json()["error"]["code"] == never.json()["error"]["code"] == "NOT_FOUND"


def test_another_clients_payment_and_every_batch_are_not_found(
    cloud: LocalCloud, keys: dict[str, str]
) -> None:
    order = f"mine-{uuid.uuid4().hex[:8]}"
    made = post(cloud, keys["a"], {"payment_id": order, "amount": "3", "currency": "EUR"})
    assert made.status == 202
    assert cloud.request("GET", f"/payments/{order}", api_key=keys["b"]).status == 404
    batch = f"clients-{uuid.uuid4().hex[:8]}"
    cloud.upload_batch(batch, b"payment_id,amount,currency\n" + f"{batch}-1,1,USD\n".encode())

    def final() -> bool:
        body = cloud.request("GET", f"/batches/{batch}").json()
        return body.get("status") in ("COMPLETED", "FAILED")

    wait_for(final, timeout=90, what=f"batch {batch} final")
    assert cloud.request("GET", f"/batches/{batch}", api_key=keys["a"]).status == 404


def test_the_fraud_client_may_only_call_the_webhook(
    cloud: LocalCloud, keys: dict[str, str]
) -> None:
    order = f"flag-{uuid.uuid4().hex[:8]}"
    body = {"payment_id": order, "amount": "7", "currency": "USD"}
    assert post(cloud, keys["fraud"], body).status == 403
    assert post(cloud, keys["a"], body).status == 202
    signal = {"payment_id": order, "client_id": keys["a_name"], "risk_score": 95, "reason": "bot"}
    raw = json.dumps(signal).encode()
    headers = {"X-Signature": cloud.sign(raw)}
    by_a = cloud.request("POST", "/fraud-webhook", raw=raw, headers=headers, api_key=keys["a"])
    assert by_a.status == 403
    by_fraud = cloud.request(
        "POST", "/fraud-webhook", raw=raw, headers=headers, api_key=keys["fraud"]
    )
    assert (by_fraud.status, by_fraud.json()["payment_id"]) == (202, order)


def test_a_suspended_client_is_refused_within_the_bound_and_served_again_on_resume(
    cloud: LocalCloud, keys: dict[str, str]
) -> None:
    check = {"amount": "1", "currency": "USD"}
    assert cloud.request("POST", "/validate", body=check, api_key=keys["b"]).status == 200
    assert operator_command("client", "suspend", keys["b_name"]).returncode == 0
    started = time.monotonic()
    wait_for(
        lambda: cloud.request("POST", "/validate", body=check, api_key=keys["b"]).status == 403,
        timeout=CHANGE_BOUND_SECONDS,
        what="the suspended client refused",
    )
    assert time.monotonic() - started < CHANGE_BOUND_SECONDS
    assert cloud.request("POST", "/validate", body=check, api_key=keys["a"]).status == 200
    assert operator_command("client", "resume", keys["b_name"]).returncode == 0
    wait_for(
        lambda: cloud.request("POST", "/validate", body=check, api_key=keys["b"]).status == 200,
        timeout=CHANGE_BOUND_SECONDS,
        what="the resumed client served",
    )


def test_a_rotated_key_works_and_the_old_one_stops(cloud: LocalCloud, keys: dict[str, str]) -> None:
    order = f"rotate-{uuid.uuid4().hex[:8]}"
    assert (
        post(cloud, keys["a"], {"payment_id": order, "amount": "2", "currency": "USD"}).status
        == 202
    )
    rotated = operator_command("client", "rotate-key", keys["a_name"])
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    [new] = [line.split()[-1] for line in rotated.stdout.splitlines() if line.startswith("api key")]
    old, keys["a"] = keys["a"], new
    wait_for(
        lambda: cloud.request("GET", f"/payments/{order}", api_key=new).status == 200,
        timeout=CHANGE_BOUND_SECONDS,
        what="the new key served",
    )
    assert cloud.request("GET", f"/payments/{order}", api_key=old).status == 403


def test_a_client_over_its_usage_plan_gets_429_with_retry_after(cloud: LocalCloud) -> None:
    name = f"slow-{uuid.uuid4().hex[:6]}"
    key = make_client(name, "--rate", "1", "--burst", "2")
    try:
        check = {"amount": "1", "currency": "USD"}

        def refused():
            responses = [
                cloud.request("POST", "/validate", body=check, api_key=key) for _ in range(4)
            ]
            return next((r for r in responses if r.status == 429), None)

        # The gateway reads the new plan within a second; then the third request in a row is over.
        throttled = wait_for(refused, timeout=10, what="a 429 past the burst")
        assert throttled.json()["error"]["code"] == "THROTTLED"
        assert throttled.headers["Retry-After"] == "1"
        time.sleep(1.5)  # a token back at 1 per second
        assert cloud.request("POST", "/validate", body=check, api_key=key).status == 200
    finally:
        operator_command("client", "remove", name)
