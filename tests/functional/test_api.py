"""The REST API, route by route (DESIGN section 3), through the real handler and moto."""

from __future__ import annotations

import importlib
import json

import handlers.api
import pytest
from payments import aws
from payments.validation import MAX_BODY_BYTES

from tests.functional.world import ORIGIN, CallCounter, api_event, inject_failures, sign

PAYMENT = {"payment_id": "pay-1", "amount": "99.99", "currency": "usd"}


@pytest.fixture(autouse=True)
def api(world):
    """The module as Lambda loads it: after the environment (CORS origin) is set."""
    global _api
    _api = importlib.reload(handlers.api)
    return _api


_api = handlers.api


def call(context, method, path, **kwargs):
    response = _api.handler(api_event(method, path, **kwargs), context)
    return response["statusCode"], json.loads(response["body"]), response["multiValueHeaders"]


def assert_error(body, code):
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


class TestPostPayments:
    def test_new_payment_is_accepted_received_and_queued(self, world, context):
        status, body, headers = call(context, "POST", "/payments", body=PAYMENT)
        assert status == 202
        assert body["payment_id"] == "pay-1" and body["status"] == "RECEIVED"
        assert (body["amount"], body["currency"], body["source"]) == ("99.99", "USD", "api")
        assert headers["Access-Control-Allow-Origin"] == [ORIGIN]
        messages = world.receive_all()
        assert [json.loads(m["Body"]) for m in messages] == [{"payment_id": "pay-1"}]

    def test_identical_replay_returns_the_existing_payment_with_200(self, world, context):
        call(context, "POST", "/payments", body=PAYMENT)
        status, body, _ = call(context, "POST", "/payments", body={**PAYMENT, "amount": 99.99})
        assert status == 200 and body["payment_id"] == "pay-1"

    def test_same_id_with_different_content_is_a_conflict(self, world, context):
        call(context, "POST", "/payments", body=PAYMENT)
        status, body, _ = call(context, "POST", "/payments", body={**PAYMENT, "amount": "5.00"})
        assert status == 409
        assert_error(body, "CONFLICT")
        assert body["error"]["details"] == {"payment_id": "pay-1"}

    def test_server_generates_an_id_when_none_is_given(self, world, context):
        status, body, _ = call(context, "POST", "/payments", body={"amount": 1, "currency": "JPY"})
        assert status == 202 and body["payment_id"].startswith("pay_") and body["amount"] == "1"

    def test_retrying_each_request_three_times_stores_one_payment_and_one_audit_entry(
        self, world, context
    ):
        for _ in range(3):
            call(context, "POST", "/payments", body=PAYMENT)
            call(
                context,
                "POST",
                "/payments",
                body={"amount": "1", "currency": "EUR"},
                headers={"Idempotency-Key": "order-42"},
            )
        assert len(world.payments()) == 2
        assert len(world.audit()) == 2

    def test_idempotency_key_replays_answer_200_and_create_nothing(self, world, context):
        first = call(
            context,
            "POST",
            "/payments",
            body={"amount": "1", "currency": "EUR"},
            headers={"Idempotency-Key": "k-1"},
        )
        again = call(
            context,
            "POST",
            "/payments",
            body={"amount": "1", "currency": "EUR"},
            headers={"Idempotency-Key": "k-1"},
        )
        assert first[0] == 202 and again[0] == 200
        assert first[1]["payment_id"] == again[1]["payment_id"]

    def test_idempotency_key_reused_with_another_body_is_a_conflict(self, world, context):
        call(
            context,
            "POST",
            "/payments",
            body={"amount": "1", "currency": "EUR"},
            headers={"Idempotency-Key": "k-2"},
        )
        status, body, _ = call(
            context,
            "POST",
            "/payments",
            body={"amount": "2", "currency": "EUR"},
            headers={"Idempotency-Key": "k-2"},
        )
        assert status == 409
        assert_error(body, "CONFLICT")

    def test_a_key_is_bound_to_its_payment_for_good(self, world, context):
        _, body, _ = call(
            context,
            "POST",
            "/payments",
            body={"amount": "1", "currency": "EUR"},
            headers={"Idempotency-Key": "k-3"},
        )
        bindings = [
            i
            for i in world.table_items("PROCESSING_STATUS_TABLE")
            if i["pk"].startswith("IDEMPOTENCY#")
        ]
        assert [(b["pk"], b["payment_id"]) for b in bindings] == [
            ("IDEMPOTENCY#k-3", body["payment_id"])
        ]
        assert "expires_at" not in bindings[0]  # no TTL: it lives as long as the payment

    def test_a_keyed_post_costs_two_aws_calls_and_its_replay_reads_nothing(self, world, context):
        call(context, "GET", "/health")  # create the clients
        counter = CallCounter().attach(aws.client("dynamodb"), aws.client("sqs"))
        request = {"body": {"amount": "1", "currency": "EUR"}, "headers": {"Idempotency-Key": "k"}}
        assert call(context, "POST", "/payments", **request)[0] == 202
        # Plus the caller's client, looked up once per CLIENT_CACHE_SECONDS (payments.clients).
        assert counter.calls == {
            "dynamodb:GetItem": 1,
            "dynamodb:TransactWriteItems": 1,
            "sqs:SendMessage": 1,
        }
        counter.reset()
        assert call(context, "POST", "/payments", **request)[0] == 200
        # Answered from the cancelled transaction; queued again since it is still RECEIVED.
        assert counter.calls == {"dynamodb:TransactWriteItems": 1, "sqs:SendMessage": 1}

    def test_no_header_post_costs_at_most_three_aws_calls(self, world, context):
        call(context, "GET", "/health")  # create the clients
        call(context, "POST", "/validate", body=PAYMENT)  # the caller's client, now cached
        counter = CallCounter().attach(aws.client("dynamodb"), aws.client("sqs"))
        call(context, "POST", "/payments", body=PAYMENT)
        assert counter.calls == {"dynamodb:TransactWriteItems": 1, "sqs:SendMessage": 1}
        counter.reset()
        call(context, "GET", "/payments/pay-1")
        assert counter.calls == {"dynamodb:GetItem": 1}

    def test_throttled_write_answers_503_and_a_retry_succeeds(self, world, context):
        inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=1)
        status, body, _ = call(context, "POST", "/payments", body=PAYMENT)
        assert status == 503
        assert_error(body, "SERVICE_UNAVAILABLE")
        assert call(context, "POST", "/payments", body=PAYMENT)[0] == 202

    def test_queue_failure_after_the_write_is_healed_by_the_retry(self, world, context):
        inject_failures(aws.client("sqs"), "SendMessage", times=1, code="InternalError", status=500)
        assert call(context, "POST", "/payments", body=PAYMENT)[0] == 503
        assert world.receive_all() == []
        assert call(context, "POST", "/payments", body=PAYMENT)[0] == 200
        assert len(world.receive_all()) == 1


