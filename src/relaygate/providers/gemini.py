"""Google Gemini (Generative Language API v1beta), translated to and from OpenAI's format.

Chat goes to `models/{id}:generateContent`, streaming to `models/{id}:streamGenerateContent?alt=sse`
(every SSE event is one whole `GenerateContentResponse`), embeddings to
`models/{id}:batchEmbedContents`. The API key travels in the `x-goog-api-key` header and never in
the URL, so no logged URL can leak it.

Every field of an OpenAI request is either translated, deliberately consumed (a harmless
OpenAI-only hint, see `CONSUMED_FIELDS`) or rejected with a 400 naming it: nothing is dropped
silently. docs/providers/gemini.md has the full table.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from relaygate.config.schema import ModelConfig, ProviderConfig
from relaygate.errors import GatewayError, UpstreamError, bad_request
from relaygate.providers.base import JSON
from relaygate.providers.http import UpstreamClient
from relaygate.providers.openai_compat import configured_headers

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

# Google rejects a batchEmbedContents call with more than 100 requests (INVALID_ARGUMENT).
EMBED_BATCH_LIMIT = 100

# Google's documented placeholder for function calls that Gemini did not produce itself (or whose
# signature the client dropped): Gemini 3 rejects a replayed function call without a signature.
SKIP_SIGNATURE = "skip_thought_signature_validator"

# Harmless OpenAI-only fields: accepted and not sent upstream (documented in the provider docs).
CONSUMED_FIELDS = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "metadata",
        "store",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "parallel_tool_calls",
    }
)

TRANSLATED_FIELDS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "reasoning_effort",
    }
)

_REJECTION_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "logprobs": "log probabilities are not translated",
        "top_logprobs": "log probabilities are not translated",
        "logit_bias": "Gemini has no token biasing",
        "audio": "audio output is not supported",
        "modalities": "only text output is supported",
        "prediction": "Gemini has no predicted outputs",
        "functions": "use 'tools' instead",
        "function_call": "use 'tool_choice' instead",
        "web_search_options": "web search is not translated",
    }
)

_SAMPLING_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("n", "candidateCount"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)

# The budgets Google's own OpenAI-compatible endpoint uses for `reasoning_effort`.
_THINKING_BUDGETS: Mapping[str, int] = MappingProxyType(
    {"none": 0, "low": 1024, "medium": 8192, "high": 24576}
)

_IMAGE_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "heic": "image/heic",
        "heif": "image/heif",
    }
)

_AUDIO_TYPES: Mapping[str, str] = MappingProxyType({"wav": "audio/wav", "mp3": "audio/mp3"})

_FILE_TYPES: Mapping[str, str] = MappingProxyType(
    {"pdf": "application/pdf", "txt": "text/plain", "md": "text/md", "csv": "text/csv"}
)

_FILTERED = "content_filter"
_FINISH_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "STOP": "stop",
        "MAX_TOKENS": "length",
        "SAFETY": _FILTERED,
        "RECITATION": _FILTERED,
        "BLOCKLIST": _FILTERED,
        "PROHIBITED_CONTENT": _FILTERED,
        "SPII": _FILTERED,
        "IMAGE_SAFETY": _FILTERED,
    }
)

_EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})


# --- request: OpenAI chat.completions body -> GenerateContentRequest ---------------------------


def _unsupported(param: str, what: str) -> GatewayError:
    return bad_request(
        f"{what} is not supported by Gemini models", param=param, code="unsupported_parameter"
    )


def _asks_for_default(key: str, value: Any) -> bool:
    """Whether an otherwise unsupported field only asks for OpenAI's default behaviour."""
    if key in {"logprobs", "top_logprobs"}:
        return bool(value is False or value == 0)
    if key == "logit_bias":
        return bool(value == {})
    return bool(key == "modalities" and value == ["text"])


def _check_fields(body: JSON) -> None:
    """Reject every field that is neither translated nor deliberately consumed."""
    for key, value in body.items():
        if value is None or key in TRANSLATED_FIELDS or key in CONSUMED_FIELDS:
            continue
        if _asks_for_default(key, value):
            continue
        reason = _REJECTION_REASONS.get(key, "it has no Gemini equivalent")
        raise bad_request(
            f"'{key}' is not supported by Gemini models: {reason}",
            param=key,
            code="unsupported_parameter",
        )


