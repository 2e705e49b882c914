"""API clients (payments.clients, payments.client_admin): made by the operator command's code
against moto's API Gateway, identified by the key id API Gateway hands the real API handler, and
kept apart: ids, Idempotency-Keys, reads and events are each client's own."""

from __future__ import annotations

import importlib
import json
import uuid

import boto3
import handlers.api
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from payments import clients
from payments.client_admin import ClientAdmin, ClientAdminError, Limits
from payments.config import load
from payments.idempotency import payment_id_for_key
from payments.repository import Repository

from tests.functional.test_outbox import register
from tests.functional.world import REGION, CallCounter, api_event, sign

STAGE = "test"


@pytest.fixture(autouse=True)
def api(world):
    global _api
    _api = importlib.reload(handlers.api)
    return _api


_api = handlers.api


@pytest.fixture
def admin(world) -> ClientAdmin:
    apigateway = boto3.client("apigateway", region_name=REGION)
    api_id = apigateway.create_rest_api(name="payments")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(
        restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE"
    )
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName=STAGE)
    return ClientAdmin(Repository(load()), apigateway, api_id=api_id, stage=STAGE)


def call(context, key_id, method, path, **kwargs):
    response = _api.handler(api_event(method, path, key_id=key_id, **kwargs), context)
    return response["statusCode"], json.loads(response["body"])


def forget_cached_clients() -> None:
    """What CLIENT_CACHE_SECONDS passing does to the API function's cache."""
    _api._forget_clients()


DEFAULT_KEY = "defaultkey01"  # tests/functional/world.py: the deployment's own key


class TestOperatorCommand:
    def test_add_makes_a_key_a_usage_plan_sized_for_the_day_and_the_clients_items(self, admin):
        client, value = admin.add("acme", kind=clients.KIND_API, limits=Limits(rate=50, burst=80))
        apigateway = admin.apigateway
        key = apigateway.get_api_key(apiKey=client["key_id"], includeValue=True)
        assert key["value"] == value and key["enabled"] is True
        plan = apigateway.get_usage_plan(usagePlanId=client["usage_plan_id"])
        assert plan["throttle"] == {"rateLimit": 50.0, "burstLimit": 80}
        # The rate sustained all day fits the quota: the client is never cut off by the day.
        assert plan["quota"]["limit"] == 50 * 86_400 and plan["quota"]["period"] == "DAY"
        assert plan["apiStages"] == [{"apiId": admin.api_id, "stage": STAGE}]
        keys = apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
        assert [k["id"] for k in keys] == [client["key_id"]]
        assert admin.repo.get_key_client(client["key_id"])["client_id"] == "acme"
        assert [c["client_id"] for c in admin.list()] == ["acme", "default"]

    @pytest.mark.parametrize(
        ("client_id", "message"),
        [
            ("Acme", "must be 2-32 characters"),
            ("a.b", "must be 2-32 characters"),
            ("default", "deployment's own key"),
        ],
    )
    def test_a_bad_or_reserved_id_is_refused_and_nothing_is_made(self, admin, client_id, message):
        with pytest.raises(ClientAdminError, match=message):
            admin.add(client_id, kind=clients.KIND_API, limits=Limits())
        assert admin.apigateway.get_api_keys()["items"] == []
        assert admin.apigateway.get_usage_plans()["items"] == []

    def test_a_second_add_is_refused_and_limits_that_end_the_day_early_too(self, admin):
        admin.add("acme", kind=clients.KIND_API, limits=Limits())
        with pytest.raises(ClientAdminError, match="exists already"):
            admin.add("acme", kind=clients.KIND_API, limits=Limits())
        with pytest.raises(ClientAdminError, match="at least an hour"):
            admin.add("tiny", kind=clients.KIND_API, limits=Limits(rate=10, burst=10, quota=100))
        assert len(admin.apigateway.get_api_keys()["items"]) == 1

    def test_list_is_one_query_whatever_else_the_table_holds(self, admin, world):
        for name in ("acme", "globex"):
            admin.add(name, kind=clients.KIND_API, limits=Limits())
        register(world, "b1", b"payment_id,amount,currency\nb1,1,USD\nb2,-1,USD\n", "01")
        counter = CallCounter().attach(admin.repo.dynamodb)
        assert [c["client_id"] for c in admin.list()] == ["acme", "default", "globex"]
        assert counter.calls == {"dynamodb:Query": 1}

    def test_the_default_clients_key_is_terraforms_so_it_is_not_rotated_or_removed(self, admin):
        for command in (admin.rotate_key, admin.remove):
            with pytest.raises(ClientAdminError, match="Terraform"):
                command("default")


