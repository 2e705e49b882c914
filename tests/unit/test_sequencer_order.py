"""S3 sequencers of any length are ordered as S3 orders them (pad the shorter on the right)."""

from __future__ import annotations

import functools
import itertools

from hypothesis import given
from hypothesis import strategies as st
from payments.batch import sequencer_order

HEX = "0123456789ABCDEF"


def s3_compare(a: str, b: str) -> int:
    """S3 User Guide, "Event message structure": pad the shorter with zeros on the right, then
    compare the strings."""
    width = max(len(a), len(b))
    a, b = a.ljust(width, "0"), b.ljust(width, "0")
    return (a > b) - (a < b)


sequencers = st.text(HEX, min_size=1, max_size=40)


@given(st.lists(sequencers, min_size=2, max_size=8))
def test_uploads_sort_in_s3_order_whatever_their_sequencers_lengths(values):
    ordered = sorted(values, key=functools.cmp_to_key(s3_compare))
    keys = [sequencer_order(v) for v in ordered]
    assert keys == sorted(keys)
    for a, b in itertools.pairwise(ordered):
        assert (sequencer_order(a) == sequencer_order(b)) == (s3_compare(a, b) == 0)


def test_an_older_twenty_digit_sequencer_is_older_than_a_newer_eighteen_digit_one():
    older, newer = "0055AED6DCD90281E512", "0055AED6DCD90281E6"
    assert sequencer_order(older) < sequencer_order(newer)


def test_lower_case_is_the_same_sequencer_and_garbage_is_unknown():
    assert sequencer_order("0055aed6dcd90281e5") == sequencer_order("0055AED6DCD90281E5")
    assert sequencer_order("not hex") == ""
    assert sequencer_order(None) == ""
    assert sequencer_order("F" * 65) == ""
