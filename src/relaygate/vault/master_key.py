"""Where the master key comes from: `RELAYGATE_MASTER_KEY`, or a key file in the data directory.

Several replicas must share one key, so scale-out deployments set `RELAYGATE_MASTER_KEY`
(32 random bytes, base64url; `relaygate keys master` prints a fresh one). The embedded default
creates `<data_dir>/master.key` (mode 0600) on first start.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from pathlib import Path

from relaygate.vault.keyfile import read_or_create

ENV_VAR = "RELAYGATE_MASTER_KEY"
FILE_NAME = "master.key"


class MasterKeyError(ValueError):
    """The configured master key is unusable (the message never contains it)."""


def new_master_key() -> str:
    """A fresh master key in its text form."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def _decode(text: str, source: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{source} is not base64url") from None
    if len(raw) != 32:
        raise MasterKeyError(f"{source} must decode to 32 bytes, not {len(raw)}")
    return raw


def load_master_key(environ: Mapping[str, str], data_dir: Path, *, create: bool) -> bytes:
    """The master key from the environment, else from the key file (created when `create`)."""
    if environ.get(ENV_VAR):
        return _decode(environ[ENV_VAR], ENV_VAR)
    path = data_dir / FILE_NAME
    if not path.exists() and not create:
        raise MasterKeyError(f"no {ENV_VAR} and no {FILE_NAME} in the data directory")
    return _decode(read_or_create(path, new_master_key), str(path.name))
