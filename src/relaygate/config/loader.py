"""Load, override and validate the configuration; explain every error by its key path."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from relaygate.config.defaults import embedded_default, embedded_route_names
from relaygate.config.schema import GatewayConfig

# Environment variables that override `server` settings (documented in docs/configuration.md).
SERVER_OVERRIDES = {
    "RELAYGATE_HOST": "host",
    "RELAYGATE_PORT": "port",
    "RELAYGATE_WORKERS": "workers",
    "RELAYGATE_DATA_DIR": "data_dir",
    "RELAYGATE_DATABASE_URL": "database_url",
    "RELAYGATE_MAX_BODY_BYTES": "max_body_bytes",
    "RELAYGATE_HEARTBEAT_INTERVAL_S": "heartbeat_interval_s",
    "RELAYGATE_LOG_LEVEL": "log_level",
    "RELAYGATE_REDIS_URL": "redis_url",
    "RELAYGATE_REDIS_PREFIX": "redis_prefix",
}
# ... and `logging` settings.
LOGGING_OVERRIDES = {"RELAYGATE_LOG_FORMAT": "format"}


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists each error as 'key.path: message'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def explain(self) -> str:
        """A multi-line, human-readable report."""
        lines = [f"{self.source}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"function-after[_check_type_requirements(), ProviderConfig]"}:
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(root)"


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(p for p in item["loc"] if not str(p).startswith("function-"))
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{_key_path(loc)}: {message}")
    return problems


def _apply_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    server = dict(raw.get("server") or {})
    for variable, key in SERVER_OVERRIDES.items():
        if variable in environ and environ[variable] != "":
            server[key] = environ[variable]
    logging_ = dict(raw.get("logging") or {})
    for variable, key in LOGGING_OVERRIDES.items():
        if environ.get(variable):
            logging_[key] = environ[variable]
    return {**raw, "server": server, **({"logging": logging_} if logging_ else {})}


def parse_config(
    raw: object, source: str, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate an already-parsed document (with environment overrides applied)."""
    environ = os.environ if environ is None else environ
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(root): the file must contain a mapping of settings"])
    try:
        return GatewayConfig.model_validate(_apply_overrides(raw, environ))
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Load the file at `path` (or the embedded default when None) and validate it."""
    if path is None:
        return parse_config(embedded_default(), "embedded default", environ)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"(file): cannot read: {exc.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(source, [f"(yaml): invalid YAML at {where}"]) from None
    return parse_config(raw if raw is not None else {}, source, environ)


def log_routes_in_effect(config: GatewayConfig, path: str | Path | None) -> None:
    """Say at start which routes a configuration file puts in effect: a file replaces the
    embedded default whole, so its built-in routes (`fast`, ...) exist only if the file declares
    them, and a client asking for one gets `404 model_not_found`."""
    if path is None:
        return
    log = logging.getLogger("relaygate.config")
    declared = [route.name for route in config.routes]
    missing = [name for name in embedded_route_names() if name not in declared]
    replaced = (
        f"; the built-in route(s) {', '.join(missing)} of the default configuration are not"
        " in effect"
        if missing
        else ""
    )
    if declared:
        log.info("%s: routes in effect: %s%s", path, ", ".join(declared), replaced)
    else:
        log.warning(
            "%s declares no routes: clients must name a model as provider/model%s",
            path,
            replaced,
        )
