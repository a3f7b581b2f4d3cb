"""A fake HashiCorp Vault transit engine that follows its documented HTTP API.

Implements what Relaygate uses, with real cryptography: `keys/:name` (create with `derived`, read),
`keys/:name/rotate`, `keys/:name/config` (`min_decryption_version`), `datakey/plaintext/:name`,
`decrypt/:name`, `rewrap/:name`. Responses are `{"data": {...}}`, errors `{"errors": [...]}` with
Vault's status codes (403 without a valid `X-Vault-Token`, 400 for bad input). Derived keys use
HKDF-SHA256 with the request's `context` as info; ciphertexts are `vault:v<N>:<base64>`.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@dataclass
class TransitKey:
    derived: bool
    versions: dict[int, bytes] = field(default_factory=lambda: {1: os.urandom(32)})
    min_decryption_version: int = 1

    @property
    def latest(self) -> int:
        return max(self.versions)


def _error(status: int, *messages: str) -> web.Response:
    return web.json_response({"errors": list(messages)}, status=status)


class FakeVaultTransit:
    """The aiohttp app; `calls` counts operations by name."""

    def __init__(self, token: str, mount: str = "transit") -> None:
        self.token = token
        self.keys: dict[str, TransitKey] = {}
        self.calls: dict[str, int] = {}
        self.app = web.Application(middlewares=[self._auth])
        base = f"/v1/{mount}"
        self.app.router.add_post(base + "/keys/{name}", self.create_key)
        self.app.router.add_get(base + "/keys/{name}", self.read_key)
        self.app.router.add_post(base + "/keys/{name}/rotate", self.rotate)
        self.app.router.add_post(base + "/keys/{name}/config", self.config)
        self.app.router.add_post(base + "/datakey/{kind}/{name}", self.datakey)
        self.app.router.add_post(base + "/decrypt/{name}", self.decrypt)
        self.app.router.add_post(base + "/rewrap/{name}", self.rewrap)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("X-Vault-Token") != self.token:
            return _error(403, "permission denied")
        operation = request.path.split("/")[3]
        self.calls[operation] = self.calls.get(operation, 0) + 1
        response: web.StreamResponse = await handler(request)
        return response

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        body = await request.json()
        return body if isinstance(body, dict) else {}

    def _key(self, request: web.Request) -> TransitKey | None:
        return self.keys.get(request.match_info["name"])

    @staticmethod
    def _cipher(key: TransitKey, version: int, context: str | None) -> AESGCM:
        material = key.versions[version]
        if key.derived:
            assert context is not None
            material = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=base64.b64decode(context)
            ).derive(material)
        return AESGCM(material)

    def _check_context(self, key: TransitKey, body: dict[str, Any]) -> web.Response | None:
        context = body.get("context")
        if key.derived and not context:
            return _error(
                400,
                "missing 'context' for key derivation; the key was created using a derived key",
            )
        if context:
            try:
                base64.b64decode(context, validate=True)
            except (binascii.Error, ValueError):
                return _error(400, "failed to base64-decode context")
        return None

    def _open(self, key: TransitKey, ciphertext: str, context: str | None) -> bytes | web.Response:
        parts = ciphertext.split(":", 2)
        if len(parts) != 3 or parts[0] != "vault" or not parts[1].startswith("v"):
            return _error(400, "invalid ciphertext: no prefix")
        try:
            version = int(parts[1][1:])
            raw = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            return _error(400, "invalid ciphertext: version number could not be decoded")
        if version < key.min_decryption_version:
            return _error(400, "ciphertext or signature version is disallowed by policy (too old)")
        if version not in key.versions:
            return _error(400, "invalid key version")
        try:
            return self._cipher(key, version, context).decrypt(raw[:12], raw[12:], None)
        except (InvalidTag, ValueError):
            return _error(400, "cipher: message authentication failed")

    def _seal(self, key: TransitKey, plaintext: bytes, context: str | None) -> str:
        nonce = os.urandom(12)
        sealed = self._cipher(key, key.latest, context).encrypt(nonce, plaintext, None)
        return f"vault:v{key.latest}:" + base64.b64encode(nonce + sealed).decode()

    async def create_key(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        name = request.match_info["name"]
        if name not in self.keys:
            self.keys[name] = TransitKey(derived=bool(body.get("derived", False)))
        return web.Response(status=204)

    async def read_key(self, request: web.Request) -> web.Response:
        key = self._key(request)
        if key is None:
            return _error(404)
        return web.json_response(
            {
                "data": {
                    "name": request.match_info["name"],
                    "type": "aes256-gcm96",
                    "derived": key.derived,
                    "latest_version": key.latest,
                    "min_decryption_version": key.min_decryption_version,
                    "min_encryption_version": 0,
                    "keys": {str(v): 1700000000 for v in key.versions},
                }
            }
        )

    async def rotate(self, request: web.Request) -> web.Response:
        key = self._key(request)
        if key is None:
            return _error(400, "key not found")
        key.versions[key.latest + 1] = os.urandom(32)
        return await self.read_key(request)

    async def config(self, request: web.Request) -> web.Response:
        key = self._key(request)
        if key is None:
            return _error(400, "no existing key named was found")
        body = await self._body(request)
        version = int(body.get("min_decryption_version", key.min_decryption_version))
        if version > key.latest:
            return _error(
                400,
                "cannot set min decryption version to a version greater than the latest version",
            )
        key.min_decryption_version = version
        return await self.read_key(request)

    async def datakey(self, request: web.Request) -> web.Response:
        key = self._key(request)
        kind = request.match_info["kind"]
        if key is None:
            return _error(400, "encryption key not found")
        if kind not in ("plaintext", "wrapped"):
            return _error(400, "invalid path type")
        body = await self._body(request)
        if (bad := self._check_context(key, body)) is not None:
            return bad
        bits = int(body.get("bits", 256))
        if bits not in (128, 256, 512):
            return _error(400, "invalid bit length")
        plaintext = os.urandom(bits // 8)
        data = {
            "ciphertext": self._seal(key, plaintext, body.get("context")),
            "key_version": key.latest,
        }
        if kind == "plaintext":
            data["plaintext"] = base64.b64encode(plaintext).decode()
        return web.json_response({"data": data})

    async def _unsealed(
        self, request: web.Request
    ) -> tuple[TransitKey, bytes, str | None] | web.Response:
        """The key, plaintext and context of a decrypt or rewrap request, or its error."""
        key = self._key(request)
        if key is None:
            return _error(400, "encryption key not found")
        body = await self._body(request)
        if (bad := self._check_context(key, body)) is not None:
            return bad
        opened = self._open(key, str(body.get("ciphertext", "")), body.get("context"))
        if isinstance(opened, web.Response):
            return opened
        return key, opened, body.get("context")

    async def decrypt(self, request: web.Request) -> web.Response:
        found = await self._unsealed(request)
        if isinstance(found, web.Response):
            return found
        plaintext = base64.b64encode(found[1]).decode()
        return web.json_response({"data": {"plaintext": plaintext}})

    async def rewrap(self, request: web.Request) -> web.Response:
        found = await self._unsealed(request)
        if isinstance(found, web.Response):
            return found
        key, plaintext, context = found
        ciphertext = self._seal(key, plaintext, context)
        return web.json_response({"data": {"ciphertext": ciphertext, "key_version": key.latest}})
