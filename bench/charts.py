"""matplotlib for the benchmark charts: `requirements/bench.lock`, which `make bench` installs.

It is not a dependency of the gateway or of its tests; where it is missing, a chart is skipped
with a message."""

from __future__ import annotations

from typing import Any

MISSING = "matplotlib is not installed: chart skipped (`make install-bench` adds it)"


def pyplot() -> Any | None:
    """`matplotlib.pyplot` with the file-only backend, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