def _texts(content: Any, where: str) -> list[str]:
    """The text of a system/developer/tool message: a string or a list of text parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad_request(
            f"{where}.content must be a string or a list of parts", f"{where}.content"
        )
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise bad_request(f"{where}.content[{j}] must be a text part", f"{where}.content[{j}]")
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(
                f"{where}.content[{j}].text must be a string", f"{where}.content[{j}]"
            )
        texts.append(text)
    return texts


def _data_url(url: str, where: str) -> tuple[str, str]:
    """(mime type, base64 data) of a `data:` URL."""
    header, comma, data = url[5:].partition(",")
    params = header.split(";")
    if not comma or "base64" not in params[1:]:
        raise bad_request(f"{where} must be a base64 data: URL", param=where)
    return params[0] or "application/octet-stream", data


def _image_part(url: Any, where: str) -> JSON:
    if not isinstance(url, str):
        raise bad_request(f"{where} must be a URL string", param=where)
    if url.startswith("data:"):
        mime, data = _data_url(url, where)
        return {"inlineData": {"mimeType": mime, "data": data}}
    parsed = urlsplit(url)
    if parsed.scheme not in {"http", "https"}:
        raise bad_request(f"{where} must be an http(s) or data: URL", param=where)
    extension = parsed.path.rsplit(".", 1)[-1].lower() if "." in parsed.path else ""
    return {"fileData": {"fileUri": url, "mimeType": _IMAGE_TYPES.get(extension, "image/jpeg")}}


def _audio_part(audio: Any, where: str) -> JSON:
    fmt = audio.get("format") if isinstance(audio, dict) else None
    data = audio.get("data") if isinstance(audio, dict) else None
    mime = _AUDIO_TYPES.get(fmt) if isinstance(fmt, str) else None
    if mime is None or not isinstance(data, str):
        raise bad_request(f"{where} needs base64 'data' and a 'format' of wav or mp3", param=where)
    return {"inlineData": {"mimeType": mime, "data": data}}


def _file_part(file: Any, where: str) -> JSON:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        # OpenAI file ids name files stored at OpenAI; Gemini cannot fetch them.
        raise bad_request(f"{where} needs inline 'file_data'; file ids are not supported", where)
    if data.startswith("data:"):
        mime, payload = _data_url(data, where)
        return {"inlineData": {"mimeType": mime, "data": payload}}
    name = str(file.get("filename") or "")
    guessed = _FILE_TYPES.get(name.rsplit(".", 1)[-1].lower()) if "." in name else None
    if guessed is None:
        raise bad_request(f"{where} needs a data: URL or a filename with a known type", where)
    return {"inlineData": {"mimeType": guessed, "data": data}}


def _user_part(part: Any, where: str) -> JSON | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{where}.text must be a string", param=f"{where}.text")
        # Gemini rejects empty text parts.
        return {"text": text} if text else None
    if kind == "image_url":
        image = part.get("image_url")
        return _image_part(image.get("url") if isinstance(image, dict) else image, where)
    if kind == "input_audio":
        return _audio_part(part.get("input_audio"), where)
    if kind == "file":
        return _file_part(part.get("file"), where)
    raise _unsupported(f"{where}.type", f"content part type {kind!r}")


def _user_parts(content: Any, where: str) -> list[JSON]:
    if content is None or isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(
            f"{where}.content must be a string or a list of parts", f"{where}.content"
        )
    parts = (_user_part(part, f"{where}.content[{j}]") for j, part in enumerate(content))
    return [part for part in parts if part is not None]


def _function_call_part(call: Any, where: str, names: dict[str, str]) -> JSON:
    """One assistant tool call as a `functionCall` part; remembers its name for the results."""
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_request(f"{where} must be a function call with a name", param=where)
    arguments = fn.get("arguments") or "{}"
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise bad_request(
            f"{where}.function.arguments must be a JSON object", param=f"{where}.function.arguments"
        )
    if isinstance(call.get("id"), str):
        names[call["id"]] = fn["name"]
    part: JSON = {"functionCall": {"name": fn["name"], "args": args}}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
        part["thoughtSignature"] = google["thought_signature"]
    return part


def _assistant_parts(message: JSON, where: str, names: dict[str, str]) -> list[JSON]:
    content = message.get("content")
    texts: list[str] = []
    if isinstance(content, list):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in {"text", "refusal"} or not isinstance(part.get(kind), str):
                raise bad_request(
                    f"{where}.content[{j}] must be a text or refusal part", f"{where}.content[{j}]"
                )
            texts.append(part[kind])
    else:
        texts = _texts(content, where)
    if isinstance(message.get("refusal"), str):
        texts.append(message["refusal"])
    if message.get("audio") is not None:
        raise _unsupported(f"{where}.audio", "assistant audio")
    if message.get("function_call") is not None:
        raise _unsupported(f"{where}.function_call", "the legacy 'function_call'")
    parts: list[JSON] = [{"text": text} for text in texts if text]
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_request(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
    for k, call in enumerate(calls):
        parts.append(_function_call_part(call, f"{where}.tool_calls[{k}]", names))
    return parts


def _tool_result_part(message: JSON, where: str, names: dict[str, str]) -> JSON:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        raise bad_request(
            f"{where}.tool_call_id does not match any earlier assistant tool call",
            param=f"{where}.tool_call_id",
        )
    text = "".join(_texts(message.get("content"), where))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    """Add a turn, merging it into the previous one when the role repeats."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _sign_function_calls(contents: list[JSON]) -> None:
    """Give each model turn's first function call a signature when the client sent none."""
    for content in contents:
        if content["role"] != "model":
            continue
        calls = [part for part in content["parts"] if "functionCall" in part]
        if calls and not any("thoughtSignature" in part for part in calls):
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE


