"""The per-snapshot memo of principals and routes (policy/memo.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from relaygate.api.accounting import resolve
from relaygate.config.schema import ModelConfig
from relaygate.errors import GatewayError
from relaygate.policy.memo import SnapshotMemo
from relaygate.policy.principal import Principal
from relaygate.policy.snapshot import KeyPolicy, PolicySnapshot
from relaygate.routing.catalog import Deployment, Route


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
    old.routes.get("k", lambda: "from the old snapshot")
    assert new.routes.get("k", lambda: "made anew") == "made anew"


def _key(allowed: set[str]) -> KeyPolicy:
    return KeyPolicy("k1", "hash", "acme", "live", "tenant", allowed_models=frozenset(allowed))


def _gateway(snapshot: PolicySnapshot) -> Any:
    provider = SimpleNamespace(config=SimpleNamespace(name="sim"))
    routes = {
        name: Route(name, (Deployment(provider, ModelConfig(name=name)),))
        for name in ("fast", "smart")
    }
    return SimpleNamespace(policy=snapshot, catalog=SimpleNamespace(resolve=routes.get))


def test_a_route_is_remembered_for_the_snapshot_it_was_resolved_in() -> None:
    key = _key({"fast", "smart"})
    gw = _gateway(PolicySnapshot(version=1, keys_by_id={"k1": key}))
    principal = Principal.of_key(key, "bearer")
    first, _ = resolve(gw, principal, "smart", frozenset())
    again, _ = resolve(gw, principal, "smart", frozenset())
    assert first is again and first.name == "smart"
    gw.policy = PolicySnapshot(version=2, keys_by_id={"k1": _key({"fast"})})
    with pytest.raises(GatewayError) as refused:
        resolve(gw, Principal.of_key(gw.policy.keys_by_id["k1"], "bearer"), "smart", frozenset())
    assert refused.value.status == 404


def test_a_principal_from_an_older_snapshot_does_not_fill_the_new_memo() -> None:
    # A reload can land while a signed request's signature is checked, or a job runs as the
    # principal it was created with: its key's allowlist must not be remembered as the new one.
    stale = Principal.of_key(_key({"fast", "smart"}), "hmac")
    current = _key({"fast"})
    gw = _gateway(PolicySnapshot(version=2, keys_by_id={"k1": current}))
    route, _ = resolve(gw, stale, "smart", frozenset())  # as before: its own key decides
    assert route.name == "smart"
    with pytest.raises(GatewayError) as refused:
        resolve(gw, Principal.of_key(current, "bearer"), "smart", frozenset())
    assert refused.value.status == 404
