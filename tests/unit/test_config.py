"""Configuration loading: every error names its key path; secrets are references only."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaygate.cli import main
from relaygate.config.loader import ConfigError, load_config, parse_config
from relaygate.config.secrets import provider_secrets

GOOD = """
server:
  port: 9000
providers:
  - name: openai
    type: openai
    api_key: env:OPENAI_API_KEY
    models:
      - name: gpt-4o-mini
        context_window: 128000
        input_price: 0.15
        output_price: 0.6
        capabilities: [chat, streaming, tools, json, vision]
routes:
  - name: auto
    targets: [openai/gpt-4o-mini]
"""


def _problems(raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "test", environ={})
    return info.value.problems


def test_embedded_default_is_valid() -> None:
    config = load_config(None, environ={})
    assert config.providers[0].type == "simulator"
    assert {r.name for r in config.routes} == {"fast", "smart", "auto"}


def test_good_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    config = load_config(path, environ={})
    assert config.server.port == 9000
    assert config.providers[0].models[0].upstream_id == "gpt-4o-mini"


def test_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    config = load_config(path, environ={"RELAYGATE_PORT": "9100", "RELAYGATE_DATA_DIR": "/srv/x"})
    assert config.server.port == 9100
    assert config.server.data_dir == Path("/srv/x")
    assert config.server.resolved_database_url() == "sqlite+aiosqlite:////srv/x/relaygate.db"


def test_literal_secret_is_rejected_with_its_path() -> None:
    problems = _problems(
        {
            "providers": [
                {
                    "name": "o",
                    "type": "openai",
                    "api_key": "sk-literal-secret-value",
                    "models": [{"name": "m"}],
                }
            ]
        }
    )
    assert len(problems) == 1
    assert problems[0].startswith("providers[0].api_key: must be a secret reference")
    assert "sk-literal-secret-value" not in problems[0]


def test_secret_header_needs_a_reference() -> None:
    problems = _problems(
        {
            "providers": [
                {
                    "name": "o",
                    "type": "openai_compatible",
                    "base_url": "http://x",
                    "headers": {"X-Api-Key": "abc"},
                    "models": [{"name": "m"}],
                }
            ]
        }
    )
    assert problems[0].startswith("providers[0].headers")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"providers": []}, "providers: List should have at least 1 item"),
        (
            {"providers": [{"name": "o", "type": "nope", "models": [{"name": "m"}]}]},
            "providers[0].type: Input should be",
        ),
        (
            {
                "providers": [
                    {
                        "name": "o",
                        "type": "simulator",
                        "models": [{"name": "m", "context_window": -1}],
                    }
                ]
            },
            "providers[0].models[0].context_window: Input should be greater than 0",
        ),
        (
            {
                "providers": [
                    {"name": "o", "type": "simulator", "models": [{"name": "m"}], "colour": "red"}
                ]
            },
            "providers[0].colour: Extra inputs are not permitted",
        ),
        (
            {
                "providers": [
                    {
                        "name": "a",
                        "type": "azure",
                        "api_key": "env:K",
                        "base_url": "http://x",
                        "models": [{"name": "m"}],
                    }
                ]
            },
            "providers[0]: providers of type 'azure' need an api_version",
        ),
        (
            {
                "providers": [{"name": "o", "type": "simulator", "models": [{"name": "m"}]}],
                "routes": [{"name": "r", "targets": ["o/missing"]}],
            },
            "(root): route 'r' targets",
        ),
        (
            {
                "server": {"port": 70000},
                "providers": [{"name": "o", "type": "simulator", "models": [{"name": "m"}]}],
            },
            "server.port: Input should be less than or equal to 65535",
        ),
    ],
)
def test_errors_name_the_key_path(raw: dict[str, object], expected: str) -> None:
    assert any(p.startswith(expected) for p in _problems(raw)), _problems(raw)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("providers:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "line" in info.value.problems[0]


def test_missing_environment_secret_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    config = load_config(path, environ={})
    with pytest.raises(ConfigError) as info:
        provider_secrets(config, {})
    assert info.value.problems == [
        "providers[0].api_key: environment variable OPENAI_API_KEY is not set"
    ]
    assert provider_secrets(config, {"OPENAI_API_KEY": "sk-x"}) == {"openai": {"api_key": "sk-x"}}


def test_check_config_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["check-config", str(path)]) == 0
    assert "ok (1 providers, 1 models, 1 routes)" in capsys.readouterr().out
    path.write_text(GOOD.replace("port: 9000", "port: many"))
    assert main(["check-config", str(path)]) == 1
    assert "server.port: Input should be a valid integer" in capsys.readouterr().err


def test_version_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("relaygate 0.")


def test_example_config_in_docs_is_valid() -> None:
    docs = Path(__file__).parents[2] / "docs" / "examples" / "relaygate.yaml"
    config = load_config(docs, environ={})
    assert {p.type for p in config.providers} >= {
        "openai",
        "azure",
        "openai_compatible",
        "anthropic",
        "gemini",
        "simulator",
    }
