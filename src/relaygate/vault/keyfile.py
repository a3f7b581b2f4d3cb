"""Private key files in the data directory: created once with mode 0600, then only read."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The file's text; if it does not exist, it is created (0600) holding `make()`.

    Creation is exclusive, so when several workers start at once exactly one writes the key and
    every one reads the same value.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(make() + "\n")
    return path.read_text(encoding="utf-8")
