"""Image input tokens the way OpenAI bills them (GPT-4o family tile rule).

`detail: low` costs 85 tokens. Otherwise the image is scaled to fit within 2048x2048, then so that
its shorter side is at most 768, and costs 85 + 170 per 512-pixel tile. Dimensions are read from
the header of a `data:` URL (PNG, GIF, JPEG, WebP); for a remote URL, which the gateway does not
fetch, a 1024x1024 image is assumed (765 tokens at high detail).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct

BASE = 85
PER_TILE = 170
UNKNOWN_SIZE = (1024, 1024)


def tile_tokens(width: int, height: int, detail: str = "auto") -> int:
    """Tokens of a `width` x `height` image at `detail`."""
    if detail == "low":
        return BASE
    if width <= 0 or height <= 0:
        width, height = UNKNOWN_SIZE
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return BASE + PER_TILE * math.ceil(w / 512) * math.ceil(h / 512)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's first bytes, or None if the format is not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(
                data[27:30], "little"
            )
        if kind == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_part_tokens(part: dict[str, object]) -> int:
    """Tokens of one `image_url` content part."""
    image = part.get("image_url")
    url, detail = "", "auto"
    if isinstance(image, dict):
        url = str(image.get("url", ""))
        detail = str(image.get("detail", "auto"))
    elif isinstance(image, str):
        url = image
    size = None
    if url.startswith("data:") and "," in url:
        header, _, payload = url.partition(",")
        if header.endswith(";base64"):
            try:
                # The first few KB are enough for every header format above.
                size = image_size(
                    base64.b64decode(payload[:65536] + "=" * (-len(payload[:65536]) % 4))
                )
            except (binascii.Error, ValueError):
                size = None
    width, height = size or UNKNOWN_SIZE
    return tile_tokens(width, height, detail)
