"""The audit archive's canonical form: an entry's digest depends on its values only."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from payments import archive
from payments.repository import deserialize, serialize

names = st.text("abcdefghij_", min_size=1, max_size=8)
amounts = st.decimals(
    min_value=Decimal("-1000000"), max_value=Decimal("1000000"), places=2, allow_nan=False
)
values = st.recursive(
    st.one_of(st.text(max_size=12), amounts, st.booleans()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
    max_leaves=8,
)
entries = st.fixed_dictionaries(
    {"entity_id": st.just("PAYMENT#p1"), "sk": st.just("0001#RECEIVED")},
    optional={"amount": amounts, "details": st.dictionaries(names, values, max_size=4)},
)


@given(entries)
def test_the_digest_survives_dynamodbs_round_trip(entry):
    # What the table returns and what the stream carries are both this round trip of the put.
    assert archive.digest(deserialize(serialize(entry))) == archive.digest(entry)


@given(amounts)
def test_a_number_is_digested_by_its_value(amount):
    base = {"entity_id": "PAYMENT#p1", "sk": "0001#RECEIVED"}
    assert archive.digest({**base, "amount": amount}) == archive.digest(
        {**base, "amount": amount.quantize(Decimal("0.0001"))}
    )


@given(entries, amounts)
def test_another_amount_is_another_digest(entry, amount):
    changed = {**entry, "amount": amount}
    if Decimal(entry.get("amount", "NaN")).compare(amount) == 0:
        return
    assert archive.digest(changed) != archive.digest(entry)


def test_keys_are_by_hour_and_content():
    moment = datetime(2026, 12, 7, 13, 5, 9, tzinfo=UTC)
    key = archive.object_key(moment, b"x")
    assert key.startswith("audit/2026-12-07/13/20261207T130509-") and key.endswith(".jsonl")
    assert archive.object_key(moment, b"x") == key != archive.object_key(moment, b"y")
