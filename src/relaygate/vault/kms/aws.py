"""AWS KMS as the key-encryption key (install with `pip install 'relaygate[aws]'`).

`GenerateDataKey` (AES_256) gives each secret version its data key; `Decrypt` unwraps it;
`ReEncrypt` rewraps under the key's current material without the plaintext leaving KMS. The
envelope's associated data travels as the encryption context `{"relaygate": <base64>}`, so a
wrapped key moved to another secret does not decrypt. Credentials come from the standard AWS
chain (environment, profile, instance role); none is ever in Relaygate's configuration.

Versions: KMS keeps the same key id across rotations (`RotateKeyOnDemand`) and embeds the backing
key in each ciphertext. The version Relaygate records is 1 + the number of rotations
(`ListKeyRotations`). KMS never refuses ciphertexts of older backing keys, so `retire_below` is
a no-op here: after a rewrap nothing depends on them, and AWS keeps them for you.

boto3 is synchronous; every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from relaygate.vault.kms.base import DataKey, KMSError, WrappedKey

CONTEXT_KEY = "relaygate"


def _context(context: bytes) -> dict[str, str]:
    return {CONTEXT_KEY: base64.b64encode(context).decode()}


class AwsKmsKEK:
    """One KMS key, by id, ARN or alias."""

    def __init__(self, key_id: str, *, region: str | None = None, endpoint_url: str | None = None):
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError:
            raise KMSError(
                "vault.kms 'aws_kms' needs boto3: pip install 'relaygate[aws]'"
            ) from None
        self.kek_id = f"aws-kms:{key_id}"
        self._key_id = key_id
        self._client: Any = boto3.client(
            "kms",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=5
            ),
        )

    async def _call(self, operation: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return await asyncio.to_thread(getattr(self._client, operation), **params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise KMSError(f"AWS KMS refused {operation} ({code})") from None
        except BotoCoreError as exc:
            raise KMSError(f"AWS KMS failed {operation} ({type(exc).__name__})") from None

    async def current_version(self) -> int:
        """1 + the number of rotations of the key."""
        rotations = 0
        params: dict[str, Any] = {"KeyId": self._key_id}
        while True:
            page = await self._call("list_key_rotations", **params)
            rotations += len(page.get("Rotations", []))
            if not page.get("Truncated"):
                return rotations + 1
            params["Marker"] = page["NextMarker"]

    async def generate(self, context: bytes) -> DataKey:
        """`GenerateDataKey` with the envelope's context."""
        result = await self._call(
            "generate_data_key",
            KeyId=self._key_id,
            KeySpec="AES_256",
            EncryptionContext=_context(context),
        )
        version = await self.current_version()
        return DataKey(
            result["Plaintext"], WrappedKey(self.kek_id, version, result["CiphertextBlob"])
        )

    async def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """`Decrypt` with the same context (and the key id pinned)."""
        if wrapped.kek_id != self.kek_id:
            raise KMSError("wrapped under another key-encryption key")
        result = await self._call(
            "decrypt",
            CiphertextBlob=wrapped.blob,
            KeyId=self._key_id,
            EncryptionContext=_context(context),
        )
        plaintext: bytes = result["Plaintext"]
        return plaintext

    async def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        """`ReEncrypt` under the key's current material; the data key stays inside KMS."""
        result = await self._call(
            "re_encrypt",
            CiphertextBlob=wrapped.blob,
            SourceKeyId=self._key_id,
            SourceEncryptionContext=_context(context),
            DestinationKeyId=self._key_id,
            DestinationEncryptionContext=_context(context),
        )
        return WrappedKey(self.kek_id, await self.current_version(), result["CiphertextBlob"])

    async def rotate(self) -> int:
        """`RotateKeyOnDemand`; returns the new version number."""
        await self._call("rotate_key_on_demand", KeyId=self._key_id)
        return await self.current_version()

    async def retire_below(self, version: int) -> None:
        """Nothing to do: KMS keeps older backing keys and cannot be told to refuse them."""

    async def aclose(self) -> None:
        """Nothing to release (boto3 clients pool internally)."""
