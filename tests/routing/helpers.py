"""Deployments and a controllable clock for router tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.routing.catalog import Deployment


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class _Provider:
    def __init__(self, name: str) -> None:
        self.config = ProviderConfig(name=name, type="simulator", models=[ModelConfig(name="m")])

    async def chat(  # pragma: no cover - unused
        self, body: Any, model: ModelConfig, timeout_s: float | None = None
    ) -> Any:
        raise NotImplementedError


def deployment(
    provider: str,
    *,
    window: int = 8192,
    input_price: float = 1.0,
    output_price: float = 2.0,
) -> Deployment:
    model = ModelConfig(
        name="m", context_window=window, input_price=input_price, output_price=output_price
    )
    return Deployment(_Provider(provider), model)  # type: ignore[arg-type]
