"""The `logging` settings: defaults, the environment override, errors naming the key, and the
text format."""

from __future__ import annotations

import logging

import pytest

from relaygate.config.loader import ConfigError, parse_config
from relaygate.observability.log_format import TextFormatter, rfc3339

PROVIDERS = {"providers": [{"name": "sim", "type": "simulator", "models": [{"name": "m"}]}]}


def test_defaults_are_auto_with_access_log_and_redaction() -> None:
    settings = parse_config(PROVIDERS, "test", {}).logging
    assert (settings.format, settings.access_log, settings.redact) == ("auto", True, True)


def test_the_environment_overrides_the_file() -> None:
    raw = {**PROVIDERS, "logging": {"format": "json", "access_log": False}}
    settings = parse_config(raw, "test", {"RELAYGATE_LOG_FORMAT": "text"}).logging
    assert (settings.format, settings.access_log) == ("text", False)
    assert parse_config(raw, "test", {"RELAYGATE_LOG_FORMAT": ""}).logging.format == "json"


def test_a_bad_value_names_its_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(PROVIDERS, "test", {"RELAYGATE_LOG_FORMAT": "xml"})
    assert caught.value.problems == ["logging.format: Input should be 'auto', 'json' or 'text'"]
    with pytest.raises(ConfigError) as caught:
        parse_config({**PROVIDERS, "logging": {"colour": True}}, "test", {})
    assert caught.value.problems[0].startswith("logging.colour:")


def test_text_lines_carry_the_structured_fields() -> None:
    record = logging.LogRecord(
        "relaygate.access", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    record.__dict__.update(request_id="req_1", tenant="acme", trace_id=None)
    line = TextFormatter().format(record)
    assert (
        line
        == f"{rfc3339(record.created)} INFO relaygate.access: GET /x request_id=req_1 tenant=acme"
    )


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(1796673709.5) == "2026-12-07T20:01:49.500Z"
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
