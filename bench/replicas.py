"""Proof that limits, budgets and revocation hold across replicas.

Starts three `relaygate serve` processes that share one PostgreSQL database and one Redis, then:

1. a key limited to 60 requests per minute gets 180 requests spread over the three replicas:
   60 are admitted (plus at most the refill of one request per second while the test runs);
2. a key with a $1.00 daily hard cap sends $0.05 requests concurrently to all three: the spend
   never passes $1.00 by more than one reservation;
3. a key revoked through one replica is refused by all three within 5 s.

Run it yourself (PostgreSQL and Redis must be reachable):

    .venv/bin/python -m bench.replicas \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1/test \\
        --redis-url redis://127.0.0.1:6379/0

The test suite runs the same proof (tests/scaleout/test_replicas.py) on a fresh database.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procs import free_port, random_key
from relaygate.vault.master_key import new_master_key

RPM = 60
REQUESTS = 180
BUDGET_USD = 1.00
REQUEST_COST_USD = 0.05  # 10 output tokens at $5,000 per million
REVOCATION_DEADLINE_S = 5.0


@dataclass
class Replica:
    """One gateway process."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path


@dataclass
class ProofResult:
    """What the proof measured."""

    admitted: int
    refused: int
    other: int
    elapsed_s: float
    allowed_max: int
    budget_admitted: int
    spent_usd: float
    revocation_s: list[float]

    def problems(self) -> list[str]:
        """Every way the result breaks a guarantee (empty = proven)."""
        out = []
        if self.other:
            out.append(f"{self.other} requests answered neither 200 nor 429")
        if not RPM <= self.admitted <= self.allowed_max:
            out.append(f"rate limit admitted {self.admitted}, expected {RPM}..{self.allowed_max}")
        if self.spent_usd > BUDGET_USD + REQUEST_COST_USD + 1e-9:
            out.append(f"budget overshot: spent ${self.spent_usd:.4f} of ${BUDGET_USD:.2f}")
        if self.spent_usd < BUDGET_USD - REQUEST_COST_USD - 1e-9:
            out.append(f"budget under-used: ${self.spent_usd:.4f} of ${BUDGET_USD:.2f}")
        if len(self.revocation_s) != 3 or max(self.revocation_s) > REVOCATION_DEADLINE_S:
            out.append(f"revocation took {self.revocation_s} s (limit {REVOCATION_DEADLINE_S})")
        return out

    def report(self) -> str:
        """A human-readable summary."""
        return "\n".join(
            [
                f"rate limit {RPM}/min, {REQUESTS} requests over 3 replicas in "
                f"{self.elapsed_s:.2f} s: {self.admitted} admitted, {self.refused} refused "
                f"(allowed {RPM}..{self.allowed_max} with refill)",
                f"budget ${BUDGET_USD:.2f}/day, ${REQUEST_COST_USD:.2f} requests: "
                f"{self.budget_admitted} admitted, spent ${self.spent_usd:.4f}",
                "revocation seen by each replica after: "
                + ", ".join(f"{s:.2f} s" for s in self.revocation_s),
            ]
        )


def _config(database_url: str, redis_url: str, prefix: str) -> dict[str, Any]:
    return {
        "server": {
            "database_url": database_url,
            "redis_url": redis_url,
            "redis_prefix": prefix,
            "policy_refresh_s": 1.0,
        },
        "providers": [
            {
                "name": "simulator",
                "type": "simulator",
                "simulator": {"ttft_ms": 0, "tokens_per_s": 100000, "max_reply_tokens": 10},
                "models": [{"name": "sim-priced", "input_price": 0.0, "output_price": 5000.0}],
            }
        ],
        "routes": [{"name": "priced", "targets": ["simulator/sim-priced"]}],
    }


