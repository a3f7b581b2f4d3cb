"""What resolving one vault credential costs a request.

Measures `CredentialBroker.resolve` (find the secret for the request's scope, unwrap its data
key with the KEK, AES-GCM decrypt, count the use for the audit log) with the embedded local KEK,
with the data-key cache off (the default) and on. Remote KMS costs add their round trip to the
unwrap step; see `bench/kms.py`.

    .venv/bin/python -m bench.vault [--iterations 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from relaygate.vault.broker import CredentialBroker
from relaygate.vault.envelope import SecretAddress, encrypt
from relaygate.vault.kms.local import LocalKEK
from relaygate.vault.scope import RequestScope, request_scope
from relaygate.vault.snapshot import ActiveSecret, VaultSnapshot


async def _measure(iterations: int, cache_s: float, data_dir: Path) -> list[float]:
    kek = LocalKEK.open({}, data_dir)
    address = SecretAddress("acme", "production", "openai", 1)
    sealed = await encrypt(kek, address, b"sk-bench-" + b"x" * 40)
    snapshot = VaultSnapshot(
        owned={("acme", "production", "openai"): ActiveSecret("s1", address, sealed)}
    )
    broker = CredentialBroker(kek, snapshot, None, data_key_cache_s=cache_s)
    samples = []
    for n in range(iterations):
        with request_scope(RequestScope("acme", "production", "k1", f"req_{n}")):
            start = time.perf_counter()
            await broker.resolve("openai", "openai")
            samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, cache_s in (
            ("local KEK, no cache (default)", 0.0),
            ("local KEK, cache 60 s", 60.0),
        ):
            samples = asyncio.run(_measure(args.iterations, cache_s, Path(tmp)))
            samples.sort()
            print(
                f"{label:<32} p50 {statistics.median(samples) * 1e6:6.1f} µs"
                f"  p99 {samples[int(len(samples) * 0.99)] * 1e6:6.1f} µs per resolve"
            )


if __name__ == "__main__":
    main()
