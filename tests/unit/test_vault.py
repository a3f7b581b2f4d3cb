"""The master key and the sealer that protects signing secrets at rest."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from relaygate.cli import main
from relaygate.vault.master_key import MasterKeyError, load_master_key, new_master_key
from relaygate.vault.sealer import Sealer, SealError


def test_sealed_value_opens_only_in_its_place_and_under_its_key() -> None:
    sealer = Sealer(os.urandom(32))
    sealed = sealer.seal(b"signing secret", "api_keys/k1/signing")
    assert b"signing secret" not in sealed.encode()
    assert sealer.open(sealed, "api_keys/k1/signing") == b"signing secret"
    assert sealer.seal(b"signing secret", "api_keys/k1/signing") != sealed  # fresh nonce
    with pytest.raises(SealError):
        sealer.open(sealed, "api_keys/k2/signing")  # moved to another row
    with pytest.raises(SealError):
        Sealer(os.urandom(32)).open(sealed, "api_keys/k1/signing")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SealError):
        sealer.open(tampered, "api_keys/k1/signing")
    with pytest.raises(SealError):
        sealer.open("not sealed", "api_keys/k1/signing")


def test_master_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    first = load_master_key({}, tmp_path, create=True)
    mode = stat.S_IMODE((tmp_path / "master.key").stat().st_mode)
    assert mode == 0o600
    assert load_master_key({}, tmp_path, create=False) == first
    chosen = new_master_key()
    assert load_master_key({"RELAYGATE_MASTER_KEY": chosen}, tmp_path, create=True) != first


def test_bad_master_keys_are_explained_without_echoing_them(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError) as excinfo:
        load_master_key({"RELAYGATE_MASTER_KEY": "c2hvcnQ"}, tmp_path, create=True)
    assert "32 bytes" in str(excinfo.value) and "c2hvcnQ" not in str(excinfo.value)
    with pytest.raises(MasterKeyError):
        load_master_key({}, tmp_path / "empty", create=False)


def test_cli_prints_a_usable_master_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["keys", "master"]) == 0
    printed = capsys.readouterr().out.strip()
    assert len(load_master_key({"RELAYGATE_MASTER_KEY": printed}, tmp_path, create=False)) == 32
