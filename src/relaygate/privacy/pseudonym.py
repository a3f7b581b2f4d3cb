"""Keyed pseudonyms for end-user identifiers (user ids, e-mail addresses) in inference metadata.

With `privacy.hash_pii`, the end user named by a request (`user` in the body, or a JWT's `sub`)
is replaced on entry by `u_` + the first 32 hex digits of HMAC-SHA256(salt, value). Limits,
budgets, usage records and the admin API all see only the pseudonym: stable per deployment (so
per-user limits and usage still work), useless without the salt. The salt comes from
`RELAYGATE_PII_SALT` or `<data_dir>/pii.salt` (0600, created on first start); replicas share it.
Client IP addresses are not recorded at all (the access log has no client address); in logs,
e-mail addresses and phone numbers become `[email:u_...]` / `[phone:u_...]`
(observability/redaction.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from relaygate.vault.keyfile import read_or_create

ENV_VAR = "RELAYGATE_PII_SALT"
FILE_NAME = "pii.salt"
PREFIX = "u_"


class Pseudonymizer:
    """Maps identifiers to keyed pseudonyms."""

    def __init__(self, salt: bytes) -> None:
        if len(salt) < 16:
            raise ValueError(f"{ENV_VAR} must be at least 16 bytes")
        self._salt = salt

    @classmethod
    def open(cls, environ: Mapping[str, str], data_dir: Path) -> Pseudonymizer:
        """The deployment's pseudonymizer (salt from the environment or the salt file)."""
        text = environ.get(ENV_VAR) or read_or_create(
            data_dir / FILE_NAME, lambda: secrets.token_urlsafe(32)
        )
        return cls(text.strip().encode())

    def __call__(self, value: str) -> str:
        """The pseudonym of `value` (a pseudonym maps to itself, so applying twice is safe)."""
        if value.startswith(PREFIX) and len(value) == len(PREFIX) + 32:
            return value
        digest = hmac.new(self._salt, value.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]
