"""The fraud webhook's signature: ``t=<unix>,v1=<hex>`` over ``"<t>.<body>"``, a time window,
two secrets at once during a rotation, constant-time comparison on bytes."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import time

import handlers.api
import pytest
from handlers import webhook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import contract
from payments.errors import UnauthorizedError

from tests.functional.world import WEBHOOK_SECRET, api_event, sign

PAYMENT = {"payment_id": "pay-1", "amount": "10.00", "currency": "USD"}
SIGNAL = {"payment_id": "pay-1", "risk_score": 90, "reason": "velocity"}
TOLERANCE = contract.DEFAULT_SIGNATURE_TOLERANCE_SECONDS
SKEW = contract.SIGNATURE_MAX_CLOCK_SKEW_SECONDS


@pytest.fixture(autouse=True)
def api(world):
    return importlib.reload(handlers.api)


@pytest.fixture
def call(api, context):
    def send(method, path, *, body, headers=None):
        response = api.handler(api_event(method, path, body=body, headers=headers), context)
        return response["statusCode"], json.loads(response["body"])

    return send


@pytest.fixture
def payment(call):
    assert call("POST", "/payments", body=PAYMENT)[0] == 202


def post_signal(call, signature, body=None):
    raw = body if body is not None else json.dumps(SIGNAL)
    return call("POST", "/fraud-webhook", body=raw, headers={"X-Signature": signature})


def rotate(world, value: str) -> None:
    """An operator's put-parameter --overwrite, seen by a new container."""
    import boto3
    from handlers import common

    boto3.client("ssm").put_parameter(
        Name=world.env["WEBHOOK_SECRET_PARAMETER"], Value=value, Type="SecureString", Overwrite=True
    )
    common.reset()


class TestTimeWindow:
    def test_a_fresh_signature_is_accepted(self, call, payment):
        raw = json.dumps(SIGNAL)
        assert post_signal(call, sign(raw), raw)[0] == 202

    @pytest.mark.parametrize("age", [TOLERANCE - 5, -(SKEW - 5)])
    def test_the_tolerance_into_the_past_and_the_skew_into_the_future_are_accepted(
        self, call, payment, age
    ):
        raw = json.dumps(SIGNAL)
        assert post_signal(call, sign(raw, at=int(time.time()) - age), raw)[0] == 202

    @pytest.mark.parametrize("age", [TOLERANCE + 5, 10 * 365 * 86400])
    def test_a_stale_signature_is_401_even_when_the_hmac_is_right(self, call, payment, age):
        raw = json.dumps(SIGNAL)
        status, body = post_signal(call, sign(raw, at=int(time.time()) - age), raw)
        assert status == 401
        assert body["error"]["code"] == "UNAUTHORIZED"
        assert f"more than {TOLERANCE} seconds old" in body["error"]["message"]

    @pytest.mark.parametrize("ahead", [SKEW + 5, TOLERANCE - 5, TOLERANCE + 5])
    def test_a_signature_dated_past_the_skew_ahead_is_401(self, call, payment, ahead):
        """Else a captured request dated ``ahead`` would be good for ``ahead`` + the tolerance."""
        raw = json.dumps(SIGNAL)
        status, body = post_signal(call, sign(raw, at=int(time.time()) + ahead), raw)
        assert status == 401
        assert f"more than {SKEW} seconds ahead" in body["error"]["message"]

    @pytest.mark.parametrize(
        ("offset", "accepted"),
        [
            (-TOLERANCE, True),
            (-(TOLERANCE + 1), False),
            (SKEW, True),
            (SKEW + 1, False),
            (0, True),
        ],
    )
    def test_the_window_boundaries_to_the_second(self, world, offset, accepted):
        """``t`` = now + ``offset``: the full tolerance into the past, the skew into the future,
        both ends included."""
        raw = json.dumps(SIGNAL).encode()
        now = 1_800_000_000
        header = sign(raw, at=now + offset)
        if accepted:
            webhook.verify(header, raw, now=now)
        else:
            with pytest.raises(UnauthorizedError):
                webhook.verify(header, raw, now=now)

    def test_a_captured_signature_is_good_for_at_most_the_tolerance_plus_the_skew(self, world):
        """Dated as far ahead as accepted, it stays valid until ``t`` + the tolerance: seen
        first at ``t - SKEW``, that is the tolerance plus the skew, not twice the tolerance."""
        raw = json.dumps(SIGNAL).encode()
        t = 1_800_000_000
        header = sign(raw, at=t)
        valid = [
            now
            for now in range(t - 2 * TOLERANCE, t + 2 * TOLERANCE + 1)
            if _accepts(header, raw, now)
        ]
        assert (valid[0], valid[-1]) == (t - SKEW, t + TOLERANCE)
        assert len(valid) == TOLERANCE + SKEW + 1

    def test_the_tolerance_is_a_setting(self, call, payment, monkeypatch):
        from handlers import common

        monkeypatch.setenv("WEBHOOK_TOLERANCE_SECONDS", "30")
        common.settings.cache_clear()
        raw = json.dumps(SIGNAL)
        assert post_signal(call, sign(raw, at=int(time.time()) - 60), raw)[0] == 401
        assert post_signal(call, sign(raw, at=int(time.time()) - 10), raw)[0] == 202

    def test_a_tolerance_below_the_skew_bounds_the_future_too(self, world, monkeypatch):
        from handlers import common

        monkeypatch.setenv("WEBHOOK_TOLERANCE_SECONDS", "10")
        common.settings.cache_clear()
        raw = json.dumps(SIGNAL).encode()
        now = 1_800_000_000
        webhook.verify(sign(raw, at=now + 10), raw, now=now)
        with pytest.raises(UnauthorizedError, match="more than 10 seconds ahead"):
            webhook.verify(sign(raw, at=now + 11), raw, now=now)

    def test_the_time_is_signed_so_it_cannot_be_refreshed(self, call, payment):
        raw = json.dumps(SIGNAL)
        old = int(time.time()) - 3600
        captured = sign(raw, at=old)
        replayed = captured.replace(f"t={old}", f"t={int(time.time())}")
        assert post_signal(call, replayed, raw)[0] == 401

    def test_the_body_is_signed(self, call, payment):
        raw = json.dumps(SIGNAL)
        other = json.dumps({**SIGNAL, "risk_score": 1})
        assert post_signal(call, sign(raw), other)[0] == 401


