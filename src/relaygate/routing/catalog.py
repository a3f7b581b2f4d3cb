"""Public model names and the deployments behind them.

A request's `model` may be a route alias (`auto`, `fast`, ...), a `provider/model` reference, or a
bare model name when exactly one provider declares it and no route shadows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from relaygate.config.schema import Capability, ClassifyConfig, GatewayConfig, ModelConfig
from relaygate.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Deployment:
    """One provider model that can serve a request."""

    provider: Provider
    model: ModelConfig
    # "provider/model", the name breakers and statistics know it by: made once, read per request.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.provider.config.name}/{self.model.name}")

    @property
    def provider_name(self) -> str:
        """The provider's configured name."""
        return self.provider.config.name


@dataclass(frozen=True, slots=True)
class Route:
    """A public name and its deployments (in the order written), or a classifier's choice."""

    name: str
    deployments: tuple[Deployment, ...]
    latency_slo_ms: float | None = None
    classify: ClassifyConfig | None = None

    def supporting(self, needs: frozenset[Capability]) -> tuple[Deployment, ...]:
        """The deployments whose model has every capability in `needs`."""
        return tuple(d for d in self.deployments if needs <= d.model.capabilities)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Capabilities at least one deployment offers."""
        caps: frozenset[Capability] = frozenset()
        for d in self.deployments:
            caps |= d.model.capabilities
        return caps


class Catalog:
    """Resolves public model names; built once from the configuration."""

    def __init__(self, config: GatewayConfig, providers: Mapping[str, Provider]) -> None:
        routes: dict[str, Route] = {}
        bare: dict[str, list[Deployment]] = {}
        for pc in config.providers:
            for model in pc.models:
                dep = Deployment(providers[pc.name], model)
                routes[dep.key] = Route(dep.key, (dep,))
                bare.setdefault(model.name, []).append(dep)
        for rc in config.routes:
            deps: list[Deployment] = []
            for target in rc.targets:
                deps.extend(routes[target].deployments)
            routes[rc.name] = Route(rc.name, tuple(deps), rc.latency_slo_ms, rc.classify)
        for name, deps in bare.items():
            if len(deps) == 1 and name not in routes:
                routes[name] = Route(name, tuple(deps))
        self._routes = routes
        self._aliases = [rc.name for rc in config.routes]

    def resolve(self, name: str) -> Route | None:
        """The route for a public model name, or None."""
        return self._routes.get(name)

    def listed(self) -> list[Route]:
        """What `GET /v1/models` shows: aliases first, then every provider/model reference."""
        names = self._aliases + sorted(n for n in self._routes if "/" in n)
        return [self._routes[n] for n in names]
