"""Regression tests for the API defects of issue 7, through the real handler and moto."""

from __future__ import annotations

import importlib
import io
import json
import logging
from typing import ClassVar

import handlers.api
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import aws, errors, validation
from payments.idempotency import payment_id_for_key
from payments.validation import PAYMENT_ID

from tests.functional.model_support import interleave
from tests.functional.world import api_event, inject_failures, sign

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


class Killed(BaseException):
    """The function's process died (no handler catches a BaseException)."""


def killed_after(client, operation):
    """The next ``operation`` call commits, then the process dies before it hears back."""
    service = client.meta.service_model.service_id.hyphenize()
    state = {"left": 1}

    def die(**_):
        if state["left"]:
            state["left"] -= 1
            raise Killed(f"process died after {operation}")

    client.meta.events.register(f"after-call.{service}.{operation}", die)


class TestAKeyIsBoundToItsFirstRequest:
    """Issue 16 #2: the key's binding (the payment it made, the request's hash) is written in the
    payment's own transaction, so no failure after it can let the key make a second payment."""

    KEY = "order-16"
    FIRST: ClassVar[dict[str, str]] = {"payment_id": "pay-16", "amount": "12.50", "currency": "EUR"}

    def post(self, context, body):
        return call(context, "POST", "/payments", body=body, headers={"Idempotency-Key": self.KEY})

    def fail_the_first_send(self, world, context):
        call(context, "GET", "/health")  # create the clients the handler uses
        inject_failures(aws.client("sqs"), "SendMessage", times=1, code="InternalError", status=500)
        status, body = self.post(context, self.FIRST)
        assert status == 503
        assert_error(body, "SERVICE_UNAVAILABLE")
        assert [p["payment_id"] for p in world.payments()] == ["pay-16"]
        assert world.receive_all() == []  # stored, never queued

    def assert_key_conflict(self, status, body):
        assert status == 409
        assert_error(body, "CONFLICT")
        assert "Idempotency-Key" in body["error"]["message"]
        # Nothing of the bound request reaches the caller: not its payment, not its body.
        assert body["error"]["details"] == {"Idempotency-Key": self.KEY}
        assert "pay-16" not in json.dumps(body) and "12.50" not in json.dumps(body)

    CHANGED: ClassVar[list] = [
        pytest.param({"amount": "12.50", "currency": "EUR"}, id="payment_id-dropped"),
        pytest.param({**FIRST, "payment_id": "pay-17"}, id="another-payment_id"),
        pytest.param({**FIRST, "amount": "13.00"}, id="other-content"),
        pytest.param({**FIRST, "description": "x"}, id="a-field-added"),
        pytest.param(
            {"payment_id": payment_id_for_key(KEY), "amount": "12.50", "currency": "EUR"},
            id="the-id-the-key-derives",
        ),
    ]

    @pytest.mark.parametrize("changed", CHANGED)
    def test_a_changed_retry_after_a_failed_send_is_409_and_stores_nothing(
        self, world, context, changed
    ):
        self.fail_the_first_send(world, context)
        self.assert_key_conflict(*self.post(context, changed))
        assert [p["payment_id"] for p in world.payments()] == ["pay-16"]
        assert len(world.audit()) == 1
        assert world.receive_all() == []

    def test_the_identical_retry_after_a_failed_send_is_200_with_the_payment_queued(
        self, world, context
    ):
        self.fail_the_first_send(world, context)
        # The same request written differently is the same request.
        status, body = self.post(context, {**self.FIRST, "amount": 12.5, "currency": "eur"})
        assert (status, body["payment_id"], body["status"]) == (200, "pay-16", "RECEIVED")
        assert [json.loads(m["Body"]) for m in world.receive_all()] == [{"payment_id": "pay-16"}]
        assert len(world.payments()) == 1 and len(world.audit()) == 1

    def test_a_retry_after_the_process_died_past_the_commit_finds_the_binding(self, world, context):
        call(context, "GET", "/health")
        killed_after(aws.client("dynamodb"), "TransactWriteItems")
        with pytest.raises(Killed):  # API Gateway answers 502
            _api.handler(
                api_event(
                    "POST", "/payments", body=self.FIRST, headers={"Idempotency-Key": self.KEY}
                ),
                context,
            )
        for changed in self.CHANGED:
            self.assert_key_conflict(*self.post(context, changed.values[0]))
        status, body = self.post(context, self.FIRST)
        assert (status, body["payment_id"]) == (200, "pay-16")
        assert [json.loads(m["Body"]) for m in world.receive_all()] == [{"payment_id": "pay-16"}]
        assert [p["payment_id"] for p in world.payments()] == ["pay-16"]

    @pytest.mark.parametrize(
        ("at", "first_wins"),
        [
            pytest.param("TransactWriteItems", False, id="second-commits-first"),
            pytest.param("SendMessage", True, id="first-committed-not-yet-queued"),
        ],
    )
    def test_two_first_attempts_with_one_key_and_different_bodies_make_one_payment(
        self, world, context, at, first_wins
    ):
        """The second container's request runs while the first is at its ``at`` call: whichever
        transaction commits first binds the key, and the other is a 409."""
        call(context, "GET", "/health")
        second = {"amount": "99.00", "currency": "EUR"}
        answers = {}

        def racing():
            answers["second"] = self.post(context, second)

        client = aws.client("sqs" if at == "SendMessage" else "dynamodb")
        with interleave(client, at, racing):
            answers["first"] = self.post(context, self.FIRST)
        winner, loser = ("first", "second") if first_wins else ("second", "first")
        assert answers[winner][0] == 202
        self.assert_key_conflict(*answers[loser])
        [stored] = world.payments()
        assert stored["payment_id"] == answers[winner][1]["payment_id"]
        # Every later request with the key answers the winner's payment or a 409.
        assert self.post(context, self.FIRST if first_wins else second)[0] == 200
        assert self.post(context, second if first_wins else self.FIRST)[0] == 409
        assert len(world.payments()) == 1

    def test_a_key_reused_on_a_payment_made_without_it_binds_to_that_payment(self, world, context):
        assert call(context, "POST", "/payments", body=self.FIRST)[0] == 202  # no key
        status, body = self.post(context, self.FIRST)
        assert (status, body["payment_id"]) == (200, "pay-16")
        self.assert_key_conflict(*self.post(context, {"amount": "12.50", "currency": "EUR"}))
        assert [p["payment_id"] for p in world.payments()] == ["pay-16"]


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


class TestThrottledDependencies:
    """A dependency throttled past the SDK's retries is a 503 with a plain message, and the
    client's retry is safe."""

    @pytest.mark.parametrize(
        "code", ["ProvisionedThroughputExceededException", "ThrottlingException"]
    )
    def test_a_throttled_keyed_write_is_503_and_leaves_the_key_unbound(self, world, context, code):
        call(context, "GET", "/health")  # create the clients the handler uses
        injected = inject_failures(aws.client("dynamodb"), "TransactWriteItems", times=1, code=code)
        headers = {"Idempotency-Key": "order-11"}
        status, body = call(context, "POST", "/payments", body=PAYMENT, headers=headers)
        assert injected["injected"] == 1
        assert status == 503
        assert body == {
            "error": {
                "code": "SERVICE_UNAVAILABLE",
                "message": errors.PUBLIC_MESSAGES["SERVICE_UNAVAILABLE"],
                "details": {},
            }
        }
        assert world.table_items("PROCESSING_STATUS_TABLE") == []
        # Nothing was bound, so the client may even change its mind about the body.
        other = {**PAYMENT, "amount": "11.00"}
        assert call(context, "POST", "/payments", body=other, headers=headers)[0] == 202

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
