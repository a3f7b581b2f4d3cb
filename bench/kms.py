"""What one data-key unwrap costs with each key-encryption-key provider.

Local keyring, HashiCorp Vault transit (against the test suite's fake transit server on
127.0.0.1, so the figure is one local HTTP round trip plus the fake's own work; a real Vault adds
its network distance), and AWS KMS (against moto in process: botocore's request building and
parsing, no network; a real region adds its round trip, typically milliseconds).

    .venv/bin/python -m bench.kms [--iterations 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from relaygate.vault.envelope import SecretAddress
from relaygate.vault.kms.base import KeyEncryptionKey
from relaygate.vault.kms.local import LocalKEK

ADDRESS = SecretAddress("acme", "production", "openai", 1).associated_data()


async def _time(kek: KeyEncryptionKey, iterations: int) -> tuple[float, float]:
    data_key = await kek.generate(ADDRESS)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        await kek.unwrap(data_key.wrapped, ADDRESS)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def _print(label: str, figures: tuple[float, float]) -> None:
    print(f"{label:<40} p50 {figures[0] * 1e3:7.3f} ms  p99 {figures[1] * 1e3:7.3f} ms per unwrap")


async def _transit(iterations: int, url: str) -> tuple[float, float]:
    from relaygate.vault.kms.vault_transit import VaultTransitKEK

    kek = VaultTransitKEK(url, "bench-token", "k")
    try:
        return await _time(kek, iterations)
    finally:
        await kek.aclose()


async def _aws(iterations: int) -> tuple[float, float]:
    import boto3  # type: ignore[import-untyped]
    from moto import mock_aws

    from relaygate.vault.kms.aws import AwsKmsKEK

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
        return await _time(AwsKmsKEK(key, region="us-east-1"), iterations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _print("local keyring", asyncio.run(_time(LocalKEK.open({}, Path(tmp)), args.iterations)))
    import httpx
    from tests.fakes.vault_transit import FakeVaultTransit
    from tests.support.servers import serve_in_thread

    fake = FakeVaultTransit("bench-token")
    with serve_in_thread(fake.app) as url:
        headers = {"X-Vault-Token": "bench-token"}
        httpx.post(f"{url}/v1/transit/keys/k", json={"derived": True}, headers=headers)
        _print("Vault transit (fake, 127.0.0.1)", asyncio.run(_transit(args.iterations, url)))
    _print("AWS KMS (moto, in process)", asyncio.run(_aws(args.iterations)))


if __name__ == "__main__":
    main()
