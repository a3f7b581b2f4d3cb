"""Timestamp probes for `bench.timeline`, loaded by the gateway through PYTHONPATH.

Python imports `sitecustomize` at start-up. When `RELAYGATE_TIMELINE_OUT` is set, this wraps a
fixed list of functions on one request's path with `perf_counter_ns()` marks; SIGUSR2 writes the
marks of every request finished since the last signal to that file (JSON) and clears them. One
set of marks is kept at a time, so requests must not overlap: use it at low rates only.
Each probe costs a few microseconds, which the timeline includes. If a probed function has been
renamed or moved, start-up fails with the missing name, so the list cannot silently rot.
"""

from __future__ import annotations

import os

if os.environ.get("RELAYGATE_TIMELINE_OUT"):
    import functools
    import importlib
    import inspect
    import json
    import signal
    import time
    from typing import Any

    _now = time.perf_counter_ns
    _current: dict[str, int] = {}
    _finished: list[dict[str, int]] = []

    def _wrap(module: str, path: str, label: str) -> None:
        owner: Any = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        original = getattr(owner, name)  # AttributeError names what moved
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def probe(*args: Any, **kwargs: Any) -> Any:
                _current.setdefault(f"{label} >", _now())
                try:
                    return await original(*args, **kwargs)
                finally:
                    _current[f"{label} <"] = _now()

        else:

            @functools.wraps(original)
            def probe(*args: Any, **kwargs: Any) -> Any:
                _current.setdefault(f"{label} >", _now())
                try:
                    return original(*args, **kwargs)
                finally:
                    _current[f"{label} <"] = _now()

        setattr(owner, name, probe)

    def _install() -> None:
        from relaygate.api import fastpath
        from relaygate.server.protocol import GracefulHttpToolsProtocol

        # The gateway's protocol class overrides data_received (the head-size bound), so the
        # first mark goes on that class, not on uvicorn's base class.
        received = GracefulHttpToolsProtocol.data_received

        def data_received(self: Any, data: bytes) -> None:
            _current.clear()
            _current["request bytes received"] = _now()
            received(self, data)

        GracefulHttpToolsProtocol.data_received = data_received  # type: ignore[method-assign]

        dispatch = fastpath.FastPaths.__call__

        async def call(self: Any, scope: Any, receive: Any, send: Any) -> None:
            _current["handler start"] = _now()

            async def marked_send(message: Any) -> None:
                label = "response headers" if message["type"] == "http.response.start" else "body"
                _current.setdefault(f"send {label} >", _now())
                await send(message)
                _current[f"send {label} <"] = _now()

            await dispatch(self, scope, receive, marked_send)
            _current["handler end"] = _now()
            _finished.append(dict(_current))

        fastpath.FastPaths.__call__ = call  # type: ignore[method-assign]
        for module, path, label in (
            (
                "uvicorn.protocols.http.httptools_impl",
                "HttpToolsProtocol.on_headers_complete",
                "server: headers parsed",
            ),
            ("relaygate.api.accounting", "read_body", "read body"),
            ("relaygate.api.accounting", "authenticate", "authenticate"),
            ("relaygate.api.accounting", "parse_json", "parse JSON"),
            ("relaygate.api.chat", "validate_chat", "validate"),
            ("relaygate.api.chat", "resolve", "resolve route"),
            ("relaygate.api.accounting", "RequestLedger.enforce", "limits and budgets"),
            ("relaygate.api.accounting", "RequestLedger.route_plan", "routing plan"),
            ("relaygate.providers.http1", "Pool.post", "upstream request"),
            ("relaygate.providers.http1", "_Connection.data_received", "upstream bytes"),
            ("relaygate.providers.http", "UpstreamClient.post_json", "upstream call"),
            ("relaygate.routing.router", "Router._observe", "router statistics"),
            ("relaygate.api.accounting", "RequestLedger.finish", "usage record"),
        ):
            _wrap(module, path, label)

    def _dump(*_: object) -> None:
        with open(os.environ["RELAYGATE_TIMELINE_OUT"], "w") as out:
            json.dump(_finished, out)
        _finished.clear()

    _install()
    signal.signal(signal.SIGUSR2, _dump)
