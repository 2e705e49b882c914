"""A consumer of ``payment-events`` that follows the contract (README, docs/RUNTIME.md):
drop an ``event_id`` already seen; apply an event only when its ``version`` is higher than the
one held for its entity (the payment, or the batch); ``payment.fraud_alert`` changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from payments.clients import stored_id_of

INFORMATIONAL = frozenset({"payment.fraud_alert"})


def entity(event: Mapping[str, Any]) -> tuple[str, str]:
    """Whose state an event is about: ("payment", stored id) or ("batch", id); a payment is its
    client's (``client_id``) and that client's ``payment_id`` together."""
    if "payment_id" in event:
        return "payment", stored_id_of(event)
    return "batch", str(event["batch_id"])


@dataclass
class Consumer:
    seen: set[str] = field(default_factory=set)
    # entity -> (version, status) of the newest event applied
    state: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    alerts: list[Mapping[str, Any]] = field(default_factory=list)

    def receive(self, event: Mapping[str, Any]) -> None:
        if event["event_id"] in self.seen:
            return
        self.seen.add(event["event_id"])
        if event["type"] in INFORMATIONAL:
            self.alerts.append(event)
            return
        if "version" not in event:
            return  # a batch entry written before batches counted versions: nothing to order by
        key = entity(event)
        held = self.state.get(key)
        if held is None or int(event["version"]) > held[0]:
            self.state[key] = (int(event["version"]), str(event["status"]))

    def consume(self, events: Iterable[Mapping[str, Any]]) -> Consumer:
        for event in events:
            self.receive(event)
        return self

    def payments(self) -> dict[str, tuple[int, str]]:
        return {i: held for (kind, i), held in self.state.items() if kind == "payment"}


def first_deliveries_overtaken(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Where the first delivery of an entity's version n+1 came before that of version n
    (events in delivery order; events without a version are left out)."""
    first: dict[tuple[str, str], list[int]] = {}
    problems = []
    for event in events:
        if event["type"] in INFORMATIONAL or "version" not in event:
            continue
        versions = first.setdefault(entity(event), [])
        version = int(event["version"])
        if version in versions:
            continue
        if versions and version < max(versions):
            problems.append(f"{entity(event)}: version {version} first after {max(versions)}")
        versions.append(version)
    return problems