MALFORMED_API = [
    pytest.param("", "body", id="empty-body"),
    pytest.param(None, "body", id="no-body"),
    pytest.param("[]", "body", id="array"),
    pytest.param("null", "body", id="null"),
    pytest.param("{", "body", id="truncated-json"),
    pytest.param('{"amount": NaN, "currency": "USD"}', "body", id="nan"),
    pytest.param('{"amount": 1e3, "currency": "USD"}', "amount", id="exponent"),
    pytest.param('{"amount": true, "currency": "USD"}', "amount", id="boolean-amount"),
    pytest.param('{"amount": "1.234", "currency": "USD"}', "amount", id="too-many-decimals"),
    pytest.param('{"amount": "0", "currency": "USD"}', "amount", id="zero"),
    pytest.param('{"amount": "1", "currency": "ABC"}', "currency", id="unknown-currency"),
    pytest.param('{"amount": "1", "currency": 840}', "currency", id="numeric-currency"),
    pytest.param('{"amount": "1", "currency": "USD", "foo": 1}', "foo", id="unknown-field"),
    pytest.param(
        '{"amount": "1", "currency": "USD", "payment_id": "a b"}', "payment_id", id="bad-id"
    ),
    pytest.param(
        '{"amount": "1", "currency": "USD", "metadata": []}', "metadata", id="metadata-array"
    ),
    pytest.param('{"amount": {"v": 1}, "currency": "USD"}', "amount", id="object-amount"),
]


@pytest.mark.parametrize(("raw", "field"), MALFORMED_API)
@pytest.mark.parametrize("path", ["/payments", "/validate"])
def test_malformed_requests_are_400_naming_the_field(world, context, path, raw, field):
    status, body, _ = call(context, "POST", path, body=raw)
    assert status == 400
    assert_error(body, "VALIDATION_ERROR")
    assert field in body["error"]["details"]["fields"]
    assert world.payments() == []


def test_oversized_body_is_413(world, context):
    body = json.dumps({**PAYMENT, "description": "x" * MAX_BODY_BYTES})
    status, payload, _ = call(context, "POST", "/payments", body=body)
    assert status == 413
    assert_error(payload, "PAYLOAD_TOO_LARGE")


def test_base64_encoded_bodies_are_decoded(world, context):
    status, _, _ = call(context, "POST", "/payments", body=json.dumps(PAYMENT), base64_body=True)
    assert status == 202


class TestGetPayment:
    def test_payment_with_status_history_and_source(self, world, context):
        call(context, "POST", "/payments", body=PAYMENT)
        status, body, _ = call(context, "GET", "/payments/pay-1")
        assert status == 200
        for name in ("status", "reason", "source", "batch_id", "created_at", "updated_at"):
            assert name in body
        assert body["history"][0]["status"] == "RECEIVED"

    def test_unknown_payment_is_404(self, world, context):
        status, body, _ = call(context, "GET", "/payments/nope")
        assert status == 404
        assert_error(body, "NOT_FOUND")

    def test_malformed_payment_id_is_400(self, world, context):
        status, body, _ = call(context, "GET", "/payments/bad%20id")
        assert status == 400
        assert_error(body, "VALIDATION_ERROR")


