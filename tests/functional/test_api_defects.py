"""Regression tests for the API defects of issue 7, through the real handler and moto."""

from __future__ import annotations

import importlib
import io
import json
import logging
import time
from typing import ClassVar

import handlers.api
import pytest
from handlers.idempotency import payment_id_for_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import aws, errors, validation
from payments.validation import PAYMENT_ID

from tests.functional.world import LambdaContext, api_event, inject_failures, sign

PAYMENT = {"amount": "10.00", "currency": "USD"}


@pytest.fixture(autouse=True)
def api(world):
    """The module as Lambda loads it: after the environment (CORS origin) is set."""
    global _api
    _api = importlib.reload(handlers.api)
    return _api


_api = handlers.api


@pytest.fixture
def logs():
    """What the function logs, as the Powertools formatter writes it (its own handler holds the
    stdout of import time, out of reach of capsys)."""
    from handlers.common import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def call(context, method, path, **kwargs):
    response = _api.handler(api_event(method, path, **kwargs), context)
    return response["statusCode"], json.loads(response["body"])


def assert_error(body, code):
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


class TestAnchoredIds:
    @pytest.mark.parametrize(
        ("field", "value"),
        [("payment_id", "pay-1\n"), ("amount", "10\n"), ("amount", "\uff11\uff10.00")],
    )
    def test_a_trailing_newline_or_a_non_ascii_digit_is_400_and_stores_nothing(
        self, world, context, field, value
    ):
        body = {"payment_id": "pay-1", "amount": "10.00", "currency": "USD", field: value}
        status, payload = call(context, "POST", "/payments", body=body)
        assert status == 400
        assert_error(payload, "VALIDATION_ERROR")
        assert field in payload["error"]["details"]["fields"]
        assert world.payments() == []

    @pytest.mark.parametrize("path", ["/payments/pay-1\n", "/batches/b-1\n"])
    def test_a_path_id_with_a_trailing_newline_is_400(self, world, context, path):
        status, payload = call(context, "GET", path)
        assert status == 400
        assert_error(payload, "VALIDATION_ERROR")


class TestIdempotencyKeyRetry:
    BODY: ClassVar[dict[str, str]] = {"amount": "12.50", "currency": "EUR"}

    def post(self, context, key="order-7", body=None):
        return call(
            context, "POST", "/payments", body=body or self.BODY, headers={"Idempotency-Key": key}
        )

    def test_a_retry_after_a_failed_send_lands_on_the_same_payment(self, world, context):
        call(context, "GET", "/health")  # create the clients the handler uses
        inject_failures(aws.client("sqs"), "SendMessage", times=1, code="InternalError", status=500)
        status, failed = self.post(context)
        assert status == 503
        assert_error(failed, "SERVICE_UNAVAILABLE")
        assert world.receive_all() == []  # written, never queued

        status, retried = self.post(context)
        assert status == 200
        assert len(world.payments()) == 1
        payment_id = world.payments()[0]["payment_id"]
        assert retried["payment_id"] == payment_id and retried["status"] == "RECEIVED"
        # The retry queued the payment the first attempt could not.
        assert [json.loads(m["Body"]) for m in world.receive_all()] == [{"payment_id": payment_id}]

        status, replayed = self.post(context)
        assert (status, replayed["payment_id"]) == (200, payment_id)
        assert len(world.payments()) == 1 and len(world.audit()) == 1

    def test_the_derived_id_is_the_same_for_a_key_and_differs_between_keys(self, world, context):
        first = self.post(context, key="order-8")[1]["payment_id"]
        other = self.post(context, key="order-9")[1]["payment_id"]
        assert first != other
        assert PAYMENT_ID.fullmatch(first) and PAYMENT_ID.fullmatch(other)
        assert len(world.payments()) == 2

    def test_an_explicit_payment_id_wins_over_the_key(self, world, context):
        body = {**self.BODY, "payment_id": "pay-explicit"}
        assert self.post(context, key="order-10", body=body)[1]["payment_id"] == "pay-explicit"


