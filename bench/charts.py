"""matplotlib for the benchmark charts, when it is installed (it is not a dependency)."""

from __future__ import annotations

from typing import Any

MISSING = "matplotlib is not installed: chart skipped (pip install matplotlib to draw it)"


def pyplot() -> Any | None:
    """`matplotlib.pyplot` with the file-only backend, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt
