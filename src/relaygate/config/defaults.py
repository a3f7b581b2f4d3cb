"""The embedded default configuration: the simulator provider, so the gateway works with no keys."""

from __future__ import annotations

from typing import Any


def embedded_default() -> dict[str, Any]:
    """A fresh copy of the zero-configuration setup used when no file is given."""
    return {
        "providers": [
            {
                "name": "simulator",
                "type": "simulator",
                "simulator": {"ttft_ms": 40, "tokens_per_s": 400, "max_reply_tokens": 48},
                "models": [
                    {
                        "name": "sim-small",
                        "context_window": 16384,
                        "max_output_tokens": 4096,
                        "input_price": 0.15,
                        "output_price": 0.60,
                        "cached_input_price": 0.075,
                        "capabilities": ["chat", "streaming", "tools", "json"],
                    },
                    {
                        "name": "sim-large",
                        "context_window": 131072,
                        "max_output_tokens": 16384,
                        "input_price": 2.50,
                        "output_price": 10.00,
                        "cached_input_price": 1.25,
                        "capabilities": ["chat", "streaming", "tools", "json", "vision"],
                    },
                    {
                        "name": "sim-embed",
                        "context_window": 8192,
                        "max_output_tokens": 1,
                        "input_price": 0.02,
                        "capabilities": ["embeddings"],
                        "embedding_dimensions": 256,
                    },
                ],
            }
        ],
        "routes": [
            {"name": "fast", "targets": ["simulator/sim-small"]},
            {"name": "smart", "targets": ["simulator/sim-large"]},
            {"name": "auto", "targets": ["simulator/sim-small", "simulator/sim-large"]},
        ],
    }


def embedded_route_names() -> list[str]:
    """The routes the embedded default declares (`fast`, `smart`, `auto`)."""
    return [route["name"] for route in embedded_default()["routes"]]
