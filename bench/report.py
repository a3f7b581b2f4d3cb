"""Where benchmark runs keep their figures: `bench/results/<kind>-<UTC time>.json`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def save_results(kind: str, report: dict[str, Any]) -> Path:
    """Write `report` as `<kind>-<timestamp>.json` and say where."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"results written to {out.relative_to(ROOT)}")
    return out
