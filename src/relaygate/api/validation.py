"""Validate OpenAI request bodies: every field the gateway or a provider adapter reads is checked
for its type and bounds; every other field passes through untouched (decision 0026).

`prefix` names where the body sits for the client: "" for a plain request, "body." for a job or
a batch line, so `param` reads `body.messages[0].role`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from relaygate.api import checks
from relaygate.config.schema import BoundsConfig, Capability
from relaygate.errors import bad_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
FORMATS = frozenset({"text", "json_object", "json_schema"})
TOOL_CHOICES = frozenset({"none", "auto", "required"})
ENCODINGS = frozenset({"float", "base64"})
NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
TOKEN_ID_MAX = 2**32 - 1
NAME_CHARS = 256
EVERY = 2**62  # "no count bound": the body size bounds the list

# `metadata` keys the built-in simulator reads (docs/providers.md), with the range each accepts.
SIMULATOR_TTFT_MS_MAX = 600_000.0
SIMULATOR_RATE_MAX = 1e9


@dataclass(frozen=True, slots=True)
class ChatSpec:
    """What the router needs to know about a chat request."""

    model: str
    stream: bool
    include_usage: bool
    needs: frozenset[Capability]
    end_user: str | None


def _model(body: dict[str, Any], prefix: str) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a string", param=prefix + "model")
    return checks.string(model, prefix + "model", checks.MAX_MODEL_CHARS)


def _end_user(body: dict[str, Any], prefix: str) -> str | None:
    user = body.get("user")
    if user is None:
        return None
    param = prefix + "user"
    return checks.storable(checks.string(user, param, checks.MAX_USER_CHARS), param)


def _metadata(body: dict[str, Any], bounds: BoundsConfig, prefix: str) -> None:
    """`metadata` is an object; the keys the simulator reads hold numbers within their range.

    Other keys and values pass through as they are (providers other than OpenAI may accept
    what OpenAI's own rules, at most 16 string pairs, would not)."""
    meta = body.get("metadata")
    if meta is None:
        return
    checks.obj(meta, prefix + "metadata")
    ranges = (
        ("simulator_reply_tokens", 0.0, float(bounds.max_output_tokens)),
        ("simulator_ttft_ms", 0.0, SIMULATOR_TTFT_MS_MAX),
        ("simulator_tokens_per_s", 0.0, SIMULATOR_RATE_MAX),
    )
    for key, low, high in ranges:
        if key not in meta:
            continue
        raw = meta[key]
        try:
            value = float(raw) if isinstance(raw, str | int | float) else math.nan
        except (ValueError, OverflowError):
            value = math.nan
        if isinstance(raw, bool):
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise bad_request(
                f"'{prefix}metadata.{key}' must be a number from {low:g} to {high:g}",
                param=f"{prefix}metadata.{key}",
            )


def _content(param: str, content: Any) -> bool:
    """Check a message's `content`; whether it holds an image."""
    if content is None or isinstance(content, str):
        return False
    if not isinstance(content, list):
        raise bad_request(f"'{param}' must be a string or a list of parts", param=param)
    image = False
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        checks.obj(part, where)
        kind = checks.string(part.get("type"), where + ".type", NAME_CHARS, empty=False)
        if kind == "text":
            checks.string(part.get("text"), where + ".text")
        elif kind in {"image_url", "input_image"}:
            image = True
            url = part.get("image_url")
            if kind == "image_url" and not isinstance(url, (str, dict)):
                raise bad_request(
                    f"'{where}.image_url' must be an object", param=where + ".image_url"
                )
            if isinstance(url, dict):
                checks.optional_string(url, "url", where + ".image_url.")
                checks.optional_string(url, "detail", where + ".image_url.", NAME_CHARS)
    return image


def _tool_calls(param: str, calls: Any) -> None:
    for k, call in enumerate(checks.array(calls, param, EVERY)):
        where = f"{param}[{k}]"
        checks.obj(call, where)
        checks.optional_string(call, "id", where + ".")
        checks.optional_string(call, "type", where + ".", NAME_CHARS)
        function = call.get("function")
        if function is not None:
            checks.obj(function, where + ".function")
            checks.optional_string(function, "name", where + ".function.")
            checks.optional_string(function, "arguments", where + ".function.")


def _message(index: int, message: Any, prefix: str) -> bool:
    """Check one message; whether it holds an image."""
    if type(message) is dict and len(message) == 2:
        # The common case, `{"role": ..., "content": "text"}`, in a few operations.
        role = message.get("role")
        if type(role) is str and role in ROLES and type(message.get("content")) is str:
            return False
    param = f"{prefix}messages[{index}]"
    checks.obj(message, param)
    if not checks.member(message.get("role"), ROLES):
        raise bad_request(
            f"{param}.role must be one of {', '.join(sorted(ROLES))}", param=param + ".role"
        )
    checks.optional_string(message, "name", param + ".", NAME_CHARS)
    checks.optional_string(message, "tool_call_id", param + ".")
    calls = message.get("tool_calls")
    if calls is not None:
        _tool_calls(param + ".tool_calls", calls)
    return _content(param + ".content", message.get("content"))


def _tools(body: dict[str, Any], bounds: BoundsConfig, prefix: str) -> bool:
    """Check `tools`; whether there are any."""
    tools = body.get("tools")
    if tools is None:
        return False
    for i, tool in enumerate(checks.array(tools, prefix + "tools", bounds.max_tools)):
        where = f"{prefix}tools[{i}]"
        checks.obj(tool, where)
        kind = tool.get("type", "function")
        checks.string(kind, where + ".type", NAME_CHARS)
        function = tool.get("function")
        if function is None:
            if kind == "function":
                raise bad_request(f"'{where}.function' is required", param=where + ".function")
            continue
        checks.obj(function, where + ".function")
        checks.string(function.get("name"), where + ".function.name", NAME_CHARS, empty=False)
        checks.optional_string(function, "description", where + ".function.")
        if function.get("parameters") is not None:
            checks.obj(function["parameters"], where + ".function.parameters")
        checks.boolean(function, "strict", where + ".function.")
    return bool(tools)


def _tool_choice(body: dict[str, Any], prefix: str) -> None:
    choice = body.get("tool_choice")
    param = prefix + "tool_choice"
    if choice is None or (isinstance(choice, str) and choice in TOOL_CHOICES):
        return
    if not isinstance(choice, dict):
        raise bad_request(f"'{param}' must be 'none', 'auto', 'required' or an object", param=param)
    checks.optional_string(choice, "type", param + ".", NAME_CHARS)
    function = choice.get("function")
    if function is not None:
        checks.obj(function, param + ".function")
        checks.string(function.get("name"), param + ".function.name", NAME_CHARS, empty=False)


def _response_format(body: dict[str, Any], prefix: str) -> bool:
    """Check `response_format`; whether it asks for JSON."""
    fmt = body.get("response_format")
    if fmt is None:
        return False
    param = prefix + "response_format"
    if not isinstance(fmt, dict) or not checks.member(fmt.get("type"), FORMATS):
        raise bad_request(f"'{param}.type' must be text, json_object or json_schema", param=param)
    if fmt["type"] == "json_schema":
        spec = checks.obj(fmt.get("json_schema"), param + ".json_schema")
        checks.optional_string(spec, "name", param + ".json_schema.", NAME_CHARS)
        checks.optional_string(spec, "description", param + ".json_schema.")
        if spec.get("schema") is not None:
            checks.obj(spec["schema"], param + ".json_schema.schema")
        checks.boolean(spec, "strict", param + ".json_schema.")
    return bool(fmt["type"] != "text")


def _stop(body: dict[str, Any], bounds: BoundsConfig, prefix: str) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    param = prefix + "stop"
    if not isinstance(stop, list):
        raise bad_request(f"'{param}' must be a string or a list of strings", param=param)
    for k, item in enumerate(checks.array(stop, param, bounds.max_stop_sequences)):
        checks.string(item, f"{param}[{k}]")


FieldCheck = Callable[[dict[str, Any], str, BoundsConfig, str], None]

# The optional chat fields read by the gateway or an adapter that need no answer back, each with
# its check (`tools` and `response_format` also decide the capabilities, so they run apart).
OPTIONAL_CHAT_FIELDS: Mapping[str, FieldCheck] = MappingProxyType(
    {
        "max_tokens": lambda b, n, bounds, p: checks.optional_integer(
            b, n, 1, bounds.max_output_tokens, p
        ),
        "max_completion_tokens": lambda b, n, bounds, p: checks.optional_integer(
            b, n, 1, bounds.max_output_tokens, p
        ),
        "n": lambda b, n, bounds, p: checks.optional_integer(b, n, 1, bounds.max_n, p),
        **{name: lambda b, n, _bounds, p: checks.number(b, n, p) for name in NUMBERS},
        "seed": lambda b, n, _bounds, p: checks.optional_integer(b, n, -(2**63), 2**63 - 1, p),
        "logprobs": lambda b, n, _bounds, p: checks.boolean(b, n, p),
        "top_logprobs": lambda b, n, _bounds, p: checks.optional_integer(b, n, 0, 20, p),
        "parallel_tool_calls": lambda b, n, _bounds, p: checks.boolean(b, n, p),
        "reasoning_effort": lambda b, n, _bounds, p: checks.optional_string(b, n, p, NAME_CHARS),
        "safety_identifier": lambda b, n, _bounds, p: checks.optional_string(
            b, n, p, checks.MAX_USER_CHARS
        ),
        "stop": lambda b, _n, bounds, p: _stop(b, bounds, p),
        "tool_choice": lambda b, _n, _bounds, p: _tool_choice(b, p),
        "metadata": lambda b, _n, bounds, p: _metadata(b, bounds, p),
    }
)


def validate_chat(body: dict[str, Any], bounds: BoundsConfig, prefix: str = "") -> ChatSpec:
    """Check the fields the gateway and its adapters read; raise a 400 naming the parameter.

    The body's nesting is the caller's to check first (`checks.depth`; `admit` does it for
    every data-plane request)."""
    model = _model(body, prefix)
    messages = checks.array(
        body.get("messages"), prefix + "messages", bounds.max_messages, empty=False
    )
    needs: set[Capability] = {"chat"}
    for index, message in enumerate(messages):
        if _message(index, message, prefix):
            needs.add("vision")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request(f"'{prefix}stream' must be a boolean", param=prefix + "stream")
    options = body.get("stream_options")
    if options is not None:
        checks.obj(options, prefix + "stream_options")
        checks.boolean(options, "include_usage", prefix + "stream_options.")
    for name in body:  # only the optional fields present cost anything
        check = OPTIONAL_CHAT_FIELDS.get(name)
        if check is not None:
            check(body, name, bounds, prefix)
    if _tools(body, bounds, prefix):
        needs.add("tools")
    if _response_format(body, prefix):
        needs.add("json")
    if stream:
        needs.add("streaming")
    return ChatSpec(
        model=model,
        stream=stream,
        include_usage=bool(options and options.get("include_usage")),
        needs=frozenset(needs),
        end_user=_end_user(body, prefix),
    )


def _token_ids(value: list[Any], param: str) -> None:
    for k, token in enumerate(value):
        checks.integer(token, f"{param}[{k}]", 0, TOKEN_ID_MAX)


def _input(value: Any, bounds: BoundsConfig, prefix: str) -> int:
    """A non-empty string, or a list of one kind: strings, token ids, or token-id lists.
    Returns how many inputs that is."""
    param = prefix + "input"
    if isinstance(value, str) and value:
        return 1
    wrong = bad_request(
        f"'{param}' must be a non-empty string, a list of non-empty strings, a list of token"
        " ids, or a list of token-id lists (one kind, not mixed)",
        param=param,
    )
    if not isinstance(value, list) or not value:
        raise wrong
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):
        _token_ids(value, param)  # one input of token ids: the body size bounds its length
        return 1
    checks.array(value, param, bounds.max_embedding_inputs)
    if isinstance(first, str):
        for k, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise bad_request(
                    f"'{param}[{k}]' must be a non-empty string", param=f"{param}[{k}]"
                )
        return len(value)
    if not isinstance(first, list):
        raise wrong
    for k, item in enumerate(value):
        if not isinstance(item, list) or not item:
            raise bad_request(
                f"'{param}[{k}]' must be a non-empty list of token ids", param=f"{param}[{k}]"
            )
        _token_ids(item, f"{param}[{k}]")
    return len(value)


