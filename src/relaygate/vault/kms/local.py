"""The embedded KEK: AES-256-GCM keys in a keyring file (0600) or in `RELAYGATE_KEK`.

The keyring is JSON: `{"kek_id": "...", "min_version": 1, "versions": {"1": "<base64url key>"}}`.
The highest version wraps new data keys; every version at or above `min_version` unwraps. It is
created on first start in the data directory; replicas that share a database must share it (set
`RELAYGATE_KEK` to its contents). A keyring given by the environment is read-only: rotate it by
rotating in one place and redistributing, as for any shared key.

A wrapped key is `nonce (12 bytes) || AES-GCM(kek_v, dek, aad = "relaygate-dek/v1" || context)`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relaygate.vault.keyfile import read_or_create
from relaygate.vault.kms.base import DataKey, KMSError, WrappedKey

ENV_VAR = "RELAYGATE_KEK"
FILE_NAME = "kek.json"
_AAD_PREFIX = b"relaygate-dek/v1\x00"
_NONCE = 12


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse(text: str, source: str) -> tuple[str, int, dict[int, bytes]]:
    try:
        data = json.loads(text)
        kek_id = str(data["kek_id"])
        versions = {int(v): _b64d(str(k)) for v, k in dict(data["versions"]).items()}
        min_version = int(data.get("min_version", 1))
    except (ValueError, KeyError, TypeError):
        raise KMSError(f"{source} is not a keyring") from None
    if not versions or any(len(k) != 32 for k in versions.values()):
        raise KMSError(f"{source} must hold 32-byte keys")
    return kek_id, min_version, versions


def _dump(kek_id: str, min_version: int, versions: Mapping[int, bytes]) -> str:
    return json.dumps(
        {
            "kek_id": kek_id,
            "min_version": min_version,
            "versions": {str(v): _b64e(k) for v, k in sorted(versions.items())},
        },
        indent=1,
    )


def new_keyring() -> str:
    """A fresh keyring with one version, as text."""
    return _dump(f"local-{secrets.token_hex(4)}", 1, {1: AESGCM.generate_key(256)})


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    tmp.replace(path)


class LocalKEK:
    """A KEK held in this process: a keyring file or the `RELAYGATE_KEK` variable."""

    def __init__(self, text: str, path: Path | None, source: str) -> None:
        self.kek_id, self._min, self._keys = _parse(text, source)
        self._path = path
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, environ: Mapping[str, str], data_dir: Path) -> LocalKEK:
        """The keyring from the environment, else the file in `data_dir` (created if missing)."""
        if environ.get(ENV_VAR):
            return cls(environ[ENV_VAR], None, ENV_VAR)
        path = data_dir / FILE_NAME
        return cls(read_or_create(path, new_keyring), path, FILE_NAME)

    def _reload(self) -> None:
        # Another process (a sibling worker, the CLI) may have rotated the file.
        if self._path is not None:
            self.kek_id, self._min, self._keys = _parse(
                self._path.read_text(encoding="utf-8"), FILE_NAME
            )

    def _wrap(self, version: int, dek: bytes, context: bytes) -> WrappedKey:
        nonce = os.urandom(_NONCE)
        blob = nonce + AESGCM(self._keys[version]).encrypt(nonce, dek, _AAD_PREFIX + context)
        return WrappedKey(self.kek_id, version, blob)

    def _unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        if wrapped.kek_id != self.kek_id:
            raise KMSError("wrapped under another key-encryption key")
        if wrapped.kek_version not in self._keys:
            self._reload()
        key = self._keys.get(wrapped.kek_version)
        if key is None or wrapped.kek_version < self._min:
            raise KMSError(f"key-encryption key version {wrapped.kek_version} is retired")
        blob = wrapped.blob
        try:
            return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], _AAD_PREFIX + context)
        except (InvalidTag, ValueError):
            raise KMSError("data key does not unwrap: tampered or bound elsewhere") from None

    async def generate(self, context: bytes) -> DataKey:
        """A new data key wrapped under the newest version."""
        self._reload()  # a sibling worker may have rotated: never wrap under a retired version
        dek = AESGCM.generate_key(256)
        return DataKey(dek, self._wrap(max(self._keys), dek, context))

    async def unwrap(self, wrapped: WrappedKey, context: bytes) -> bytes:
        """The plaintext data key."""
        return self._unwrap(wrapped, context)

    async def rewrap(self, wrapped: WrappedKey, context: bytes) -> WrappedKey:
        """The data key under the newest version (it never leaves this process)."""
        current = max(self._keys)
        if wrapped.kek_version == current:
            return wrapped
        return self._wrap(current, self._unwrap(wrapped, context), context)

    async def rotate(self) -> int:
        """Add a version to the keyring file and make it current."""
        if self._path is None:
            raise KMSError(f"the keyring comes from {ENV_VAR}: rotate it there")
        async with self._lock:
            self._reload()
            version = max(self._keys) + 1
            self._keys[version] = AESGCM.generate_key(256)
            _write_private(self._path, _dump(self.kek_id, self._min, self._keys))
        return version

    async def retire_below(self, version: int) -> None:
        """Drop every version below `version` from the keyring."""
        if self._path is None:
            raise KMSError(f"the keyring comes from {ENV_VAR}: retire versions there")
        async with self._lock:
            self._reload()
            if version > max(self._keys):
                raise KMSError("cannot retire the current version")
            self._min = version
            self._keys = {v: k for v, k in self._keys.items() if v >= version}
            _write_private(self._path, _dump(self.kek_id, self._min, self._keys))

    async def current_version(self) -> int:
        """The newest version."""
        self._reload()
        return max(self._keys)

    async def aclose(self) -> None:
        """Nothing to release."""
