"""Validate OpenAI request bodies just enough to route them; everything else passes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relaygate.config.schema import Capability
from relaygate.errors import bad_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class ChatSpec:
    """What the router needs to know about a chat request."""

    model: str
    stream: bool
    include_usage: bool
    needs: frozenset[Capability]
    end_user: str | None


def _positive_int(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise bad_request(f"'{name}' must be a positive integer", param=name)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a string", param="model")
    return model


def _end_user(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad_request("'user' must be a string", param="user")
    return user


def _message_needs(index: int, message: Any) -> set[Capability]:
    if not isinstance(message, dict):
        raise bad_request(f"messages[{index}] must be an object", param=f"messages[{index}]")
    role = message.get("role")
    if role not in ROLES:
        raise bad_request(
            f"messages[{index}].role must be one of {', '.join(sorted(ROLES))}",
            param=f"messages[{index}].role",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise bad_request(
            f"messages[{index}].content must be a string or a list of parts",
            param=f"messages[{index}].content",
        )
    needs: set[Capability] = set()
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") in {"image_url", "input_image"}:
                needs.add("vision")
    return needs


def validate_chat(body: dict[str, Any]) -> ChatSpec:
    """Check the fields the gateway relies on; raise a 400 naming the parameter at fault."""
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    needs: set[Capability] = {"chat"}
    for index, message in enumerate(messages):
        needs |= _message_needs(index, message)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        _positive_int(body, name)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise bad_request("'tools' must be a list of tool objects", param="tools")
        if tools:
            needs.add("tools")
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in {
            "text",
            "json_object",
            "json_schema",
        }:
            raise bad_request(
                "'response_format.type' must be text, json_object or json_schema",
                param="response_format",
            )
        if fmt["type"] != "text":
            needs.add("json")
    if stream:
        needs.add("streaming")
    return ChatSpec(
        model=model,
        stream=stream,
        include_usage=bool(options and options.get("include_usage")),
        needs=frozenset(needs),
        end_user=_end_user(body),
    )


def validate_embeddings(body: dict[str, Any]) -> tuple[str, str | None]:
    """Check an embeddings request; return (model, end user)."""
    model = _model(body)
    value = body.get("input")
    ok = (isinstance(value, str) and value != "") or (
        isinstance(value, list)
        and value
        and all(
            (isinstance(v, str) and v != "")
            or (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, list) and v and all(isinstance(t, int) for t in v))
            for v in value
        )
    )
    if not ok:
        raise bad_request(
            "'input' must be a non-empty string, a list of non-empty strings, or token arrays",
            param="input",
        )
    if body.get("encoding_format", "float") not in {"float", "base64"}:
        raise bad_request("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    _positive_int(body, "dimensions")
    return model, _end_user(body)