class TestWebhookSignatureHeader:
    SIGNAL: ClassVar[dict] = {"payment_id": "pay-1", "risk_score": 90, "reason": "velocity"}

    @pytest.mark.parametrize(
        "signature",
        [
            pytest.param("sha256=\u00e9", id="non-ascii"),
            pytest.param("sha256=" + "\uff41" * 64, id="fullwidth-hex"),
            pytest.param("\u212a", id="kelvin-sign"),
            pytest.param("sha256=\x00", id="nul"),
            pytest.param(" \u00a0 ", id="nbsp"),
            pytest.param("sha256=" + "z" * 64, id="not-hex"),
            pytest.param("t=1,v1=" + "0" * 64, id="other-scheme"),
        ],
    )
    def test_a_malformed_signature_header_is_401_with_the_error_body(
        self, world, context, signature
    ):
        call(context, "POST", "/payments", body={**PAYMENT, "payment_id": "pay-1"})
        status, body = call(
            context,
            "POST",
            "/fraud-webhook",
            body=json.dumps(self.SIGNAL),
            headers={"X-Signature": signature},
        )
        assert status == 401
        assert_error(body, "UNAUTHORIZED")
        assert world.payments()[0]["status"] == "RECEIVED"

    @settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(signature=st.text(max_size=80))
    def test_any_signature_header_but_the_right_one_is_401_never_500(
        self, world, context, signature
    ):
        status, body = call(
            context,
            "POST",
            "/fraud-webhook",
            body=json.dumps(self.SIGNAL),
            headers={"X-Signature": signature},
        )
        assert status == 401
        assert_error(body, "UNAUTHORIZED")

    def test_a_valid_signature_in_upper_case_hex_is_accepted(self, world, context):
        call(context, "POST", "/payments", body={**PAYMENT, "payment_id": "pay-1"})
        raw = json.dumps(self.SIGNAL)
        signature = sign(raw).replace("sha256=", "SHA256=").upper()
        status, _ = call(
            context, "POST", "/fraud-webhook", body=raw, headers={"X-Signature": signature}
        )
        assert status == 202


class TestThrottledIdempotencyStore:
    """The Powertools idempotency store shares the function's DynamoDB client."""

    @pytest.mark.parametrize(
        "code", ["ProvisionedThroughputExceededException", "ThrottlingException"]
    )
    @pytest.mark.parametrize(
        "operation",
        [
            pytest.param("PutItem", id="save-in-progress"),
            pytest.param("UpdateItem", id="save-success"),
            pytest.param("DeleteItem", id="delete-after-a-failed-request"),
        ],
    )
    def test_a_throttled_idempotency_store_is_503_with_a_plain_message(
        self, world, context, operation, code
    ):
        call(context, "GET", "/health")  # create the clients the handler uses
        if operation == "DeleteItem":  # the record is deleted only when the request failed
            inject_failures(aws.client("sqs"), "SendMessage", times=1, code="InternalError")
        injected = inject_failures(aws.client("dynamodb"), operation, times=1, code=code)
        status, body = call(
            context, "POST", "/payments", body=PAYMENT, headers={"Idempotency-Key": "order-11"}
        )
        assert injected["injected"] == 1
        assert status == 503
        assert body == {
            "error": {
                "code": "SERVICE_UNAVAILABLE",
                "message": errors.PUBLIC_MESSAGES["SERVICE_UNAVAILABLE"],
                "details": {},
            }
        }

    def test_a_record_left_in_progress_answers_409_with_retry_after_until_it_lapses(
        self, world, context
    ):
        """A request whose clean-up failed leaves its record in progress (as a killed invocation
        does): a retry is told when to come back, and then lands on the same payment."""
        call(context, "GET", "/health")
        inject_failures(aws.client("sqs"), "SendMessage", times=1, code="InternalError")
        inject_failures(aws.client("dynamodb"), "DeleteItem", times=1, code="ThrottlingException")
        short = LambdaContext()
        # Long enough that the retry below comes before it lapses, even on a loaded machine.
        short.get_remaining_time_in_millis = lambda: 2_000  # type: ignore[method-assign]
        headers = {"Idempotency-Key": "order-12"}
        assert call(short, "POST", "/payments", body=PAYMENT, headers=headers)[0] == 503

        response = _api.handler(
            api_event("POST", "/payments", body=PAYMENT, headers=headers), context
        )
        assert response["statusCode"] == 409
        assert "in progress" in json.loads(response["body"])["error"]["message"]
        # Bounded by the function's timeout: the longest any invocation's record stays.
        assert response["multiValueHeaders"]["Retry-After"] == ["15"]

        time.sleep(2.1)  # the first invocation's time is up
        status, body = call(context, "POST", "/payments", body=PAYMENT, headers=headers)
        # The first request stored the payment before its queue send failed: this is its replay.
        assert status == 200
        assert body["payment_id"] == payment_id_for_key("order-12")
        assert [p["payment_id"] for p in world.payments()] == [body["payment_id"]]
        queued = [json.loads(m["Body"])["payment_id"] for m in world.receive_all()]
        assert queued == [body["payment_id"]]

    def test_a_throttled_ssm_secret_is_503(self, world, context):
        inject_failures(aws.client("ssm"), "GetParameter", times=1, code="ThrottlingException")
        raw = json.dumps({"payment_id": "pay-1", "risk_score": 1, "reason": "x"})
        status, body = call(
            context, "POST", "/fraud-webhook", body=raw, headers={"X-Signature": sign(raw)}
        )
        assert status == 503
        assert_error(body, "SERVICE_UNAVAILABLE")