def test_unknown_batch_is_404(world, context):
    status, body, _ = call(context, "GET", "/batches/nope")
    assert status == 404
    assert_error(body, "NOT_FOUND")


def test_validate_returns_the_normalized_payment_and_stores_nothing(world, context):
    status, body, _ = call(context, "POST", "/validate", body={"amount": 5, "currency": "kwd"})
    assert status == 200
    assert body == {"valid": True, "payment": {"amount": "5.000", "currency": "KWD"}}
    assert world.payments() == [] and world.receive_all() == []


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "NOT_FOUND"),
        ("GET", "/payments", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/payments/pay-1", 405, "METHOD_NOT_ALLOWED"),
        ("PUT", "/validate", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/health", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/payments/a/b", 404, "NOT_FOUND"),
    ],
)
def test_unknown_routes_and_wrong_methods_have_the_error_body(
    world, context, method, path, status, code
):
    got, body, _ = call(context, method, path)
    assert got == status
    assert_error(body, code)


class TestFraudWebhook:
    def post(self, context, payload, signature=None):
        raw = json.dumps(payload)
        headers = {"X-Signature": signature if signature is not None else sign(raw)}
        return call(context, "POST", "/fraud-webhook", body=raw, headers=headers)

    def test_payment_not_final_fails_as_fraud_suspected_with_each_step_audited(
        self, world, context
    ):
        call(context, "POST", "/payments", body=PAYMENT)
        status, body, _ = self.post(
            context, {"payment_id": "pay-1", "risk_score": 97, "reason": "velocity"}
        )
        assert status == 202 and body["status"] == "FAILED"
        payment = call(context, "GET", "/payments/pay-1")[1]
        assert (payment["status"], payment["reason"]) == ("FAILED", "FRAUD_SUSPECTED")
        assert [h["status"] for h in payment["history"]] == ["RECEIVED", "PROCESSING", "FAILED"]
        assert sorted(a["sk"] for a in world.audit()) == [
            "0001#RECEIVED",
            "0002#PROCESSING",
            "0003#FAILED",
        ]
        assert [e["status"] for e in world.events()] == ["RECEIVED", "PROCESSING", "FAILED"]

    def test_final_payment_keeps_its_status_and_gets_one_fraud_alert(self, world, context):
        from handlers.common import settings
        from payments.service import Payments

        call(context, "POST", "/payments", body=PAYMENT)
        Payments(settings()).process("pay-1")
        world.events()
        for _ in range(3):  # a redelivered webhook adds nothing
            status, _body, _ = self.post(
                context, {"payment_id": "pay-1", "risk_score": 50.5, "reason": "chargeback"}
            )
            assert status == 202
        assert call(context, "GET", "/payments/pay-1")[1]["status"] == "COMPLETED"
        alerts = [a for a in world.audit() if a["sk"].startswith("FRAUD_ALERT#")]
        assert len(alerts) == 1
        assert [e["type"] for e in world.events()] == ["payment.fraud_alert"]

    def test_replayed_webhook_changes_nothing_twice(self, world, context):
        call(context, "POST", "/payments", body=PAYMENT)
        for _ in range(3):
            assert (
                self.post(context, {"payment_id": "pay-1", "risk_score": 80, "reason": "x"})[0]
                == 202
            )
        assert len(world.audit()) == 3

    @pytest.mark.parametrize("signature", ["", "sha256=00", "md5=abc", "sha256="])
    def test_bad_signature_is_401(self, world, context, signature):
        status, body, _ = self.post(
            context, {"payment_id": "pay-1", "risk_score": 1, "reason": "x"}, signature=signature
        )
        assert status == 401
        assert_error(body, "UNAUTHORIZED")

    def test_unknown_payment_is_404_and_bad_body_is_400(self, world, context):
        assert self.post(context, {"payment_id": "nope", "risk_score": 1, "reason": "x"})[0] == 404
        status, body, _ = self.post(
            context, {"payment_id": "nope", "risk_score": 101, "reason": "x"}
        )
        assert status == 400 and "risk_score" in body["error"]["details"]["fields"]


class TestHealth:
    def test_healthy(self, world, context):
        status, body, _ = call(context, "GET", "/health", headers={"x-api-key": ""})
        assert status == 200 and body["status"] == "healthy"
        assert body["checks"] == {"dynamodb": "ok", "queue": "ok"}

    def test_a_missing_table_is_503(self, world, context):
        world.dynamodb.delete_table(TableName=world.env["AUDIT_LOG_TABLE"])
        status, body, _ = call(context, "GET", "/health")
        assert status == 503 and body["status"] == "unhealthy"
        assert body["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_missing_configuration_is_a_500_configuration_error(world, context, monkeypatch):
    from handlers import common

    monkeypatch.setenv("PROCESSING_QUEUE_URL", "not a url")
    common.settings.cache_clear()
    status, body, _ = call(context, "POST", "/payments", body=PAYMENT)
    assert status == 500
    assert_error(body, "CONFIGURATION_ERROR")
