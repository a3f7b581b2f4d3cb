"""Anthropic's Messages API behind the OpenAI chat interface, translated both ways.

Requests: OpenAI `chat.completions` bodies become `POST /v1/messages` bodies (system prompt lifted
to the top level, turns merged so roles alternate, tool calls and tool results as content blocks,
images as image blocks). Parameters Anthropic cannot honour are refused with a 400 naming them,
never dropped silently; harmless OpenAI-only fields are ignored on purpose (`IGNORED_PARAMS`).

Answers: a Messages `message` becomes a `chat.completion`; the Messages event stream becomes
`chat.completion.chunk`s, ending with a usage chunk (`choices: []`) built from Anthropic's counts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.errors import GatewayError, UpstreamError, bad_request
from relaygate.providers.base import JSON
from relaygate.providers.http import UpstreamClient
from relaygate.providers.openai_compat import configured_headers
from relaygate.providers.sse import SSEEvent

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
MESSAGES_PATH = "/v1/messages"

FINISH_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        # A paused server-tool turn is a normal end from the client's point of view.
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
)

TRANSLATED_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "safety_identifier",
        "response_format",
    }
)

# OpenAI-only fields that change nothing about the answer: Anthropic always reports usage when
# streaming, and OpenAI's metadata/store/service tier/cache key concern OpenAI's own platform.
IGNORED_PARAMS = frozenset(
    {"stream_options", "metadata", "store", "service_tier", "prompt_cache_key"}
)

REJECTED_PARAMS: Mapping[str, str] = MappingProxyType(
    {
        "n": "Anthropic returns exactly one choice",
        "logprobs": "Anthropic does not return log probabilities",
        "top_logprobs": "Anthropic does not return log probabilities",
        "presence_penalty": "Anthropic has no presence penalty",
        "frequency_penalty": "Anthropic has no frequency penalty",
        "logit_bias": "Anthropic has no logit bias",
        "seed": "Anthropic has no seeded sampling",
        "audio": "Anthropic does not produce audio",
        "modalities": "Anthropic only produces text",
        "prediction": "Anthropic has no predicted outputs",
        "functions": "legacy function calling is not translated; use 'tools'",
        "function_call": "legacy function calling is not translated; use 'tool_choice'",
        "reasoning_effort": "reasoning effort is not translated to Anthropic's thinking settings",
        "verbosity": "Anthropic has no verbosity setting",
        "web_search_options": "OpenAI's web search is not available through Anthropic",
    }
)

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


# --- request translation -------------------------------------------------------------------


def _is_default(name: str, value: Any) -> bool:
    """Whether a rejected parameter carries its neutral value (clients often send defaults)."""
    if value is None:
        return True
    if name in ("presence_penalty", "frequency_penalty", "top_logprobs"):
        return not isinstance(value, bool) and value == 0
    if name == "n":
        return not isinstance(value, bool) and value == 1
    if name == "logprobs":
        return value is False
    if name == "logit_bias":
        return isinstance(value, dict) and not value
    if name == "modalities":
        return isinstance(value, list) and value == ["text"]
    return False


def _check_params(body: JSON) -> None:
    """Refuse every parameter that would otherwise be lost on the way to Anthropic."""
    for name, value in body.items():
        if name in TRANSLATED_PARAMS or name in IGNORED_PARAMS:
            continue
        reason = REJECTED_PARAMS.get(name)
        if reason is None:
            raise bad_request(f"'{name}' is not supported by the Anthropic provider", param=name)
        if not _is_default(name, value):
            raise bad_request(f"'{name}' is not supported: {reason}", param=name)
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise bad_request(
            "'response_format' json_object / json_schema is not supported: Anthropic has no JSON"
            " mode; describe the JSON in the prompt or use a tool",
            param="response_format",
        )


def _positive_int(body: JSON, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request(f"'{name}' must be a positive integer", param=name)
    return value


def _unit_number(body: JSON, name: str) -> float | None:
    """A number Anthropic accepts only in [0, 1] (OpenAI's temperature goes up to 2)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise bad_request(f"'{name}' must be a number between 0 and 1 for Anthropic", param=name)
    return value


def _stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return [s for s in value if s]
    raise bad_request("'stop' must be a string or a list of strings", param="stop")


def _sampling(body: JSON, model: ModelConfig) -> JSON:
    """max_tokens (required by Anthropic), temperature, top_p, stop sequences, end user."""
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    out: JSON = {"max_tokens": max_tokens or model.max_output_tokens}
    for name in ("temperature", "top_p"):
        value = _unit_number(body, name)
        if value is not None:
            out[name] = value
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    for name in ("user", "safety_identifier"):
        user = body.get(name)
        if user is not None and not isinstance(user, str):
            raise bad_request(f"'{name}' must be a string", param=name)
        if user:
            out["metadata"] = {"user_id": user}
            break
    return out


def _text_of(content: Any, param: str) -> str:
    """The text of a system/developer message: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(f"{param}[{j}] must be a text part", param=f"{param}[{j}]")
            texts.append(str(part.get("text") or ""))
        return "\n".join(texts)
    raise bad_request(f"{param} must be a string or a list of text parts", param=param)


def _image_block(part: JSON, param: str) -> JSON:
    """An OpenAI `image_url` part as an Anthropic image block (base64 data URL or http(s) URL)."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise bad_request(f"{param}.image_url.url must be a string", param=f"{param}.image_url")
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if not url.startswith("data:"):
        raise bad_request(
            f"{param}.image_url.url must be an http(s) URL or a base64 data URL",
            param=f"{param}.image_url",
        )
    header, _, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not data:
        raise bad_request(
            f"{param}.image_url.url must be a base64 data URL", param=f"{param}.image_url"
        )
    if media_type not in IMAGE_MEDIA_TYPES:
        raise bad_request(
            f"{param}: Anthropic accepts {', '.join(sorted(IMAGE_MEDIA_TYPES))} images,"
            f" not {media_type or 'an untyped image'}",
            param=f"{param}.image_url",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _content_blocks(content: Any, param: str, *, images: bool) -> list[JSON]:
    """Text (and for users, image) parts as Anthropic blocks; empty text carries nothing."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{param} must be a string or a list of parts", param=param)
    blocks: list[JSON] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise bad_request(f"{param}[{j}].{kind} must be a string", param=f"{param}[{j}]")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and images:
            blocks.append(_image_block(part, f"{param}[{j}]"))
        else:
            raise bad_request(
                f"{param}[{j}]: content part type {kind!r} is not supported by Anthropic",
                param=f"{param}[{j}].type",
            )
    return blocks


def _tool_input(raw: Any, param: str) -> JSON:
    """Parse OpenAI's JSON-string arguments: Anthropic wants the object itself."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise bad_request(f"{param} must be a JSON object encoded as a string", param=param)
    return value


def _tool_use_blocks(calls: Any, param: str) -> list[JSON]:
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise bad_request(f"{param} must be a list", param=param)
    blocks: list[JSON] = []
    for k, call in enumerate(calls):
        where = f"{param}[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or call.get("type", "function") != "function":
            raise bad_request(f"{where} must be a function tool call", param=where)
        call_id, name = call.get("id"), fn.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise bad_request(f"{where}.id must be a non-empty string", param=f"{where}.id")
        if not isinstance(name, str) or not name:
            raise bad_request(f"{where}.function.name is required", param=f"{where}.function.name")
        arguments = _tool_input(fn.get("arguments"), f"{where}.function.arguments")
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return blocks


def _assistant_blocks(message: JSON, param: str) -> list[JSON]:
    for legacy in ("function_call", "audio"):
        if message.get(legacy) is not None:
            raise bad_request(
                f"{param}.{legacy} is not supported by Anthropic", param=f"{param}.{legacy}"
            )
    text = _content_blocks(message.get("content"), f"{param}.content", images=False)
    return text + _tool_use_blocks(message.get("tool_calls"), f"{param}.tool_calls")


def _tool_result_block(message: JSON, param: str) -> JSON:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(
            f"{param}.tool_call_id must be a non-empty string", param=f"{param}.tool_call_id"
        )
    content = message.get("content")
    result: str | list[JSON]
    if content is None or isinstance(content, str):
        result = content or ""
    elif isinstance(content, list):
        result = _content_blocks(content, f"{param}.content", images=False) or ""
    else:
        raise bad_request(
            f"{param}.content must be a string or a list of text parts", param=f"{param}.content"
        )
    return {"type": "tool_result", "tool_use_id": call_id, "content": result}


def _turn_blocks(message: Any, index: int) -> tuple[str, list[JSON]]:
    """One non-system OpenAI message as (Anthropic role, content blocks)."""
    param = f"messages[{index}]"
    role = message.get("role")
    if role == "user":
        if message.get("content") is None:
            raise bad_request(f"{param}.content is required", param=f"{param}.content")
        return "user", _content_blocks(message["content"], f"{param}.content", images=True)
    if role == "assistant":
        return "assistant", _assistant_blocks(message, param)
    if role == "tool":
        return "user", [_tool_result_block(message, param)]
    raise bad_request(f"{param}.role {role!r} is not supported by Anthropic", param=f"{param}.role")


def _collapse(role: str, blocks: list[JSON]) -> JSON:
    """A turn whose only block is plain text is sent as a string, as Anthropic's examples do."""
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": role, "content": blocks[0]["text"]}
    return {"role": role, "content": blocks}


def _translate_messages(messages: Any) -> tuple[str, list[JSON]]:
    """(system prompt, alternating user/assistant turns)."""
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    system: list[str] = []
    turns: list[tuple[str, list[JSON]]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object", param=f"messages[{index}]")
        if message.get("role") in ("system", "developer"):
            text = _text_of(message.get("content"), f"messages[{index}].content")
            if text:
                system.append(text)
            continue
        role, blocks = _turn_blocks(message, index)
        if not blocks:
            raise bad_request(
                f"messages[{index}] has no content to send", param=f"messages[{index}].content"
            )
        # Anthropic needs alternating roles: consecutive turns of one role (several tool
        # results, a tool result then the user's next words) become one turn.
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    if not turns:
        raise bad_request(
            "'messages' needs at least one user or assistant message for Anthropic",
            param="messages",
        )
    return "\n\n".join(system), [_collapse(role, blocks) for role, blocks in turns]


def _tools(tools: Any) -> list[JSON]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list", param="tools")
    out: list[JSON] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type") != "function":
            raise bad_request(
                f"tools[{i}]: only function tools are supported by Anthropic",
                param=f"tools[{i}].type",
            )
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(
                f"tools[{i}].function.name is required", param=f"tools[{i}].function.name"
            )
        schema = fn.get("parameters")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise bad_request(
                f"tools[{i}].function.parameters must be an object",
                param=f"tools[{i}].function.parameters",
            )
        entry: JSON = {"name": name, "input_schema": schema}
        if isinstance(fn.get("description"), str):
            entry["description"] = fn["description"]
        if fn.get("strict") is True:
            entry["strict"] = True
        out.append(entry)
    return out


def _choice(value: Any) -> JSON | None:
    if value is None:
        return None
    simple = {"auto": "auto", "required": "any", "none": "none"}
    if isinstance(value, str) and value in simple:
        return {"type": simple[value]}
    if isinstance(value, dict) and value.get("type") == "function":
        fn = value.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise bad_request(
        "'tool_choice' must be 'auto', 'required', 'none' or a named function",
        param="tool_choice",
    )


def _tool_choice(body: JSON, has_tools: bool) -> JSON | None:
    """tool_choice with parallel_tool_calls=false folded in as disable_parallel_tool_use."""
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("'parallel_tool_calls' must be a boolean", param="parallel_tool_calls")
    choice = _choice(body.get("tool_choice"))
    if not has_tools:
        # Without tools "auto" and "none" both mean plain text, which is what Anthropic does.
        if choice is None or choice["type"] in ("auto", "none"):
            return None
        raise bad_request("'tool_choice' requires 'tools'", param="tool_choice")
    if parallel is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def build_request(body: JSON, model: ModelConfig, *, stream: bool) -> JSON:
    """The Anthropic Messages request for an OpenAI chat completions body."""
    _check_params(body)
    system, messages = _translate_messages(body.get("messages"))
    request: JSON = {"model": model.upstream_id, "messages": messages}
    if system:
        request["system"] = system
    request.update(_sampling(body, model))
    tools = _tools(body.get("tools"))
    if tools:
        request["tools"] = tools
    choice = _tool_choice(body, bool(tools))
    if choice is not None:
        request["tool_choice"] = choice
    if stream:
        request["stream"] = True
    return request


# --- answer translation --------------------------------------------------------------------


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def openai_usage(usage: Mapping[str, Any]) -> JSON:
    """Anthropic usage as OpenAI usage: cache reads and writes are part of the prompt."""
    cached = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + cached + _count(usage, "cache_creation_input_tokens")
    completion = _count(usage, "output_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's finish_reason for an Anthropic stop_reason (unknown reasons count as a stop)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _arguments(value: Any) -> str:
    return orjson.dumps(value if isinstance(value, dict) else {}).decode()


def to_completion(message: Any, provider: str) -> JSON:
    """An Anthropic `message` as an OpenAI `chat.completion`."""
    if (
        not isinstance(message, dict)
        or message.get("type") != "message"
        or not isinstance(message.get("content"), list)
    ):
        raise UpstreamError(
            502, f"provider {provider!r} sent an unexpected response", retryable=True
        )
    texts: list[str] = []
    calls: list[JSON] = []
    for block in message["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id") or ""),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name") or ""),
                        "arguments": _arguments(block.get("input")),
                    },
                }
            )
        # Thinking and server-tool blocks have no OpenAI equivalent and are not requested.
    reply: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if calls:
        reply["tool_calls"] = calls
    usage = message.get("usage")
    return {
        "id": str(message.get("id") or ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(message.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason")),
            }
        ],
        "usage": openai_usage(usage if isinstance(usage, dict) else {}),
    }