def _contents(messages: list[Any]) -> tuple[list[JSON], list[JSON]]:
    """(systemInstruction parts, contents) for the OpenAI `messages`."""
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in {"system", "developer"}:
            system.extend({"text": text} for text in _texts(message.get("content"), where) if text)
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content"), where))
        elif role == "assistant":
            _append(contents, "model", _assistant_parts(message, where, names))
        elif role == "tool":
            _append(contents, "user", [_tool_result_part(message, where, names)])
        else:
            raise _unsupported(f"{where}.role", f"role {role!r}")
    _sign_function_calls(contents)
    return system, contents


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise bad_request("'stop' must be a string or a list of strings", param="stop")


def _response_format(fmt: Any) -> JSON:
    if fmt is None:
        return {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request("'response_format.json_schema' must be an object", "response_format")
        # responseJsonSchema takes JSON Schema as OpenAI does; responseSchema is an OpenAPI subset.
        out: JSON = {"responseMimeType": "application/json"}
        if spec.get("schema") is not None:
            out["responseJsonSchema"] = spec["schema"]
        return out
    raise bad_request(
        "'response_format.type' must be text, json_object or json_schema", "response_format"
    )


def _thinking_config(effort: Any) -> JSON | None:
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _THINKING_BUDGETS:
        raise bad_request(
            f"'reasoning_effort' must be one of {', '.join(_THINKING_BUDGETS)} for Gemini models",
            param="reasoning_effort",
        )
    return {"thinkingBudget": _THINKING_BUDGETS[effort]}


def _generation_config(body: JSON) -> JSON:
    config: JSON = {
        theirs: body[ours] for ours, theirs in _SAMPLING_FIELDS if body.get(ours) is not None
    }
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stops = _stop_sequences(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    config.update(_response_format(body.get("response_format")))
    thinking = _thinking_config(body.get("reasoning_effort"))
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _function_declaration(tool: Any, where: str) -> JSON:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise _unsupported(f"{where}.type", f"tool type {kind!r}")
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_request(f"{where}.function.name is required", param=f"{where}.function")
    declaration: JSON = {"name": fn["name"]}
    if isinstance(fn.get("description"), str):
        declaration["description"] = fn["description"]
    if fn.get("parameters") is not None:
        # JSON Schema as OpenAI defines it; Gemini's `parameters` is an OpenAPI subset that
        # rejects keywords OpenAI clients use (strict mode's additionalProperties, $ref, ...).
        declaration["parametersJsonSchema"] = fn["parameters"]
    return declaration


def _tool_config(choice: Any, names: list[str]) -> JSON | None:
    if choice is None or (choice in ("auto", "none") and not names):
        return None
    if not names:
        raise bad_request("'tool_choice' needs at least one tool", param="tool_choice")
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"functionCallingConfig": {"mode": modes[choice]}}
    if not isinstance(choice, dict) or choice.get("type") != "function":
        raise bad_request(
            "'tool_choice' must be auto, none, required or a function", param="tool_choice"
        )
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else None
    if name not in names:
        raise bad_request(f"'tool_choice' names an unknown function {name!r}", "tool_choice")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _chat_request(body: JSON) -> JSON:
    """The GenerateContentRequest for an OpenAI chat.completions body."""
    _check_fields(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list", param="messages")
    system, contents = _contents(messages)
    if not contents:
        raise bad_request(
            "'messages' needs at least one non-empty user or assistant message", "messages"
        )
    request: JSON = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list", param="tools")
    declarations = [_function_declaration(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(body.get("tool_choice"), [d["name"] for d in declarations])
    if tool_config is not None:
        request["toolConfig"] = tool_config
    generation = _generation_config(body)
    if generation:
        request["generationConfig"] = generation
    return request


# --- response: GenerateContentResponse -> chat.completion / chat.completion.chunk --------------


def _count(meta: JSON, key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(meta: Any) -> JSON | None:
    """OpenAI usage for a `usageMetadata`; thinking tokens count as (reasoning) completion."""
    if not isinstance(meta, dict):
        return None
    # Tool-use prompt tokens (built-in tools) are billed as input, like the prompt.
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    completion = _count(meta, "candidatesTokenCount") + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _count(meta, "cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def _finish_reason(raw: Any, has_tool_calls: bool) -> str:
    reason = _FINISH_REASONS.get(str(raw), "stop")
    return "tool_calls" if reason == "stop" and has_tool_calls else reason


def _tool_call(call: JSON, signature: Any) -> JSON:
    out: JSON = {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {
            "name": str(call.get("name") or ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }
    if isinstance(signature, str) and signature:
        # Google's own OpenAI-compatible endpoint carries the signature here; clients that send
        # the tool call back unchanged keep Gemini 3's multi-step function calling working.
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _read_candidate(candidate: JSON) -> tuple[str, list[JSON]]:
    """(answer text, tool calls) of a candidate; thought summaries are not part of the answer."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[JSON] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        if isinstance(part.get("functionCall"), dict):
            calls.append(_tool_call(part["functionCall"], part.get("thoughtSignature")))
    return "".join(texts), calls


def _index(candidate: JSON, position: int) -> int:
    # proto3 JSON leaves out index 0, so a missing index means the first candidate.
    index = candidate.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else position


def _candidates(data: JSON) -> list[JSON]:
    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        return []
    return [candidate for candidate in candidates if isinstance(candidate, dict)]


def _block_reason(data: JSON) -> str | None:
    feedback = data.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    return str(reason) if reason else None


def _completion_id(data: JSON) -> str:
    response_id = data.get("responseId")
    return "chatcmpl-" + (str(response_id) if response_id else uuid.uuid4().hex[:24])


def _choice(index: int, text: str, calls: list[JSON], finish: str) -> JSON:
    message: JSON = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def _completion(data: JSON, model_id: str) -> JSON:
    """The chat.completion for a whole GenerateContentResponse."""
    choices = []
    for position, candidate in enumerate(_candidates(data)):
        text, calls = _read_candidate(candidate)
        finish = _finish_reason(candidate.get("finishReason"), bool(calls))
        choices.append(_choice(_index(candidate, position), text, calls, finish))
    if not choices:
        choices.append(_choice(0, "", [], _FILTERED))  # the prompt itself was blocked
    out: JSON = {
        "id": _completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": sorted(choices, key=lambda c: int(c["index"])),
    }
    usage = _usage(data.get("usageMetadata"))
    if usage is not None:
        out["usage"] = usage
    return out


class _StreamTranslator:
    """Turns each streamed GenerateContentResponse into chat.completion.chunk dicts."""

    def __init__(self, model_id: str) -> None:
        self.id = ""
        self.created = int(time.time())
        self.model = model_id
        self.usage: JSON | None = None
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._tool_calls: dict[int, int] = {}

    @property
    def complete(self) -> bool:
        """Whether every candidate seen so far has finished."""
        return bool(self._finished) and self._started <= self._finished

    def chunk(self, index: int, delta: JSON, finish: str | None = None) -> JSON:
        """One chunk carrying `delta` for choice `index`."""
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    def translate(self, data: JSON) -> list[JSON]:
        """The chunks for one event."""
        self.id = self.id or _completion_id(data)
        self.usage = _usage(data.get("usageMetadata")) or self.usage
        candidates = _candidates(data)
        chunks: list[JSON] = []
        for position, candidate in enumerate(candidates):
            chunks.extend(self._candidate(_index(candidate, position), candidate))
        if not candidates and _block_reason(data):
            chunks.extend(self._candidate(0, {"finishReason": "SAFETY"}))
        return chunks

    def _candidate(self, index: int, candidate: JSON) -> list[JSON]:
        chunks: list[JSON] = []
        if index not in self._started:
            self._started.add(index)
            chunks.append(self.chunk(index, {"role": "assistant", "content": ""}))
        text, calls = _read_candidate(candidate)
        if text:
            chunks.append(self.chunk(index, {"content": text}))
        if calls:
            first = self._tool_calls.get(index, 0)
            self._tool_calls[index] = first + len(calls)
            deltas = [{"index": first + k, **call} for k, call in enumerate(calls)]
            chunks.append(self.chunk(index, {"tool_calls": deltas}))
        if candidate.get("finishReason"):
            self._finished.add(index)
            has_calls = self._tool_calls.get(index, 0) > 0
            finish = _finish_reason(candidate["finishReason"], has_calls)
            chunks.append(self.chunk(index, {}, finish))
        return chunks

    def usage_chunk(self) -> JSON | None:
        """The closing chunk with no choices and the last reported usage, if any."""
        if self.usage is None:
            return None
        return {**self.chunk(0, {}), "choices": [], "usage": self.usage}


# --- embeddings ---------------------------------------------------------------------------------


def _embedding_texts(body: JSON) -> list[str]:
    for key, value in body.items():
        if value is not None and key not in _EMBEDDING_FIELDS:
            raise _unsupported(key, f"'{key}'")
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise bad_request(
            "Gemini embeds text only: 'input' must be a string or a list of strings"
            " (token arrays are not supported)",
            param="input",
            code="unsupported_parameter",
        )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    return texts


def _encode(values: list[float], encoding: Any) -> list[float] | str:
    if encoding != "base64":
        return values
    # What OpenAI sends for base64: the little-endian float32 array, base64-encoded.
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


# --- the provider -------------------------------------------------------------------------------


def _model_name(model: ModelConfig) -> str:
    """The resource name: `models/ID`, or the upstream as given when it names a collection."""
    upstream = model.upstream_id
    return upstream if "/" in upstream else f"models/{upstream}"


class GeminiProvider:
    """Gemini through the Generative Language API, speaking OpenAI's format to the gateway."""

    def __init__(self, config: ProviderConfig, secrets: Mapping[str, str]) -> None:
        self.config = config
        self.client = UpstreamClient(
            config,
            config.base_url or DEFAULT_BASE_URL,
            self.auth_headers(secrets),
            secrets.values(),
        )

    def auth_headers(self, secrets: Mapping[str, str]) -> dict[str, str]:
        """The configured headers and the key in `x-goog-api-key` (never in the URL)."""
        headers = configured_headers(self.config, secrets)
        api_key = secrets.get("api_key")
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def _path(self, model: ModelConfig, method: str) -> str:
        return "/" + quote(_model_name(model), safe="/") + ":" + method

    def _auth_failure(self, exc: UpstreamError) -> UpstreamError | None:
        # Google answers an invalid or expired key with 400 INVALID_ARGUMENT, not 401/403. That is
        # the gateway's misconfiguration, not the client's mistake, and another deployment may work.
        if exc.status == 400 and "API key" in exc.message:
            if self.client.vault is not None:  # the tenant's own key (routing/outcome.py)
                return self.client.tenant_refusal(403)
            return UpstreamError(
                502,
                f"provider {self.config.name!r} rejected the gateway's credentials",
                retryable=True,
                code="upstream_auth_failed",
            )
        return None

    async def _post(self, path: str, body: JSON, end_by: float | None) -> JSON:
        try:
            data = await self.client.post_json(path, body, None, end_by)
        except UpstreamError as exc:
            mapped = self._auth_failure(exc)
            if mapped is None:
                raise
            raise mapped from None
        if not isinstance(data, dict):
            raise self._unexpected()
        return data

    def _unexpected(self) -> UpstreamError:
        return UpstreamError(
            502, f"provider {self.config.name!r} sent an unexpected response", retryable=True
        )

    async def chat(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """Non-streaming chat completion through `generateContent`."""
        path, request = self._path(model, "generateContent"), _chat_request(body)
        data = await self._post(path, request, self.client.end_by(timeout_s))
        if not _candidates(data) and not _block_reason(data):
            raise self._unexpected()
        return _completion(data, model.upstream_id)

    def _event(self, payload: str) -> JSON | None:
        """One SSE event's GenerateContentResponse; an error object becomes an UpstreamError."""
        if not payload.strip():
            return None
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            data = None
        name = self.config.name
        if not isinstance(data, dict):
            raise UpstreamError(
                502,
                f"provider {name!r} sent an invalid chunk",
                retryable=False,
                code="upstream_error",
            )
        if "error" in data:
            error = data["error"] if isinstance(data["error"], dict) else {}
            message = self.client.redact(str(error.get("message") or "stream error"))[:2000]
            raise UpstreamError(
                502,
                f"provider {name!r} failed mid-stream: {message}",
                retryable=False,
                code="upstream_error",
            )
        return data

    async def stream_chat(self, body: JSON, model: ModelConfig) -> AsyncIterator[JSON]:
        """Streaming chat completion through `streamGenerateContent?alt=sse`."""
        request = _chat_request(body)
        translator = _StreamTranslator(model.upstream_id)
        path = self._path(model, "streamGenerateContent")
        events = self.client.stream_events(path, request, {"alt": "sse"})
        try:
            async for event in events:
                data = self._event(event.data)
                if data is None:
                    continue
                for chunk in translator.translate(data):
                    yield chunk
        except UpstreamError as exc:
            mapped = self._auth_failure(exc)
            if mapped is None:
                raise
            raise mapped from None
        finally:
            # Closed here, not by the garbage collector: a client that stops reading must not
            # keep the upstream connection (and Google's meter) running.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
        if not translator.complete:
            raise UpstreamError(
                502,
                f"provider {self.config.name!r} ended the stream before it finished",
                retryable=False,
                code="upstream_disconnected",
            )
        usage = translator.usage_chunk()
        if usage is not None:
            yield usage

    async def _embed_batch(
        self, path: str, name: str, texts: list[str], dimensions: Any, end_by: float | None
    ) -> list[Any]:
        requests = []
        for text in texts:
            request: JSON = {"model": name, "content": {"parts": [{"text": text}]}}
            if dimensions is not None:
                request["outputDimensionality"] = dimensions
            requests.append(request)
        data = await self._post(path, {"requests": requests}, end_by)
        embeddings = data.get("embeddings")
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            raise self._unexpected()
        vectors = [e.get("values") if isinstance(e, dict) else None for e in embeddings]
        if not all(isinstance(v, list) for v in vectors):
            raise self._unexpected()
        return vectors

    async def embed(self, body: JSON, model: ModelConfig, timeout_s: float | None = None) -> JSON:
        """Embeddings through `batchEmbedContents`, at most 100 inputs per upstream call, all
        of them within `timeout_s`.

        `dimensions` defaults to the model's `embedding_dimensions`. Gemini reports no usage for
        embeddings, so the result has none and the gateway counts the input itself.
        """
        texts = _embedding_texts(body)
        path, name = self._path(model, "batchEmbedContents"), _model_name(model)
        dimensions = body.get("dimensions")
        if dimensions is None:
            dimensions = model.embedding_dimensions
        vectors: list[Any] = []
        end_by = self.client.end_by(timeout_s)
        # Batches go one after another: the embedding quota is per minute, and a burst of
        # parallel calls would turn one large request into a 429.
        for start in range(0, len(texts), EMBED_BATCH_LIMIT):
            batch = texts[start : start + EMBED_BATCH_LIMIT]
            vectors.extend(await self._embed_batch(path, name, batch, dimensions, end_by))
        encoding = body.get("encoding_format")
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(values, encoding)}
            for i, values in enumerate(vectors)
        ]
        return {"object": "list", "data": data, "model": model.upstream_id}

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