@contextmanager
def replicas(
    workdir: Path, database_url: str, redis_url: str, admin_key: str, count: int = 3
) -> Iterator[list[Replica]]:
    """`count` gateway processes sharing the database and Redis."""
    config_path = workdir / "relaygate.yaml"
    prefix = f"rgproof:{uuid.uuid4().hex[:8]}:"
    config_path.write_text(yaml.safe_dump(_config(database_url, redis_url, prefix)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYGATE_")}
    env.update(
        {
            "RELAYGATE_ADMIN_KEY": admin_key,
            "RELAYGATE_DEFAULT_KEY": random_key(),
            "RELAYGATE_MASTER_KEY": new_master_key(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    started: list[Replica] = []
    try:
        for index in range(count):
            port = free_port()
            log = workdir / f"replica-{index}.log"
            command = [sys.executable, "-m", "relaygate", "serve", "--config", str(config_path)]
            process = subprocess.Popen(
                [*command, "--port", str(port)],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                env={**env, "RELAYGATE_DATA_DIR": str(workdir / f"data-{index}")},
            )
            started.append(Replica(process, f"http://127.0.0.1:{port}", log))
            _wait_ready(started[-1])
        yield started
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(30)
            except subprocess.TimeoutExpired:
                replica.process.kill()


def _wait_ready(replica: Replica) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise RuntimeError(f"replica exited early:\n{replica.log.read_text()}")
        try:
            if httpx.get(replica.base_url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"replica did not become ready:\n{replica.log.read_text()}")


async def _admin(
    client: httpx.AsyncClient, replica: Replica, admin_key: str, path: str, body: Any
) -> Any:
    response = await client.post(
        f"{replica.base_url}/admin/v1{path}",
        json=body,
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    if response.status_code >= 300:
        raise RuntimeError(f"admin {path}: {response.status_code} {response.text}")
    return response.json()


def _chat(max_tokens: int = 10) -> dict[str, Any]:
    return {
        "model": "priced",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello"}],
    }


async def _wait_policy(client: httpx.AsyncClient, nodes: list[Replica], key: str) -> None:
    # A new key is live on every replica after one refresh interval; wait until all answer.
    deadline = time.monotonic() + 10
    for node in nodes:
        while time.monotonic() < deadline:
            response = await client.get(
                node.base_url + "/v1/models", headers={"Authorization": f"Bearer {key}"}
            )
            if response.status_code == 200:
                break
            await asyncio.sleep(0.1)


async def _prove(nodes: list[Replica], admin_key: str) -> ProofResult:
    tenant = f"proof-{uuid.uuid4().hex[:6]}"
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await _admin(client, nodes[0], admin_key, "/tenants", {"id": tenant, "name": tenant})
        keys = [
            await _admin(client, nodes[0], admin_key, f"/tenants/{tenant}/keys", {"name": name})
            for name in ("limited", "budgeted")
        ]
        limited, budgeted = keys
        await _admin(
            client,
            nodes[0],
            admin_key,
            f"/tenants/{tenant}/limits",
            {"scope": "key", "subject": limited["id"], "rpm": RPM},
        )
        await _admin(
            client,
            nodes[0],
            admin_key,
            f"/tenants/{tenant}/budgets",
            {
                "scope": "key",
                "subject": budgeted["id"],
                "period": "day",
                "limit_usd": BUDGET_USD,
                "hard": True,
            },
        )
        await asyncio.sleep(2.5)  # more than two refresh intervals: every replica has the policy
        await _wait_policy(client, nodes, limited["key"])

        async def call(index: int, key: str) -> int:
            node = nodes[index % len(nodes)]
            response = await client.post(
                node.base_url + "/v1/chat/completions",
                json=_chat(),
                headers={"Authorization": f"Bearer {key}"},
            )
            return response.status_code

        started = time.monotonic()
        statuses = await asyncio.gather(*(call(i, limited["key"]) for i in range(REQUESTS)))
        elapsed = time.monotonic() - started
        admitted = statuses.count(200)
        refused = statuses.count(429)

        budget_statuses = await asyncio.gather(*(call(i, budgeted["key"]) for i in range(60)))
        spent = await _spent(client, nodes[1], admin_key, tenant, budgeted["id"])

        await _admin(
            client, nodes[1], admin_key, f"/tenants/{tenant}/keys/{limited['id']}/revoke", {}
        )
        revoked_at = time.monotonic()
        seen: list[float] = []
        for node in nodes:
            while time.monotonic() - revoked_at < REVOCATION_DEADLINE_S + 5:
                response = await client.get(
                    node.base_url + "/v1/models",
                    headers={"Authorization": f"Bearer {limited['key']}"},
                )
                if response.status_code == 401:
                    seen.append(time.monotonic() - revoked_at)
                    break
                await asyncio.sleep(0.05)
    return ProofResult(
        admitted=admitted,
        refused=refused,
        other=REQUESTS - admitted - refused,
        elapsed_s=elapsed,
        allowed_max=RPM + math.ceil(elapsed * RPM / 60),
        budget_admitted=budget_statuses.count(200),
        spent_usd=spent,
        revocation_s=seen,
    )


async def _spent(
    client: httpx.AsyncClient, node: Replica, admin_key: str, tenant: str, key_id: str
) -> float:
    # Usage records are written in batches by every replica: wait until all have landed.
    total = -1.0
    for _ in range(50):
        response = await client.get(
            f"{node.base_url}/admin/v1/usage",
            params={"tenant": tenant, "key": key_id, "group_by": "key"},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        response.raise_for_status()
        rows = response.json()["data"]
        current = sum(float(r["cost_usd"]) for r in rows)
        if current == total:
            return current
        total = current
        await asyncio.sleep(0.6)
    return total


def prove(database_url: str, redis_url: str, workdir: Path) -> ProofResult:
    """Run the whole proof against fresh gateway processes in `workdir`."""
    admin_key = random_key()
    with replicas(workdir, database_url, redis_url, admin_key) as nodes:
        return asyncio.run(_prove(nodes, admin_key))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relaygate-replicas-") as tmp:
        result = prove(args.database_url, args.redis_url, Path(tmp))
    print(result.report())
    problems = result.problems()
    for problem in problems:
        print("FAILED:", problem)
    print("all three guarantees hold" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
