"""The per-snapshot memo of principals and routes (policy/memo.py)."""

from __future__ import annotations

import pytest

from relaygate.policy.memo import SnapshotMemo
from relaygate.policy.snapshot import PolicySnapshot


def test_a_value_is_made_once_per_key() -> None:
    memo = SnapshotMemo()
    made: list[str] = []

    def make(name: str) -> str:
        made.append(name)
        return name.upper()

    assert memo.get(("route", "a"), lambda: make("a")) == "A"
    assert memo.get(("route", "a"), lambda: make("again")) == "A"
    assert memo.get(("route", "b"), lambda: make("b")) == "B"
    assert made == ["a", "b"]


def test_a_failure_is_not_kept() -> None:
    memo = SnapshotMemo()

    def refuse() -> str:
        raise LookupError("unknown model")

    with pytest.raises(LookupError):
        memo.get(("route", "x"), refuse)
    assert len(memo) == 0
    assert memo.get(("route", "x"), lambda: "found later") == "found later"


def test_the_memo_is_bounded() -> None:
    memo = SnapshotMemo(limit=3)
    for n in range(10):
        memo.get(n, lambda n=n: n * 2)
        assert len(memo) <= 3
    assert memo.get(9, lambda: -1) == 18  # the latest survives the reset


def test_every_snapshot_starts_with_its_own_memo() -> None:
    old, new = PolicySnapshot(version=1), PolicySnapshot(version=2)
    old.memo.get("k", lambda: "from the old snapshot")
    assert new.memo.get("k", lambda: "made anew") == "made anew"