class TestIdentity:
    def test_the_deployments_key_is_the_default_client_and_reads_its_payments(self, admin, context):
        body = {"payment_id": "order-1", "amount": "5", "currency": "USD"}
        assert call(context, DEFAULT_KEY, "POST", "/payments", body=body)[0] == 202
        assert call(context, DEFAULT_KEY, "GET", "/payments/order-1")[1]["payment_id"] == "order-1"

    @pytest.mark.parametrize("key_id", ["unknownkey", None])
    def test_a_key_of_no_client_is_refused(self, admin, context, key_id):
        status, body = call(context, key_id, "POST", "/validate", body={})
        assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
        assert body["error"]["message"] == "This API key belongs to no client"

    def test_suspend_refuses_the_client_once_its_cache_passes_and_resume_serves_it(
        self, admin, context
    ):
        client, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        key_id = client["key_id"]
        ok = {"amount": "1", "currency": "USD"}
        assert call(context, key_id, "POST", "/validate", body=ok)[0] == 200
        admin.suspend("acme")
        assert admin.apigateway.get_api_key(apiKey=key_id)["enabled"] is False
        forget_cached_clients()
        status, body = call(context, key_id, "POST", "/validate", body=ok)
        assert (status, body["error"]["message"]) == (403, "Client acme is suspended")
        admin.resume("acme")
        forget_cached_clients()
        assert call(context, key_id, "POST", "/validate", body=ok)[0] == 200

    def test_the_default_client_can_be_suspended_too(self, admin, context):
        admin.suspend("default")
        forget_cached_clients()
        assert call(context, DEFAULT_KEY, "GET", "/payments/x")[0] == 403
        admin.resume("default")
        forget_cached_clients()
        assert call(context, DEFAULT_KEY, "GET", "/payments/x")[0] == 404

    def test_a_rotated_key_works_and_the_old_one_stops(self, admin, context):
        old, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        body = {"payment_id": "order-1", "amount": "5", "currency": "USD"}
        assert call(context, old["key_id"], "POST", "/payments", body=body)[0] == 202
        new, value = admin.rotate_key("acme")
        assert new["key_id"] != old["key_id"]
        stored_key = admin.apigateway.get_api_key(apiKey=new["key_id"], includeValue=True)
        assert stored_key["value"] == value
        keys = {k["id"] for k in admin.apigateway.get_api_keys()["items"]}
        assert keys == {new["key_id"]}
        forget_cached_clients()
        assert call(context, old["key_id"], "GET", "/payments/order-1")[0] == 403
        assert call(context, new["key_id"], "GET", "/payments/order-1")[0] == 200

    def test_a_removed_client_is_refused_and_its_payments_stay(self, admin, context, world):
        client, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        body = {"payment_id": "order-1", "amount": "5", "currency": "USD"}
        assert call(context, client["key_id"], "POST", "/payments", body=body)[0] == 202
        admin.remove("acme")
        forget_cached_clients()
        assert call(context, client["key_id"], "GET", "/payments/order-1")[0] == 403
        assert admin.apigateway.get_usage_plans()["items"] == []
        assert [p["payment_id"] for p in world.payments()] == ["acme.order-1"]

    def test_a_remove_racing_a_rotation_changes_nothing_and_the_client_stays_whole(
        self, admin, context, monkeypatch
    ):
        admin.add("acme", kind=clients.KIND_API, limits=Limits())
        stale = admin.repo.get_client("acme")  # what a racing `remove` read
        rotated, _ = admin.rotate_key("acme")
        monkeypatch.setattr(admin.repo, "get_client", lambda client_id: stale)
        with pytest.raises(ClientAdminError, match="changed meanwhile"):
            admin.remove("acme")
        monkeypatch.undo()
        assert admin.repo.get_client("acme")["key_id"] == rotated["key_id"]
        forget_cached_clients()
        assert call(context, rotated["key_id"], "POST", "/validate", body={})[0] == 400
        # Removing it now takes everything, the rotated key included.
        admin.remove("acme")
        forget_cached_clients()
        assert call(context, rotated["key_id"], "POST", "/validate", body={})[0] == 403
        assert admin.apigateway.get_api_keys()["items"] == []

    def test_a_rotation_racing_a_suspension_is_refused_and_the_client_stays_suspended(
        self, admin, context, monkeypatch
    ):
        first, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        stale = admin.repo.get_client("acme")  # what a racing `rotate-key` read
        admin.suspend("acme")
        monkeypatch.setattr(admin.repo, "get_client", lambda client_id: stale)
        with pytest.raises(ClientAdminError, match="changed meanwhile"):
            admin.rotate_key("acme")
        monkeypatch.undo()
        assert admin.repo.get_client("acme")["status"] == clients.SUSPENDED
        # The rotation's new key was deleted again: the client's only key is its first.
        keys = admin.apigateway.get_api_keys()["items"]
        assert [(k["id"], k["enabled"]) for k in keys] == [(first["key_id"], False)]
        # A suspended client's rotation keeps it suspended, with a disabled new key.
        rotated, _ = admin.rotate_key("acme")
        assert admin.apigateway.get_api_key(apiKey=rotated["key_id"])["enabled"] is False
        forget_cached_clients()
        assert call(context, rotated["key_id"], "POST", "/validate", body={})[0] == 403

    def test_the_cache_is_the_bound_on_how_long_a_change_takes(self):
        now = [0.0]
        state = [clients.ACTIVE]
        reads = []

        def read_key(key_id):
            reads.append(key_id)
            return {"client_id": "acme", "status": state[0]} if key_id == "k1" else None

        directory = clients.Directory(
            default_key_id="d", read_key=read_key, read_client=dict, clock=lambda: now[0]
        )
        assert directory.resolve("k1").active
        state[0] = clients.SUSPENDED
        now[0] = clients.CLIENT_CACHE_SECONDS - 0.1
        assert directory.resolve("k1").active  # cached: one lookup per bound
        now[0] = clients.CLIENT_CACHE_SECONDS
        assert not directory.resolve("k1").active
        assert directory.resolve("unknown") is None
        assert reads == ["k1", "k1", "unknown"]

    def test_a_suspension_reaches_the_item_the_api_reads(self, admin):
        client, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        admin.suspend("acme")
        assert admin.repo.get_key_client(client["key_id"])["status"] == clients.SUSPENDED
        assert admin.repo.get_client("acme")["status"] == clients.SUSPENDED


