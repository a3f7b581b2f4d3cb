"""A fast in-process complexity classifier for `classify` routes (e.g. `auto`).

No model, no download: a weighted sum of surface features of the conversation's last user turn
(length, code, mathematics, reasoning and design vocabulary, several questions or constraints,
short factual or chit-chat patterns), squashed into 0..1. At or above the route's threshold
(default 0.5) a prompt is "complex". It runs in tens of microseconds. Its accuracy on the
labelled prompts shipped in `data/complexity.jsonl` is checked by the test suite and reported by
`python -m bench.routing --classifier`; the weights were set by hand against that set, so treat
the figure as a sanity check, not a held-out score.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

_CODE = re.compile(
    r"```|\bdef |\bclass |\bfunction\b|\bSELECT\b|\breturn\b|=>|\bfunc\b|\bimport\b|"
    r"#include|</?\w+>|\$\w+|\bSQL\b|\bquery\b|\bunit tests?\b|\bscript\b"
)
_MATH = re.compile(
    r"\bprove\b|\bderive\b|\btheorem\b|\bintegral\b|\bequation|\bprobability\b|\bvariance\b|"
    r"\bexpected value\b|\binduction\b|\bformula|\^\d|\d\s*[+\-*/=]\s*\d.*[=<>]"
)
_REASONING = re.compile(
    r"\b(analy[sz]e|compare|design|architect\w*|optimi[sz]e|refactor|debug|trade-?offs?|"
    r"evaluate|critique|strategy|plan\b|explain (why|how)|step[- ]by[- ]step|implement|"
    r"algorithm|complexity|specification|invariants?|investigation|justify|recommend\w*|"
    r"security|race conditions?|distributed|migration|estimate|model the|walk me through|"
    r"identify|explain the difference|mathematically|essay|lesson plan|assumptions?|"
    r"sensitivity|closed-form|irrational|obligations|ambiguit\w+)",
    re.IGNORECASE,
)
_SIMPLE = re.compile(
    r"^(hi|hello|hey|thanks|thank you)\b|\b(translate|define|synonym|spell|convert|capital of|"
    r"what is the (capital|plural|opposite|chemical symbol)|how do you say|fun fact|"
    r"tagline|title for|alt text)\b",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*]|\d+[.)])\s+", re.MULTILINE)

BIAS = -1.6


def _last_user_text(messages: Iterable[Any]) -> str:
    text = ""
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                text = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return text


def complexity(text: str) -> float:
    """A score in 0..1: how likely `text` needs a strong model."""
    words = len(text.split())
    z = BIAS
    z += 0.9 if words > 60 else 0.5 if words > 25 else 0.0
    z += 1.6 if _CODE.search(text) else 0.0
    z += 1.4 if _MATH.search(text) else 0.0
    z += min(2, len(_REASONING.findall(text))) * 1.1
    z += 0.6 if text.count("?") > 1 or len(_LIST_ITEM.findall(text)) >= 3 else 0.0
    z -= 1.5 if _SIMPLE.search(text) and words < 25 else 0.0
    return 1 / (1 + math.exp(-2 * z))


def classify(messages: Iterable[Any], threshold: float = 0.5) -> tuple[str, float]:
    """('simple' or 'complex', score) for a chat request's messages."""
    value = complexity(_last_user_text(messages))
    return ("complex" if value >= threshold else "simple"), value
