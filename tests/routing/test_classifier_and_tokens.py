"""The complexity classifier's accuracy on the shipped labelled set, and image token counting."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from importlib import resources

from relaygate.routing.classifier import classify
from relaygate.tokens.images import image_part_tokens, tile_tokens


def _labelled() -> list[dict[str, str]]:
    text = (resources.files("relaygate.routing") / "data" / "complexity.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_classifier_sorts_the_labelled_prompts() -> None:
    rows = _labelled()
    assert len(rows) >= 80 and {r["label"] for r in rows} == {"simple", "complex"}
    right = sum(classify([{"role": "user", "content": r["prompt"]}])[0] == r["label"] for r in rows)
    assert right / len(rows) >= 0.9, right / len(rows)


def test_the_classifier_reads_the_last_user_turn_and_content_parts() -> None:
    messages = [
        {"role": "user", "content": "Prove that there are infinitely many primes, step by step."},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]},
    ]
    assert classify(messages)[0] == "simple"


def test_image_tokens_follow_the_tile_rule() -> None:
    assert tile_tokens(1024, 1024) == 765
    assert tile_tokens(2048, 4096) == 1105  # OpenAI's documented example
    assert tile_tokens(4096, 8192, "low") == 85
    assert tile_tokens(512, 512) == 255


def _png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_image_sizes_come_from_data_urls() -> None:
    url = "data:image/png;base64," + base64.b64encode(_png(2048, 4096)).decode()
    assert image_part_tokens({"type": "image_url", "image_url": {"url": url}}) == 1105
    low = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    assert image_part_tokens(low) == 85
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert image_part_tokens(remote) == 765  # unknown size: 1024x1024 assumed