class TestKinds:
    def test_a_fraud_webhook_client_may_only_call_the_webhook_and_flags_any_clients_payment(
        self, admin, context, world
    ):
        acme, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        fraud, _ = admin.add("fraud", kind=clients.KIND_FRAUD_WEBHOOK, limits=Limits())
        body = {"payment_id": "order-1", "amount": "5", "currency": "USD"}
        assert call(context, fraud["key_id"], "POST", "/payments", body=body)[0] == 403
        assert call(context, acme["key_id"], "POST", "/payments", body=body)[0] == 202
        signal = json.dumps(
            {"payment_id": "order-1", "client_id": "acme", "risk_score": 99, "reason": "stolen"}
        )
        status, _ = call(
            context, acme["key_id"], "POST", "/fraud-webhook", body=signal,
            headers={"X-Signature": sign(signal)},
        )  # fmt: skip
        assert status == 403
        status, answer = call(
            context, fraud["key_id"], "POST", "/fraud-webhook", body=signal,
            headers={"X-Signature": sign(signal)},
        )  # fmt: skip
        assert (status, answer["payment_id"], answer["status"]) == (202, "order-1", "FAILED")
        [stored] = world.payments()
        assert (stored["payment_id"], stored["status"]) == ("acme.order-1", "FAILED")
        assert stored["reason"] == "FRAUD_SUSPECTED"


