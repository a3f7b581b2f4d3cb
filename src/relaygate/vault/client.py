"""The operator's side of the vault API: signed admin requests from the command line.

Reads `RELAYGATE_URL` (default http://127.0.0.1:8080), `RELAYGATE_ADMIN_KEY` and
`RELAYGATE_ADMIN_SIGNING_SECRET` from the environment, never from arguments (which other users of
the machine can read in the process list), and signs every vault request with the admin key's
signing secret. Uses only the standard library.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from relaygate.auth.hmac_signing import sign_request

PREFIX = "/admin/v1/vault"


class VaultClientError(Exception):
    """The gateway refused a request (the message is the API's error message)."""


class VaultClient:
    """Signed calls to `/admin/v1/vault`."""

    def __init__(self, base_url: str, admin_key: str, signing_secret: str | None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise VaultClientError("RELAYGATE_URL must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self._admin_key = admin_key
        self._signing_secret = signing_secret
        self._key_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> VaultClient:
        """A client configured by the environment; VaultClientError naming what is missing."""
        key = environ.get("RELAYGATE_ADMIN_KEY")
        if not key:
            raise VaultClientError("set RELAYGATE_ADMIN_KEY to an admin key")
        return cls(
            environ.get("RELAYGATE_URL", "http://127.0.0.1:8080"),
            key,
            environ.get("RELAYGATE_ADMIN_SIGNING_SECRET") or None,
        )

    def _send(self, method: str, path: str, body: Any = None, *, sign: bool = True) -> Any:
        """One request to `path` (absolute, under PREFIX); its JSON."""
        data = b"" if body is None else json.dumps(body).encode()
        if sign:
            # Identical signed requests within one second would be refused as replays; a random
            # query parameter (ignored by the API) makes each request distinct.
            path += ("&" if "?" in path else "?") + "nonce=" + secrets.token_hex(8)
        headers = {"Authorization": f"Bearer {self._admin_key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if sign:
            if not self._signing_secret:
                raise VaultClientError(
                    "set RELAYGATE_ADMIN_SIGNING_SECRET to this admin key's vault signing secret"
                    " (the operator's keys: the root secret set on the gateway; other admin keys:"
                    " the one the operator issued with `relaygate vault signing-secret --key`)"
                )
            if self._key_id is None:
                self._key_id = str(self._send("GET", PREFIX + "/whoami", sign=False)["key_id"])
            headers.update(
                sign_request(self._signing_secret, method, path, data, key_id=self._key_id)
            )
        request = urllib.request.Request(  # noqa: S310 (scheme checked in __init__)
            self.base_url + path,
            data=data if body is not None else None,
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code}"
            raise VaultClientError(f"{exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise VaultClientError(f"cannot reach the gateway ({exc.reason})") from None
        return json.loads(payload) if payload else None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A signed request to `PREFIX + path`."""
        return self._send(method, PREFIX + path, body)

    def signing_secret(
        self, key_id: str | None = None, overlap_s: int | None = None
    ) -> dict[str, Any]:
        """A new vault signing secret (shown once) for this admin key, or for admin key
        `key_id`: a request signed with the current secret, like every vault request."""
        path = f"/keys/{key_id}/signing-secret" if key_id else "/signing-secret"
        body = {"overlap_s": overlap_s} if overlap_s is not None else None
        issued: dict[str, Any] = self.call("POST", path, body)
        return issued
