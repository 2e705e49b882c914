"""``make client``: add, list, suspend, resume, rotate the key of, and remove API clients.

Each client gets its own API key and its own usage plan on the API's stage (API Gateway), and
its two items in the processing-status table (payments.clients). The API key is made first and
the items last, in one transaction; when that fails the new key and plan are deleted again (a
run killed in between leaves a key that belongs to no client, which the API refuses: 403).
Every change of a client moves its ``version`` one up from the one it read, so of two commands
racing on one client (rotate and remove, suspend and rotate) one wins and the other changes
nothing and says so. Suspending marks the client suspended (what the API reads: refused within
payments.clients.CLIENT_CACHE_SECONDS), then disables its key at API Gateway. The deployment's
own key is the ``default`` client: it can be suspended and resumed here, but its key is
Terraform's, so it is not rotated or removed here.

Usage plans: ``rate`` requests/s with ``burst``, and a daily ``quota`` that defaults to the rate
sustained all day, so a client that keeps to its rate is never switched off before the day ends.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from typing import Any

from payments.clients import (
    ACTIVE,
    CLIENT_ID,
    CLIENT_ID_RULE,
    DEFAULT_CLIENT,
    KINDS,
    SUSPENDED,
)
from payments.repository import Repository, TransactionCanceled, now_iso

DEFAULT_RATE = 100
DEFAULT_BURST = 200
SECONDS_PER_DAY = 86_400


class ClientAdminError(Exception):
    """Something the operator can fix; the command prints it and exits 1."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    rate: int = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    quota: int | None = None

    @property
    def daily_quota(self) -> int:
        return self.quota if self.quota is not None else self.rate * SECONDS_PER_DAY

    def check(self) -> None:
        if not 1 <= self.rate <= 10_000:
            raise ClientAdminError("--rate must be 1-10000 requests per second")
        if not self.rate <= self.burst <= 5_000 * 2:
            raise ClientAdminError("--burst must be at least --rate and at most 10000")
        if self.daily_quota < self.rate * 3600:
            raise ClientAdminError(
                "--quota must allow at least an hour at --rate (a smaller one switches the "
                "client off early in the day)"
            )


