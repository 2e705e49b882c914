"""Regression tests for the API defects of issue 7, through the real handler and moto."""

from __future__ import annotations

import importlib
import json

import handlers.api
import pytest

from tests.functional.world import api_event


@pytest.fixture(autouse=True)
def api(world):
    """The module as Lambda loads it: after the environment (CORS origin) is set."""
    global _api
    _api = importlib.reload(handlers.api)
    return _api


_api = handlers.api


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
