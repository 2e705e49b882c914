"""Every REST route through the local gateway: success and failure, keys, limit, fraud webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from localcloud.client import HttpResponse, LocalCloud, wait_for
from tests.e2e.personal import personal

FINAL = {"COMPLETED", "FAILED"}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def final_payment(cloud: LocalCloud, payment_id: str) -> dict:
    def check() -> dict | None:
        response = cloud.request("GET", f"/payments/{payment_id}")
        body = response.json() if response.status == 200 else None
        return body if body and body["status"] in FINAL else None

    return wait_for(check, timeout=60, what=f"payment {payment_id} final")


def assert_error(response: HttpResponse, status: int, code: str) -> dict:
    assert response.status == status, response.body
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    return body["error"]


class TestApiKeys:
    def test_health_needs_no_key(self, cloud: LocalCloud) -> None:
        response = cloud.request("GET", "/health", api_key=None)
        assert response.status == 200
        assert response.json()["status"] == "healthy"

    def test_missing_key_is_forbidden(self, cloud: LocalCloud) -> None:
        response = cloud.request("GET", f"/payments/{new_id('nokey')}", api_key=None)
        assert response.status == 403

    def test_wrong_key_is_forbidden(self, cloud: LocalCloud) -> None:
        response = cloud.request("POST", "/payments", body={}, api_key="not-the-key")
        assert response.status == 403

    def test_forbidden_body_has_the_error_shape(self, cloud: LocalCloud) -> None:
        response = cloud.request("POST", "/validate", body={}, api_key="not-the-key")
        assert_error(response, 403, response.json()["error"]["code"])

    def test_unknown_route_is_not_served(self, cloud: LocalCloud) -> None:
        response = cloud.request("GET", "/no-such-route")
        assert response.status in (403, 404)


class TestPostPayments:
    def test_new_payment_is_accepted_and_completes(self, cloud: LocalCloud) -> None:
        payment_id = new_id("ok")
        payer = {
            "customer_id": personal("customer_id"),
            "description": personal("description"),
            "metadata": {"email": personal("email")},
        }
        response = cloud.request(
            "POST",
            "/payments",
            body={"payment_id": payment_id, "amount": "99.99", "currency": "usd", **payer},
        )
        assert response.status == 202
        body = response.json()
        assert body["status"] == "RECEIVED"
        assert body["amount"] == "99.99"
        assert body["currency"] == "USD"
        done = final_payment(cloud, payment_id)
        assert done["status"] == "COMPLETED"
        assert {name: done[name] for name in payer} == payer
        assert [step["status"] for step in done["history"]] == [
            "RECEIVED",
            "PROCESSING",
            "COMPLETED",
        ]

    def test_identical_replay_returns_the_existing_payment(self, cloud: LocalCloud) -> None:
        payload = {"payment_id": new_id("replay"), "amount": 10, "currency": "EUR"}
        first = cloud.request("POST", "/payments", body=payload)
        second = cloud.request("POST", "/payments", body=payload)
        assert first.status == 202
        assert second.status == 200
        assert second.json()["payment_id"] == payload["payment_id"]
        assert second.json()["created_at"] == first.json()["created_at"]

    def test_same_id_different_content_is_a_conflict(self, cloud: LocalCloud) -> None:
        payment_id = new_id("conflict")
        cloud.request(
            "POST", "/payments", body={"payment_id": payment_id, "amount": 1, "currency": "USD"}
        )
        response = cloud.request(
            "POST", "/payments", body={"payment_id": payment_id, "amount": 2, "currency": "USD"}
        )
        assert_error(response, 409, "CONFLICT")

    def test_idempotency_key_makes_a_retry_safe(self, cloud: LocalCloud) -> None:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        payload = {"amount": "5.00", "currency": "GBP", "customer_id": personal("customer_id")}
        first = cloud.request("POST", "/payments", body=payload, headers=headers)
        retry = cloud.request("POST", "/payments", body=payload, headers=headers)
        assert first.status == 202
        assert retry.status in (200, 202)
        assert retry.json()["payment_id"] == first.json()["payment_id"]

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"amount": "1e3", "currency": "USD"}, "amount"),
            ({"amount": "12.345", "currency": "USD"}, "amount"),
            ({"amount": "-1", "currency": "USD"}, "amount"),
            ({"amount": True, "currency": "USD"}, "amount"),
            ({"amount": "1", "currency": 840}, "currency"),
            ({"currency": "USD"}, "amount"),
            ({"amount": "1", "currency": "XYZ"}, "currency"),
            ({"amount": "1", "currency": "USD", "payment_id": "bad id!"}, "payment_id"),
            ({"amount": "1", "currency": "USD", "colour": "red"}, "colour"),
        ],
    )
    def test_invalid_fields_are_named(self, cloud: LocalCloud, payload: dict, field: str) -> None:
        error = assert_error(
            cloud.request("POST", "/payments", body=payload), 400, "VALIDATION_ERROR"
        )
        assert field in json.dumps(error)

    def test_malformed_json_is_a_validation_error(self, cloud: LocalCloud) -> None:
        response = cloud.request("POST", "/payments", raw=b'{"amount": ')
        assert response.status == 400
        assert response.json()["error"]["code"] in ("VALIDATION_ERROR", "BAD_REQUEST")

    def test_payment_over_the_limit_fails_with_limit_exceeded(self, cloud: LocalCloud) -> None:
        payment_id = new_id("limit")
        response = cloud.request(
            "POST",
            "/payments",
            body={"payment_id": payment_id, "amount": "1000000.01", "currency": "USD"},
        )
        assert response.status == 202
        done = final_payment(cloud, payment_id)
        assert (done["status"], done["reason"]) == ("FAILED", "LIMIT_EXCEEDED")


class TestGetPayment:
    def test_unknown_payment_is_not_found(self, cloud: LocalCloud) -> None:
        assert_error(cloud.request("GET", f"/payments/{new_id('missing')}"), 404, "NOT_FOUND")

    def test_payment_has_source_times_and_history(self, cloud: LocalCloud) -> None:
        payment_id = new_id("get")
        cloud.request(
            "POST", "/payments", body={"payment_id": payment_id, "amount": "3", "currency": "JPY"}
        )
        body = final_payment(cloud, payment_id)
        assert body["source"] == "api"
        assert body["batch_id"] is None
        assert body["created_at"] <= body["updated_at"]
        assert all({"status", "at", "reason"} <= set(step) for step in body["history"])


class TestValidate:
    def test_valid_payment_is_normalized_and_not_stored(self, cloud: LocalCloud) -> None:
        payment_id = new_id("validate")
        response = cloud.request(
            "POST",
            "/validate",
            body={
                "payment_id": payment_id,
                "amount": 7.5,
                "currency": "eur",
                "description": personal("description"),
            },
        )
        assert response.status == 200
        assert response.json()["valid"] is True
        assert response.json()["payment"]["currency"] == "EUR"
        assert cloud.request("GET", f"/payments/{payment_id}").status == 404

    def test_invalid_payment_is_rejected(self, cloud: LocalCloud) -> None:
        response = cloud.request("POST", "/validate", body={"amount": "0", "currency": "USD"})
        assert_error(response, 400, "VALIDATION_ERROR")


class TestFraudWebhook:
    def test_final_payment_keeps_its_status_and_is_alerted(self, cloud: LocalCloud) -> None:
        payment_id = new_id("fraud-final")
        cloud.request(
            "POST", "/payments", body={"payment_id": payment_id, "amount": "8", "currency": "USD"}
        )
        assert final_payment(cloud, payment_id)["status"] == "COMPLETED"
        response = cloud.signed_webhook(
            {"payment_id": payment_id, "risk_score": 90, "reason": "velocity"}
        )
        assert response.status == 202
        assert response.json()["status"] == "COMPLETED"
        assert cloud.request("GET", f"/payments/{payment_id}").json()["status"] == "COMPLETED"

    def test_payment_not_yet_final_fails_as_fraud_suspected(self, cloud: LocalCloud) -> None:
        payment_id = new_id("fraud")
        secret = cloud.webhook_secret()
        cloud.request(
            "POST", "/payments", body={"payment_id": payment_id, "amount": "8", "currency": "USD"}
        )
        response = cloud.signed_webhook(
            {"payment_id": payment_id, "risk_score": 99, "reason": "stolen card"}, secret
        )
        assert response.status == 202
        done = final_payment(cloud, payment_id)
        # The processor may have completed it first; then the webhook only raised an alert.
        if response.json()["status"] == "FAILED":
            assert (done["status"], done["reason"]) == ("FAILED", "FRAUD_SUSPECTED")
        else:
            assert done["status"] == "COMPLETED"

    def test_unsigned_or_badly_signed_webhook_is_refused(self, cloud: LocalCloud) -> None:
        raw = json.dumps({"payment_id": "x", "risk_score": 1, "reason": "r"}).encode()
        unsigned = cloud.request("POST", "/fraud-webhook", raw=raw)
        wrong = cloud.sign(raw, b"not-the-secret")
        badly = cloud.request("POST", "/fraud-webhook", raw=raw, headers={"X-Signature": wrong})
        body_only = hmac.new(cloud.webhook_secret(), raw, hashlib.sha256).hexdigest()
        old_format = cloud.request(
            "POST", "/fraud-webhook", raw=raw, headers={"X-Signature": f"sha256={body_only}"}
        )
        for response in (unsigned, badly, old_format):
            assert_error(response, 401, "UNAUTHORIZED")

    def test_a_replayed_signature_older_than_five_minutes_is_refused(
        self, cloud: LocalCloud
    ) -> None:
        payment_id = new_id("stale")
        cloud.request(
            "POST", "/payments", body={"payment_id": payment_id, "amount": "8", "currency": "USD"}
        )
        signal = {"payment_id": payment_id, "risk_score": 99, "reason": "replayed"}
        stale = cloud.signed_webhook(signal, at=int(time.time()) - 301)
        error = assert_error(stale, 401, "UNAUTHORIZED")
        assert "300 seconds" in error["message"]
        assert cloud.signed_webhook(signal).status == 202

    def test_unknown_payment_is_not_found(self, cloud: LocalCloud) -> None:
        response = cloud.signed_webhook(
            {"payment_id": new_id("nobody"), "risk_score": 50, "reason": "r"}
        )
        assert_error(response, 404, "NOT_FOUND")

    def test_bad_risk_score_is_a_validation_error(self, cloud: LocalCloud) -> None:
        response = cloud.signed_webhook({"payment_id": "x", "risk_score": 101, "reason": "r"})
        assert_error(response, 400, "VALIDATION_ERROR")


class TestBatchRoute:
    def test_unknown_batch_is_not_found(self, cloud: LocalCloud) -> None:
        assert_error(cloud.request("GET", f"/batches/{new_id('nobatch')}"), 404, "NOT_FOUND")