class ClientAdmin:
    def __init__(self, repo: Repository, apigateway: Any, *, api_id: str, stage: str) -> None:
        self.repo = repo
        self.apigateway = apigateway
        self.api_id = api_id
        self.stage = stage
        self.prefix = f"payments-{stage}-client-"

    # -- commands -----------------------------------------------------------------------------
    def add(self, client_id: str, *, kind: str, limits: Limits) -> tuple[dict[str, Any], str]:
        """The new client and its API key's value (shown once; API Gateway keeps it)."""
        _check_id(client_id)
        if client_id == DEFAULT_CLIENT:
            raise ClientAdminError("default is the deployment's own key; it exists already")
        if kind not in KINDS:
            raise ClientAdminError(f"--kind must be one of {', '.join(KINDS)}")
        limits.check()
        if self.repo.get_client(client_id) is not None:
            raise ClientAdminError(f"client {client_id} exists already")
        plan = self.apigateway.create_usage_plan(
            name=f"{self.prefix}{client_id}",
            description=f"API client {client_id}",
            apiStages=[{"apiId": self.api_id, "stage": self.stage}],
            throttle={"rateLimit": float(limits.rate), "burstLimit": limits.burst},
            quota={"limit": limits.daily_quota, "period": "DAY"},
        )
        key_id, value = self._new_key(client_id, plan["id"])
        client = {
            "client_id": client_id,
            "kind": kind,
            "status": ACTIVE,
            "key_id": key_id,
            "usage_plan_id": plan["id"],
            "rate": limits.rate,
            "burst": limits.burst,
            "quota": limits.daily_quota,
            "created_at": now_iso(),
            "version": 1,
        }
        try:
            self.repo.transact(self.repo.client_ops(client))
        except BaseException as exc:
            # Another `add` of the same id won the race, or the write failed: undo this one's
            # key and plan, so nothing of a client that was never made is left enabled.
            self._delete_key(key_id, plan["id"])
            self.apigateway.delete_usage_plan(usagePlanId=plan["id"])
            if isinstance(exc, TransactionCanceled):
                raise ClientAdminError(f"client {client_id} exists already") from None
            raise
        return client, value

    def list(self) -> list[dict[str, Any]]:
        stored = {c["client_id"]: c for c in self.repo.list_clients()}
        stored.setdefault(DEFAULT_CLIENT, {"client_id": DEFAULT_CLIENT, "status": ACTIVE})
        return [stored[name] for name in sorted(stored)]

    def set_status(self, client_id: str, status: str) -> dict[str, Any]:
        _check_id(client_id)
        client = self._client(client_id)
        updated = self._next(client, status=status)
        # The status first: the API reads it, so a suspension holds even if the key's own switch
        # below fails (run the command again to set it too).
        if client_id == DEFAULT_CLIENT:
            # Only its status is recorded (its key is Terraform's): the last operator's word.
            self.repo.put_default_client(updated)
            return updated
        self._commit(client_id, self.repo.client_ops(updated))
        self.apigateway.update_api_key(
            apiKey=client["key_id"],
            patchOperations=[
                {"op": "replace", "path": "/enabled", "value": str(status == ACTIVE).lower()}
            ],
        )
        return updated

    def suspend(self, client_id: str) -> dict[str, Any]:
        return self.set_status(client_id, SUSPENDED)

    def resume(self, client_id: str) -> dict[str, Any]:
        return self.set_status(client_id, ACTIVE)

    def rotate_key(self, client_id: str) -> tuple[dict[str, Any], str]:
        """A new key for the client; the old one stops at once at API Gateway (deleted) and in
        the API within CLIENT_CACHE_SECONDS (the client item names the new key only)."""
        client = self._changeable(client_id)
        key_id, value = self._new_key(client_id, client["usage_plan_id"])
        if client["status"] != ACTIVE:  # a suspended client's new key starts disabled too
            self.apigateway.update_api_key(
                apiKey=key_id,
                patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}],
            )
        updated = self._next(client, key_id=key_id)
        try:
            self._commit(client_id, self.repo.client_ops(updated, old_key_id=client["key_id"]))
        except BaseException:
            self._delete_key(key_id, client["usage_plan_id"])
            raise
        self._delete_key(client["key_id"], client["usage_plan_id"])
        return updated, value

    def remove(self, client_id: str) -> dict[str, Any]:
        """The client's key, plan and items go; its payments stay (nobody can read them through
        the API any more, and a client made later with the same id would own them again)."""
        client = self._changeable(client_id)
        version = int(client["version"])
        self._commit(
            client_id, self.repo.remove_client_ops(client_id, client["key_id"], version=version)
        )
        self._delete_key(client["key_id"], client["usage_plan_id"])
        self.apigateway.delete_usage_plan(usagePlanId=client["usage_plan_id"])
        return client

    # -- the parts ----------------------------------------------------------------------------
    def _client(self, client_id: str) -> dict[str, Any]:
        client = self.repo.get_client(client_id)
        if client is None and client_id == DEFAULT_CLIENT:
            return {"client_id": DEFAULT_CLIENT, "status": ACTIVE}
        if client is None:
            raise ClientAdminError(f"no client {client_id} (make client ARGS=list)")
        return client

    def _changeable(self, client_id: str) -> dict[str, Any]:
        _check_id(client_id)
        if client_id == DEFAULT_CLIENT:
            raise ClientAdminError(
                "default is the deployment's own key (Terraform's): replace it with the stack, "
                "or move its callers to clients of their own"
            )
        return self._client(client_id)

    @staticmethod
    def _next(client: dict[str, Any], **changes: Any) -> dict[str, Any]:
        version = int(client.get("version") or 0) + 1
        return {**client, **changes, "version": version, "updated_at": now_iso()}

    def _commit(self, client_id: str, ops: list[dict[str, Any]]) -> None:
        try:
            self.repo.transact(ops)
        except TransactionCanceled:
            raise ClientAdminError(
                f"client {client_id} changed meanwhile (another make client?); nothing was "
                "changed by this one: look with list and run it again"
            ) from None

    def _new_key(self, client_id: str, plan_id: str) -> tuple[str, str]:
        value = secrets.token_urlsafe(30)
        key = self.apigateway.create_api_key(
            name=f"{self.prefix}{client_id}-{secrets.token_hex(4)}",
            description=f"API client {client_id}",
            enabled=True,
            value=value,
        )
        self.apigateway.create_usage_plan_key(
            usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY"
        )
        return key["id"], value

    def _delete_key(self, key_id: str, plan_id: str) -> None:
        """Take the key out of its plan and delete it; a key already gone is no error."""
        for call, kwargs in (
            (self.apigateway.delete_usage_plan_key, {"usagePlanId": plan_id, "keyId": key_id}),
            (self.apigateway.delete_api_key, {"apiKey": key_id}),
        ):
            with contextlib.suppress(self.apigateway.exceptions.NotFoundException):
                call(**kwargs)


def _check_id(client_id: str) -> None:
    if not CLIENT_ID.fullmatch(client_id):
        raise ClientAdminError(f"client id {client_id!r} {CLIENT_ID_RULE}")