class TestFormat:
    @pytest.mark.parametrize(
        "header",
        [
            "",
            "t=,v1=",
            "v1=00",
            "t=123",
            "t=abc,v1=00",
            "t=1,t=2,v1=00",
            "t=-5,v1=00",
            "t=99999999999999999999999,v1=00",
            "sha256=deadbeef",
            "t=١٢٣,v1=00",  # Arabic-Indic digits are digits to str.isdigit, not to the check
        ],
    )
    def test_malformed_headers_are_401_with_the_error_body(self, call, payment, header):
        status, body = post_signal(call, header)
        assert status == 401
        assert set(body["error"]) == {"code", "message", "details"}

    def test_the_old_body_only_format_is_refused(self, call, payment):
        raw = json.dumps(SIGNAL)
        digest = hmac.new(WEBHOOK_SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()
        assert post_signal(call, f"sha256={digest}", raw)[0] == 401

    def test_spaces_unknown_schemes_and_several_signatures_are_tolerated(self, call, payment):
        raw = json.dumps(SIGNAL)
        timestamp, good = sign(raw).split(",")
        header = f" {timestamp} , v0=abc, v1={'0' * 64} ,{good.upper()}"
        assert post_signal(call, header, raw)[0] == 202

    @settings(
        max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(header=st.text(max_size=120))
    def test_any_other_header_is_401_never_500(self, call, header):
        assert post_signal(call, header)[0] == 401


class TestRotation:
    def test_during_a_rotation_both_secrets_are_valid(self, call, payment, world):
        rotate(world, f"new-secret,{WEBHOOK_SECRET}")
        raw = json.dumps(SIGNAL)
        assert post_signal(call, sign(raw, "new-secret"), raw)[0] == 202
        assert post_signal(call, sign(raw), raw)[0] == 202
        assert post_signal(call, sign(raw, "third-secret"), raw)[0] == 401

    def test_after_it_the_previous_secret_is_refused(self, call, payment, world):
        rotate(world, "new-secret")
        raw = json.dumps(SIGNAL)
        assert post_signal(call, sign(raw), raw)[0] == 401
        assert post_signal(call, sign(raw, "new-secret"), raw)[0] == 202

    @pytest.mark.parametrize("value", ["a,b,c", "a,", ",b", " , "])
    def test_a_malformed_parameter_is_a_configuration_error_that_names_no_secret(
        self, call, payment, world, value
    ):
        rotate(world, value)
        raw = json.dumps(SIGNAL)
        status, body = post_signal(call, sign(raw, "a"), raw)
        assert status == 500
        assert body["error"] == {
            "code": "CONFIGURATION_ERROR",
            "message": "the service is not configured correctly",
            "details": {},
        }

    def test_a_warm_container_rereads_the_secret_after_the_cache_age(self, call, payment, world):
        raw = json.dumps(SIGNAL)
        assert post_signal(call, sign(raw), raw)[0] == 202
        seen: list[int] = []
        provider = webhook._provider["ssm"]
        real_get = provider.get

        def get(name, **kwargs):
            seen.append(kwargs["max_age"])
            return real_get(name, **kwargs)

        provider.get = get
        assert post_signal(call, sign(raw), raw)[0] == 202
        assert seen == [webhook.SECRET_MAX_AGE_SECONDS]


def _accepts(header: str, raw: bytes, now: int) -> bool:
    try:
        webhook.verify(header, raw, now=now)
    except UnauthorizedError:
        return False
    return True


def test_comparison_never_stops_at_the_first_signature(monkeypatch, world):
    """Every provided signature is compared with every secret's (constant work per request)."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", spy)
    rotate(world, f"new-secret,{WEBHOOK_SECRET}")
    raw = b'{"x": 1}'
    header = sign(raw) + ",v1=" + "0" * 64
    webhook.verify(header, raw)
    assert len(compared) == 4
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)
