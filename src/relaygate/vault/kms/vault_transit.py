"""HashiCorp Vault's Transit secrets engine as the key-encryption key.

Data keys come from `POST /v1/<mount>/datakey/plaintext/<key>` (Vault generates them and returns
both forms); unwrapping is `decrypt`, and a KEK rotation is `keys/<key>/rotate` followed by
`rewrap` of every data key (Vault re-encrypts under the newest version without returning the
plaintext) and `keys/<key>/config` with `min_decryption_version`. The transit key must be created
with `derived=true`: every call then carries the envelope's associated data as `context`, and
Vault derives a per-context key, so a wrapped data key moved to another secret does not unwrap.
The stored blob is Vault's own ciphertext text (`vault:v<N>:...`), which carries its version.
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp

from relaygate.vault.kms.base import DataKey, KMSError, WrappedKey


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class VaultTransitKEK:
    """A transit key in a Vault server, over its HTTP API."""

    def __init__(
        self,
        url: str,
        token: str,
        key_name: str,
        *,
        mount: str = "transit",
        namespace: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.kek_id = f"vault-transit:{mount}/{key_name}"
        self._base = f"{url.rstrip('/')}/v1/{mount.strip('/')}"
        self._key = key_name
        self._headers = {"X-Vault-Token": token}
        if namespace:
            self._headers["X-Vault-Namespace"] = namespace
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            async with self._client().request(
                method, f"{self._base}/{path}", json=body, allow_redirects=False
            ) as response:
                payload = (
                    await response.json(content_type=None) if response.content_length != 0 else None
                )
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KMSError(f"Vault transit is unreachable ({type(exc).__name__})") from None
        except ValueError:
            raise KMSError("Vault transit answered with something other than JSON") from None
        if status >= 300:
            errors = payload.get("errors") if isinstance(payload, dict) else None
            detail = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
            raise KMSError(
                f"Vault transit refused {path.split('/')[0]} (HTTP {status}) {detail}".strip()
            )
        return (payload or {}).get("data") if isinstance(payload, dict) else None

    @staticmethod
    def _version(ciphertext: str) -> int:
        parts = ciphertext.split(":", 2)
        if len(parts) != 3 or parts[0] != "vault" or not parts[1].startswith("v"):
            raise KMSError("not a Vault transit ciphertext")
        try:
            return int(parts[1][1:])
        except ValueError:
            raise KMSError("not a Vault transit ciphertext") from None

    def _wrapped(self, ciphertext: str) -> WrappedKey:
        return WrappedKey(self.kek_id, self._version(ciphertext), ciphertext.encode())

    async def generate(self, context: bytes) -> DataKey:
        """Vault generates the data key and returns it in both forms."""
        data = await self._call(
            "POST", f"datakey/plaintext/{self._key}", {"context": _b64(context), "bits": 256}
        )
        plaintext = base64.b64decode(data["plaintext"])
        return DataKey(plaintext, self._wrapped(str(data["ciphertext"])))

    async def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """`decrypt` with the same context."""
        if wrapped.kek_id != self.kek_id:
            raise KMSError("wrapped under another key-encryption key")
        data = await self._call(
            "POST",
            f"decrypt/{self._key}",
            {"ciphertext": wrapped.blob.decode(), "context": _b64(context)},
        )
        return base64.b64decode(data["plaintext"])

    async def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        """Vault's `rewrap`: the plaintext data key never leaves Vault."""
        data = await self._call(
            "POST",
            f"rewrap/{self._key}",
            {"ciphertext": wrapped.blob.decode(), "context": _b64(context)},
        )
        return self._wrapped(str(data["ciphertext"]))

    async def _info(self) -> dict[str, Any]:
        data = await self._call("GET", f"keys/{self._key}")
        if not isinstance(data, dict):
            raise KMSError("Vault transit returned no key information")
        return data

    async def check(self) -> None:
        """Refuse a key that cannot bind data keys to their secret (not derived)."""
        info = await self._info()
        if not info.get("derived"):
            raise KMSError(f"transit key {self._key!r} must be created with derived=true")

    async def rotate(self) -> int:
        """`keys/<key>/rotate`; returns the new latest version."""
        await self._call("POST", f"keys/{self._key}/rotate")
        return await self.current_version()

    async def retire_below(self, version: int) -> None:
        """Set `min_decryption_version`: Vault itself refuses older ciphertexts from then on."""
        await self._call("POST", f"keys/{self._key}/config", {"min_decryption_version": version})

    async def current_version(self) -> int:
        """The key's `latest_version`."""
        return int((await self._info())["latest_version"])

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