DENIED_ARN = "arn:aws:sts::123456789012:assumed-role/payments-api-test/payments-api-test"


def access_denied(client, operation):
    message = f"User: {DENIED_ARN} is not authorized to perform: {operation} on resource"
    return inject_failures(
        client,
        operation,
        times=1,
        status=403,
        parsed={
            "Error": {"Code": "AccessDeniedException", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
    )


class TestAwsErrorTextStaysInTheLogs:
    @pytest.mark.parametrize(
        ("service", "operation", "path", "headers", "status"),
        [
            pytest.param("sqs", "SendMessage", "/payments", {}, 503, id="queue"),
            pytest.param("dynamodb", "TransactWriteItems", "/payments", {}, 500, id="write"),
            pytest.param(
                "dynamodb",
                "PutItem",
                "/payments",
                {"Idempotency-Key": "order-12"},
                500,
                id="idempotency-store",
            ),
            pytest.param("dynamodb", "GetItem", "/payments/pay-1", {}, 500, id="read"),
        ],
    )
    def test_an_access_denied_answers_a_stable_code_and_plain_message(
        self, world, context, logs, service, operation, path, headers, status
    ):
        call(context, "GET", "/health")  # create the clients the handler uses
        injected = access_denied(aws.client(service), operation)
        method = "GET" if path.startswith("/payments/") else "POST"
        got, body = call(context, method, path, body=PAYMENT, headers=headers)
        assert injected["injected"] == 1
        assert got == status
        code = "SERVICE_UNAVAILABLE" if status == 503 else "INTERNAL_ERROR"
        assert body == {
            "error": {"code": code, "message": errors.PUBLIC_MESSAGES[code], "details": {}}
        }
        text = json.dumps(body)
        for leak in (DENIED_ARN, "123456789012", "not authorized", "AccessDenied", operation):
            assert leak not in text
        # The detail is not lost: it is in the function's log.
        assert "not authorized" in logs.getvalue()

    def test_a_configuration_error_is_named_in_the_logs_not_in_the_body(
        self, world, context, logs, monkeypatch
    ):
        from handlers import common

        monkeypatch.setenv("PAYMENT_EVENTS_TOPIC_ARN", "arn:but:not:123456789012:really")
        common.settings.cache_clear()
        status, body = call(context, "POST", "/payments", body=PAYMENT)
        assert status == 500
        assert body["error"] == {
            "code": "CONFIGURATION_ERROR",
            "message": errors.PUBLIC_MESSAGES["CONFIGURATION_ERROR"],
            "details": {},
        }
        assert "PAYMENT_EVENTS_TOPIC_ARN" in logs.getvalue()

    def test_a_throttled_write_keeps_the_aws_error_out_of_the_body(self, world, context):
        call(context, "GET", "/health")
        inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=1)
        status, body = call(context, "POST", "/payments", body=PAYMENT)
        assert status == 503
        assert "ProvisionedThroughputExceeded" not in json.dumps(body)
        assert body["error"]["details"] == {}


class TestDeeplyNestedBodies:
    @pytest.mark.parametrize(
        "raw",
        [
            pytest.param("[" * 60_000, id="60000-open-arrays"),
            pytest.param("[" * 5000 + "]" * 5000, id="5000-deep-array"),
            pytest.param(
                '{"amount": "1", "currency": "USD", "metadata": {"k": '
                + '{"a": ' * 2000
                + "1"
                + "}" * 2000
                + "}}",
                id="deep-inside-metadata",
            ),
        ],
    )
    @pytest.mark.parametrize("path", ["/payments", "/validate", "/fraud-webhook"])
    def test_a_deeply_nested_body_is_a_400_naming_the_limit(self, world, context, path, raw):
        headers = {"X-Signature": sign(raw)}
        status, body = call(context, "POST", path, body=raw, headers=headers)
        assert status == 400
        assert_error(body, "VALIDATION_ERROR")
        limit = f"more than {validation.MAX_JSON_DEPTH} levels deep"
        assert limit in body["error"]["details"]["fields"]["body"]
        assert world.payments() == []


def test_an_idempotent_replay_reads_the_payment_strongly_consistent(world, context):
    headers = {"Idempotency-Key": "order-13"}
    assert call(context, "POST", "/payments", body=PAYMENT, headers=headers)[0] == 202
    reads: list[bool] = []

    def remember(params, **_):
        if params.get("TableName") == world.env["PAYMENTS_TABLE"]:
            reads.append(params.get("ConsistentRead", False))

    aws.client("dynamodb").meta.events.register("before-parameter-build.dynamodb.GetItem", remember)
    status, body = call(context, "POST", "/payments", body=PAYMENT, headers=headers)
    assert status == 200 and body["payment_id"]
    assert reads == [True]
