"""Private key files in the data directory: created once with mode 0600, then only read."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The file's text; if it does not exist, it is created (0600) holding `make()`.

    The key is written to a private temporary file that is then linked to `path`, which fails if
    `path` exists: when several processes start at once exactly one key is published, complete,
    and every process reads the same value (none can read a file still being written).
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = make() + "\n"
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: exclusive creation instead
            _create_exclusive(path, text)
        finally:
            os.unlink(temporary)
    return path.read_text(encoding="utf-8")


def _create_exclusive(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
