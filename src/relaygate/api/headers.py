"""Request headers looked up through a dict, for the data-plane endpoints.

Starlette's `Headers` scans the header list on every lookup, and `get` of an absent header
raises and catches a `KeyError` inside. A data-plane request looks up about ten headers, most of
them absent (signature, cost cap, client timeouts, resumable streams), so `FastPaths` hands its
handlers a request whose headers index the list once, on the first lookup. Same semantics: names
are case-insensitive and the first of repeated headers wins; `getlist`, `raw` and the rest are
Starlette's.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request


class IndexedHeaders(Headers):
    """Starlette's immutable request headers, looked up through a dict built on first use."""

    _index: dict[str, str] | None = None

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._list:
                index.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            self._index = index
        return index

    def get(self, key: str, default: Any = None) -> Any:
        return self._lookup().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return self._lookup()[key.lower()]

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()


class IndexedRequest(Request):
    """A Starlette request whose `headers` are `IndexedHeaders`."""

    @property
    def headers(self) -> Headers:
        found: Headers | None = getattr(self, "_headers", None)
        if found is None:
            found = self._headers = IndexedHeaders(scope=self.scope)
        return found