class TestEvents:
    def test_events_carry_the_owner_and_its_own_id_also_as_a_filterable_attribute(
        self, admin, context, world
    ):
        acme, _ = admin.add("acme", kind=clients.KIND_API, limits=Limits())
        body = {"payment_id": "order-1", "amount": "5", "currency": "USD"}
        call(context, acme["key_id"], "POST", "/payments", body=body)
        call(context, DEFAULT_KEY, "POST", "/payments", body=body)
        world.drain_outbox()
        messages = [json.loads(m["Body"]) for m in world.receive_all(world.events_queue_url)]
        seen = {
            (m["MessageAttributes"]["client_id"]["Value"], json.loads(m["Message"])["payment_id"])
            for m in messages
        }
        assert seen == {("acme", "order-1"), ("default", "order-1")}
        assert all(
            json.loads(m["Message"])["client_id"] == m["MessageAttributes"]["client_id"]["Value"]
            for m in messages
        )


# -- isolation, generated ------------------------------------------------------------------------
CLIENTS = ("default", "acme", "globex")
OPERATION = st.one_of(
    st.tuples(
        st.just("create"),
        st.sampled_from(CLIENTS),
        st.none() | st.integers(0, 2),  # payment_id
        st.none() | st.integers(0, 2),  # Idempotency-Key
        st.sampled_from(["1.00", "2.00"]),
    ),
    st.tuples(st.just("get"), st.sampled_from(CLIENTS), st.integers(0, 2)),
)


class TestIsolation:
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(operations=st.lists(OPERATION, min_size=1, max_size=25))
    def test_no_client_sees_or_changes_anothers_payments_and_each_keeps_exactly_once(
        self, admin, context, operations
    ):
        """Three clients share one pool of payment ids and Idempotency-Keys; a model per client
        (its payments by id, its bound keys) predicts every answer."""
        key_ids = _key_ids(admin)
        run = uuid.uuid4().hex[:8]  # each example in its own ids: the world outlives it
        payments: dict[str, dict[str, str]] = {c: {} for c in CLIENTS}
        bound: dict[str, dict[str, tuple]] = {c: {} for c in CLIENTS}
        for operation in operations:
            kind, client = operation[0], operation[1]
            if kind == "get":
                payment_id = f"{run}-p{operation[2]}"
                status, body = call(context, key_ids[client], "GET", f"/payments/{payment_id}")
                if payment_id in payments[client]:
                    assert (status, body["amount"]) == (200, payments[client][payment_id])
                else:
                    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
                continue
            _, _, pid, key, amount = operation
            request = {"amount": amount, "currency": "USD"}
            if pid is not None:
                request["payment_id"] = f"{run}-p{pid}"
            headers = {"Idempotency-Key": f"{run}-k{key}"} if key is not None else None
            expected = _expected(payments[client], bound[client], request, headers)
            status, body = call(
                context, key_ids[client], "POST", "/payments", body=request, headers=headers
            )
            assert status == expected[0], (client, request, headers, body)
            if status in (200, 202):
                made = expected[1] or body["payment_id"]  # None: the server's new id
                assert expected[1] or made not in payments[client]
                assert (body["payment_id"], body["amount"]) == (made, amount)
                payments[client][body["payment_id"]] = amount
                if headers:
                    bound[client].setdefault(headers["Idempotency-Key"], (request, made))


def _key_ids(admin: ClientAdmin) -> dict[str, str]:
    if not hasattr(admin, "_test_keys"):
        admin._test_keys = {"default": DEFAULT_KEY} | {
            name: admin.add(name, kind=clients.KIND_API, limits=Limits())[0]["key_id"]
            for name in CLIENTS[1:]
        }
    return admin._test_keys


def _expected(own: dict[str, str], keys: dict[str, tuple], request: dict, headers) -> tuple:
    """(status, payment id) the contract promises one client, from its own history only."""
    key = headers["Idempotency-Key"] if headers else None
    if key is not None and key in keys:
        first, payment_id = keys[key]
        return (200, payment_id) if first == request else (409, None)
    payment_id = request.get("payment_id") or (payment_id_for_key(key) if key else None)
    if payment_id is None:
        return (202, None)
    if payment_id in own:
        return (200, payment_id) if own[payment_id] == request["amount"] else (409, None)
    return (202, payment_id)