_AFTER_START = frozenset(
    {
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
)


@dataclass(slots=True)
class _ToolBlock:
    """A tool_use block being streamed: its OpenAI tool call index and what was sent."""

    index: int
    start_input: Any
    streamed: bool = False


class StreamTranslator:
    """Turns one Anthropic event stream into OpenAI chunks, event by event."""

    def __init__(self, provider: str, redact: Callable[[str], str]) -> None:
        self.provider = provider
        self.redact = redact
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.finished = False
        self._started = False
        # Keyed by Anthropic's block index; OpenAI tool call indexes count tool calls only.
        self._tools: dict[int, _ToolBlock] = {}

    def feed(self, event: SSEEvent) -> list[JSON]:
        """The chunks one event produces (often none)."""
        data = self._parse(event)
        match data.get("type", event.event):
            case "error":
                raise self._error(data)
            case "message_start":
                return self._message_start(data)
            case kind if kind in _AFTER_START and not self._started:
                raise self._protocol_error(f"{kind} before message_start")
            case "content_block_start":
                return self._block_start(data)
            case "content_block_delta":
                return self._block_delta(data)
            case "content_block_stop":
                return self._block_stop(data)
            case "message_delta":
                return self._message_delta(data)
            case "message_stop":
                self.finished = True
                return [self._chunk({}, finish_reason(self.stop_reason)), self._usage_chunk()]
            case _:
                # ping, and event types Anthropic may add later (its versioning policy allows it).
                return []

    def _parse(self, event: SSEEvent) -> JSON:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise self._protocol_error("an invalid event") from None
        if not isinstance(data, dict):
            raise self._protocol_error("an invalid event")
        return data

    def _protocol_error(self, what: str) -> UpstreamError:
        return UpstreamError(
            502, f"provider {self.provider!r} sent {what}", retryable=False, code="upstream_error"
        )

    def _error(self, data: JSON) -> UpstreamError:
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        message = self.redact(str(error.get("message") or "stream error"))[:2000]
        return UpstreamError(
            502,
            f"provider {self.provider!r} failed mid-stream: {message}",
            retryable=False,
            code="upstream_error",
        )

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def _usage_chunk(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": openai_usage(self.usage),
        }

    def _message_start(self, data: JSON) -> list[JSON]:
        message = data.get("message")
        message = message if isinstance(message, dict) else {}
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or "")
        self.created = int(time.time())
        usage = message.get("usage")
        self.usage = dict(usage) if isinstance(usage, dict) else {}
        self._started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _message_delta(self, data: JSON) -> list[JSON]:
        delta = data.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason"):
            self.stop_reason = delta["stop_reason"]
        usage = data.get("usage")
        if isinstance(usage, dict):
            # message_delta counts are cumulative: they replace message_start's where present.
            self.usage.update({k: v for k, v in usage.items() if v is not None})
        return []

    def _block_start(self, data: JSON) -> list[JSON]:
        block = data.get("content_block")
        block = block if isinstance(block, dict) else {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": str(block["text"])})]
        if block.get("type") != "tool_use":
            return []
        tool = _ToolBlock(index=len(self._tools), start_input=block.get("input"))
        self._tools[_block_index(data)] = tool
        call = {
            "index": tool.index,
            "id": str(block.get("id") or ""),
            "type": "function",
            "function": {"name": str(block.get("name") or ""), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, data: JSON) -> list[JSON]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": str(delta["text"])})]
        tool = self._tools.get(_block_index(data))
        if kind != "input_json_delta" or tool is None or not delta.get("partial_json"):
            return []
        tool.streamed = True
        call = {"index": tool.index, "function": {"arguments": str(delta["partial_json"])}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_stop(self, data: JSON) -> list[JSON]:
        tool = self._tools.get(_block_index(data))
        if tool is None or tool.streamed:
            return []
        # No argument deltas (a tool without parameters streams only ""): send the block's
        # own input so the client gets "{}" as the non-streaming answer does.
        call = {"index": tool.index, "function": {"arguments": _arguments(tool.start_input)}}
        return [self._chunk({"tool_calls": [call]})]


def _block_index(data: JSON) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else -1


# --- the provider --------------------------------------------------------------------------


class AnthropicProvider:
    """Anthropic's Messages API (api.anthropic.com or a compatible base_url)."""

    def __init__(self, config: ProviderConfig, secrets: Mapping[str, str]) -> None:
        self.config = config
        self.client = UpstreamClient(
            config,
            config.base_url or DEFAULT_BASE_URL,
            self.auth_headers(secrets),
            secrets.values(),
        )

    def auth_headers(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """x-api-key and anthropic-version, plus configured extras (which may pin the version)."""
        configured = configured_headers(self.config, secrets)
        names = {name.lower() for name in configured}
        headers = {} if "anthropic-version" in names else {"anthropic-version": ANTHROPIC_VERSION}
        api_key = secrets.get("api_key")
        # Header names are case-insensitive: drop a configured x-api-key rather than send two.
        headers.update(
            {k: v for k, v in configured.items() if not (api_key and k.lower() == "x-api-key")}
        )
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    async def chat(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """A non-streaming chat completion."""
        request = build_request(body, model, stream=False)
        client = self.client
        message = await client.post_json(MESSAGES_PATH, request, None, client.end_by(timeout_s))
        return to_completion(message, self.config.name)

    async def stream_chat(self, body: JSON, model: ModelConfig) -> AsyncIterator[JSON]:
        """A streaming chat completion; ends with a usage chunk, or raises UpstreamError."""
        request = build_request(body, model, stream=True)
        translator = StreamTranslator(self.config.name, self.client.redact)
        events = self.client.stream_events(MESSAGES_PATH, request)
        try:
            async for event in events:
                for chunk in translator.feed(event):
                    yield chunk
                if translator.finished:
                    return
        finally:
            # A consumer that stops early must close the upstream connection now, not at GC.
            if isinstance(events, AsyncGenerator):
                await events.aclose()
        raise UpstreamError(
            502,
            f"provider {self.config.name!r} ended the stream before message_stop",
            retryable=False,
            code="upstream_disconnected",
        )

    async def embed(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """Anthropic has no embeddings API."""
        raise GatewayError(
            400,
            f"model {body.get('model')!r} is served by Anthropic, which has no embeddings API",
            param="model",
            code="embeddings_not_supported",
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