def validate_embeddings(
    body: dict[str, Any], bounds: BoundsConfig, prefix: str = ""
) -> tuple[str, str | None]:
    """Check an embeddings request; return (model, end user). Nesting: as `validate_chat`."""
    model = _model(body, prefix)
    inputs = _input(body.get("input"), bounds, prefix)
    if not checks.member(body.get("encoding_format", "float"), ENCODINGS):
        raise bad_request(
            f"'{prefix}encoding_format' must be 'float' or 'base64'",
            param=prefix + "encoding_format",
        )
    checks.optional_integer(body, "dimensions", 1, bounds.max_embedding_dimensions, prefix)
    dimensions = body.get("dimensions")
    if dimensions is not None and inputs * dimensions > bounds.max_embedding_values:
        raise bad_request(
            f"{inputs} inputs of {dimensions} dimensions are more than the"
            f" {bounds.max_embedding_values} values one request may ask for",
            param=prefix + "dimensions",
        )
    _metadata(body, bounds, prefix)
    return model, _end_user(body, prefix)


def validate_request(url: str, body: dict[str, Any], bounds: BoundsConfig, prefix: str) -> None:
    """Check the body of a job or batch line for `url` (a chat or embeddings endpoint),
    its nesting included."""
    checks.depth(body, bounds.max_depth, prefix)
    if url == "/v1/embeddings":
        validate_embeddings(body, bounds, prefix)
    else:
        validate_chat(body, bounds, prefix)
